"""`audit show` and `audit verify` among 100,000 decisions, and ledger appends per second with 4 writers.

What it builds (everything in a temp dir, the forge on 127.0.0.1 only):

1. **Appends per second**: 4 writer processes append signed events through ``Ledger.append`` (flock, one
   ``O_APPEND`` write, ``fsync``, index insert) into one fresh ledger; the chain is verified afterwards.
2. **The ledger**: ``--decisions`` decisions (default 100,000). One of them is a real flow over the embedded
   forge (propose → check → merge → deploy of the cost-optimizer's dev change, every event appended through
   ``Ledger.append``); the rest are synthetic: per decision a ``propose``, ``check``, ``approvals``, ``merge``,
   ``deploy`` and ``credential.mint`` event with the fields the real ones carry, signed with the real
   identities' keys (agent, CI, bot, deployer) and chained exactly as ``Ledger.append`` does (the same
   canonical JSON, digest and ``event_signature``), but written in bulk and indexed once with
   ``Ledger.reindex`` — at the measured append rate, 600,000 fsync'd appends would take far longer than the
   measurement. The real decision sits in the middle (half the synthetic decisions before it, half after).
3. **Timings**: ``audit show`` (``reconstruct``) of the real decision by correlation id, PR and commit
   (median of ``--repeat`` runs, each building everything afresh: git, registries, index look-ups,
   signatures); ``audit verify``: the whole command, run once, and its ledger parts timed inside that run
   (``Ledger.verify`` over every event spread over worker processes as it runs by default, then the one pass
   that gathers merges, approvals and deploys); with ``--serial`` the chain is also verified in one process.
   The synthetic merges and deploys name commits that are not in the repository, so ``audit verify`` reports
   each of them as history-rewritten; the bench prints the counts by kind.

Run: ``.venv/bin/python bench/bench_audit.py [--decisions 100000] [--repeat 5] [--appends 500] [--serial]``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import bot.audit.history as history_module  # noqa: E402
from bot.audit.history import VerifyRequest, verify_history  # noqa: E402
from bot.audit.reconstruct import ShowRequest, reconstruct  # noqa: E402
from bot.records import GENESIS, Actor, ActorKind, AuditEvent, EventSignature, Outcome, canonical_json, digest_bytes  # noqa: E402
from bot.records import new_correlation_id as new_cid  # noqa: E402
from bot.trust.keys import Signer, generate_key, load_signer, sign_bytes, trusted_keys  # noqa: E402
from bot.trust.ledger import EVENT_PAYLOAD_TYPE, Ledger, LedgerKeys  # noqa: E402

# --------------------------------------------------------------------------------------------------
# 1. concurrent appends


def _writer(path: str, keys: str, count: int) -> None:
    ledger = Ledger(Path(path))
    signer = load_signer(Path(keys), "writer")
    for i in range(count):
        ledger.append(
            signer,
            actor=Actor(id="writer", kind=ActorKind.BOT),
            action="approvals",  # an action a bot may record: verify binds each key to its identity and kind
            outcome=Outcome.ALLOW,
            details={"writer": os.getpid(), "i": i},
        )


def appends_per_second(tmp: Path, writers: int, per_writer: int) -> tuple[float, bool]:
    keys = tmp / "append-keys"
    signer = generate_key(keys, "writer")
    path = tmp / "append.jsonl"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(path), str(keys), per_writer)) for _ in range(writers)]
    started = time.perf_counter()
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    elapsed = time.perf_counter() - started
    trusted = trusted_keys([(signer.keyid, signer.public_line)])
    report = Ledger(path).verify(LedgerKeys(trusted, {signer.keyid: ("writer", ActorKind.BOT)}))
    return writers * per_writer / elapsed, report.ok and report.events == writers * per_writer


# --------------------------------------------------------------------------------------------------
# 2. synthetic decisions, chained and signed like Ledger.append


class BulkWriter:
    """Appends signed, chained event lines to a ledger file in bulk; the index is rebuilt once at the end."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seq, self.prev = 0, GENESIS
        if path.exists() and path.stat().st_size:
            last = AuditEvent.model_validate_json(path.read_bytes().splitlines()[-1])
            self.seq, self.prev = last.seq, last.digest
        self.buffer: list[bytes] = []
        self.keyids: dict[str, str] = {}  # Signer.keyid derives the public key on every call

    def add(
        self,
        signer: Signer,
        kind: ActorKind,
        action: str,
        *,
        when: datetime,
        correlation_id: str | None,
        subject: dict[str, Any],
        details: dict[str, Any],
        outcome: Outcome = Outcome.ALLOW,
        reason: str = "",
    ) -> None:
        self.seq += 1
        body = {
            "schema_version": 1,
            "seq": self.seq,
            "time": when.isoformat(),
            "correlation_id": correlation_id,
            "actor": {"id": signer.identity, "kind": kind.value},
            "action": action,
            "outcome": outcome.value,
            "reason": reason,
            "subject": {"repo": None, "pr": None, "commit": None, "tree": None, "stack": None, **subject},
            "details": details,
            "prev": self.prev,
        }
        # what Ledger.append signs and digests: the body's canonical bytes (made once here for both)
        payload = canonical_json(body)
        d = digest_bytes(payload)
        keyid = self.keyids.get(signer.identity) or self.keyids.setdefault(signer.identity, signer.keyid)
        sig = EventSignature(keyid=keyid, sig=sign_bytes(signer, EVENT_PAYLOAD_TYPE, payload))
        self.buffer.append(canonical_json({**body, "digest": d, "signature": sig.model_dump()}) + b"\n")
        self.prev = d
        if len(self.buffer) >= 10_000:
            self.flush()

    def flush(self) -> None:
        with self.path.open("ab") as fh:
            fh.write(b"".join(self.buffer))
        self.buffer.clear()


def synthetic_decisions(
    writer: BulkWriter, signers: dict[str, Signer], first_pr: int, count: int, start: datetime
) -> Iterator[int]:
    agent, ci, bot, deployer = (
        signers[k] for k in ("cost-optimizer", "glassbox-ci", "glassbox-bot", "glassbox-deployer")
    )
    for i in range(count):
        pr = first_pr + i
        cid = new_cid()
        head, merge_sha, tree = os.urandom(20).hex(), os.urandom(20).hex(), os.urandom(20).hex()
        when = start + timedelta(seconds=30 * i)
        repo = "acme/infra"
        writer.add(
            agent,
            ActorKind.AGENT,
            "propose",
            when=when,
            correlation_id=cid,
            subject={"repo": repo, "pr": pr, "commit": head},
            details={
                "agent_id": agent.identity,
                "requested_by": "alice",
                "ticket": f"OPS-{pr}",
                "model": {"provider": "acme", "model_id": "planner", "version": "2026-10-01"},
                "prompt": {"template_id": "cost-tune", "template_version": "3", "template_sha256": "a" * 64},
                "paths": ["infra/network/Pulumi.dev.yaml"],
                "evidence_digest": "sha256:" + os.urandom(32).hex(),
                "redactions": 0,
                "tool_calls": [],
                "reasons": [],
                "stage": "opened",
                "result": "opened",
                "draft": False,
            },
            reason=f"PR #{pr} opened",
        )
        writer.add(
            ci,
            ActorKind.CI,
            "check",
            when=when + timedelta(seconds=5),
            correlation_id=cid,
            subject={"repo": repo, "pr": pr, "commit": head, "tree": tree},
            details={
                "result": "PASSED",
                "risk": "low",
                "risk_reasons": ["dev stack settings only"],
                "findings": [{"engine": "rego", "rule_id": "GB-NET-004", "severity": "low", "status": "warn"}],
                "plan_digest": "sha256:" + os.urandom(32).hex(),
                "policy_pack_digest": "sha256:" + "b" * 64,
                "evidence_digest": "sha256:" + os.urandom(32).hex(),
                "errors": [],
            },
            reason="PASSED at risk low",
        )
        writer.add(
            bot,
            ActorKind.BOT,
            "approvals",
            when=when + timedelta(seconds=8),
            correlation_id=cid,
            subject={"repo": repo, "pr": pr, "commit": head},
            details={
                "satisfied": True,
                "auto_merge_eligible": True,
                "head_sha": head,
                "risk": "low",
                "required": [],
                "counted": [],
                "discarded": [],
                "blocking": [],
            },
            reason="auto-merge eligible",
        )
        writer.add(
            bot,
            ActorKind.BOT,
            "merge",
            when=when + timedelta(seconds=9),
            correlation_id=None,
            subject={"repo": repo, "pr": pr, "commit": merge_sha},
            details={"method": "squash", "head_sha": head, "auto_merge": True, "merged": True, "reasons": []},
        )
        cred = new_cid()
        writer.add(
            deployer,
            ActorKind.DEPLOYER,
            "credential.mint",
            when=when + timedelta(seconds=12),
            correlation_id=None,
            subject={"stack": "network/dev", "commit": merge_sha},
            details={"credential_id": cred, "scope": ["network/dev"], "ttl_seconds": 900},
        )
        writer.add(
            deployer,
            ActorKind.DEPLOYER,
            "deploy",
            when=when + timedelta(seconds=14),
            correlation_id=cid,
            subject={"stack": "network/dev", "commit": merge_sha},
            details={
                "pr": pr,
                "head_sha": head,
                "tree": tree,
                "checks": [{"name": "on protected branch", "ok": True, "detail": "", "source": "git"}],
                "deployments": [
                    {"stack": "network/dev", "result": "succeeded", "credential_id": cred, "simulated": True}
                ],
            },
        )
        yield i
    writer.flush()


# --------------------------------------------------------------------------------------------------
# 3. the measurement


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    runs, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        runs.append(time.perf_counter() - started)
    return statistics.median(runs), result


@contextmanager
def measuring(parts: dict[str, tuple[float, Any]]) -> Iterator[None]:
    """Within this block, record the duration and result of ``Ledger.verify`` (``chain``) and of
    ``ledger_facts`` (``facts``) as ``audit verify`` calls them."""

    def recording(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            result = fn(*args, **kwargs)
            parts[name] = (time.perf_counter() - started, result)
            if name == "chain":  # the Ledger audit verify opened, which says how many processes it used
                parts["workers"] = (0.0, args[0].last_verify_workers)
            return result

        return wrapper

    verify, facts = Ledger.verify, history_module.ledger_facts
    Ledger.verify = recording("chain", verify)  # type: ignore[method-assign]
    history_module.ledger_facts = recording("facts", facts)
    try:
        yield
    finally:
        Ledger.verify = verify  # type: ignore[method-assign]
        history_module.ledger_facts = facts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--decisions", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--appends", type=int, default=500, help="events per writer (4 writers)")
    parser.add_argument(
        "--serial", action="store_true", help="also verify the chain in one process (about twice the parallel time)"
    )
    args = parser.parse_args()

    from bot.deploy.gate import DeployContext  # noqa: F401  (imported early: fail fast when deps are missing)
    from bot.policy.checkov import CheckovWorker
    from tests.flow_helpers import deployed_change, flow_env

    with tempfile.TemporaryDirectory(prefix="gbx-bench-audit-") as name:
        tmp = Path(name)
        rate, ok = appends_per_second(tmp, 4, args.appends)
        print(f"ledger appends, 4 concurrent writers: {rate:,.0f} events/s ({4 * args.appends} events, chain ok: {ok})")

        env = flow_env(tmp / "flow", required_approvals=0)
        flow = next(env)
        try:
            signers = {
                k: flow.signer(k) for k in ("cost-optimizer", "glassbox-ci", "glassbox-bot", "glassbox-deployer")
            }
            synthetic = args.decisions - 1
            before, after = synthetic // 2, synthetic - synthetic // 2
            start = datetime.now(UTC) - timedelta(days=400)
            started = time.perf_counter()
            writer = BulkWriter(flow.ledger.path)
            for _ in synthetic_decisions(writer, signers, 100_000, before, start):
                pass
            with CheckovWorker() as worker:
                flow.ledger.reindex()
                cid, pr, head, merge_sha = deployed_change(flow, worker)
            writer = BulkWriter(flow.ledger.path)
            for _ in synthetic_decisions(writer, signers, 100_000 + before, after, start + timedelta(days=200)):
                pass
            indexed = flow.ledger.reindex()
            build = time.perf_counter() - started
            size = flow.ledger.path.stat().st_size
            print(
                f"ledger: {args.decisions:,} decisions ({synthetic:,} synthetic + 1 real flow), {indexed:,} events, "
                f"{size / 1e6:,.0f} MB, built and indexed in {build:,.0f} s"
            )

            def show(query: str) -> Any:
                return reconstruct(
                    ShowRequest(
                        query=query,
                        ledger=flow.ledger.path,
                        repo=flow.bare,
                        attestations=flow.attestations,
                        deploy_state=flow.data / "deploy-state",
                    )
                )

            for label, query in (("correlation id", cid), ("PR", str(pr)), ("merge commit", merge_sha)):
                seconds, rec = timed(lambda q=query: show(q), args.repeat)
                state = "every link ok" if rec.ok else f"problems: {rec.problems}"
                print(f"audit show by {label}: {seconds * 1000:,.0f} ms median of {args.repeat} ({state})")

            trusted = flow.ledger_keys()
            # audit verify is timed once, as a whole; its ledger parts are timed inside that run (the chain check
            # and the pass gathering merges, approvals and deploys), not again on their own
            parts: dict[str, tuple[float, Any]] = {}
            with measuring(parts):
                seconds, history = timed(
                    lambda: verify_history(
                        VerifyRequest(ledger=flow.ledger.path, repo=flow.bare, attestations=flow.attestations)
                    ),
                    1,
                )
            chain_seconds, parallel = parts["chain"]
            print(
                f"audit verify, ledger chain in {parts['workers'][1]} processes (Ledger.verify default: "
                f"parse, sequence, chain, digest, signature): {chain_seconds:,.1f} s for {parallel.events:,} events "
                f"({parallel.events / chain_seconds:,.0f}/s, ok: {parallel.ok})"
            )
            if args.serial:
                serial_seconds, report = timed(lambda: flow.ledger.verify(trusted, workers=1), 1)
                print(
                    f"audit verify, ledger chain in one process: {serial_seconds:,.1f} s "
                    f"({report.events / serial_seconds:,.0f}/s, same report: {parallel == report})"
                )
            else:
                print("audit verify, ledger chain in one process: not run (add --serial)")
            print(f"audit verify, ledger facts (merges, approvals, deploys): {parts['facts'][0]:,.1f} s")
            kinds = Counter(v.kind.value for v in history.violations)
            real = [v for v in history.violations if v.commit in (merge_sha, head)]
            print(
                f"audit verify, whole command: {seconds:,.1f} s; governed commits {len(history.governed_commits)}, "
                f"violations by kind {dict(kinds)} (synthetic commits are not in the repo); "
                f"violations about the real change: {len(real)}"
            )
        finally:
            env.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
