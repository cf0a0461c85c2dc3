from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import git
import pytest

from bot.errors import Denied, ForgeError, IntegrityError
from bot.propose import branch_name, evidence_path, propose
from bot.records import EvidenceRecord, Outcome
from bot.redaction import proves
from bot.registry import load_registry
from bot.trust.gitsign import verify_commit, write_allowed_signers
from tests.factories import HEX, edit_yaml
from tests.flow_helpers import REPO, Flow, flow_env, request

AWS_KEY = "AKIAIOSFODNN7EXAMPLE"


@pytest.fixture
def flow(tmp_path: Path) -> Iterator[Flow]:
    yield from flow_env(tmp_path)


def _refused(flow: Flow, agent: str = "cost-optimizer", **overrides: Any) -> list[str]:
    req = request(agent_id=agent, **overrides)
    with pytest.raises(Denied) as info:
        propose(req, flow.propose_context(agent if agent in flow.tokens else "cost-optimizer"))
    events = flow.ledger.find(correlation_id=req.correlation_id)
    assert events and events[-1].outcome is Outcome.DENY and events[-1].action == "propose"
    assert events[-1].details["reasons"] == info.value.reasons  # I6: the refusal is logged in full
    return info.value.reasons


def test_an_in_scope_request_becomes_one_signed_pr_with_its_evidence(flow: Flow, tmp_path: Path) -> None:
    req = request()
    result = propose(req, flow.propose_context("cost-optimizer"))
    assert result.outcome.value == "opened" and not result.draft
    pr = flow.forge("glassbox-bot").get_pull_request(result.pr_number)
    assert pr.head_ref == branch_name(req) == f"glassbox/cost-optimizer/{req.correlation_id}"
    assert sorted(pr.labels) == ["agent:cost-optimizer", "glassbox"]
    assert pr.author == "cost-optimizer"
    for needle in (
        "Cut idle spend",
        "ret-001",
        "planner-large",
        "0.92",
        "stop the bastion nightly",
        "vpc-flow-logs",
        "Revert the PR",
        result.evidence_digest,
    ):
        assert needle in pr.body

    repo = git.Repo(flow.bare)
    commit = repo.commit(pr.head_sha)
    assert [p.hexsha for p in commit.parents] == [flow.main_head().hexsha]  # exactly one commit
    assert f"Glassbox-Evidence: {result.evidence_digest}" in commit.message
    assert f"Glassbox-Correlation-Id: {req.correlation_id}" in commit.message
    record = EvidenceRecord.model_validate_json((commit.tree / evidence_path(req)).data_stream.read())
    assert record.verify_digest() and record.digest == result.evidence_digest
    assert record.request.files[0].sha256 is not None and "flowLogRetentionDays" not in record.model_dump_json()

    assert verify_commit(flow.bare, pr.head_sha, flow.registry) == "cost-optimizer"
    signers = write_allowed_signers(flow.registry, tmp_path / "allowed_signers")
    ok = subprocess.run(
        [
            "git",
            "-C",
            str(flow.bare),
            "-c",
            "gpg.format=ssh",
            "-c",
            f"gpg.ssh.allowedSignersFile={signers}",
            "verify-commit",
            pr.head_sha,
        ],
        capture_output=True,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr

    events = flow.ledger.find(correlation_id=req.correlation_id)
    assert [(e.action, e.outcome) for e in events] == [("propose", Outcome.ALLOW)]
    assert events[0].subject.pr == result.pr_number and events[0].subject.commit == pr.head_sha
    assert flow.ledger.verify(flow.ledger_keys()).ok


def test_git_rejects_a_commit_signed_by_a_key_outside_trust(flow: Flow, tmp_path: Path) -> None:
    result = propose(request(), flow.propose_context("cost-optimizer"))
    root = tmp_path / "reg-copy"
    import shutil

    shutil.copytree(flow.registry.root, root)
    edit_yaml(root / "trust.yaml", lambda d: d.update(keys=[k for k in d["keys"] if k["identity"] != "cost-optimizer"]))
    with pytest.raises(IntegrityError, match="no valid signature"):
        verify_commit(flow.bare, result.head_sha, load_registry(root))


def test_rerunning_a_request_returns_the_same_pr(flow: Flow) -> None:
    req = request()
    first = propose(req, flow.propose_context("cost-optimizer"))
    again = propose(req, flow.propose_context("cost-optimizer"))
    assert again.outcome.value == "existing" and again.pr_number == first.pr_number
    assert again.evidence_digest == first.evidence_digest
    assert len(list(git.Repo(flow.bare).iter_commits(f"main..{branch_name(req)}"))) == 1


def test_a_crash_between_ref_and_pr_then_a_retry_yields_one_pr(flow: Flow) -> None:
    from tests.forge_helpers import ForgeEnv

    env = ForgeEnv(data=flow.data, url=flow.url, tokens=flow.tokens, stop=lambda: None, log=None)  # type: ignore[arg-type]
    env.faults({"method": "POST", "path": r"/pulls$", "every": True, "kind": "502"})
    req = request()
    with pytest.raises(ForgeError):
        propose(req, flow.propose_context("cost-optimizer"))
    assert git.Repo(flow.bare).commit(f"refs/heads/{branch_name(req)}")  # the ref exists, the PR does not
    env.admin("DELETE", "/_glassbox/faults")
    result = propose(req, flow.propose_context("cost-optimizer"))
    assert result.outcome.value == "opened"
    prs = flow.forge("glassbox-bot")
    assert prs.find_open_pull_request(branch_name(req)) is not None
    assert len(list(git.Repo(flow.bare).iter_commits(f"main..{branch_name(req)}"))) == 1
    outcomes = [e.outcome for e in flow.ledger.find(correlation_id=req.correlation_id)]
    assert outcomes == [Outcome.ERROR, Outcome.ALLOW]


def test_a_draft_agent_opens_a_draft_pr(flow: Flow) -> None:
    req = request(
        agent_id="network-agent",
        requested_by={"id": "carol", "kind": "human"},
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
    result = propose(req, flow.propose_context("network-agent"))
    assert result.draft and flow.forge("glassbox-bot").get_pull_request(result.pr_number).draft


def test_secrets_in_free_text_are_redacted_with_provable_hashes(flow: Flow) -> None:
    data = request().model_dump(mode="json")
    data["rationale"]["objective"] = f"Rotate away from {AWS_KEY} leaked in the runbook"
    data["intent"] = f"Lower retention (old key {AWS_KEY})"
    req = request(**{k: data[k] for k in ("rationale", "intent")})
    result = propose(req, flow.propose_context("cost-optimizer"))
    pr = flow.forge("glassbox-bot").get_pull_request(result.pr_number)
    commit = git.Repo(flow.bare).commit(pr.head_sha)
    raw = (commit.tree / evidence_path(req)).data_stream.read().decode()
    assert AWS_KEY not in raw and AWS_KEY not in pr.body and AWS_KEY not in pr.title and AWS_KEY not in commit.message
    assert AWS_KEY not in flow.ledger.path.read_text()
    record = EvidenceRecord.model_validate_json(raw)
    paths = sorted(r.field_path for r in record.redactions)
    assert paths == ["request.intent", "request.rationale.objective"]
    assert all(proves(r, AWS_KEY) for r in record.redactions)


def test_refused_when_the_agent_is_unknown(flow: Flow) -> None:
    reasons = _refused(flow, "ghost-agent")
    assert "unknown agent 'ghost-agent': it is not registered in registry/agents.yaml" in reasons


def test_refused_when_suspended_without_the_tool(flow: Flow) -> None:
    reasons = _refused(flow, "legacy-tagger", requested_by={"id": "erin", "kind": "human"})
    assert "agent 'legacy-tagger' is suspended" in reasons
    assert "agent 'legacy-tagger' is not granted the 'propose_change' tool" in reasons


def test_refused_for_a_requester_not_allowed(flow: Flow) -> None:
    assert "requester 'alice' may not ask agent 'cost-optimizer' for changes" in _refused(
        flow, requested_by={"id": "alice", "kind": "human"}
    )


def test_recommend_autonomy_is_told_to_file_a_recommendation(flow: Flow) -> None:
    reasons = _refused(flow, "access-reviewer", requested_by={"id": "alice", "kind": "human"})
    assert any("autonomy 'recommend'" in r and "recommendation" in r for r in reasons)


def test_read_only_autonomy_is_refused(flow: Flow, tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "ro"
    shutil.copytree(flow.registry.root, root)
    edit_yaml(root / "agents.yaml", lambda d: d["agents"][0].update(autonomy="read_only", tools=["read_repo"]))
    req = request()
    with pytest.raises(Denied) as info:
        propose(req, flow.propose_context("cost-optimizer", registry=load_registry(root)))
    assert "agent 'cost-optimizer' is read_only: it may not write at all" in info.value.reasons


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/etc/passwd", "is absolute"),
        ("infra/network/../../registry/agents.yaml", "contains '..'"),
        ("infra/network/%2e%2e/x.yaml", "URL-encoded"),
        ("infra/network/Pulumi.dev.yam\u217c", "non-ASCII or look-alike"),
        ("infra/data/Pulumi.prod.yaml", "outside agent 'cost-optimizer''s path globs"),
        ("registry/agents.yaml", "governance path"),
        ("Registry/agents.yaml", "governance path"),
        ("infra/network/.github/workflows/x.yml", "governance path"),
        ("CODEOWNERS", "governance path"),
        (".glassbox/decisions/2026/11/other.json", "governance path"),
        ("infra/network/shared/agents.yaml", "symlink in the base tree"),
    ],
)
def test_refused_paths(flow: Flow, path: str, expected: str) -> None:
    reasons = _refused(flow, changes=[{"path": path, "content": "x: 1\n"}])
    assert any(expected in r for r in reasons), reasons


def test_refused_stack_outside_scope(flow: Flow) -> None:
    reasons = _refused(
        flow,
        expected_changes=[
            {"project": "network", "stack": "prod", "type": "aws:ec2/vpc:Vpc", "name": "main", "action": "update"}
        ],
    )
    assert any("stack network/prod is outside agent 'cost-optimizer''s stacks ['dev']" in r for r in reasons)


def test_a_program_change_touches_every_stack_of_its_project(flow: Flow) -> None:
    reasons = _refused(
        flow,
        "patch-agent",
        requested_by={"id": "carol", "kind": "human"},
        changes=[{"path": "infra/identity/__main__.py", "content": "print(1)\n"}],
    )
    assert any("outside agent 'patch-agent''s path globs" in r for r in reasons)
    assert any("project 'identity' is outside" in r for r in reasons)


def test_refused_binary_oversized_and_secret_files(flow: Flow) -> None:
    config = "infra/network/Pulumi.dev.yaml"
    assert any("is binary" in r for r in _refused(flow, changes=[{"path": config, "content": "a\x00b"}]))
    big = "x" * (256 * 1024 + 1)
    assert any("over the 262144-byte limit" in r for r in _refused(flow, changes=[{"path": config, "content": big}]))
    secret = f"config:\n  aws:accessKey: {AWS_KEY}\n"
    reasons = _refused(flow, changes=[{"path": config, "content": secret}])
    assert any("contains a secret (aws-access-key-id)" in r for r in reasons)
    assert AWS_KEY not in flow.ledger.path.read_text()


def test_every_reason_is_reported_not_only_the_first(flow: Flow) -> None:
    reasons = _refused(
        flow,
        requested_by={"id": "alice", "kind": "human"},
        changes=[{"path": "registry/agents.yaml", "content": "x"}, {"path": "/abs", "content": "y"}],
    )
    assert len(reasons) >= 3


def test_stale_context_is_refused(flow: Flow) -> None:
    old = flow.main_head().hexsha
    first = propose(request(), flow.propose_context("cost-optimizer"))
    bot = flow.forge("glassbox-bot")
    # a person merges the first change, moving main past what the agent read
    from tests.forge_helpers import ForgeEnv

    env = ForgeEnv(data=flow.data, url=flow.url, tokens=flow.tokens, stop=lambda: None, log=None)  # type: ignore[arg-type]
    env.admin(
        "PUT",
        f"/api/v3/repos/{REPO}/branches/main/protection",
        {
            "required_status_checks": None,
            "enforce_admins": False,
            "required_pull_request_reviews": None,
            "restrictions": None,
        },
    )
    merged = bot.merge(first.pr_number, expected_head_sha=first.head_sha)
    assert merged.merged, merged.message
    reasons = _refused(flow, base_commit=old)
    assert any("stale context: infra/network/Pulumi.dev.yaml changed on main" in r for r in reasons)


def test_budgets_are_enforced(flow: Flow, tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "budget"
    shutil.copytree(flow.registry.root, root)
    edit_yaml(root / "agents.yaml", lambda d: d["agents"][0]["budgets"].update(changes_per_day=5, open_prs=1))
    reg = load_registry(root)
    propose(request(), flow.propose_context("cost-optimizer", registry=reg))
    req = request(changes=[{"path": "infra/data/Pulumi.dev.yaml", "content": "config: {}\n"}], expected_changes=[])
    with pytest.raises(Denied) as info:
        propose(req, flow.propose_context("cost-optimizer", registry=reg))
    assert "open-PR budget spent: 1 of 1 PRs still open" in info.value.reasons


def test_a_key_of_another_identity_cannot_propose_for_an_agent(flow: Flow) -> None:
    ctx = flow.propose_context("cost-optimizer")
    ctx.signer = flow.signer("patch-agent")
    with pytest.raises(Denied, match="refused"):
        propose(request(), ctx)


def test_a_failing_preflight_refuses_with_its_findings(flow: Flow) -> None:
    ctx = flow.propose_context("cost-optimizer", preflight=lambda req, rec: ["GB-NET-001: SSH open to the world"])
    with pytest.raises(Denied) as info:
        propose(request(), ctx)
    assert info.value.reasons == ["GB-NET-001: SSH open to the world"]
    assert flow.forge("glassbox-bot").find_open_pull_request(branch_name(request())) is None


def test_evidence_is_deterministic_for_one_request(flow: Flow) -> None:
    from bot.propose import build_evidence

    req = request(intent=f"drop {AWS_KEY}")
    signer = flow.signer("cost-optimizer")
    a = build_evidence(req, flow.registry, "sha256:" + HEX, signer)
    b = build_evidence(req, flow.registry, "sha256:" + HEX, signer)
    assert a == b and json.loads(a.model_dump_json())["redactions"]
