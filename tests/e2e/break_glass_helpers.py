"""A break-glass deploy on GitHub, replayed: a merged change whose verdict is on the audit trail, a grant opened on
a responder's machine, and the deploy workflow's ``workflow_dispatch`` run through ``glassbox ci push`` on a fresh
runner (empty state, empty ledger seeded from the trail), against the embedded forge."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from bot.cli import main
from bot.deploy.breakglass import GrantStore, grant_bytes, open_grant
from bot.forge.trail import publish as publish_trail
from bot.propose import propose
from bot.records import Outcome
from bot.trust.ledger import Ledger
from bot.trust.trail import breakglass_objects, trail_ref
from tests.flow_helpers import REPO, Flow, ci_check, merge, request
from tests.runner_helpers import FakeTokenService, Job, Result, webhook

STACK = "network/dev"  # the stack the cost-optimizer's change touches


@dataclass
class Merged:
    pr: int
    merge_sha: str


def merged_change(flow: Flow) -> Merged:
    """The cost-optimizer's dev change proposed, checked (its verdict and events on the audit trail) and merged."""
    proposal = propose(request(), flow.propose_context("cost-optimizer"))
    assert ci_check(flow, proposal.pr_number).result.value == "PASSED"
    outcome = merge(flow, proposal.pr_number)
    assert outcome.merged and outcome.merge_sha, outcome.reasons
    # what the check and approvals jobs append: their events and the verdict, so a fresh runner finds them
    publish_trail(flow.forge("glassbox-ci"), flow.ledger, flow.signer("glassbox-ci"), attestations=flow.attestations)
    return Merged(proposal.pr_number, outcome.merge_sha)


def open_on_laptop(
    flow: Flow,
    tmp: Path,
    who: str = "carol",
    *,
    stack: str = STACK,
    now: datetime | None = None,
    monkeypatch: pytest.MonkeyPatch | None = None,
    capsys: pytest.CaptureFixture[str] | None = None,
) -> str:
    """The grant envelope a responder hands to the deploy workflow. With ``monkeypatch`` and ``capsys`` it is opened
    as the docs say, ``glassbox breakglass open ... --envelope-out``; else (``now``: a grant opened in the past)
    through the library, with the same key, ledger and state."""
    laptop = tmp / f"{who}-laptop"
    if now is None and monkeypatch is not None and capsys is not None:
        out = laptop / "grant.json"
        for name in ("GLASSBOX_LEDGER", "GLASSBOX_KEYS", "GLASSBOX_DEPLOY_STATE"):
            monkeypatch.delenv(name, raising=False)
        code = main(
            [
                *("breakglass", "open", "--ticket", "INC-77", "--reason", "flow logs fill the disk"),
                *("--stack", stack, "--as", who, "--ttl", "30m"),
                *("--keys", str(flow.keys), "--registry", str(flow.registry.root)),
                *("--ledger", str(laptop / "ledger.jsonl"), "--state", str(laptop / "state")),
                *("--envelope-out", str(out)),
            ]
        )
        capsys.readouterr()
        assert code == 0
        return out.read_text(encoding="utf-8")
    opened = open_grant(
        flow.registry,
        flow.signer(who),
        ticket="INC-77",
        reason="flow logs fill the disk",
        stack=stack,
        ledger=Ledger(laptop / "ledger.jsonl"),
        store=GrantStore.under(laptop / "state"),
        now=now,
    )
    return grant_bytes(opened.envelope).decode("utf-8")


def dispatch_payload(commit: str, grant: Any) -> dict[str, Any]:
    """The deploy workflow's ``workflow_dispatch`` event, as GitHub writes it, for ``commit`` and ``grant``."""
    return webhook(
        "workflow_dispatch",
        repository__full_name=REPO,
        ref="refs/heads/main",
        workflow=".github/workflows/glassbox-deploy.yml",
        inputs={"commit": commit, "grant": grant},
    )


def run_dispatch(
    flow: Flow,
    tmp: Path,
    name: str,
    oidc: FakeTokenService,
    payload: dict[str, Any] | bytes,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> tuple[Result, Ledger]:
    """One run of glassbox-deploy.yml's job on a fresh runner ``name``: its own empty state and ledger."""
    runner = tmp / "runner" / name
    ledger = Ledger(runner / "ledger" / "ledger.jsonl")
    job = Job(
        root=runner / "files",
        monkeypatch=monkeypatch,
        capsys=capsys,
        repository=REPO,
        api_url=flow.url,
        env={
            "GLASSBOX_TOKEN": flow.tokens["glassbox-deployer"],
            "GLASSBOX_KEYS": str(flow.keys),
            "GLASSBOX_LEDGER": str(ledger.path),
        },
    )
    result = job.run(
        "workflow_dispatch",
        payload,
        *("ci", "push", "--repo-path", str(flow.bare), "--state", str(runner / "state")),
        sha=flow.main_head().hexsha,  # a dispatch runs on main's head; the input names the commit deployed
        ref="refs/heads/main",
        env={**oidc.variables(), "GLASSBOX_APPLIER": "local"},
    )
    return result, ledger


def trail_breakglass(flow: Flow) -> dict[str, bytes]:
    head = trail_ref(flow.bare)
    return breakglass_objects(flow.bare, head) if head else {}


def own_events(ledger: Ledger) -> list[Any]:
    """The events a runner recorded itself: its ledger starts with the trail's newest event when it was seeded."""
    events = list(ledger.events())
    return events[1:] if events and events[0].seq > 1 else events


def refusal(ledger: Ledger) -> Any:
    """The one ``breakglass.refuse`` this runner recorded (its events are on the trail too)."""
    (event,) = [e for e in own_events(ledger) if e.action == "breakglass.refuse"]
    return event


def grant_id_of(envelope: str) -> str:
    import base64

    return str(json.loads(base64.b64decode(json.loads(envelope)["payload"]))["grant_id"])


def assert_refused_and_nothing_claimed(
    flow: Flow, tmp: Path, name: str, result: Result, ledger: Ledger, code: str
) -> Any:
    """A refused break-glass dispatch: exit 1, outputs say refused, one ``breakglass.refuse`` with ``code`` (on the
    trail too), no grant, claim or review on the trail, nothing applied. The refusal event."""
    assert result.code == 1, result.out + result.err
    assert result.outputs["result"] == "refused"
    event = refusal(ledger)
    assert event.outcome is Outcome.DENY and event.details["code"] == code, event.details
    assert not [e for e in own_events(ledger) if e.action == "breakglass.use"]
    assert trail_breakglass(flow) == {}, "nothing half-written on the trail"
    assert not list((tmp / "runner" / name / "state").glob("stacks/*/*/state.json")), "nothing applied"
    head = trail_ref(flow.bare)
    assert head is not None
    seen = [json.loads(line) for line in _trail_ledger(flow, head)]
    assert any(e["action"] == "breakglass.refuse" and e["digest"] == event.digest for e in seen), "the audit event"
    return event


def _trail_ledger(flow: Flow, head: str) -> list[bytes]:
    import tempfile

    from bot.trust.trail import materialise

    with tempfile.TemporaryDirectory() as scratch:
        return materialise(flow.bare, head, Path(scratch)).ledger.read_bytes().splitlines()


def reviewer_clone(flow: Flow, tmp: Path, who: str) -> Path:
    """A reviewer's clone of the repository: main and origin/glassbox-trail, as `git clone` gives them."""
    import git

    clone = tmp / f"{who}-clone"
    if clone.exists():
        git.Repo(clone).remote("origin").fetch()
    else:
        git.Repo.clone_from(flow.bare, clone, no_checkout=True)
    return clone


def close_on_laptop(
    flow: Flow,
    tmp: Path,
    grant_id: str,
    who: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    *,
    outcome: str = "fixed-forward",
) -> tuple[int, str]:
    """``glassbox breakglass close ... --envelope-out`` as docs/github-setup.md says, in ``who``'s clone: (exit code,
    the closure envelope written, or "" when refused)."""
    laptop = tmp / f"{who}-laptop"
    out = laptop / "closure.json"
    for name in ("GLASSBOX_LEDGER", "GLASSBOX_KEYS", "GLASSBOX_DEPLOY_STATE"):
        monkeypatch.delenv(name, raising=False)
    code = main(
        [
            *("breakglass", "close", grant_id, "--by", who, "--key", str(flow.keys / f"{who}.key")),
            *("--outcome", outcome, "--summary", "flow logs rotated; the retention fix merged as PR #2"),
            *("--follow-up", "https://github.com/acme/infra/pull/2"),
            *("--registry", str(flow.registry.root), "--repo", str(reviewer_clone(flow, tmp, who))),
            *("--ledger", str(laptop / "ledger.jsonl"), "--state", str(laptop / "state")),
            *("--envelope-out", str(out)),
        ]
    )
    capsys.readouterr()
    return code, out.read_text(encoding="utf-8") if code == 0 else ""


def review_payload(review: Any) -> dict[str, Any]:
    """The audit workflow's ``workflow_dispatch`` event with the closure envelope in its ``review`` input."""
    return webhook(
        "workflow_dispatch",
        repository__full_name=REPO,
        ref="refs/heads/main",
        workflow=".github/workflows/glassbox-audit.yml",
        inputs={"review": review},
    )


def run_record_review(
    flow: Flow,
    tmp: Path,
    name: str,
    payload: dict[str, Any] | bytes,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    *,
    event: str = "workflow_dispatch",
) -> tuple[Result, Ledger]:
    """One run of glassbox-audit.yml's record-review job on a fresh runner ``name``, with the bot's key and token."""
    runner = tmp / "runner" / name
    ledger = Ledger(runner / "ledger" / "ledger.jsonl")
    job = Job(
        root=runner / "files",
        monkeypatch=monkeypatch,
        capsys=capsys,
        repository=REPO,
        api_url=flow.url,
        env={
            "GLASSBOX_TOKEN": flow.tokens["glassbox-bot"],
            "GLASSBOX_KEYS": str(flow.keys),
            "GLASSBOX_LEDGER": str(ledger.path),
        },
    )
    result = job.run(
        event,
        payload,
        *("ci", "schedule", "--record-review", "--repo-path", str(flow.bare)),
        sha=flow.main_head().hexsha,
        ref="refs/heads/main",
    )
    return result, ledger


def assert_review_refused(flow: Flow, result: Result, ledger: Ledger, grant_id: str, code: str) -> Any:
    """A refused record-review dispatch: exit 1, outputs say refused, one ``breakglass.refuse`` with ``code`` (by the
    bot, on the trail too), and no closure of ``grant_id`` on the trail. The refusal event."""
    from bot.trust.trail import closure_entry

    assert result.code == 1, result.out + result.err
    assert result.outputs["result"] == "refused" and result.outputs["grant_id"] == ""
    event = refusal(ledger)
    assert event.outcome is Outcome.DENY and event.details["code"] == code, event.details
    assert event.actor.id == "glassbox-bot" and event.details["stage"] in ("present-review", "record-review")
    assert not [e for e in own_events(ledger) if e.action == "breakglass.review"]
    assert closure_entry(grant_id) not in trail_breakglass(flow), "nothing closed on the trail"
    head = trail_ref(flow.bare)
    assert head is not None
    seen = [json.loads(line) for line in _trail_ledger(flow, head)]
    assert any(e["action"] == "breakglass.refuse" and e["digest"] == event.digest for e in seen), "the audit event"
    return event
