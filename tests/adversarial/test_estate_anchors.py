"""Judging inputs come from the registry's estate at the base commit, never from the change being judged.

The attacks: relabel a prod stack as staging in its own config (to silence the prod-only backup and
deletion-protection rules); rename a project's `name:`; nest a new project named after another one; shadow a
stack file with a `.yml` twin. Each is judged by the base's estate: the prod rules still fire, and every estate
change is a governance change (denied for an agent, critical for a human)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bot.records import RiskTier, Verdict
from tests.flow_helpers import checked_edit

pytestmark = pytest.mark.slow


def _check(tmp: Path, edit: Callable[[Path], None], author: str = "carol") -> Verdict:
    return checked_edit(tmp, edit, author)


def test_relabelled_prod_stack_is_still_judged_as_prod(tmp_path: Path) -> None:
    def relabel(src: Path) -> None:
        stack = src / "infra/data/Pulumi.prod.yaml"
        text = stack.read_text().replace("glassbox:environment: prod", "glassbox:environment: staging")
        text = text.replace("dbBackupRetentionDays: 14", "dbBackupRetentionDays: 1")
        stack.write_text(text.replace("dbDeletionProtection: true", "dbDeletionProtection: false"))

    verdict = _check(tmp_path, relabel)
    denied = {f.rule_id for f in verdict.findings if f.status.value == "deny"}
    assert {"GB-DATA-008", "GB-DATA-009"} <= denied, verdict.findings
    assert verdict.result.value == "FAILED"


def test_renamed_project_is_a_governance_change(tmp_path: Path) -> None:
    def rename(src: Path) -> None:
        project = src / "infra/data/Pulumi.yaml"
        project.write_text(project.read_text().replace("name: data", "name: orders", 1))
        for stack in ("dev", "prod"):  # its config keys follow the new name, so the program still plans
            config = src / f"infra/data/Pulumi.{stack}.yaml"
            config.write_text(config.read_text().replace("  data:", "  orders:"))

    verdict = _check(tmp_path, rename)
    assert "infra/data/Pulumi.yaml" in {f.resource for f in verdict.findings if f.rule_id == "GB-GOV-002"}
    assert verdict.risk is RiskTier.CRITICAL


def test_nested_project_named_after_another_is_refused_for_an_agent(tmp_path: Path) -> None:
    def nest(src: Path) -> None:
        nested = src / "infra/data/shadow"
        nested.mkdir()
        (nested / "Pulumi.yaml").write_text("name: network\nruntime: python\n")
        (nested / "Pulumi.prod.yaml").write_text("config:\n  aws:region: eu-west-1\n")
        (nested / "__main__.py").write_text("pass\n")

    verdict = _check(tmp_path, nest, author="patch-agent")
    governed = {f.resource for f in verdict.findings if f.rule_id == "GB-GOV-001"}
    assert {"infra/data/shadow/Pulumi.yaml", "infra/data/shadow/Pulumi.prod.yaml"} <= governed, verdict.findings
    assert verdict.result.value == "FAILED"


def test_shadowing_yml_stack_file_is_a_governance_change(tmp_path: Path) -> None:
    def shadow(src: Path) -> None:
        (src / "infra/data/Pulumi.prod.yml").write_text((src / "infra/data/Pulumi.prod.yaml").read_text())

    verdict = _check(tmp_path, shadow)
    assert "infra/data/Pulumi.prod.yml" in {f.resource for f in verdict.findings if f.rule_id == "GB-GOV-002"}
    assert verdict.risk is RiskTier.CRITICAL


def test_a_registered_stack_config_edit_is_not_governance(tmp_path: Path) -> None:
    def tune(src: Path) -> None:
        stack = src / "infra/data/Pulumi.prod.yaml"
        stack.write_text(stack.read_text().replace("dbBackupRetentionDays: 14", "dbBackupRetentionDays: 21"))

    verdict = _check(tmp_path, tune)
    assert not [f for f in verdict.findings if f.rule_id.startswith("GB-GOV")], verdict.findings
    assert verdict.risk is not RiskTier.CRITICAL
