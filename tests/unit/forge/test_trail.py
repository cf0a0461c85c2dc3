"""The audit trail on the embedded forge: publish, read back from the bare repository, race, protection."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pytest

from bot.forge.server import repo_path
from bot.forge.trail import publish, seed
from bot.records import Actor, ActorKind, Outcome, Subject
from bot.registry import Registry, load_registry
from bot.trust.conventions import TRAIL_BRANCH
from bot.trust.keys import Signer, load_signer
from bot.trust.ledger import Ledger, ledger_keys
from bot.trust.trail import materialise, trail_problems, trail_ref
from tests.forge_helpers import REPO, ForgeEnv

KINDS = {"glassbox-ci": ActorKind.CI, "glassbox-bot": ActorKind.BOT, "glassbox-deployer": ActorKind.DEPLOYER}
ACTIONS = {"glassbox-ci": "check", "glassbox-bot": "approvals", "glassbox-deployer": "deploy"}


def _signer(forge: ForgeEnv, identity: str) -> Signer:
    return load_signer(forge.data / "keys", identity)


def _append(ledger: Ledger, signer: Signer, n: int, tag: str = "event") -> None:
    for i in range(n):
        ledger.append(
            signer,
            actor=Actor(id=signer.identity, kind=KINDS[signer.identity]),
            action=ACTIONS[signer.identity],
            outcome=Outcome.ALLOW,
            reason=f"{tag} {i}",
            subject=Subject(pr=i + 1),
        )


def _bare(forge: ForgeEnv) -> Path:
    return repo_path(forge.data, REPO)


def _registry(forge: ForgeEnv, tmp: Path) -> Registry:
    out = tmp / "registry-at-main"
    subprocess.run(
        ["git", "-C", str(_bare(forge)), "archive", "--format=tar", "-o", str(tmp / "main.tar"), "main", "registry"],
        check=True,
    )
    out.mkdir()
    subprocess.run(["tar", "-xf", str(tmp / "main.tar"), "-C", str(out)], check=True)
    return load_registry(out / "registry")


def test_published_events_read_back_from_the_repository_and_verify(forge: ForgeEnv, tmp_path: Path) -> None:
    ci = _signer(forge, "glassbox-ci")
    ledger = Ledger(tmp_path / "ci" / "ledger.jsonl")
    _append(ledger, ci, 3)
    store = tmp_path / "attestations"
    store.mkdir()
    (store / ("a" * 40 + ".dsse.json")).write_text('{"payload": "x", "signatures": []}\n')

    report = publish(forge.client("glassbox-ci"), ledger, ci, attestations=store)

    assert report.events == [1, 2, 3] and report.attestations == 1
    head = trail_ref(_bare(forge))
    assert head is not None and head == report.commit
    view = materialise(_bare(forge), head, tmp_path / "view")
    assert view.ledger.read_bytes() == ledger.path.read_bytes()
    assert (view.attestation_store / ("a" * 40 + ".dsse.json")).read_text().startswith('{"payload"')
    registry = _registry(forge, tmp_path)
    assert Ledger(view.ledger).verify(ledger_keys(registry)).ok
    history = trail_problems(_bare(forge), head, registry)
    assert history.problems == [] and history.appenders == {"glassbox-ci": 1}

    # nothing new: nothing appended
    again = publish(forge.client("glassbox-ci"), ledger, ci, attestations=store)
    assert again.events == [] and trail_ref(_bare(forge)) == head


def test_parallel_jobs_lose_nothing_and_never_fork_the_chain(forge: ForgeEnv, tmp_path: Path) -> None:
    # Each job starts from the trail's tip (a fresh runner), appends its own events and publishes; the ones
    # that lose the race for the branch re-chain after the winner and try again.
    jobs = [("glassbox-ci", 4), ("glassbox-bot", 3), ("glassbox-deployer", 2), ("glassbox-ci", 3)]
    ledgers = []
    for i, (identity, _) in enumerate(jobs):
        ledger = Ledger(tmp_path / f"job{i}" / "ledger.jsonl")
        seed(forge.client(identity), ledger)
        ledgers.append(ledger)
    for ledger, (identity, n) in zip(ledgers, jobs, strict=True):
        _append(ledger, _signer(forge, identity), n, tag=f"job{jobs.index((identity, n))}")
    reports: list[object] = []
    errors: list[BaseException] = []

    def run(i: int) -> None:
        identity = jobs[i][0]
        try:
            reports.append(publish(forge.client(identity), ledgers[i], _signer(forge, identity)))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    head = trail_ref(_bare(forge))
    assert head is not None
    view = materialise(_bare(forge), head, tmp_path / "view")
    registry = _registry(forge, tmp_path)
    report = Ledger(view.ledger).verify(ledger_keys(registry))
    assert report.ok, report.first_problem
    events = list(Ledger(view.ledger).events())
    assert [e.seq for e in events] == list(range(1, 13))
    assert sorted((e.actor.id, e.reason) for e in events) == sorted(
        (identity, f"job{j} {i}") for j, (identity, n) in enumerate(jobs) for i in range(n)
    )
    history = trail_problems(_bare(forge), head, registry)
    assert history.problems == [] and history.commits == 4


def test_only_service_identities_advance_the_trail_and_nobody_rewrites_it(forge: ForgeEnv, tmp_path: Path) -> None:
    ci = _signer(forge, "glassbox-ci")
    ledger = Ledger(tmp_path / "ledger.jsonl")
    _append(ledger, ci, 2)
    first = publish(forge.client("glassbox-ci"), ledger, ci).commit
    _append(ledger, ci, 1)
    second = publish(forge.client("glassbox-ci"), ledger, ci).commit
    ref = f"/repos/{REPO}/git/refs/heads/{TRAIL_BRANCH}"
    # an agent (its own namespace only), a person (not a listed pusher) and the admin (enforced) cannot move it
    for identity in ("cost-optimizer", "carol"):
        status, body = forge.request(identity, "PATCH", ref, {"sha": second, "force": False})
        assert status in (403, 422), (identity, status, body)
    status, body = forge.request("glassbox-ci", "PATCH", ref, {"sha": first, "force": True})
    assert status == 422 and "force-push" in body["message"]
    status, body = forge.request("glassbox-bot", "DELETE", ref)
    assert status == 422 and "delete" in body["message"]
    assert trail_ref(_bare(forge)) == second


def test_a_seeded_cache_chains_on_the_trails_tip(forge: ForgeEnv, tmp_path: Path) -> None:
    ci = _signer(forge, "glassbox-ci")
    first = Ledger(tmp_path / "one" / "ledger.jsonl")
    _append(first, ci, 2)
    publish(forge.client("glassbox-ci"), first, ci)
    fresh = Ledger(tmp_path / "two" / "ledger.jsonl")
    assert seed(forge.client("glassbox-ci"), fresh) == 2
    _append(fresh, ci, 1)
    assert publish(forge.client("glassbox-ci"), fresh, ci).events == [3]
    with pytest.raises(Exception, match="not empty"):
        fresh.seed(first.path.read_bytes().splitlines(keepends=True)[0])


def test_the_loser_of_a_race_rechains_its_events_after_the_winners(forge: ForgeEnv, tmp_path: Path) -> None:
    ci, deployer = _signer(forge, "glassbox-ci"), _signer(forge, "glassbox-deployer")
    a, b = Ledger(tmp_path / "a" / "ledger.jsonl"), Ledger(tmp_path / "b" / "ledger.jsonl")
    _append(a, ci, 1)
    publish(forge.client("glassbox-ci"), a, ci)
    seed(forge.client("glassbox-ci"), b)  # both now end at event 1
    _append(a, ci, 2)
    _append(b, deployer, 2)
    assert publish(forge.client("glassbox-ci"), a, ci).events == [2, 3]
    late = publish(forge.client("glassbox-deployer"), b, deployer)
    assert (late.events, late.rebased, late.attempts) == ([4, 5], 2, 2)
    rechained = list(b.events())
    assert [(e.seq, e.actor.id) for e in rechained] == [
        (3, "glassbox-ci"),
        (4, "glassbox-deployer"),
        (5, "glassbox-deployer"),
    ]
    # a pending event someone else signed is never re-signed by this identity
    c = Ledger(tmp_path / "c" / "ledger.jsonl")
    seed(forge.client("glassbox-ci"), c)
    _append(c, ci, 1)
    _append(a, ci, 1)
    publish(forge.client("glassbox-ci"), a, ci)
    with pytest.raises(Exception, match="cannot be re-chained by glassbox-deployer"):
        publish(forge.client("glassbox-deployer"), c, deployer)
