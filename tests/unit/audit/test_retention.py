from __future__ import annotations

import base64
import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from pydantic import ValidationError
from typer.testing import CliRunner

from bot.audit.retention import (
    LegalHold,
    RetentionClass,
    RetentionPolicy,
    archive,
    archive_anchor,
    archive_dir,
    load_retention,
    retention_schema,
    verify_archive,
)
from bot.commands import audit as audit_cmd
from bot.errors import IntegrityError, UserError
from bot.records import GENESIS, Actor, ActorKind, Outcome, Subject
from bot.trust.keys import Signer, generate_key
from bot.trust.ledger import Ledger, LedgerKeys
from tests.factories import REPO_ROOT, bound_keys

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=400)
HELD = "019378a2-7f3c-7c4e-9b1a-2d3e4f5a6bff"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Signer, Signer]:
    d = tmp_path_factory.mktemp("keys")
    return d, generate_key(d, "glassbox-bot"), generate_key(d, "mallory")


def trusted(*signers: Signer) -> LedgerKeys:
    return bound_keys(*((s, ActorKind.BOT) for s in signers))


def add(
    ledger: Ledger, signer: Signer, when: datetime, *, action: str = "approvals", cid: str | None = None, pr: int = 1
) -> None:
    ledger.append(
        signer,
        actor=Actor(id=signer.identity, kind=ActorKind.BOT),
        action=action,
        outcome=Outcome.ALLOW,
        correlation_id=cid,
        subject=Subject(repo="acme/infra", pr=pr),
        details={"at": when.isoformat()},
        time=when,
    )


def hold(**target: Any) -> LegalHold:
    return LegalHold(id="LH-1", reason="litigation", placed_by="erin", placed_at=NOW - timedelta(days=1), **target)


POLICY = RetentionPolicy(default_days=30, classes=[RetentionClass(prefix="merge", days=7)])


def build(tmp_path: Path, signer: Signer, plan: list[dict[str, Any]]) -> Ledger:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    for p in plan:
        add(ledger, signer, **p)
    return ledger


def test_archive_stops_at_a_legal_hold_and_keeps_the_chain_verifiable(
    tmp_path: Path, keys: tuple[Path, Signer, Signer]
) -> None:
    _, bot, _ = keys
    ledger = build(
        tmp_path,
        bot,
        [
            {"when": OLD},
            {"when": OLD + timedelta(hours=1)},
            {"when": OLD + timedelta(hours=2), "cid": HELD},
            {"when": OLD + timedelta(hours=3)},
            {"when": NOW - timedelta(days=1)},
        ],
    )
    before = list(ledger.events())
    raw = ledger.path.read_bytes().splitlines(keepends=True)
    policy = POLICY.model_copy(update={"legal_holds": [hold(correlation_id=HELD)]})
    result = archive(ledger, bot, before=NOW, policy=policy, now=NOW, trusted=trusted(bot))
    assert (result.archived, result.first_seq, result.last_seq) == (2, 1, 2)
    assert result.stopped_at is not None and result.stopped_at["seq"] == 3
    assert "legal hold LH-1 placed by erin: litigation" in result.stopped_at["reason"]
    assert result.segment == archive_dir(ledger) / "segment-0000000001-0000000002.jsonl.gz"
    # the segment holds the exact ledger lines
    assert gzip.decompress(result.segment.read_bytes()) == b"".join(raw[:2])
    live = list(ledger.events())
    assert [e.seq for e in live] == [3, 4, 5, 6]
    assert live[0].prev == before[1].digest
    assert live[-1].action == "audit.archive" and live[-1].details["count"] == 2
    report = verify_archive(ledger, trusted(bot))
    assert report.ok, report.as_dict()
    assert report.segments[0]["first_seq"] == 1
    # the plain verifier needs the anchor now; with it (from the signed manifest) the live ledger verifies
    assert not ledger.verify(trusted(bot)).ok
    assert archive_anchor(ledger, trusted(bot)) == (3, before[1].digest)
    assert ledger.verify(trusted(bot), start_seq=3, start_prev=before[1].digest).ok
    with pytest.raises(IntegrityError):
        archive_anchor(ledger, trusted(keys[2]))
    # the index was rebuilt: look-ups read the right lines, and appends continue the sequence
    assert [e.seq for e in ledger.find(correlation_id=HELD)] == [3]
    add(ledger, bot, NOW)
    assert list(ledger.events())[-1].seq == 7 and verify_archive(ledger, trusted(bot)).ok


def test_archive_refuses_events_within_retention_or_after_the_cut_off(
    tmp_path: Path, keys: tuple[Path, Signer, Signer]
) -> None:
    _, bot, _ = keys
    ledger = build(
        tmp_path,
        bot,
        [
            {"when": NOW - timedelta(days=10), "action": "merge"},  # past its 7 days
            {"when": NOW - timedelta(days=10)},  # approvals: inside the default 30 days
            {"when": NOW - timedelta(days=1)},
        ],
    )
    result = archive(ledger, bot, before=NOW, policy=POLICY, now=NOW)
    assert result.archived == 1
    assert result.stopped_at == {"seq": 2, "reason": "within its retention period (30 days for class 'default')"}
    ledger2 = build(tmp_path / "b", bot, [{"when": OLD}, {"when": OLD + timedelta(days=1)}, {"when": NOW}])
    result = archive(ledger2, bot, before=OLD + timedelta(hours=1), policy=POLICY, now=NOW)
    assert result.archived == 1 and "not before the cut-off" in str(result.stopped_at)


def test_nothing_to_archive_changes_nothing(tmp_path: Path, keys: tuple[Path, Signer, Signer]) -> None:
    _, bot, _ = keys
    ledger = build(tmp_path, bot, [{"when": NOW - timedelta(days=2)}, {"when": NOW}])
    raw = ledger.path.read_bytes()
    result = archive(ledger, bot, before=NOW, policy=POLICY, now=NOW)
    assert result.archived == 0 and result.event is None and ledger.path.read_bytes() == raw
    assert not archive_dir(ledger).exists()


def test_the_last_event_always_stays(tmp_path: Path, keys: tuple[Path, Signer, Signer]) -> None:
    _, bot, _ = keys
    ledger = build(tmp_path, bot, [{"when": OLD}, {"when": OLD}, {"when": OLD}])
    result = archive(ledger, bot, before=NOW, policy=POLICY, now=NOW)
    assert result.archived == 2 and result.stopped_at is not None and "anchors" in result.stopped_at["reason"]


def test_successive_archives_chain_and_a_hold_by_pr_is_honoured(
    tmp_path: Path, keys: tuple[Path, Signer, Signer]
) -> None:
    _, bot, _ = keys
    plan = [{"when": OLD + timedelta(hours=i), "pr": 9 if i == 2 else 1} for i in range(5)] + [{"when": NOW}]
    ledger = build(tmp_path, bot, plan)
    held = POLICY.model_copy(update={"legal_holds": [hold(pr=9, repo="acme/infra")]})
    assert archive(ledger, bot, before=NOW, policy=held, now=NOW).archived == 2
    other_repo = POLICY.model_copy(update={"legal_holds": [hold(pr=9, repo="acme/other")]})
    second = archive(ledger, bot, before=NOW, policy=other_repo, now=NOW)
    assert (second.first_seq, second.last_seq) == (3, 5)
    manifests = sorted(archive_dir(ledger).glob("*.manifest.dsse.json"))
    payloads = [json.loads(base64.b64decode(json.loads(m.read_text())["payload"])) for m in manifests]
    assert payloads[0]["first_prev"] == GENESIS
    assert payloads[1]["first_prev"] == payloads[0]["last_digest"]
    report = verify_archive(ledger, trusted(bot))
    assert report.ok, report.as_dict()
    assert [s["first_seq"] for s in report.segments] == [1, 3]
    expired = hold(correlation_id=HELD).model_copy(update={"expires": NOW - timedelta(hours=1)})
    assert not expired.covers(next(ledger.events()), NOW)


def _segment_lines(path: Path) -> list[bytes]:
    return gzip.decompress(path.read_bytes()).splitlines(keepends=True)


@pytest.fixture
def archived(tmp_path: Path, keys: tuple[Path, Signer, Signer]) -> tuple[Ledger, Path]:
    _, bot, _ = keys
    ledger = build(tmp_path, bot, [{"when": OLD + timedelta(hours=i)} for i in range(4)] + [{"when": NOW}])
    result = archive(ledger, bot, before=NOW, policy=POLICY, now=NOW)
    assert result.segment is not None and verify_archive(ledger, trusted(bot)).ok
    return ledger, result.segment


def test_tampering_with_a_segment_is_detected(archived: tuple[Ledger, Path], keys: tuple[Path, Signer, Signer]) -> None:
    ledger, segment = archived
    _, bot, _ = keys
    lines = _segment_lines(segment)
    lines[1] = lines[1].replace(b'"reason":""', b'"reason":"edited"')
    segment.write_bytes(gzip.compress(b"".join(lines), mtime=0))
    problems = verify_archive(ledger, trusted(bot)).problems
    assert any("SHA-256 does not match its signed manifest" in p for p in problems)
    assert any("edited" in p for p in problems)


def test_dropping_an_event_from_a_segment_is_detected(
    archived: tuple[Ledger, Path], keys: tuple[Path, Signer, Signer]
) -> None:
    ledger, segment = archived
    lines = _segment_lines(segment)
    segment.write_bytes(gzip.compress(b"".join(lines[:1] + lines[2:]), mtime=0))
    problems = verify_archive(ledger, trusted(keys[1])).problems
    assert any("seq 3 where 2 was due" in p for p in problems)


def test_a_forged_manifest_or_a_missing_segment_is_detected(
    archived: tuple[Ledger, Path], keys: tuple[Path, Signer, Signer]
) -> None:
    ledger, segment = archived
    _, bot, mallory = keys
    manifest = segment.with_name(segment.name.replace(".jsonl.gz", ".manifest.dsse.json"))
    envelope = json.loads(manifest.read_text())
    payload = json.loads(base64.b64decode(envelope["payload"]))
    payload["count"] = 99
    envelope["payload"] = base64.b64encode(json.dumps(payload).encode()).decode()
    manifest.write_text(json.dumps(envelope))
    problems = verify_archive(ledger, trusted(bot)).problems
    assert any("manifest signature" in p for p in problems)
    # signed by a key the verifier does not trust
    assert not verify_archive(ledger, trusted(mallory)).ok
    manifest.unlink()
    segment.unlink()
    problems = verify_archive(ledger, trusted(bot)).problems
    assert any("does not chain to the archive's last event" in p for p in problems)


def test_archive_refuses_a_ledger_that_does_not_verify(tmp_path: Path, keys: tuple[Path, Signer, Signer]) -> None:
    _, bot, mallory = keys
    ledger = build(tmp_path, bot, [{"when": OLD}, {"when": OLD}, {"when": NOW}])
    lines = ledger.path.read_bytes().splitlines(keepends=True)
    lines[0] = lines[0].replace(b'"outcome":"allow"', b'"outcome":"deny"')
    ledger.path.write_bytes(b"".join(lines))
    with pytest.raises(IntegrityError, match="edited"):
        archive(ledger, bot, before=NOW, policy=POLICY, now=NOW)
    clean = build(tmp_path / "c", bot, [{"when": OLD}, {"when": NOW}])
    with pytest.raises(IntegrityError, match="untrusted key"):
        archive(clean, bot, before=NOW, policy=POLICY, now=NOW, trusted=trusted(mallory))
    with open(clean.path, "ab") as fh:
        fh.write(b'{"torn')
    with pytest.raises(UserError, match="torn"):
        archive(clean, bot, before=NOW, policy=POLICY, now=NOW)


def test_retention_config_schema_and_holds() -> None:
    committed = json.loads((REPO_ROOT / "registry" / "schema" / "retention.schema.json").read_text())
    assert committed == retention_schema()
    policy = load_retention(REPO_ROOT / "registry" / "retention.yaml")
    assert policy.retention_for("credential.mint") == ("credential", 90)
    assert policy.retention_for("check")[0] == "check"
    assert policy.retention_for("something.new") == ("default", policy.default_days)
    with pytest.raises(ValidationError, match="names a correlation_id or a pr"):
        LegalHold(id="x", reason="r", placed_by="p", placed_at=NOW)


def test_bad_retention_config_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "retention.yaml"
    path.write_text(yaml.safe_dump({"schema_version": 1, "default_days": -1, "classes": [{"prefix": "Bad"}]}))
    with pytest.raises(UserError, match="invalid"):
        load_retention(path)
    with pytest.raises(UserError, match="not found"):
        load_retention(tmp_path / "missing.yaml")


def test_cli_archive(tmp_path: Path, keys: tuple[Path, Signer, Signer]) -> None:
    keydir, bot, _ = keys
    now = datetime.now(UTC)
    ledger = build(tmp_path, bot, [{"when": now - timedelta(days=400)}] * 2 + [{"when": now}])
    retention = tmp_path / "retention.yaml"
    retention.write_text(yaml.safe_dump({"schema_version": 1, "default_days": 30}))
    app = typer.Typer()
    audit_cmd.register(app)
    args = ["audit", "archive", "--ledger", str(ledger.path), "--before", "90d", "--identity", "glassbox-bot"]
    result = CliRunner().invoke(app, [*args, "--keys", str(keydir), "--retention", str(retention), "-o", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["archived"] == 2 and data["event_seq"] == 4
    assert verify_archive(ledger, trusted(bot)).ok
