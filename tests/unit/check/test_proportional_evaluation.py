"""Proportional evaluation gives the full evaluation's verdict: a differential test over real estates.

Each change is checked three times on the same real plan with the same checkov worker and engine: in full
(``proportional=False``), proportionally with nothing cached for its base, and proportionally again with the
base's results cached. The three verdicts must say the same (result, findings in order, tier, reasons,
approvals), and the proportional runs must have handed the engines less than the estate: a closure that
silently fell back to the full evaluation would prove nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import git
import pytest

from bot.check.closure import CACHE_DIR_ENV, SWITCH_ENV, ResultCache
from bot.check.evaluate import CheckRequest, run_check
from bot.policy.checkov import CheckovWorker
from bot.records import FindingStatus, RiskTier
from tests.closure_helpers import (
    Judged,
    ShopEstate,
    bench_check,
    denied,
    judged_both_ways,
    observed,
    shop_estate,
    verdict_facts,
)
from tests.flow_helpers import TEST_GIT_ENV, governed_source

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def worker() -> Iterator[CheckovWorker]:
    with CheckovWorker() as w:
        yield w


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> ShopEstate:
    return shop_estate(tmp_path_factory.mktemp("shop"))


def assert_identical(judged: Judged, *, proportional: bool = True) -> None:
    assert verdict_facts(judged.cold) == verdict_facts(judged.full)
    assert verdict_facts(judged.warm) == verdict_facts(judged.full)
    assert judged.rego_inputs["full"] == [judged.estate]
    if proportional:
        # warm: the head closure only, for both engines
        assert judged.rego_inputs["warm"] and max(judged.rego_inputs["warm"]) < judged.estate
        assert judged.checkov_scans["warm"] and max(judged.checkov_scans["warm"]) < judged.estate
    # the verdict says how it was judged: an auditor can tell a closure from a full evaluation
    assert judged.full.verifier["evaluation"] == "full"
    counts = dict(part.split("=") for part in judged.warm.verifier["evaluation"].split()[1:])
    estate = f"/{judged.estate}"
    assert counts["rego"].endswith(estate) and counts["checkov"].endswith(estate)
    if proportional:
        assert int(counts["rego"].removesuffix(estate)) < judged.estate


def _shop(monkeypatch: pytest.MonkeyPatch, worker: CheckovWorker, shop: ShopEstate, case: str) -> Judged:
    return judged_both_ways(monkeypatch, worker, shop.root, shop.base, shop.head(case), author="carol")


def _untouched_violations_kept(judged: Judged) -> None:
    # the prod database without deletion protection and the key that does not rotate fail every PR of the stack
    assert any(f.resource and f.resource.endswith("::legacy") for f in denied(judged.warm, "GB-DATA-009"))
    assert denied(judged.warm, "GB-DATA-010")
    pre_existing = [f for f in judged.warm.findings if f.engine == "checkov" and "pre-existing" in f.message]
    assert pre_existing and all(f.status is FindingStatus.WARN for f in pre_existing)


def test_a_change_to_a_buckets_public_access_block_only(
    monkeypatch: pytest.MonkeyPatch, worker: CheckovWorker, shop: ShopEstate
) -> None:
    judged = _shop(monkeypatch, worker, shop, "pab")
    assert_identical(judged)
    [block] = denied(judged.warm, "GB-DATA-003")
    assert block.resource and block.resource.endswith("BucketPublicAccessBlock::data-0")
    _untouched_violations_kept(judged)


def test_a_change_to_a_policy_attachment_only(
    monkeypatch: pytest.MonkeyPatch, worker: CheckovWorker, shop: ShopEstate
) -> None:
    judged = _shop(monkeypatch, worker, shop, "admin")
    assert_identical(judged)
    assert [f.details["policy_arn"] for f in denied(judged.warm, "GB-IAM-004")] == [
        "arn:aws:iam::aws:policy/AdministratorAccess"
    ]
    assert judged.warm.risk is RiskTier.HIGH


def test_a_change_to_a_security_group_rule_only(
    monkeypatch: pytest.MonkeyPatch, worker: CheckovWorker, shop: ShopEstate
) -> None:
    judged = _shop(monkeypatch, worker, shop, "ssh")
    assert_identical(judged)
    assert [f.resource for f in denied(judged.warm, "GB-NET-001")] == [
        "urn:pulumi:prod::shop::aws:ec2/securityGroupRule:SecurityGroupRule::ssh"
    ]
    _untouched_violations_kept(judged)


def test_deleting_a_companion_fails_the_untouched_bucket_it_named(
    monkeypatch: pytest.MonkeyPatch, worker: CheckovWorker, shop: ShopEstate
) -> None:
    judged = _shop(monkeypatch, worker, shop, "drop-versioning")
    assert_identical(judged)
    unversioned = "urn:pulumi:prod::shop::aws:s3/bucket:Bucket::data-1"
    assert unversioned in {f.resource for f in denied(judged.warm, "GB-DATA-005")}
    assert unversioned not in {f.resource for f in denied(judged.full, "GB-DATA-003")}  # its other companions stay


def test_a_rule_on_a_default_security_group_fails_its_untouched_vpc(
    monkeypatch: pytest.MonkeyPatch, worker: CheckovWorker, shop: ShopEstate
) -> None:
    # checkov's CKV2_AWS_12 judges the VPC by its default group's rules: two hops from the change
    judged = _shop(monkeypatch, worker, shop, "default-group-rule")
    assert_identical(judged)
    vpc = "urn:pulumi:prod::shop::aws:ec2/vpc:Vpc::edge"
    assert "CKV2_AWS_12" in {f.rule_id for f in judged.warm.findings if f.resource == vpc}
    at_base = run_check(CheckRequest(repo_path=shop.root, base=shop.base, head=shop.base, checkov=worker))
    assert "CKV2_AWS_12" not in {f.rule_id for f in at_base.verdict.findings if f.resource == vpc}


def test_a_value_that_reads_like_an_address_is_judged_in_full(
    monkeypatch: pytest.MonkeyPatch, worker: CheckovWorker, shop: ShopEstate
) -> None:
    # checkov joins on such a value whatever the dependencies say: the closure cannot bound it
    judged = _shop(monkeypatch, worker, shop, "address-tag")
    assert_identical(judged, proportional=False)
    assert judged.checkov_scans["warm"] == [judged.estate]


def _sample_change(tmp_path: Path, project: str, old: str, new: str) -> tuple[Path, str, str]:
    src = governed_source(tmp_path)
    repo = git.Repo.init(src, initial_branch="main")
    repo.git.add("-A")
    repo.git.commit("--no-gpg-sign", "-m", "base", env=TEST_GIT_ENV)
    program = src / "infra" / project / "__main__.py"
    text = program.read_text()
    assert old in text
    program.write_text(text.replace(old, new, 1))
    repo.git.commit("--no-gpg-sign", "-am", "the change", env=TEST_GIT_ENV)
    return src, repo.commit("HEAD~1").hexsha, repo.head.commit.hexsha


def test_the_sample_estate_with_a_wildcard_policy(
    monkeypatch: pytest.MonkeyPatch, worker: CheckovWorker, tmp_path: Path
) -> None:
    src, base, head = _sample_change(tmp_path, "identity", '"Action": ["s3:ListBucket"]', '"Action": "*"')
    judged = judged_both_ways(monkeypatch, worker, src, base, head, author="carol")
    assert_identical(judged)
    assert len(denied(judged.warm, "GB-IAM-001")) == 2  # the policy in dev and in prod


def test_the_sample_estate_where_the_closure_is_everything(
    monkeypatch: pytest.MonkeyPatch, worker: CheckovWorker, tmp_path: Path
) -> None:
    # every bucket's block changes, and every resource of the project is within reach of one: judged in full
    src, base, head = _sample_change(tmp_path, "data", "block_public_acls=True", "block_public_acls=False")
    judged = judged_both_ways(monkeypatch, worker, src, base, head, author="erin")
    assert_identical(judged, proportional=False)
    assert judged.checkov_scans["warm"] == [judged.estate] and denied(judged.warm, "GB-DATA-003")


def test_the_bench_estate_with_five_changed_resources(
    monkeypatch: pytest.MonkeyPatch, worker: CheckovWorker, tmp_path: Path
) -> None:
    base, head = bench_check().make_estate(tmp_path, base=(60, 0), head=(60, 0), retag=False, touched=1)
    judged = judged_both_ways(monkeypatch, worker, tmp_path, base, head, pr=1, repo="acme/bench", plan_timeout=600)
    assert_identical(judged)
    assert len([f for f in judged.warm.findings if f.engine == "checkov"]) > 20  # the estate's pre-existing ones


def test_the_iam_heavy_bench_estate_with_three_new_policies(
    monkeypatch: pytest.MonkeyPatch, worker: CheckovWorker, tmp_path: Path
) -> None:
    base, head = bench_check().make_estate(tmp_path, base=(0, 24), head=(0, 27), retag=False)
    judged = judged_both_ways(monkeypatch, worker, tmp_path, base, head, pr=1, repo="acme/bench", plan_timeout=600)
    assert_identical(judged)
    assert len(denied(judged.warm, "GB-IAM-001")) >= 3  # wildcard documents, new and pre-existing


def test_a_change_to_the_whole_estate_is_judged_in_full(
    monkeypatch: pytest.MonkeyPatch, worker: CheckovWorker, tmp_path: Path
) -> None:
    base, head = bench_check().make_estate(tmp_path, base=(20, 0), head=(20, 0), retag=True)
    judged = judged_both_ways(monkeypatch, worker, tmp_path, base, head, pr=1, repo="acme/bench", plan_timeout=600)
    assert_identical(judged, proportional=False)
    assert judged.checkov_scans["warm"] == [judged.estate] and judged.rego_inputs["warm"] == [judged.estate]


def test_the_base_results_survive_the_process_in_the_cache_directory(
    monkeypatch: pytest.MonkeyPatch, worker: CheckovWorker, shop: ShopEstate, tmp_path: Path
) -> None:
    cache = tmp_path / "evaluation-cache"
    monkeypatch.setenv(CACHE_DIR_ENV, str(cache))
    first = _shop(monkeypatch, worker, shop, "ssh")
    entries = sorted(cache.glob("*.json"))
    assert len(entries) == 2  # checkov's and Rego's results for the base
    again = _shop(monkeypatch, worker, shop, "ssh")  # its cold run starts with an empty process cache
    assert verdict_facts(again.cold) == verdict_facts(first.full)
    assert max(again.checkov_scans["cold"]) < again.estate  # the base came from the directory, not a scan
    # entries edited after they were written are misses, never findings (accepted, each edit would show)
    for entry in entries:
        text = entry.read_text()
        edited_text = text.replace('"check_id":"CKV', '"check_id":"CKX', 1).replace(
            '"status":"deny"', '"status":"warn"', 1
        )
        assert edited_text != text
        entry.write_text(edited_text)
    edited = _shop(monkeypatch, worker, shop, "ssh")
    assert verdict_facts(edited.cold) == verdict_facts(first.full)
    assert max(edited.checkov_scans["cold"]) == edited.estate  # the base was scanned again


def test_glassbox_proportional_off_judges_the_whole_estate(
    monkeypatch: pytest.MonkeyPatch, worker: CheckovWorker, shop: ShopEstate
) -> None:
    head = shop.head("ssh")
    with observed(monkeypatch, worker) as (rego_sizes, scan_sizes):
        monkeypatch.setenv(SWITCH_ENV, "off")
        off = run_check(CheckRequest(repo_path=shop.root, base=shop.base, head=head, checkov=worker))
        assert off.plan is not None and rego_sizes == [len(off.plan.resources)] == scan_sizes
        rego_sizes.clear()
        scan_sizes.clear()
        monkeypatch.delenv(SWITCH_ENV)
        ResultCache.clear_memory()
        # the first proportional run judges the base in full (nothing known of it yet in this process) ...
        run_check(CheckRequest(repo_path=shop.root, base=shop.base, head=head, checkov=worker))
        rego_sizes.clear()
        scan_sizes.clear()
        # ... and from then on only what the change reaches, whichever tests ran before this one
        on = run_check(CheckRequest(repo_path=shop.root, base=shop.base, head=head, checkov=worker))
        assert max(rego_sizes) < len(off.plan.resources) and max(scan_sizes) < len(off.plan.resources)
    assert verdict_facts(on.verdict) == verdict_facts(off.verdict)
