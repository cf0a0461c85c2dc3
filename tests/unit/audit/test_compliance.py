"""`audit pack`: every control gets its evidence from a constructed ledger of real signed events, a control with
nothing in the period is a gap said plainly, the packed events still verify, and the signed manifest catches a
one-byte change to any file."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.testing import CliRunner

from bot.audit.compliance import (
    PackRequest,
    PackResult,
    build_pack,
    controls_schema,
    load_controls,
    values_at,
    verify_pack,
)
from bot.commands import audit as audit_cmd
from bot.commands import audit_report
from bot.errors import IntegrityError, UserError, ValidationFailed
from bot.records import Actor, ActorKind, AuditEvent, Outcome, Subject, Verdict, canonical_json
from bot.registry import load_registry
from bot.trust.attestations import sign_verdict, store_attestation
from bot.trust.keys import Signer, generate_key, verify_bytes
from bot.trust.ledger import EVENT_PAYLOAD_TYPE, Ledger, LedgerKeys, ledger_keys
from tests.factories import REPO_ROOT, registry_with_keys, verdict_data

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
SINCE = T0 - timedelta(days=1)
KINDS = {
    "cost-optimizer": ActorKind.AGENT,
    "network-agent": ActorKind.AGENT,
    "patch-agent": ActorKind.AGENT,
    "glassbox-ci": ActorKind.CI,
    "glassbox-bot": ActorKind.BOT,
    "glassbox-deployer": ActorKind.DEPLOYER,
    "grace": ActorKind.HUMAN,
}
CONTROLS = (
    "soc2-cc8.1",
    "iso27001-a.8.32",
    "iso27001-a.5.3",
    "nist-800-53-cm-3",
    "nist-800-53-cm-5",
    "nist-800-53-au-9",
    "nist-800-53-ac-5",
    "eu-ai-act-art-12",
    "eu-ai-act-art-14",
)
H1, M1, H2 = "1" * 40, "2" * 40, "3" * 40
GRANT = "01a2129e-5652-74c1-80e7-c3a0f8f8f053"


def cid(n: int) -> str:
    return f"019378a2-7f3c-7c4e-9b1a-2d3e4f5a6b{n:02x}"


@dataclass
class World:
    root: Path
    registry: Path
    ledger: Ledger
    attestations: Path
    deploy_state: Path
    signers: dict[str, Signer]
    auditor: Signer

    def pack(self, out: str, **overrides: Any) -> PackResult:
        args: dict[str, Any] = {
            "ledger": self.ledger.path,
            "out": self.root / out,
            "since": SINCE,
            "controls": REPO_ROOT / "registry" / "controls.yaml",
            "attestations": self.attestations,
            "deploy_state": self.deploy_state,
            "registry": self.registry,
            "now": T0 + timedelta(days=1),
        }
        args.update(overrides)
        return build_pack(PackRequest(**args), self.auditor)

    def trusted(self) -> LedgerKeys:
        return ledger_keys(load_registry(self.registry))


class Book:
    def __init__(self, ledger: Ledger, signers: dict[str, Signer]) -> None:
        self.ledger, self.signers = ledger, signers

    def add(
        self,
        who: str,
        action: str,
        minutes: float,
        outcome: Outcome = Outcome.ALLOW,
        *,
        corr: str | None = None,
        pr: int | None = None,
        commit: str | None = None,
        stack: str | None = None,
        reason: str = "",
        **details: Any,
    ) -> None:
        self.ledger.append(
            self.signers[who],
            actor=Actor(id=who, kind=KINDS[who]),
            action=action,
            outcome=outcome,
            reason=reason,
            correlation_id=corr,
            subject=Subject(
                repo="acme/infra" if pr or action == "propose" else None, pr=pr, commit=commit, stack=stack
            ),
            details=details,
            time=T0 + timedelta(minutes=minutes),
        )


MODEL = {"provider": "example-ai", "model_id": "infra-planner-large", "version": "2026-10-01"}
PROMPT = {"template_id": "cost-rightsize", "template_version": "4", "template_sha256": "a" * 64}


def build_ledger(book: Book) -> None:
    """One governed change end to end, refusals of every kind, a draft PR, break-glass, an archive cut."""
    ev = "sha256:" + "e" * 64
    # cid 1: proposed, checked, approved (a requester's self-approval discarded), merged, deployed
    book.add(
        "cost-optimizer", "propose", 0, corr=cid(1), pr=1, commit=H1, agent_id="cost-optimizer",
        requested_by="carol", model=MODEL, prompt=PROMPT, evidence_digest=ev, result="opened", draft=False,
    )  # fmt: skip
    book.add(
        "glassbox-ci", "check", 5, corr=cid(1), pr=1, commit=H1, result="PASSED", risk="low", evidence_digest=ev,
        findings=[{"engine": "rego", "rule_id": "GB-CHG-002", "severity": "low", "status": "warn"}],
    )  # fmt: skip
    book.add(
        "glassbox-bot", "approvals", 30, corr=cid(1), pr=1, commit=H1, satisfied=True, head_sha=H1,
        counted=[{"user": "dan", "review_id": 2}],
        discarded=[{"user": "carol", "reason": "requester", "state": "APPROVED", "review_id": 1}],
    )  # fmt: skip
    book.add("glassbox-bot", "merge", 31, pr=1, commit=M1, head_sha=H1, method="squash", auto_merge=False)
    book.add("glassbox-deployer", "credential.mint", 32, commit=M1, stack="network/dev", ttl_seconds=900)
    book.add(
        "glassbox-deployer", "deploy", 33, corr=cid(1), commit=M1, stack="network/dev", head_sha=H1,
        checks=[{"name": "deploy identity", "ok": True, "detail": "acting as glassbox-deployer"}], deployments=[],
    )  # fmt: skip
    # cid 2: out of scope (a governance path); cid 3: denied at pre-flight
    book.add(
        "network-agent", "propose", 40, Outcome.DENY, corr=cid(2), agent_id="network-agent", stage="scope",
        result="refused", model=MODEL, prompt=PROMPT, evidence_digest=ev,
        reasons=["path '.github/CODEOWNERS' is a governance path"],
    )  # fmt: skip
    book.add(
        "network-agent", "propose", 41, Outcome.DENY, corr=cid(3), agent_id="network-agent", stage="preflight",
        result="refused", model=MODEL, prompt=PROMPT, evidence_digest=ev, reasons=["GB-NET-001 (critical): ssh"],
    )  # fmt: skip
    # cid 4: a draft PR whose check fails
    book.add(
        "patch-agent", "propose", 50, corr=cid(4), pr=2, commit=H2, agent_id="patch-agent", draft=True,
        model=MODEL, prompt=PROMPT, evidence_digest=ev, result="opened",
    )  # fmt: skip
    book.add(
        "glassbox-ci", "check", 55, Outcome.DENY, corr=cid(4), pr=2, commit=H2, result="FAILED", risk="high",
        evidence_digest=ev,
        findings=[{"engine": "rego", "rule_id": "GB-CHG-001", "severity": "high", "status": "deny"}],
    )  # fmt: skip
    book.add(
        "glassbox-bot", "merge", 56, Outcome.DENY, pr=2, head_sha=H2, method="squash", merged=False,
        reasons=["approvals are not satisfied: no approval at the head"],
    )  # fmt: skip
    # break-glass, a refused credential, an archive cut
    book.add("grace", "breakglass.open", 60, stack="data/prod", grant_id=GRANT, ticket="INC-1")
    book.add("glassbox-deployer", "breakglass.use", 61, commit=M1, stack="data/prod", grant_id=GRANT)
    book.add("glassbox-deployer", "credential.refuse", 62, Outcome.DENY, stack="*", scope=["*"])
    book.add("glassbox-bot", "audit.archive", 63, first_seq=1, last_seq=0, count=0)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("compliance")
    roles = {k: ["ledger-signer"] for k in KINDS}
    roles["glassbox-ci"] = ["ledger-signer", "verdict-signer"]
    registry, signers = registry_with_keys(root, *roles.items())
    ledger = Ledger(root / "ledger.jsonl")
    build_ledger(Book(ledger, signers))
    attestations = root / "attestations"
    for head, result in ((H1, "PASSED"), (H2, "FAILED")):
        change = {**verdict_data()["change"], "head_commit": head}
        verdict = Verdict.model_validate(verdict_data(result=result, change=change))
        store_attestation(attestations, head, sign_verdict(verdict, signers["glassbox-ci"]))
    deploy_state = root / "deploy-state"
    (deploy_state / "reviews").mkdir(parents=True)
    (deploy_state / "reviews" / f"{GRANT}.json").write_text(json.dumps({"grant_id": GRANT, "status": "open"}))
    auditor = generate_key(root / "auditor-keys", "auditor")
    return World(root, registry, ledger, attestations, deploy_state, signers, auditor)


def _index(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / "index.json").read_text())
    return data


def test_the_mapping_names_every_control_and_its_schema_is_committed() -> None:
    committed = json.loads((REPO_ROOT / "registry" / "schema" / "controls.schema.json").read_text())
    assert committed == json.loads(json.dumps(controls_schema())), "regenerate registry/schema/controls.schema.json"
    mapping = load_controls(REPO_ROOT / "registry" / "controls.yaml")
    assert tuple(c.id for c in mapping.controls) == CONTROLS
    assert {c.ref for c in mapping.controls} == {
        "CC8.1", "A.8.32", "A.5.3", "CM-3", "CM-5", "AU-9", "AC-5", "Art. 12", "Art. 14",
    }  # fmt: skip


def test_a_malformed_mapping_is_refused_with_its_path(tmp_path: Path) -> None:
    bad = {
        "schema_version": 1,
        "controls": [
            {
                "id": "x",
                "framework": "f",
                "ref": "r",
                "title": "t",
                "requirement": "q",
                "evidence": [
                    {"id": "both", "description": "d", "events": {"actions": ["propose"]}, "artifact": "attestations"}
                ],
            }
        ],
    }
    path = tmp_path / "controls.yaml"
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(ValidationFailed) as err:
        load_controls(path)
    assert any("exactly one of" in line for line in err.value.lines())
    bad["controls"][0]["evidence"][0] = {"id": "e", "description": "d", "artifact": "screenshots"}
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(ValidationFailed, match="controls mapping"):
        load_controls(path)


def test_values_at_fans_out_over_lists() -> None:
    data = {"discarded": [{"reason": "stale"}, {"reason": "author"}], "model": {"model_id": "m"}}
    assert values_at(data, "discarded[].reason") == ["stale", "author"]
    assert values_at(data, "model.model_id") == ["m"]
    assert values_at(data, "missing.path") == [] and values_at({"discarded": "x"}, "discarded[].reason") == []


def test_every_control_gets_its_evidence(world: World) -> None:
    result = world.pack("pack-all")
    out = world.root / "pack-all"
    index = _index(out)
    assert result.ledger_ok and index["ledger"]["verified"] and index["ledger"]["events_in_period"] == 15
    controls = {c["id"]: c for c in index["controls"]}
    assert tuple(controls) == CONTROLS
    assert index["controls_without_evidence"] == []
    counts = {(c, e["id"]): e["count"] for c, data in controls.items() for e in data["evidence"]}
    assert [k for k, n in counts.items() if n == 0] == []
    assert all(controls[c]["status"] == "evidenced" for c in CONTROLS)
    assert counts[("nist-800-53-cm-5", "merge-refusals")] == 1

    def actions(control: str) -> list[tuple[str, str | None]]:
        lines = (out / control / "events.jsonl").read_bytes().splitlines()
        return [(e.action, e.correlation_id) for e in map(AuditEvent.model_validate_json, lines)]

    assert counts[("soc2-cc8.1", "change-chains")] == 1
    chain = actions("soc2-cc8.1")
    assert ("merge", None) in chain and ("propose", cid(1)) in chain  # the merge joins its chain through the PR
    assert ("propose", cid(2)) not in chain
    assert actions("nist-800-53-ac-5") == [("approvals", cid(1)), ("deploy", cid(1))]
    assert ("propose", cid(2)) in actions("nist-800-53-cm-5") and ("credential.refuse", None) in actions(
        "nist-800-53-cm-5"
    )
    assert ("propose", cid(3)) in actions("nist-800-53-cm-3") and ("check", cid(4)) in actions("nist-800-53-cm-3")
    assert {a for a, _ in actions("eu-ai-act-art-12")} == {"propose", "check"}
    art14 = actions("eu-ai-act-art-14")
    assert ("propose", cid(4)) in art14 and ("breakglass.open", None) in art14 and ("breakglass.use", None) in art14
    assert (out / "eu-ai-act-art-14" / "breakglass-reviews" / f"{GRANT}.json").exists()
    assert ("audit.archive", None) in actions("nist-800-53-au-9")
    assert json.loads((out / "nist-800-53-au-9" / "ledger-signers.json").read_text())["keys"]
    assert sorted(p.name for p in (out / "soc2-cc8.1" / "attestations").iterdir()) == [f"{H1}.dsse.json"]
    assert sorted(p.name for p in (out / "nist-800-53-cm-3" / "attestations").iterdir()) == sorted(
        [f"{H1}.dsse.json", f"{H2}.dsse.json"]
    )
    protection = json.loads((out / "nist-800-53-cm-5" / "branch-protection.json").read_text())
    assert protection["desired"]["push_users"] == ["glassbox-bot"]
    verification = json.loads((out / "ledger-verification.json").read_text())
    assert verification["ok"] and verification["events"] == 15 and verification["signatures_checked"]
    md = (out / "index.md").read_text()
    assert "| CC8.1 Change management | SOC 2" in md and "merge-refusals" in md


def test_packed_events_are_the_stored_lines_and_still_verify(world: World) -> None:
    out = world.root / "pack-lines"
    world.pack("pack-lines")
    stored = set(world.ledger.path.read_bytes().splitlines())
    trusted = world.trusted()
    checked = 0
    for path in out.glob("*/events.jsonl"):
        for line in path.read_bytes().splitlines():
            assert line in stored  # byte for byte
            event = AuditEvent.model_validate_json(line)
            assert event.computed_digest() == event.digest
            body = canonical_json(event.body())
            assert verify_bytes(trusted[event.signature.keyid], EVENT_PAYLOAD_TYPE, body, event.signature.sig)
            checked += 1
    assert checked > 14


def test_a_control_without_evidence_is_a_gap_said_plainly(world: World, tmp_path: Path) -> None:
    mapping = yaml.safe_load((REPO_ROOT / "registry" / "controls.yaml").read_text())
    mapping["controls"].append(
        {
            "id": "acme-ch-9",
            "framework": "ACME internal",
            "ref": "CH-9",
            "title": "Rollback drills",
            "requirement": "Every quarter a rollback is rehearsed.",
            "evidence": [{"id": "rollbacks", "description": "Rollback drills", "events": {"actions": ["rollback.*"]}}],
        }
    )
    controls = tmp_path / "controls.yaml"
    controls.write_text(yaml.safe_dump(mapping, sort_keys=False))
    world.pack("pack-gap", controls=controls)
    index = _index(world.root / "pack-gap")
    assert index["controls_without_evidence"] == ["acme-ch-9"]
    gap = next(c for c in index["controls"] if c["id"] == "acme-ch-9")
    assert (
        gap["status"] == "gap"
        and gap["events_file"] is None
        and gap["gaps"] == ["rollbacks: no rollback drills in the period"]
    )
    assert "acme-ch-9: NO EVIDENCE for ACME internal CH-9 (Rollback drills) in the period" in index["gaps"]
    assert (
        "**No evidence for ACME internal CH-9 in this period.**" in (world.root / "pack-gap" / "index.md").read_text()
    )
    assert not (world.root / "pack-gap" / "acme-ch-9" / "events.jsonl").exists()

    # a period after every event: change management has no evidence either
    later = world.pack("pack-later", since=T0 + timedelta(days=2))
    assert "soc2-cc8.1" in later.gaps and "nist-800-53-cm-3" in later.gaps
    assert "nist-800-53-au-9" not in later.gaps  # the ledger verification itself is still evidence


def test_the_manifest_verifies_and_fails_after_one_byte_of_any_file_changes(world: World) -> None:
    world.pack("pack-signed")
    out = world.root / "pack-signed"
    trusted = {world.auditor.keyid: world.auditor.public_raw}
    assert verify_pack(out, trusted) == []
    files = sorted(p for p in out.rglob("*") if p.is_file())
    assert len(files) > 12
    for path in files:
        original = path.read_bytes()
        flipped = bytearray(original)
        flipped[len(flipped) // 2] ^= 0x01
        path.write_bytes(bytes(flipped))
        try:
            problems = verify_pack(out, trusted)
        finally:
            path.write_bytes(original)
        assert problems, f"a changed byte in {path.relative_to(out)} went unnoticed"
        if path.name != "manifest.dsse.json":
            assert problems == [f"{path.relative_to(out).as_posix()}: sha256 differs from the manifest (changed)"]
    assert verify_pack(out, trusted) == []
    (out / "extra.txt").write_text("slipped in")
    assert verify_pack(out, trusted) == ["extra.txt: not in the manifest (added)"]
    (out / "extra.txt").unlink()
    assert verify_pack(out, {world.signers["grace"].keyid: world.signers["grace"].public_raw})  # another key


def test_the_pack_refuses_a_non_empty_out_dir(world: World) -> None:
    (world.root / "occupied").mkdir()
    (world.root / "occupied" / "old.json").write_text("{}")
    with pytest.raises(UserError, match="not empty"):
        world.pack("occupied")


def test_cli_pack_signs_with_the_given_identity(world: World) -> None:
    app = typer.Typer()
    audit_cmd.register(app)
    audit_report.register(app)
    out = world.root / "pack-cli"
    keys = world.root / "auditor-keys"
    args = ["audit", "pack", "--since", SINCE.isoformat(), "--out", str(out), "--ledger", str(world.ledger.path)]
    args += ["--as", "auditor", "--keys", str(keys), "--registry", str(world.registry), "--output", "json"]
    args += ["--controls", str(REPO_ROOT / "registry" / "controls.yaml"), "--attestations", str(world.attestations)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["ledger_verified"] and data["controls"]["soc2-cc8.1"] == "evidenced"
    assert verify_pack(out, {world.auditor.keyid: world.auditor.public_raw}) == []

    # an edited ledger line: the pack is still written, says so, and the command exits 1
    broken = world.root / "broken.jsonl"
    lines = world.ledger.path.read_text().splitlines(keepends=True)
    lines[2] = lines[2].replace('"satisfied":true', '"satisfied":false')
    broken.write_text("".join(lines))
    args[args.index(str(world.ledger.path))] = str(broken)
    args[args.index(str(out))] = str(world.root / "pack-broken")
    result = CliRunner().invoke(app, args)
    assert isinstance(result.exception, IntegrityError)  # bot.cli maps it to exit 1
    verification = json.loads((world.root / "pack-broken" / "ledger-verification.json").read_text())
    assert not verification["ok"] and verification["first_problem"]["seq"] == 3
    shutil.rmtree(world.root / "pack-broken")


def test_without_a_trust_anchor_the_pack_says_signatures_were_not_checked(world: World) -> None:
    result = world.pack("pack-untrusted", registry=None)
    index = _index(world.root / "pack-untrusted")
    assert not result.ledger_ok and not result.signatures_checked
    assert index["ledger"]["verified"] is False and index["ledger"]["signatures_checked"] is False
    verification = json.loads((world.root / "pack-untrusted" / "ledger-verification.json").read_text())
    assert verification["ok"] is False and verification["problems"] == []  # the chain itself is intact
    au9 = next(c for c in index["controls"] if c["id"] == "nist-800-53-au-9")
    notes = {e["id"]: e["notes"] for e in au9["evidence"]}
    assert notes["ledger-verification"] == ["signatures not checked: no trust anchor (--repo or --registry) was given"]
    assert au9["status"] == "partial"  # no signer keys to include
