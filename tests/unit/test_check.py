"""`glassbox check` on the sample estate: each policy area fails with the right rule, and errors fail closed."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import git
import pytest

from bot.check.ci import attest_and_record
from bot.check.evaluate import CheckRequest, CheckResult, run_check
from bot.policy.checkov import CheckovWorker
from bot.propose import build_evidence, commit_message, evidence_path
from bot.records import ChangeRequest, FindingStatus, Outcome, RiskTier, VerdictResult
from bot.registry import load_registry
from bot.trust.attestations import verify_attestation
from bot.trust.keys import Signer, generate_key
from bot.trust.ledger import Ledger
from tests.factories import change_request_data, edit_yaml
from tests.flow_helpers import governed_source

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def worker() -> Iterator[CheckovWorker]:
    with CheckovWorker() as w:
        yield w


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Signer]:
    d = tmp_path_factory.mktemp("keys")
    return {i: generate_key(d, i) for i in ("glassbox-ci", "cost-optimizer", "patch-agent")}


class Estate:
    def __init__(self, root: Path, worker: CheckovWorker) -> None:
        self.root = root
        self.repo = git.Repo.init(root, initial_branch="main")
        self.worker = worker
        self.commit("initial estate")
        self.base = self.repo.head.commit.hexsha

    def commit(self, message: str) -> str:
        self.repo.git.add("-A")
        self.repo.git.commit(
            "--no-gpg-sign",
            "-m",
            message,
            env={
                "GIT_AUTHOR_NAME": "t",
                "GIT_AUTHOR_EMAIL": "t@x",
                "GIT_COMMITTER_NAME": "t",
                "GIT_COMMITTER_EMAIL": "t@x",
            },
        )
        return self.repo.head.commit.hexsha

    def edit(self, path: str, old: str, new: str) -> None:
        file = self.root / path
        text = file.read_text()
        assert old in text, f"{old!r} not in {path}"
        file.write_text(text.replace(old, new, 1))

    def check(self, author: str, base: str | None = None) -> CheckResult:
        return run_check(
            CheckRequest(
                repo_path=self.root,
                base=base or self.base,
                head="HEAD",
                repo="acme/infra",
                pr=1,
                author=author,
                checkov=self.worker,
            )
        )

    def agent_change(self, signer: Signer, message_digest: str | None = None, **overrides: Any) -> ChangeRequest:
        """Commit an agent's change with its evidence record, as propose would."""
        data = change_request_data(repo="acme/infra", agent_id=signer.identity, **overrides)
        request = ChangeRequest.model_validate(data)
        registry = load_registry(self.root / "registry")
        for change in request.changes:
            target = self.root / change.path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(change.content or "")
        record = build_evidence(request, registry, "sha256:" + "0" * 64, signer)
        (self.root / evidence_path(request)).parent.mkdir(parents=True, exist_ok=True)
        (self.root / evidence_path(request)).write_text(record.model_dump_json(indent=2))
        message = commit_message(record)
        if message_digest:
            message = re.sub(r"Glassbox-Evidence: \S+", f"Glassbox-Evidence: {message_digest}", message)
        self.commit(message)
        return request


@pytest.fixture
def estate(tmp_path: Path, worker: CheckovWorker) -> Estate:
    return Estate(governed_source(tmp_path), worker)


def _denied(result: CheckResult) -> set[str]:
    return {f.rule_id for f in result.verdict.findings if f.status is FindingStatus.DENY}


def _dev_retention(days: int) -> str:
    text = (Path(__file__).resolve().parents[2] / "infra/network/Pulumi.dev.yaml").read_text()
    return text.replace("flowLogRetentionDays: 30", f"flowLogRetentionDays: {days}")


def test_a_compliant_agent_change_passes_at_low_risk(estate: Estate, keys: dict[str, Signer]) -> None:
    estate.agent_change(
        keys["cost-optimizer"],
        changes=[{"path": "infra/network/Pulumi.dev.yaml", "content": _dev_retention(60)}],
        expected_changes=[
            {
                "project": "network",
                "stack": "dev",
                "type": "aws:cloudwatch/logGroup:LogGroup",
                "name": "vpc-flow-logs",
                "action": "update",
            }
        ],
    )
    result = estate.check("cost-optimizer")
    v = result.verdict
    assert v.result is VerdictResult.PASSED, (v.errors, _denied(result))
    assert v.risk is RiskTier.LOW
    assert v.change.evidence_digest is not None and v.change.plan_digest.startswith("sha256:")
    assert [c.name for c in result.plan.changes] == ["vpc-flow-logs"]  # type: ignore[union-attr]


def _open_ssh_to_the_world(estate: Estate) -> None:
    estate.edit(
        "infra/network/__main__.py",
        "cidr_blocks=[vpc_cidr],",
        "cidr_blocks=[vpc_cidr],\n        ),\n        aws.ec2.SecurityGroupIngressArgs(\n"
        '            protocol="tcp", from_port=22, to_port=22, cidr_blocks=["0.0.0.0/0"],',
    )
    estate.commit("open ssh")


def test_world_open_ssh_is_denied(estate: Estate) -> None:
    _open_ssh_to_the_world(estate)
    result = estate.check("carol")
    assert result.verdict.result is VerdictResult.FAILED
    assert {"GB-NET-001", "CKV_AWS_24"} <= _denied(result)
    assert result.verdict.risk.rank >= RiskTier.HIGH.rank


def test_the_check_runs_on_regorus_when_asked(estate: Estate, monkeypatch: pytest.MonkeyPatch) -> None:
    # GLASSBOX_REGO_ENGINE=regorus: same finding, and the verdict names the engine that decided.
    monkeypatch.setenv("GLASSBOX_REGO_ENGINE", "regorus")
    _open_ssh_to_the_world(estate)
    result = estate.check("carol")
    assert result.verdict.result is VerdictResult.FAILED
    assert "GB-NET-001" in _denied(result)
    assert result.verdict.verifier["rego"].startswith("regorus-")


def test_a_public_bucket_is_denied(estate: Estate) -> None:
    estate.edit("infra/data/__main__.py", "block_public_acls=True", "block_public_acls=False")
    estate.commit("public bucket")
    assert "GB-DATA-003" in _denied(estate.check("erin"))


def test_a_wildcard_iam_policy_is_denied(estate: Estate) -> None:
    estate.edit("infra/identity/__main__.py", '"Action": ["s3:ListBucket"]', '"Action": "*"')
    estate.commit("wildcard")
    assert "GB-IAM-001" in _denied(estate.check("carol"))


def test_an_undeclared_prod_delete_by_an_agent_is_denied(estate: Estate, keys: dict[str, Signer]) -> None:
    source = (estate.root / "infra/data/__main__.py").read_text()
    dropped = source.replace('aws.kms.Alias("data", name=f"alias/{environment}-data", target_key_id=key.key_id)\n', "")
    assert dropped != source
    estate.agent_change(
        keys["patch-agent"],
        requested_by={"id": "carol", "kind": "human"},
        changes=[{"path": "infra/data/__main__.py", "content": dropped}],
        expected_changes=[],
    )
    denied = _denied(estate.check("patch-agent"))
    assert {"GB-CHG-001", "GB-CHG-002"} <= denied


def test_an_agents_governance_change_is_denied(estate: Estate, keys: dict[str, Signer]) -> None:
    estate.agent_change(
        keys["cost-optimizer"], changes=[{"path": "registry/tools.yaml", "content": "schema_version: 1\ntools: []\n"}]
    )
    result = estate.check("cost-optimizer")
    assert "GB-GOV-001" in _denied(result)
    assert result.verdict.risk is RiskTier.CRITICAL


def test_altered_evidence_is_denied(estate: Estate, keys: dict[str, Signer]) -> None:
    estate.agent_change(
        keys["cost-optimizer"],
        message_digest="sha256:" + "1" * 64,
        changes=[{"path": "infra/network/Pulumi.dev.yaml", "content": _dev_retention(60)}],
    )
    result = estate.check("cost-optimizer")
    assert result.verdict.result is VerdictResult.FAILED
    assert _denied(result) & {"GB-EVD-002", "GB-EVIDENCE-INTEGRITY"}


def test_a_humans_governance_change_is_critical_and_needs_two_security_approvals(estate: Estate) -> None:
    edit_yaml(estate.root / "registry/tools.yaml", lambda d: d["tools"][0].update(description="Read the repo."))
    estate.commit("tweak tool catalog")
    v = estate.check("alice").verdict
    assert v.risk is RiskTier.CRITICAL
    assert [(a.team, a.count) for a in v.required_approvals] == [("security", 2)]


def test_a_broken_policy_on_the_base_fails_closed(estate: Estate) -> None:
    (estate.root / "policy-pack/network/gb_net_001.rego").write_text(
        "package glassbox.network.gb_net_001\nthis is not rego\n"
    )
    base = estate.commit("break the pack on the base")
    (estate.root / "infra/network/Pulumi.dev.yaml").write_text(_dev_retention(60))
    estate.commit("harmless change")
    v = estate.check("carol", base=base).verdict
    assert v.result is VerdictResult.FAILED and v.errors and v.risk is RiskTier.CRITICAL


def test_a_pr_cannot_judge_itself_with_a_weakened_pack(estate: Estate) -> None:
    shutil.rmtree(estate.root / "policy-pack/network")
    estate.edit(
        "infra/network/__main__.py",
        "cidr_blocks=[vpc_cidr],",
        "cidr_blocks=[vpc_cidr],\n        ),\n        aws.ec2.SecurityGroupIngressArgs(\n"
        '            protocol="tcp", from_port=3389, to_port=3389, cidr_blocks=["0.0.0.0/0"],',
    )
    estate.commit("drop network rules and open RDP")
    result = estate.check("carol")
    assert "GB-NET-001" in _denied(result)  # judged by the base's pack
    assert result.verdict.risk is RiskTier.CRITICAL  # and it touched a governance path


def test_a_program_that_fails_to_run_fails_closed(estate: Estate) -> None:
    (estate.root / "infra/network/__main__.py").write_text("raise RuntimeError('boom')\n")
    estate.commit("broken program")
    v = estate.check("carol").verdict
    assert v.result is VerdictResult.FAILED and any("boom" in e for e in v.errors)


def test_outputs_attestation_and_ledger(estate: Estate, keys: dict[str, Signer], tmp_path: Path) -> None:
    (estate.root / "infra/network/Pulumi.dev.yaml").write_text(_dev_retention(60))
    estate.commit("retention")
    reg_root = tmp_path / "reg"
    shutil.copytree(estate.root / "registry", reg_root)
    ci = keys["glassbox-ci"]
    edit_yaml(
        reg_root / "trust.yaml",
        lambda d: d["keys"].append(
            {
                "identity": "glassbox-ci",
                "keyid": ci.keyid,
                "public_key": ci.public_line,
                "roles": ["verdict-signer", "ledger-signer"],
            }
        ),
    )
    ledger = Ledger(tmp_path / "ledger.jsonl")
    result = attest_and_record(estate.check("carol"), signer=ci, ledger=ledger)
    files = {p.name for p in result.write(tmp_path / "out")}
    assert files == {"verdict.json", "verdict.sarif", "summary.md", "plan.json", "attestation.dsse.json"}
    sarif = json.loads((tmp_path / "out/verdict.sarif").read_text())
    assert sarif["version"] == "2.1.0"
    envelope = json.loads((tmp_path / "out/attestation.dsse.json").read_text())
    verdict, _ = verify_attestation(envelope, load_registry(reg_root))
    assert verdict == result.verdict
    [event] = list(ledger.events())
    assert event.action == "check" and event.outcome is Outcome.ALLOW and event.subject.tree == verdict.change.head_tree


def test_waivers_cover_a_deny_until_they_expire() -> None:
    from bot.check.evaluate import apply_waivers
    from bot.records import Finding, Waiver

    urn = "urn:pulumi:prod::network::aws:ec2/securityGroup:SecurityGroup::app"
    deny = Finding(
        engine="rego",
        rule_id="GB-NET-005",
        severity=RiskTier.HIGH,
        status=FindingStatus.DENY,
        message="port 8443 open to the world",
        resource=urn,
    )
    now = datetime(2026, 11, 25, tzinfo=UTC)
    live = Waiver(
        rule_id="GB-NET-005",
        resource=urn,
        justification="partner integration until the VPN lands",
        approver="alice",
        expires=now + timedelta(days=7),
    )
    expired = live.model_copy(update={"expires": now - timedelta(days=1)})
    other = live.model_copy(update={"resource": "urn:pulumi:prod::network::aws:ec2/securityGroup:SecurityGroup::db"})
    [waived], notes = apply_waivers([deny], [live], now)
    assert waived.status is FindingStatus.WAIVED and waived.waiver == live and notes == []
    [kept], notes = apply_waivers([deny], [expired], now)
    assert kept.status is FindingStatus.DENY and "expired" in notes[0] and "ignored" in notes[0]
    [kept], _ = apply_waivers([deny], [other], now)
    assert kept.status is FindingStatus.DENY


def test_a_waiver_is_read_from_the_base_commit(estate: Estate) -> None:
    (estate.root / "registry/waivers.yaml").write_text(
        "waivers:\n"
        "  - rule_id: GB-NET-001\n"
        "    resource: '*'\n"
        "    justification: vendor RDP during the migration window (SEC-77)\n"
        "    approver: alice\n"
        "    expires: '2099-01-01T00:00:00+00:00'\n"
    )
    base = estate.commit("security grants a waiver")
    estate.edit(
        "infra/network/__main__.py",
        "cidr_blocks=[vpc_cidr],",
        "cidr_blocks=[vpc_cidr],\n        ),\n        aws.ec2.SecurityGroupIngressArgs(\n"
        '            protocol="tcp", from_port=3389, to_port=3389, cidr_blocks=["0.0.0.0/0"],',
    )
    estate.commit("open RDP for the vendor")
    findings = estate.check("carol", base=base).verdict.findings
    waived = [f for f in findings if f.rule_id == "GB-NET-001"]
    assert waived and all(f.status is FindingStatus.WAIVED for f in waived)


def _captured_inputs(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    import bot.check.evaluate as evaluate

    seen: list[dict[str, Any]] = []
    real = evaluate.rego_findings

    def capture(pack_dir: Path, data: dict[str, Any]) -> Any:
        seen.append(json.loads(json.dumps(data)))
        return real(pack_dir, data)

    monkeypatch.setattr(evaluate, "rego_findings", capture)
    return seen


def test_the_input_a_check_hands_the_pack_is_what_the_published_schema_says(
    estate: Estate, keys: dict[str, Signer], monkeypatch: pytest.MonkeyPatch
) -> None:
    # `glassbox schema policy-input` (and its copy in policy-pack/schema/) is the contract a rule author
    # writes against: an agent PR with evidence and a human PR that opens SSH both produce inputs it accepts.
    import jsonschema

    schema = json.loads((Path(__file__).resolve().parents[2] / "policy-pack/schema/policy_input.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    seen = _captured_inputs(monkeypatch)
    estate.agent_change(
        keys["cost-optimizer"],
        changes=[{"path": "infra/network/Pulumi.dev.yaml", "content": _dev_retention(60)}],
    )
    estate.check("cost-optimizer")
    after_agent = estate.repo.head.commit.hexsha
    _open_ssh_to_the_world(estate)
    estate.check("carol", base=after_agent)
    assert [doc["pr"]["author"]["kind"] for doc in seen] == ["agent", "human"]
    assert seen[0]["evidence"]["present"] is True and seen[1]["evidence"]["present"] is False
    assert seen[1]["changes"] and seen[1]["plan"]["resources"]
    for doc in seen:
        problems = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]
        assert problems == []
    # closed objects: a field the input never has is refused, which is what lets OPA's checker flag a rule
    # reading one
    seen[1]["plan"]["resources"][0]["inputz"] = {}
    assert any("inputz" in e.message for e in validator.iter_errors(seen[1]))
