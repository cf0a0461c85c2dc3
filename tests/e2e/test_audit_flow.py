"""`audit show` and `audit verify` over a real flow (propose → check → merge → deploy), then over tampered copies
of what that flow left behind: the committed evidence, the attestation, a ledger line, a commit signature, the
protected branch (a direct push, a force-push)."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import git
import pytest

from bot.audit.history import VerifyRequest, ViolationKind, verify_history
from bot.audit.reconstruct import LINK_ORDER, LinkStatus, Reconstruction, ShowRequest, reconstruct
from bot.cli import main
from bot.errors import UserError
from bot.policy.checkov import CheckovWorker
from bot.trust.attestations import attestation_path
from bot.trust.gitenv import commit_env
from bot.trust.keys import generate_key
from bot.trust.ledger import Ledger
from tests.flow_helpers import Flow, copy_repo, deployed_change, flow_env, overwrite_object, resign_commit

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@dataclass
class Change:
    flow: Flow
    cid: str
    pr: int
    head: str
    merge: str

    def show(self, query: str, **overrides: object) -> Reconstruction:
        args: dict[str, object] = {
            "query": query,
            "ledger": self.flow.ledger.path,
            "repo": self.flow.bare,
            "attestations": self.flow.attestations,
            "deploy_state": self.flow.data / "deploy-state",
        }
        args.update(overrides)
        return reconstruct(ShowRequest(**args))  # type: ignore[arg-type]

    def verify(self, **overrides: object) -> list[tuple[ViolationKind, str | None]]:
        args: dict[str, object] = {
            "ledger": self.flow.ledger.path,
            "repo": self.flow.bare,
            "attestations": self.flow.attestations,
        }
        args.update(overrides)
        report = verify_history(VerifyRequest(**args))  # type: ignore[arg-type]
        return [(v.kind, v.commit) for v in report.violations]


@pytest.fixture(scope="module")
def change(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Change]:
    # one real flow for the module; every tampering below works on a copy of what it left
    tmp = tmp_path_factory.mktemp("audit-flow")
    env = flow_env(tmp, required_approvals=0)
    flow = next(env)
    try:
        with CheckovWorker() as worker:
            cid, pr, head, merge_sha = deployed_change(flow, worker)
        yield Change(flow, cid, pr, head, merge_sha)
    finally:
        env.close()


def _status(rec: Reconstruction) -> dict[str, LinkStatus]:
    return {link.name: link.status for link in rec.links}


def test_show_rebuilds_every_link_by_correlation_id_pr_and_commit(change: Change) -> None:
    for query, kind in (
        (change.cid, "correlation-id"),
        (str(change.pr), "pr"),
        (change.merge, "commit"),
        (change.head[:12], "commit"),
    ):
        rec = change.show(query)
        assert rec.query_kind == kind
        assert rec.ok, rec.problems
        assert [link.name for link in rec.links] == list(LINK_ORDER)
        assert (rec.correlation_id, rec.pr, rec.head_commit, rec.merge_commit) == (
            change.cid,
            change.pr,
            change.head,
            change.merge,
        )
    links = {link.name: link for link in change.show(change.cid).links}
    assert links["signature"].signed_by == "cost-optimizer" and links["signature"].signature_verified
    assert links["verdict"].facts["result"] == "PASSED"
    assert links["deploy"].facts["identity"] == "glassbox-deployer" and links["deploy"].facts["simulated"] == [True]
    assert links["approvals"].facts["satisfied"] is True
    assert {s.kind.value for link in links.values() for s in link.sources} == {
        "git",
        "registry",
        "attestation",
        "ledger",
        "deploy-record",
    }


def test_show_is_fast_and_speaks_json_and_text(change: Change, capsys: pytest.CaptureFixture[str]) -> None:
    started = time.perf_counter()
    change.show(change.cid)
    assert time.perf_counter() - started < 2.0  # generous here; bench/bench_audit.py measures at 100k decisions
    base = ["--ledger", str(change.flow.ledger.path), "--repo", str(change.flow.bare)]
    base += ["--attestations", str(change.flow.attestations), "--deploy-state", str(change.flow.data / "deploy-state")]
    assert main(["audit", "show", change.cid, *base, "--output", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] and [link["status"] for link in data["links"]] == ["ok"] * len(LINK_ORDER)
    assert main(["audit", "show", str(change.pr), *base, "--full-ledger"]) == 0
    text = capsys.readouterr().out
    assert "every link verifies" in text and "ledger-chain" in text


def test_show_refuses_a_query_nothing_names(change: Change) -> None:
    with pytest.raises(UserError, match="no ledger event names"):
        change.show("01890a5d-ac96-774b-bcce-b302099a8057")
    with pytest.raises(UserError, match="no ledger event names"):
        change.show("4242")
    with pytest.raises(UserError, match="correlation id"):
        change.show("not-a-thing")


def test_show_names_a_tampered_evidence_record(change: Change, tmp_path: Path) -> None:
    repo = copy_repo(change.flow, tmp_path / "repo.git")
    head = git.Repo(repo).commit(change.head)
    [path] = [d.b_path for d in head.parents[0].diff(head) if d.b_path and d.b_path.startswith(".glassbox/")]
    blob = head.tree / path
    original = blob.data_stream.read()
    record = json.loads(original)
    record["request"]["requested_by"]["id"] = "mallory"  # who asked, rewritten after the fact
    overwrite_object(repo, blob.hexsha, (json.dumps(record, indent=2) + "\n").encode())
    rec = change.show(change.cid, repo=repo)
    status = _status(rec)
    assert status["evidence-record"] is LinkStatus.BROKEN
    assert any(p.startswith("evidence-record: broken") for p in rec.problems)
    assert status["signature"] is LinkStatus.OK  # the commit object itself is untouched


def test_show_names_a_one_byte_change_to_the_attestation(change: Change, tmp_path: Path) -> None:
    store = tmp_path / "attestations"
    shutil.copytree(change.flow.attestations, store)
    path = attestation_path(store, change.head)
    envelope = json.loads(path.read_text())
    payload = bytearray(base64.b64decode(envelope["payload"]))
    at = payload.index(b'"risk":"low"') + len(b'"risk":"')
    payload[at] = ord("h")  # one byte: "low" becomes "how"
    envelope["payload"] = base64.b64encode(bytes(payload)).decode()
    path.write_text(json.dumps(envelope))
    rec = change.show(change.cid, attestations=store)
    status = _status(rec)
    assert status["verdict"] is LinkStatus.BROKEN
    assert {status["plan"], status["policy"], status["risk"]} == {LinkStatus.MISSING}
    assert status["signature"] is LinkStatus.OK and status["approvals"] is LinkStatus.OK
    assert any("attestation does not verify" in p for p in rec.problems)


def test_show_names_an_edited_ledger_line(change: Change, tmp_path: Path) -> None:
    copy = tmp_path / "ledger.jsonl"
    lines = change.flow.ledger.path.read_bytes().splitlines(keepends=True)
    for i, line in enumerate(lines):
        event = json.loads(line)
        if event["action"] == "approvals" and event["details"]["satisfied"]:
            event["details"]["counted"] = [
                {"review_id": 1, "user": "dan", "commit_id": change.head, "requirements": []}
            ]
            lines[i] = json.dumps(event, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    copy.write_bytes(b"".join(lines))
    rec = change.show(change.cid, ledger=copy)
    status = _status(rec)
    assert status["approvals"] is LinkStatus.BROKEN
    assert any("edited" in p for p in rec.problems if p.startswith("approvals"))
    assert status["merge"] is LinkStatus.OK  # only the edited event is blamed
    full = change.show(change.cid, ledger=copy, full_ledger=True)
    assert full.links[-1].name == "ledger-chain" and full.links[-1].status is LinkStatus.BROKEN
    # the whole-history check sees the same edit as a chain break
    violations = change.verify(ledger=copy)
    assert ViolationKind.CHAIN_BREAK in {kind for kind, _ in violations}


def test_show_names_a_commit_resigned_by_an_untrusted_key(change: Change, tmp_path: Path) -> None:
    repo = copy_repo(change.flow, tmp_path / "repo.git")
    mallory = generate_key(tmp_path / "keys", "mallory")
    resign_commit(repo, change.head, mallory)
    rec = change.show(change.cid, repo=repo)
    status = _status(rec)
    assert status["signature"] is LinkStatus.BROKEN
    assert status["commit"] is LinkStatus.BROKEN  # the object no longer hashes to its name either
    assert any(p.startswith("signature: broken") for p in rec.problems)
    kinds = {kind for kind, _ in change.verify(repo=repo)}
    assert ViolationKind.UNSIGNED_COMMIT in kinds


def test_verify_is_clean_for_the_governed_flow(change: Change, capsys: pytest.CaptureFixture[str]) -> None:
    assert change.verify() == []
    args = ["--ledger", str(change.flow.ledger.path), "--repo", str(change.flow.bare)]
    assert main(["audit", "verify", *args, "--attestations", str(change.flow.attestations), "-o", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] and [c["pr"] for c in data["governed_commits"]] == [change.pr]


def _direct_push(repo_dir: Path, tmp_path: Path) -> str:
    """A commit that changes infra/ written straight onto main in the bare repository (update-ref)."""
    repo = git.Repo(repo_dir)
    main_head = repo.commit("refs/heads/main")
    blob = (
        subprocess.run(
            ["git", "--git-dir", str(repo_dir), "hash-object", "-w", "--stdin"],
            input=b"# widened by hand\n",
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .strip()
    )
    env = {"GIT_INDEX_FILE": str(tmp_path / "index")}
    repo.git.read_tree(main_head.tree.hexsha, env=env)
    repo.git.update_index("--add", "--cacheinfo", f"100644,{blob},infra/network/HOTFIX.md", env=env)
    tree = repo.git.write_tree(env=env)
    sha: str = repo.git.commit_tree(
        tree, "-p", main_head.hexsha, "-m", "hotfix straight to main", env=commit_env("Frank", "frank@example.com")
    )
    repo.git.update_ref("refs/heads/main", sha)
    return sha


def test_verify_flags_a_direct_push_to_main(change: Change, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo_dir = copy_repo(change.flow, tmp_path / "repo.git")
    sha = _direct_push(repo_dir, tmp_path)
    assert change.verify(repo=repo_dir) == [(ViolationKind.DIRECT_PUSH, sha)]
    args = ["--ledger", str(change.flow.ledger.path), "--repo", str(repo_dir)]
    assert main(["audit", "verify", *args, "--attestations", str(change.flow.attestations)]) == 1
    assert "direct-push" in capsys.readouterr().out
    assert main(["audit", "verify", *args, "--attestations", str(change.flow.attestations), "-o", "json"]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)["violations"][0]["kind"] == "direct-push" and "direct-push" in captured.err
    assert change.verify(repo=repo_dir, since=sha) == []  # nothing after it


def test_verify_flags_a_force_push_behind_a_recorded_merge(change: Change, tmp_path: Path) -> None:
    repo_dir = copy_repo(change.flow, tmp_path / "repo.git")
    repo = git.Repo(repo_dir)
    before = repo.commit(change.merge).parents[0]
    repo.git.update_ref("refs/heads/main", before.hexsha)
    violations = change.verify(repo=repo_dir)
    rewritten = [commit for kind, commit in violations if kind is ViolationKind.HISTORY_REWRITTEN]
    assert rewritten and set(rewritten) == {change.merge}  # the merge event and the deploy event both name it
    assert len(rewritten) == 2
    rec = change.show(change.cid, repo=repo_dir)
    assert _status(rec)["merge"] is LinkStatus.BROKEN


def test_verify_flags_a_deploy_of_a_directly_pushed_commit(change: Change, tmp_path: Path) -> None:
    from bot.deploy.events import EventSink
    from bot.records import Outcome

    repo_dir = copy_repo(change.flow, tmp_path / "repo.git")
    sha = _direct_push(repo_dir, tmp_path)
    copy = tmp_path / "ledger.jsonl"
    shutil.copy(change.flow.ledger.path, copy)
    sink = EventSink(ledger=Ledger(copy), signer=change.flow.signer("glassbox-deployer"))
    # a correctly signed deploy event, but of a commit that never came through a PR
    sink.emit("deploy", Outcome.ALLOW, "deployed network/dev", stack="network/dev", commit=sha)
    violations = change.verify(ledger=copy, repo=repo_dir)
    assert (ViolationKind.DIRECT_PUSH, sha) in violations and (ViolationKind.ORPHAN_DEPLOY, sha) in violations
