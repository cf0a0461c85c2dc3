"""Changes crafted so that a violation shows only through a relation a changed closure could miss.

A proportional check judges the changed closure and takes every other resource's findings from its base. A
change that breaks a relation without touching the resource that suffers from it (the untouched bucket whose
companion goes away or turns to another name, the bucket whose companions keep naming its old name, a block
that comes to depend on its bucket with no input changed) must still be judged as a full evaluation judges it:
the same verdict, the violation denied. Each companion here names its bucket by a literal name, so no Pulumi
dependency joins them: only the pack's own join (``lib/s3.rego``) does.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.check.evaluate import CheckRequest, run_check
from bot.policy.checkov import CheckovWorker
from bot.records import VerdictResult
from tests.closure_helpers import Judged, ShopEstate, denied, judged_both_ways, shop_estate, verdict_facts

pytestmark = pytest.mark.slow

ARCHIVE = "urn:pulumi:prod::shop::aws:s3/bucket:Bucket::archive"
VAULT = "urn:pulumi:prod::shop::aws:s3/bucket:Bucket::vault"
LEDGER = "urn:pulumi:prod::shop::aws:s3/bucket:Bucket::ledger"


@pytest.fixture(scope="module")
def worker() -> Iterator[CheckovWorker]:
    with CheckovWorker() as w:
        yield w


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> ShopEstate:
    return shop_estate(tmp_path_factory.mktemp("shop"))


def _judged(monkeypatch: pytest.MonkeyPatch, worker: CheckovWorker, shop: ShopEstate, case: str) -> Judged:
    judged = judged_both_ways(monkeypatch, worker, shop.root, shop.base, shop.head(case), author="carol")
    assert verdict_facts(judged.cold) == verdict_facts(judged.full)
    assert verdict_facts(judged.warm) == verdict_facts(judged.full)
    assert max(judged.checkov_scans["warm"]) < judged.estate  # judged proportionally, not by falling back
    return judged


def test_a_block_turned_to_another_name_leaves_the_untouched_bucket_denied(
    monkeypatch: pytest.MonkeyPatch, worker: CheckovWorker, shop: ShopEstate
) -> None:
    judged = _judged(monkeypatch, worker, shop, "retarget-archive-block")
    assert [f.resource for f in denied(judged.warm, "GB-DATA-003")] == [ARCHIVE]
    assert judged.warm.result is VerdictResult.FAILED


def test_a_deleted_block_leaves_the_untouched_bucket_denied(
    monkeypatch: pytest.MonkeyPatch, worker: CheckovWorker, shop: ShopEstate
) -> None:
    judged = _judged(monkeypatch, worker, shop, "drop-archive-block")
    assert [f.resource for f in denied(judged.warm, "GB-DATA-003")] == [ARCHIVE]


def test_renaming_only_the_bucket_its_companions_name(
    monkeypatch: pytest.MonkeyPatch, worker: CheckovWorker, shop: ShopEstate
) -> None:
    judged = _judged(monkeypatch, worker, shop, "rename-vault")
    for rule in ("GB-DATA-003", "GB-DATA-004", "GB-DATA-005"):
        assert VAULT in {f.resource for f in denied(judged.warm, rule)}, rule


def test_a_dependency_that_changes_no_input(
    monkeypatch: pytest.MonkeyPatch, worker: CheckovWorker, shop: ShopEstate
) -> None:
    # no input changes, so the plan lists no change; the block now references its bucket in the rendering,
    # and checkov sees them joined: the bucket's finding at head is no longer its finding at base
    judged = _judged(monkeypatch, worker, shop, "depends-on")
    assert judged.changes == 0
    at_base = run_check(CheckRequest(repo_path=shop.root, base=shop.base, head=shop.base, checkov=worker))
    ledger = {f.rule_id for f in judged.warm.findings if f.resource == LEDGER}
    assert ledger != {f.rule_id for f in at_base.verdict.findings if f.resource == LEDGER}
