"""`audit pack`: the evidence for each compliance control over a period, bundled and signed.

``registry/controls.yaml`` (JSON Schema ``registry/schema/controls.schema.json``) maps each control — SOC 2
CC8.1, ISO/IEC 27001:2022 A.8.32 and A.5.3, NIST SP 800-53 CM-3, CM-5, AU-9, AC-5, EU AI Act Art. 12 and
Art. 14 — to what evidences it: ledger events selected by action, outcome and detail values, complete
decision chains (propose → check → approvals → merge), or artifacts (the ledger verification, the signer
keys, the verdict attestations the events name, branch protection as code, break-glass reviews).

:func:`build_pack` writes, under an empty ``--out`` directory:

- ``index.json`` and ``index.md``: per control, what is included and how many, and its gaps stated plainly
  (an evidence item with nothing in the period; a control with no evidence at all is a gap).
- ``<control>/events.jsonl``: the selected ledger lines byte for byte as stored, so each event's digest and
  signature still verify; ``<control>/attestations/`` and other artifacts the control names.
- ``ledger-verification.json``: the whole live ledger verified once (chain, digests, signatures).
- ``manifest.dsse.json``: a DSSE envelope, signed by ``--as``, over the SHA-256 of every other file.

The period is ``[--since, --until)``: only events inside it are evidence, so a change whose chain began
before ``--since`` counts as a complete chain only in a pack whose period holds all of it. The pack reads
records and copies them; it never recomputes a decision.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import git
from pydantic import Field, ValidationError, model_validator

from bot.audit.report import Decision, Trust, check_integrity, governed_trust, group_decisions
from bot.errors import IntegrityError, UserError
from bot.records import AuditEvent, Outcome, Record
from bot.registry import config_schema, load_config
from bot.trust.attestations import attestation_path, read_attestation
from bot.trust.keys import Signer, sign_json, verify_json_envelope
from bot.trust.ledger import Ledger

PACK_PAYLOAD_TYPE = "application/vnd.glassbox.compliance-pack.v1+json"
MANIFEST = "manifest.dsse.json"

# --------------------------------------------------------------------------------------------------
# the mapping: controls.yaml


class ArtifactKind(StrEnum):
    LEDGER_VERIFICATION = "ledger-verification"  # the whole ledger verified: chain, digests, signatures
    LEDGER_SIGNERS = "ledger-signers"  # the trusted ledger-signer keys the signatures were checked against
    ATTESTATIONS = "attestations"  # the verdict attestations the control's events name, copied and verified
    BRANCH_PROTECTION = "branch-protection"  # the protected branch's settings as code, and CODEOWNERS
    BREAKGLASS_REVIEWS = "breakglass-reviews"  # post-incident review records of break-glass uses


class EventSelector(Record):
    actions: list[str] = Field(
        min_length=1, description="Event actions; a trailing '*' matches a prefix (breakglass.*)."
    )
    outcomes: list[Outcome] = Field(default_factory=list, description="Any of these outcomes; empty: any.")
    details: dict[str, list[str | int | float | bool | None]] = Field(
        default_factory=dict,
        description="Detail path → allowed values; 'a[].b' looks into every item of list a. All paths must match.",
    )
    present: list[str] = Field(
        default_factory=list, description="Detail paths that must hold a non-empty value (same path syntax)."
    )

    def matches(self, event: AuditEvent) -> bool:
        if not any(_action_matches(p, event.action) for p in self.actions):
            return False
        if self.outcomes and event.outcome not in self.outcomes:
            return False
        for path, allowed in self.details.items():
            if not any(v in allowed for v in values_at(event.details, path)):
                return False
        return all(any(_non_empty(v) for v in values_at(event.details, path)) for path in self.present)


class EvidenceItem(Record):
    id: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    description: str = Field(min_length=1)
    events: EventSelector | None = None
    chain: list[str] | None = Field(
        default=None,
        min_length=1,
        description="Actions a decision must contain to count as a complete chain; its events are included.",
    )
    artifact: ArtifactKind | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> EvidenceItem:
        if sum(x is not None for x in (self.events, self.chain, self.artifact)) != 1:
            raise ValueError("an evidence item is exactly one of: events, chain, artifact")
        return self

    @property
    def kind(self) -> Literal["events", "chain", "artifact"]:
        if self.events is not None:
            return "events"
        return "chain" if self.chain is not None else "artifact"


class Control(Record):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]*$", description="Also the control's folder in the pack.")
    framework: str = Field(min_length=1)
    ref: str = Field(min_length=1, description="The control's reference in its framework, e.g. CC8.1.")
    title: str = Field(min_length=1)
    requirement: str = Field(min_length=1, description="What the control asks for, in one or two sentences.")
    evidence: list[EvidenceItem] = Field(min_length=1)


class ControlsFile(Record):
    schema_version: Literal[1] = 1
    controls: list[Control] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> ControlsFile:
        ids = [c.id for c in self.controls]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"control ids must be unique: {', '.join(dupes)}")
        return self


def controls_schema() -> dict[str, Any]:
    return config_schema(ControlsFile, "controls")


def load_controls(path: Path) -> ControlsFile:
    """The control mapping at ``path``, schema-checked then parsed."""
    if not path.exists():
        raise UserError(f"{path}: controls mapping not found (pass --controls FILE)")
    return load_config(path, ControlsFile, name="controls", what="controls mapping")


def _action_matches(pattern: str, action: str) -> bool:
    return action.startswith(pattern[:-1]) if pattern.endswith("*") else action == pattern


def values_at(data: Any, path: str) -> list[Any]:
    """Every value at a dotted path; a segment ending in ``[]`` fans out over that list's items."""
    current = [data]
    for segment in path.split("."):
        fan = segment.endswith("[]")
        key = segment[:-2] if fan else segment
        step: list[Any] = []
        for item in current:
            if not isinstance(item, Mapping) or key not in item:
                continue
            value = item[key]
            if fan:
                step.extend(value if isinstance(value, list) else [])
            else:
                step.append(value)
        current = step
    return current


def _non_empty(value: Any) -> bool:
    if value is None or value is False:
        return False
    if isinstance(value, str | list | dict):
        return len(value) > 0
    return True


# --------------------------------------------------------------------------------------------------
# building the pack


@dataclass
class PackRequest:
    ledger: Path
    out: Path
    since: datetime
    until: datetime | None = None
    controls: Path = Path("registry/controls.yaml")
    attestations: Path | None = None
    deploy_state: Path | None = None
    repo: Path | None = None
    registry: Path | None = None
    registry_ref: str = "main"
    now: datetime | None = None


@dataclass
class StoredEvent:
    event: AuditEvent
    raw: bytes  # the ledger line exactly as stored, newline included


@dataclass
class ItemResult:
    item: EvidenceItem
    count: int = 0
    files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def gap(self) -> bool:
        return self.count == 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.item.id,
            "kind": self.item.kind,
            "description": self.item.description,
            "count": self.count,
            "files": self.files,
            "gap": self.gap,
            "notes": self.notes,
        }


@dataclass
class ControlResult:
    control: Control
    items: list[ItemResult]
    events: int
    findings: list[str] = field(default_factory=list)

    @property
    def status(self) -> Literal["evidenced", "partial", "gap"]:
        gaps = sum(i.gap for i in self.items)
        if gaps == 0:
            return "evidenced"
        return "gap" if gaps == len(self.items) else "partial"

    @property
    def gaps(self) -> list[str]:
        return [f"{i.item.id}: no {_lower_first(i.item.description)} in the period" for i in self.items if i.gap]

    def as_dict(self) -> dict[str, Any]:
        c = self.control
        return {
            "id": c.id,
            "framework": c.framework,
            "ref": c.ref,
            "title": c.title,
            "requirement": c.requirement,
            "status": self.status,
            "events": self.events,
            "events_file": f"{c.id}/events.jsonl" if self.events else None,
            "evidence": [i.as_dict() for i in self.items],
            "gaps": self.gaps,
            "findings": self.findings,
        }


@dataclass
class PackResult:
    out: Path
    controls: list[ControlResult]
    manifest: Path
    files: int
    ledger_ok: bool
    signatures_checked: bool

    @property
    def gaps(self) -> list[str]:
        """Controls with no evidence at all in the period."""
        return [c.control.id for c in self.controls if c.status == "gap"]

    def as_dict(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "manifest": str(self.manifest),
            "files": self.files,
            "ledger_verified": self.ledger_ok,
            "signatures_checked": self.signatures_checked,
            "controls": {c.control.id: c.status for c in self.controls},
            "gaps": self.gaps,
        }


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _read_stored(ledger: Ledger) -> list[StoredEvent]:
    out = []
    with ledger.path.open("rb") as fh:
        for raw in fh:
            try:
                event = AuditEvent.model_validate_json(raw)
            except ValidationError:
                continue  # a malformed line is the ledger verification's finding, not evidence
            out.append(StoredEvent(event, raw if raw.endswith(b"\n") else raw + b"\n"))
    return out


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 16), b""):
            h.update(chunk)
    return h.hexdigest()


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def _referenced_heads(events: Sequence[AuditEvent]) -> list[str]:
    """Head commits whose verdict attestation the events rest on: checked heads and merged/deployed heads."""
    heads: list[str] = []
    for e in events:
        candidates = [e.details.get("head_sha")]
        if e.action == "check":
            candidates.append(e.subject.commit)
        for sha in candidates:
            if isinstance(sha, str) and sha and sha not in heads:
                heads.append(sha)
    return heads


class _Packer:
    def __init__(self, req: PackRequest, trust: Trust | None, stored: list[StoredEvent]) -> None:
        self.req = req
        self.trust = trust
        until = req.until
        self.period = [s for s in stored if s.event.time >= req.since and (until is None or s.event.time < until)]
        decisions, _ = group_decisions([s.event for s in self.period])
        self.decisions: list[Decision] = decisions
        self.raw_by_seq = {s.event.seq: s for s in self.period}

    def select(self, control: Control) -> tuple[list[ItemResult], list[StoredEvent], list[str]]:
        chosen: dict[int, StoredEvent] = {}
        results: list[ItemResult] = []
        findings: list[str] = []
        for item in control.evidence:
            result = ItemResult(item)
            if item.events is not None:
                selector = item.events
                hits = [s for s in self.period if selector.matches(s.event)]
                result.count = len(hits)
                chosen.update((s.event.seq, s) for s in hits)
            elif item.chain is not None:
                complete, landed_short = self._chains(item.chain)
                result.count = len(complete)
                for d in complete:
                    chosen.update((e.seq, self.raw_by_seq[e.seq]) for e in d.events)
                for d, missing in landed_short:
                    findings.append(
                        f"{d.correlation_id or d.key} went ahead without {', '.join(missing)} in the ledger "
                        f"({d.outcome})"
                    )
                if complete:
                    result.notes.append("complete chains: " + ", ".join(d.correlation_id or d.key for d in complete))
            results.append(result)
        events = sorted(chosen.values(), key=lambda s: s.event.seq)
        return results, events, findings

    def _chains(self, steps: Sequence[str]) -> tuple[list[Decision], list[tuple[Decision, list[str]]]]:
        complete, short = [], []
        for d in self.decisions:
            actions = d.actions()
            missing = [s for s in steps if s not in actions]
            if not missing:
                complete.append(d)
            elif any(
                e.outcome is Outcome.ALLOW and e.action in ("merge", "deploy") for e in d.events
            ):  # it landed, so the missing steps are a finding, not a refusal that stopped early
                short.append((d, missing))
        return complete, short


def build_pack(req: PackRequest, signer: Signer) -> PackResult:
    """Write the pack for ``req`` and sign its manifest with ``signer``."""
    ledger = Ledger.existing(req.ledger)
    if req.out.exists() and any(req.out.iterdir()):
        raise UserError(f"--out {req.out}: not empty; a pack is written into a new or empty directory")
    mapping = load_controls(req.controls)
    trust, _ = governed_trust(
        ledger=req.ledger,
        repo=req.repo,
        registry=req.registry,
        branch=req.registry_ref,
        attestations=req.attestations,
        deploy_state=req.deploy_state,
    )
    now = (req.now or datetime.now(UTC)).astimezone(UTC)
    stored = _read_stored(ledger)
    packer = _Packer(req, trust, stored)
    req.out.mkdir(parents=True, exist_ok=True)

    integrity = check_integrity(ledger, trust)
    ledger_sha = _sha256_file(ledger.path)
    verification = {
        **integrity.as_dict(),
        "ledger": str(req.ledger),
        "ledger_sha256": ledger_sha,
        "verified_at": now.isoformat(),
        "trust": trust.source if trust else None,
        # verified means signatures too: a chain that hangs together proves nothing about who wrote it
        "ok": integrity.ok and integrity.signatures_checked,
    }
    _write_json(req.out / "ledger-verification.json", verification)

    results: list[ControlResult] = []
    for control in mapping.controls:
        items, events, findings = packer.select(control)
        folder = req.out / control.id
        if events:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "events.jsonl").write_bytes(b"".join(s.raw for s in events))
        for result in items:
            if result.item.artifact is not None:
                _artifact(result, control, folder, [s.event for s in events], packer, integrity_ok=verification["ok"])
            elif result.count:
                result.files.append(f"{control.id}/events.jsonl")
        for result in items:  # an artifact that is there but does not verify, or is named and absent
            findings.extend(
                f"{result.item.id}: {n}" for n in result.notes if n.startswith(("does not verify", "missing:"))
            )
        results.append(ControlResult(control, items, len(events), findings))

    period: dict[str, Any] = {"since": req.since.isoformat(), "until": req.until.isoformat() if req.until else None}
    index = {
        "schema_version": 1,
        "created": now.isoformat(),
        "period": period,
        "ledger": {
            "path": str(req.ledger),
            "sha256": ledger_sha,
            "events_total": len(stored),
            "events_in_period": len(packer.period),
            "head": integrity.report.head,
            "verified": verification["ok"],
            "signatures_checked": integrity.signatures_checked,
            "trust": trust.source if trust else None,
        },
        "signer": {"identity": signer.identity, "keyid": signer.keyid},
        "controls": [r.as_dict() for r in results],
        "controls_without_evidence": [r.control.id for r in results if r.status == "gap"],
        "gaps": [g for r in results for g in _gap_lines(r)],
    }
    _write_json(req.out / "index.json", index)
    (req.out / "index.md").write_text(_index_md(index), encoding="utf-8")

    manifest = sign_manifest(req.out, signer, now=now, period=period)
    return PackResult(
        out=req.out,
        controls=results,
        manifest=manifest,
        files=len(list(_files(req.out))),
        ledger_ok=bool(verification["ok"]),
        signatures_checked=integrity.signatures_checked,
    )


def _gap_lines(r: ControlResult) -> list[str]:
    c = r.control
    head = [f"{c.id}: NO EVIDENCE for {c.framework} {c.ref} ({c.title}) in the period"] if r.status == "gap" else []
    return head + [f"{c.id}: {x}" for x in r.gaps]


def _artifact(
    result: ItemResult,
    control: Control,
    folder: Path,
    events: list[AuditEvent],
    packer: _Packer,
    *,
    integrity_ok: object,
) -> None:
    kind = result.item.artifact
    req, trust = packer.req, packer.trust
    if kind is ArtifactKind.LEDGER_VERIFICATION:
        result.count = 1
        result.files.append("ledger-verification.json")
        if not integrity_ok:
            result.notes.append(
                "does not verify: see ledger-verification.json"
                if trust
                else "signatures not checked: no trust anchor (--repo or --registry) was given"
            )
    elif kind is ArtifactKind.LEDGER_SIGNERS:
        if trust is None:
            result.notes.append("no trust anchor given (--repo or --registry)")
            return
        keys = [k.model_dump(mode="json") for k in trust.registry.trust.keys if k.keyid in trust.keys]
        _write_json(folder / "ledger-signers.json", {"source": trust.source, "keys": keys})
        result.count = len(keys)
        result.files.append(f"{control.id}/ledger-signers.json")
    elif kind is ArtifactKind.ATTESTATIONS:
        if req.attestations is None:
            result.notes.append("no --attestations directory given")
            return
        for head in _referenced_heads(events):
            source = attestation_path(req.attestations, head)
            if not source.exists():
                result.notes.append(f"missing: no attestation for head {head[:12]}")
                continue
            target = folder / "attestations" / source.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            result.count += 1
            result.files.append(f"{control.id}/attestations/{source.name}")
            if trust is not None:
                filed = read_attestation(source, trust.registry)
                if filed.problem is not None:
                    result.notes.append(f"does not verify: {source.name}: {filed.problem}")
    elif kind is ArtifactKind.BRANCH_PROTECTION:
        if trust is None:
            result.notes.append("no registry given (--repo or --registry) to take the protected-branch settings from")
            return
        from bot.approvals.protection import desired  # only this artifact needs the approvals package

        data: dict[str, Any] = {
            "source": trust.source,
            "desired": desired(trust.registry).model_dump(mode="json"),
            "note": "the settings glassbox applies and verifies with `glassbox protect`; live state is the forge's",
        }
        if req.repo is not None:
            codeowners = _blob(req.repo, req.registry_ref, ".github/CODEOWNERS")
            if codeowners is not None:
                (folder / "CODEOWNERS").write_bytes(codeowners)
                result.files.append(f"{control.id}/CODEOWNERS")
                data["codeowners"] = f".github/CODEOWNERS at {req.registry_ref}"
        _write_json(folder / "branch-protection.json", data)
        result.files.insert(0, f"{control.id}/branch-protection.json")
        result.count = 1
    elif kind is ArtifactKind.BREAKGLASS_REVIEWS:
        if req.deploy_state is None:
            result.notes.append("no --deploy-state given to read break-glass reviews from")
            return
        grants = {
            str(e.details.get("grant_id"))
            for e in events
            if e.action.startswith("breakglass.") and e.details.get("grant_id")
        }
        for grant in sorted(grants):
            source = req.deploy_state / "reviews" / f"{grant}.json"
            if not source.exists():
                result.notes.append(f"missing: no review record for grant {grant}")
                continue
            target = folder / "breakglass-reviews" / source.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            result.count += 1
            result.files.append(f"{control.id}/breakglass-reviews/{source.name}")


def _blob(repo: Path, ref: str, path: str) -> bytes | None:
    try:
        blob = git.Repo(repo).commit(ref).tree / path
        data: bytes = blob.data_stream.read()
    except (git.exc.GitError, KeyError, ValueError, OSError):
        return None
    return data


def _index_md(index: Mapping[str, Any]) -> str:
    period = index["period"]
    led = index["ledger"]
    lines = [
        "# Compliance evidence pack",
        "",
        f"- Period: {period['since']} to {period['until'] or index['created']}",
        f"- Ledger: `{led['path']}` (sha256 `{led['sha256']}`), {led['events_in_period']} of "
        f"{led['events_total']} events in the period, head `{led['head']}`",
        "- Ledger verification: "
        + (
            "verified (chain, digests and signatures)"
            if led["verified"]
            else ("signatures NOT checked (no trust anchor)" if not led["signatures_checked"] else "**BROKEN**")
        )
        + " — `ledger-verification.json`",
        f"- Signed by {index['signer']['identity']} (`{index['signer']['keyid']}`): `{MANIFEST}` lists the SHA-256 "
        "of every file",
        "",
        "| control | framework | status | events | evidence |",
        "|---|---|---|---|---|",
    ]
    for c in index["controls"]:
        evidence = "; ".join(f"{e['id']}: {e['count']}" for e in c["evidence"])
        lines.append(f"| {c['ref']} {c['title']} | {c['framework']} | {c['status']} | {c['events']} | {evidence} |")
    lines.append("")
    for c in index["controls"]:
        lines += [f"## {c['framework']} {c['ref']}: {c['title']}", "", c["requirement"], ""]
        lines.append(f"Status: **{c['status']}**" + (f" — events in `{c['events_file']}`" if c["events_file"] else ""))
        lines.append("")
        for e in c["evidence"]:
            files = ", ".join(f"`{f}`" for f in e["files"]) or "no file"
            lines.append(f"- {e['description']}: {e['count']} ({files})")
            lines += [f"  - {n}" for n in e["notes"]]
        if c["gaps"]:
            lines += ["", "Gaps:"] + [f"- {g}" for g in c["gaps"]]
        if c["status"] == "gap":
            lines += ["", f"**No evidence for {c['framework']} {c['ref']} in this period.**"]
        if c["findings"]:
            lines += ["", "Findings:"] + [f"- {f}" for f in c["findings"]]
        lines.append("")
    if index["gaps"]:
        lines += ["## Gaps in this period", ""] + [f"- {g}" for g in index["gaps"]] + [""]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# the signed manifest


def _files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.relative_to(root).as_posix() != MANIFEST:
            yield path


def sign_manifest(root: Path, signer: Signer, *, now: datetime, period: Mapping[str, Any]) -> Path:
    files = [
        {"path": p.relative_to(root).as_posix(), "sha256": _sha256_file(p), "size": p.stat().st_size}
        for p in _files(root)
    ]
    payload = {
        "schema_version": 1,
        "kind": "glassbox compliance pack",
        "created": now.isoformat(),
        "period": dict(period),
        "signer": signer.identity,
        "files": files,
    }
    envelope = sign_json(payload, PACK_PAYLOAD_TYPE, signer)
    path = root / MANIFEST
    path.write_text(json.dumps(envelope, indent=2) + "\n", encoding="utf-8")
    return path


def verify_pack(root: Path, trusted: Mapping[str, bytes]) -> list[str]:
    """Problems with the pack at ``root`` (empty when the manifest verifies and every file matches it)."""
    try:
        envelope = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
        payload, _ = verify_json_envelope(envelope, trusted, payload_type=PACK_PAYLOAD_TYPE)
    except FileNotFoundError:
        return [f"{MANIFEST} is missing"]
    except (ValueError, IntegrityError) as exc:
        return [f"{MANIFEST}: {exc}"]
    problems = []
    listed = {str(f["path"]): f for f in payload.get("files", [])}
    for path in _files(root):
        rel = path.relative_to(root).as_posix()
        entry = listed.pop(rel, None)
        if entry is None:
            problems.append(f"{rel}: not in the manifest (added)")
        elif _sha256_file(path) != entry["sha256"]:
            problems.append(f"{rel}: sha256 differs from the manifest (changed)")
    problems += [f"{rel}: listed in the manifest but missing (deleted)" for rel in sorted(listed)]
    return problems
