"""`audit show`: rebuild one decision's chain of custody and say, link by link, whether it verifies.

request → agent (registry at the base commit) → model and prompt → evidence sources → commit → its SSH
signature → the evidence record in that commit → verdict attestation → plan → policy findings → risk →
approvals → merge → deploy → post-apply verification. Every link names where its facts came from (a git
object, the attestation, a ledger event by seq, the deploy record), whether the digests and signatures it
rests on verify, and a status: ``ok``, ``missing`` (the fact is not there) or ``broken`` (it is there and
does not verify, or contradicts another record). A missing or broken link is named, never skipped.

It must stay fast among hundreds of thousands of ledger events, so it reads the ledger only through its
SQLite index (``Ledger.find``) and checks each cited event on its own: its digest, its signature by a
ledger-signer key of the registry at ``--registry-ref``, and its chain link to the event just before it
(or to the archive anchor). Whole-ledger verification is ``audit verify``'s job.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import git
from pydantic import Field, ValidationError

from bot.audit.retention import archive_anchor
from bot.check.evaluate import added_decision_records
from bot.deploy.gate import DeployReport
from bot.errors import GlassboxError, IntegrityError, UserError
from bot.records import AuditEvent, EvidenceRecord, Outcome, Record, Verdict, canonical_json
from bot.registry import AgentStatus, KeyRole, Registry, load_registry
from bot.trust.anchors import export_tree, policy_pack_digest
from bot.trust.attestations import load_attestation
from bot.trust.conventions import REGISTRY_DIR, TRAILER_AGENT, TRAILER_CORRELATION, TRAILER_EVIDENCE, trailers
from bot.trust.gitsign import verify_commit
from bot.trust.keys import verify_bytes
from bot.trust.ledger import EVENT_PAYLOAD_TYPE, Ledger, LedgerKeys, ledger_keys

_CORRELATION = re.compile(
    r"^([0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}|[0-9A-HJKMNP-TV-Z]{26})$", re.IGNORECASE
)
_SHA = re.compile(r"^[0-9a-f]{4,40}$")


# --------------------------------------------------------------------------------------------------
# records


class LinkStatus(StrEnum):
    OK = "ok"
    MISSING = "missing"
    BROKEN = "broken"


class SourceKind(StrEnum):
    GIT = "git"
    REGISTRY = "registry"
    ATTESTATION = "attestation"
    LEDGER = "ledger"
    DEPLOY_RECORD = "deploy-record"


class Source(Record):
    """Where a fact came from, and whether that source's own digest and signature verified."""

    kind: SourceKind
    ref: str = Field(description="e.g. 'commit <sha>', 'blob <sha> <path>', 'seq 12', a file path.")
    verified: bool | None = Field(default=None, description="Digest (and signature, if signed) verified.")
    detail: str = ""


class Link(Record):
    name: str
    status: LinkStatus
    explanation: str = Field(description="One line: what verified, or what is missing or broken.")
    sources: list[Source] = Field(default_factory=list)
    digest: str | None = None
    digest_verified: bool | None = None
    signature_verified: bool | None = None
    signed_by: str | None = None
    facts: dict[str, Any] = Field(default_factory=dict)


class Reconstruction(Record):
    schema_version: Literal[1] = 1
    query: str
    query_kind: Literal["correlation-id", "pr", "commit"]
    correlation_id: str | None = None
    repo: str | None = None
    pr: int | None = None
    agent_id: str | None = None
    base_commit: str | None = None
    head_commit: str | None = None
    merge_commit: str | None = None
    links: list[Link]
    ok: bool
    problems: list[str] = Field(default_factory=list, description="One line per missing or broken link.")


LINK_ORDER = (
    "request",
    "agent",
    "model-prompt",
    "evidence-sources",
    "commit",
    "signature",
    "evidence-record",
    "verdict",
    "plan",
    "policy",
    "risk",
    "approvals",
    "merge",
    "deploy",
    "verification",
)


# --------------------------------------------------------------------------------------------------
# shared helpers (also used by ``bot.audit.history``)


def object_intact(repo: git.Repo, sha: str) -> bool:
    """Does the stored object still hash to its name? git serves a rewritten loose object without asking."""
    info = repo.odb.stream(bytes.fromhex(sha))
    data = info.read()
    header = f"{info.type.decode()} {len(data)}\0".encode()
    return hashlib.sha1(header + data, usedforsecurity=False).hexdigest() == sha


class RegistryCache:
    """Registries read from git at a commit, keyed by the registry tree so equal trees load once."""

    def __init__(self, repo: git.Repo) -> None:
        self.repo = repo
        self._by_tree: dict[str, Registry] = {}

    def at(self, commit: git.Commit) -> Registry:
        try:
            tree = (commit.tree / REGISTRY_DIR).hexsha
        except KeyError:
            raise UserError(f"commit {commit.hexsha[:12]} has no {REGISTRY_DIR}/ to take trust from") from None
        if tree not in self._by_tree:
            with tempfile.TemporaryDirectory(prefix="glassbox-audit-") as scratch:
                self._by_tree[tree] = load_registry(export_tree(commit, REGISTRY_DIR, Path(scratch)))
        return self._by_tree[tree]

    def before(self, sha: str | None, fallback: Registry) -> Registry:
        """The registry a deploy of ``sha`` trusted (its first parent's); ``fallback`` for None or an unknown
        commit."""
        if sha is None:
            return fallback
        try:
            commit = self.repo.commit(str(sha))
        except (git.BadName, ValueError):
            return fallback
        return self.at(commit.parents[0] if commit.parents else commit)


@dataclass
class EventVerifier:
    """Checks single ledger events: digest, signature by a trusted ledger signer, and the link to seq - 1."""

    ledger: Ledger
    trusted: LedgerKeys
    anchor: tuple[int, str]
    _cache: dict[int, str | None] = field(default_factory=dict)

    def _line(self, seq: int) -> bytes | None:
        return self.ledger.raw_line(seq)

    def problem(self, event: AuditEvent) -> str | None:
        """Why ``event`` does not verify, or None."""
        if event.seq in self._cache:
            return self._cache[event.seq]
        self._cache[event.seq] = result = self._check(event)
        return result

    def _check(self, event: AuditEvent) -> str | None:
        where = f"ledger seq {event.seq} ({event.action})"
        body = event.body()
        if event.computed_digest() != event.digest:
            return f"{where}: content does not match its digest (edited)"
        raw = self.trusted.get(event.signature.keyid)
        if raw is None:
            return f"{where}: signed by a key that is not a ledger signer ({event.signature.keyid[:19]}…)"
        if not verify_bytes(raw, EVENT_PAYLOAD_TYPE, canonical_json(body), event.signature.sig):
            return f"{where}: signature does not verify"
        unbound = self.trusted.binding_problem(event)
        if unbound is not None:
            return f"{where}: {unbound[1]}"
        start_seq, start_prev = self.anchor
        if event.seq == start_seq:
            if event.prev != start_prev:
                return f"{where}: does not chain to the archive anchor"
            return None
        if event.seq < start_seq:
            return f"{where}: lies before the live ledger's first event (seq {start_seq})"
        line = self._line(event.seq - 1)
        if line is None:
            return f"{where}: the event before it (seq {event.seq - 1}) is missing (deleted?)"
        try:
            before = AuditEvent.model_validate_json(line)
        except ValidationError:
            return f"{where}: the event before it (seq {event.seq - 1}) is not a valid event"
        # the predecessor's recorded digest is what this event signed over; whether the predecessor's own
        # content still matches it is that event's question (and `audit verify`'s)
        if before.seq != event.seq - 1 or event.prev != before.digest:
            return f"{where}: prev does not match the digest of seq {event.seq - 1} (chain broken)"
        return None

    def source(self, event: AuditEvent) -> Source:
        problem = self.problem(event)
        return Source(
            kind=SourceKind.LEDGER,
            ref=f"seq {event.seq}",
            verified=problem is None,
            detail=problem or f"{event.action} {event.outcome.value} by {event.actor.id}, digest and signature verify",
        )


def load_verdict(store: Path, head: str, registry: Registry) -> tuple[Verdict | None, Source, str | None]:
    """(verdict, source, problem) for the attestation stored for ``head``; problem None when it verifies."""
    filed = load_attestation(store, head, registry)
    ref = str(filed.path)
    if not filed.found:
        return None, Source(kind=SourceKind.ATTESTATION, ref=ref), f"no attestation for head {head[:12]}"
    if filed.verdict is None:
        return None, Source(kind=SourceKind.ATTESTATION, ref=ref, verified=False, detail=filed.problem), filed.problem
    keys = registry.keys_for(role=KeyRole.VERDICT_SIGNER)
    signer = next((k.identity for k in keys if k.keyid == filed.keyid), filed.keyid)
    return (
        filed.verdict,
        Source(kind=SourceKind.ATTESTATION, ref=ref, verified=True, detail=f"signed by {signer}"),
        None,
    )


# --------------------------------------------------------------------------------------------------
# the chain


@dataclass
class ShowRequest:
    query: str
    ledger: Path
    repo: Path
    attestations: Path
    deploy_state: Path | None = None
    registry_ref: str = "main"
    branch: str = "main"
    full_ledger: bool = False  # also verify every ledger event (a full scan: seconds at 100k decisions)


def _link(
    name: str,
    status: LinkStatus,
    explanation: str,
    sources: list[Source] | None = None,
    **kwargs: Any,
) -> Link:
    return Link(name=name, status=status, explanation=explanation, sources=sources or [], **kwargs)


def _ok(name: str, explanation: str, sources: list[Source] | None = None, **kw: Any) -> Link:
    return _link(name, LinkStatus.OK, explanation, sources, **kw)


def _missing(name: str, explanation: str, sources: list[Source] | None = None, **kw: Any) -> Link:
    return _link(name, LinkStatus.MISSING, explanation, sources, **kw)


def _broken(name: str, explanation: str, sources: list[Source] | None = None, **kw: Any) -> Link:
    return _link(name, LinkStatus.BROKEN, explanation, sources, **kw)


def _last(events: list[AuditEvent], action: str, **match: Any) -> AuditEvent | None:
    found = [
        e
        for e in events
        if e.action == action
        and all((getattr(e.subject, k) if k in ("commit", "pr") else e.details.get(k)) == v for k, v in match.items())
    ]
    allowed = [e for e in found if e.outcome is Outcome.ALLOW]
    return (allowed or found)[-1] if found else None


def open_repo(path: Path) -> git.Repo:
    """The git repository at ``path`` (``--repo``), or a UserError saying it is not one."""
    try:
        return git.Repo(path)
    except (git.exc.GitError, OSError) as exc:
        raise UserError(f"--repo {path}: not a git repository ({exc})") from None


class _Builder:
    """One reconstruction's working state: what was resolved so far, and the links built from it."""

    def __init__(self, req: ShowRequest) -> None:
        self.req = req
        self.ledger = Ledger.existing(req.ledger)
        self.repo = open_repo(req.repo)
        self.registries = RegistryCache(self.repo)
        try:
            ref_commit = self.repo.commit(req.registry_ref)
        except (git.BadName, ValueError):
            raise UserError(f"--registry-ref {req.registry_ref!r} is not a ref in {req.repo}") from None
        trusted = ledger_keys(self.registries.at(ref_commit))
        self.events = EventVerifier(self.ledger, trusted, archive_anchor(self.ledger, trusted))
        self.links: dict[str, Link] = {}
        self.cid: str | None = None
        self.pr: int | None = None
        self.repo_name: str | None = None
        self.head: git.Commit | None = None
        self.merge_sha: str | None = None
        self.evidence: EvidenceRecord | None = None
        self.verdict: Verdict | None = None
        self.base_registry: Registry | None = None
        self.propose: AuditEvent | None = None
        self.check: AuditEvent | None = None
        self.merge: AuditEvent | None = None
        self.pr_events: list[AuditEvent] = []
        self.commit_events: list[AuditEvent] = []
        self._evidence_failure: Link | None = None
        self._evidence_src: Source | None = None

    # ---------------------------------------------------------------------------------------- resolve

    def _commit(self, sha: str | None) -> git.Commit | None:
        if not sha:
            return None
        try:
            return self.repo.commit(sha)
        except (git.BadName, ValueError):
            return None

    def resolve(self) -> Literal["correlation-id", "pr", "commit"]:
        q = self.req.query.strip()
        kind: Literal["correlation-id", "pr", "commit"]
        if _CORRELATION.match(q) and not q.isdigit():
            kind, self.cid = "correlation-id", q.lower() if "-" in q else q.upper()
        elif q.lstrip("#").isdigit():
            kind, self.pr = "pr", int(q.lstrip("#"))
        elif _SHA.match(q.lower()):
            kind = "commit"
            commit = self._commit(q.lower())
            sha = commit.hexsha if commit else q.lower()
            for e in self.ledger.find(commit=sha):
                self.pr = self.pr or e.subject.pr
                self.cid = self.cid or e.correlation_id
                if e.action == "merge" and e.details.get("head_sha"):
                    self.head = self.head or self._commit(str(e.details["head_sha"]))
            if self.cid is None and commit is not None:
                self.cid = trailers(str(commit.message)).get(TRAILER_CORRELATION)
            if self.cid is None and self.pr is None:
                raise UserError(f"{q}: no ledger event and no Glassbox trailer names this commit")
        else:
            raise UserError(f"{q!r}: give a correlation id (UUIDv7 or ULID), a PR number or a commit SHA")
        by_cid = self.ledger.find(correlation_id=self.cid) if self.cid else []
        self.propose = _last(by_cid, "propose")
        if self.pr is None and self.propose is not None:
            self.pr = self.propose.subject.pr
        self.pr_events = self.ledger.find(pr=self.pr) if self.pr is not None else []
        if self.propose is None:
            self.propose = _last(self.pr_events, "propose")
        if self.cid is None and self.propose is not None:
            self.cid = self.propose.correlation_id
        if self.propose is not None:
            self.repo_name = self.propose.subject.repo
            self.head = self.head or self._commit(self.propose.subject.commit)
        merges = [e for e in self.pr_events if e.action == "merge" and e.outcome is Outcome.ALLOW]
        self.merge = merges[-1] if merges else _last(self.pr_events, "merge")
        if self.head is None and self.merge is not None:
            self.head = self._commit(str(self.merge.details.get("head_sha") or ""))
        if self.merge is not None and self.merge.outcome is Outcome.ALLOW:
            self.merge_sha = self.merge.subject.commit
        if self.propose is None and self.merge is None and self.head is None and not by_cid and not self.pr_events:
            raise UserError(f"{q}: no ledger event names this {kind.replace('-', ' ')}")
        head_sha = self.head.hexsha if self.head else None
        self.check = _last(by_cid + self.pr_events, "check", commit=head_sha) if head_sha else None
        if self.merge_sha:
            self.commit_events = self.ledger.find(commit=self.merge_sha)
        if self.head is not None and self.head.parents:
            try:
                self.base_registry = self.registries.at(self.head.parents[0])
            except GlassboxError:
                self.base_registry = None
        return kind

    # ---------------------------------------------------------------------------------------- links

    def build(self) -> None:
        for step in (
            self._request,
            self._agent,
            self._model_prompt,
            self._commit_link,
            self._signature,
            self._evidence_record,
            self._evidence_sources,
            self._verdict,
            self._plan,
            self._policy,
            self._risk,
            self._approvals,
            self._merge,
            self._deploy,
        ):
            step()

    def add(self, link: Link) -> None:
        self.links[link.name] = link

    def _request(self) -> None:
        e = self.propose
        if e is None:
            self.add(_missing("request", "no propose event in the ledger for this change"))
            return
        src = self.events.source(e)
        facts = {
            "agent_id": e.details.get("agent_id"),
            "requested_by": e.details.get("requested_by"),
            "ticket": e.details.get("ticket"),
            "result": e.details.get("result"),
            "paths": e.details.get("paths"),
            "time": e.model_dump(mode="json")["time"],
        }
        if not src.verified:
            self.add(_broken("request", src.detail, [src], signature_verified=False, facts=facts))
            return
        text = f"{facts['requested_by']} asked {facts['agent_id']}; propose {e.outcome.value} ({facts['result']})"
        self.add(_ok("request", text, [src], signature_verified=True, signed_by=e.actor.id, facts=facts))

    def _agent(self) -> None:
        agent_id = (self.propose.details.get("agent_id") if self.propose else None) or (
            trailers(str(self.head.message)).get(TRAILER_AGENT) if self.head else None
        )
        if agent_id is None:
            self.add(_missing("agent", "no agent named by the propose event or the commit trailers"))
            return
        if self.head is None or not self.head.parents or self.base_registry is None:
            self.add(_missing("agent", f"agent {agent_id}: no base commit to read the registry from"))
            return
        base = self.head.parents[0]
        # the registry files this link rests on must still be the objects their tree names
        tampered = [
            name
            for name in ("agents.yaml", "trust.yaml")
            if not object_intact(self.repo, (base.tree / f"{REGISTRY_DIR}/{name}").hexsha)
        ]
        src = Source(
            kind=SourceKind.REGISTRY,
            ref=f"{REGISTRY_DIR}/agents.yaml at {base.hexsha}",
            verified=not tampered,
            detail=f"registry digest {self.base_registry.digest}",
        )
        if tampered:
            text = f"registry object(s) {', '.join(tampered)} at base do not hash to their ids"
            self.add(_broken("agent", text, [src], digest_verified=False))
            return
        agent = self.base_registry.find_agent(agent_id)
        if agent is None:
            self.add(_broken("agent", f"agent {agent_id} is not registered at base {base.hexsha[:12]}", [src]))
            return
        facts = {
            "id": agent.id,
            "status": agent.status.value,
            "autonomy": agent.autonomy.value,
            "owner_team": agent.owner_team,
            "max_risk": agent.scope.max_risk.value,
            "registry_digest": self.base_registry.digest,
        }
        if agent.status is not AgentStatus.ACTIVE:
            self.add(_broken("agent", f"agent {agent_id} was {agent.status.value} at base", [src], facts=facts))
            return
        text = (
            f"{agent_id} registered at base {base.hexsha[:12]}: {agent.status.value}, autonomy {agent.autonomy.value}"
        )
        self.add(_ok("agent", text, [src], digest=self.base_registry.digest, digest_verified=True, facts=facts))

    def _evidence_blob(self) -> tuple[str | None, str | None, bool]:
        """(path, blob sha, intact) of the decision record this head commit adds."""
        if self.head is None or not self.head.parents or self.cid is None:
            return None, None, False
        paths = [p for p in added_decision_records(self.head.parents[0], self.head) if p.endswith(f"/{self.cid}.json")]
        if not paths:
            return None, None, False
        blob = self.head.tree / paths[0]
        return paths[0], blob.hexsha, object_intact(self.repo, blob.hexsha)

    def _read_evidence(self) -> tuple[Link | None, Source | None]:
        path, blob_sha, intact = self._evidence_blob()
        if path is None or blob_sha is None or self.head is None:
            return _missing("evidence-record", "the head commit adds no decision record for this correlation id"), None
        src = Source(kind=SourceKind.GIT, ref=f"blob {blob_sha} {path}", verified=intact)
        if not intact:
            return _broken("evidence-record", f"git object {blob_sha[:12]} does not hash to its id", [src]), src
        try:
            self.evidence = EvidenceRecord.model_validate_json((self.head.tree / path).data_stream.read())
        except ValidationError as exc:
            return _broken("evidence-record", f"{path} is not a valid evidence record: {exc.errors()[0]['msg']}"), src
        return None, src

    def _model_prompt(self) -> None:
        failure, src = self._read_evidence()
        self._evidence_failure = failure
        self._evidence_src = src
        if self.evidence is None or src is None:
            self.add(_missing("model-prompt", "no readable evidence record to take the model and prompt from"))
            return
        r = self.evidence.request
        facts = {"model": r.model.model_dump(mode="json"), "prompt": r.prompt.model_dump(mode="json")}
        sources = [src]
        if self.propose is not None:
            sources.append(self.events.source(self.propose))
            logged = {"model": self.propose.details.get("model"), "prompt": self.propose.details.get("prompt")}
            recorded = {
                "model": facts["model"],
                "prompt": {k: v for k, v in facts["prompt"].items() if k != "rendered_sha256"},
            }
            if logged != recorded:
                self.add(
                    _broken("model-prompt", "the propose event names another model or prompt", sources, facts=facts)
                )
                return
        text = (
            f"{r.model.provider}/{r.model.model_id}@{r.model.version}, "
            f"prompt {r.prompt.template_id} v{r.prompt.template_version}"
        )
        self.add(_ok("model-prompt", text, sources, facts=facts))

    def _evidence_sources(self) -> None:
        if self.evidence is None:
            self.add(_missing("evidence-sources", "no readable evidence record to take the sources from"))
            return
        sources = self.evidence.request.rationale.evidence_sources
        facts = {"sources": [s.model_dump(mode="json") for s in sources]}
        src = [self._evidence_src] if self._evidence_src else []
        if not sources:
            self.add(_missing("evidence-sources", "the rationale cites no evidence source", src, facts=facts))
            return
        text = ", ".join(f"{s.kind} {s.uri}@{s.version}" for s in sources)
        self.add(_ok("evidence-sources", f"{len(sources)} source(s): {text}", src, facts=facts))

    def _commit_link(self) -> None:
        if self.head is None:
            self.add(_missing("commit", "no head commit: the ledger names none, or it is not in the repository"))
            return
        sha = self.head.hexsha
        intact = object_intact(self.repo, sha)
        src = Source(kind=SourceKind.GIT, ref=f"commit {sha}", verified=intact)
        t = trailers(str(self.head.message))
        facts = {
            "sha": sha,
            "tree": self.head.tree.hexsha,
            "parent": self.head.parents[0].hexsha if self.head.parents else None,
            "trailers": t,
        }
        if not intact:
            self.add(_broken("commit", f"git object {sha[:12]} does not hash to its id", [src], facts=facts))
            return
        problems = []
        if self.cid and t.get(TRAILER_CORRELATION) != self.cid:
            problems.append(f"trailer Glassbox-Correlation-Id is {t.get('Glassbox-Correlation-Id')}, not {self.cid}")
        agent = self.propose.details.get("agent_id") if self.propose else None
        if agent and t.get(TRAILER_AGENT) != agent:
            problems.append(f"trailer Glassbox-Agent is {t.get('Glassbox-Agent')}, not {agent}")
        if problems:
            self.add(_broken("commit", "; ".join(problems), [src], facts=facts))
            return
        self.add(_ok("commit", f"{sha[:12]} tree {self.head.tree.hexsha[:12]}, trailers match", [src], facts=facts))

    def _signature(self) -> None:
        if self.head is None:
            self.add(_missing("signature", "no head commit whose signature could be checked"))
            return
        if self.base_registry is None:
            self.add(_missing("signature", "no base registry to take commit-signer trust from"))
            return
        src = Source(kind=SourceKind.GIT, ref=f"commit {self.head.hexsha} gpgsig", verified=False)
        try:
            signer = verify_commit(Path(self.repo.git_dir), self.head.hexsha, self.base_registry)
        except IntegrityError as exc:
            first = exc.message.splitlines()[0]
            self.add(_broken("signature", first, [src.model_copy(update={"detail": first})], signature_verified=False))
            return
        src = src.model_copy(update={"verified": True, "detail": f"good SSH signature by {signer}"})
        agent = trailers(str(self.head.message)).get(TRAILER_AGENT)
        if agent and signer != agent:
            text = f"signed by {signer}, but the commit says it came from agent {agent}"
            self.add(_broken("signature", text, [src], signature_verified=True, signed_by=signer))
            return
        text = f"SSH signature by {signer}, trusted by trust.yaml at base"
        self.add(_ok("signature", text, [src], signature_verified=True, signed_by=signer))

    def _evidence_record(self) -> None:
        if self._evidence_failure is not None:
            self.add(self._evidence_failure)
            return
        assert self.evidence is not None and self.head is not None and self._evidence_src is not None
        record = self.evidence
        sources = [self._evidence_src]
        problems = []
        self_ok = record.verify_digest()
        if not self_ok:
            problems.append(f"content does not match its own digest {record.digest}")
        trailer = trailers(str(self.head.message)).get(TRAILER_EVIDENCE)
        if trailer != record.digest:
            problems.append(f"commit trailer Glassbox-Evidence {trailer} ≠ record {record.digest}")
        if self.propose is not None:
            sources.append(self.events.source(self.propose))
            if self.propose.details.get("evidence_digest") != record.digest:
                problems.append(f"ledger propose event names {self.propose.details.get('evidence_digest')}")
        facts = {"digest": record.digest, "trailer": trailer, "redactions": len(record.redactions)}
        if problems:
            self.add(
                _broken("evidence-record", "; ".join(problems), sources, digest=record.digest, digest_verified=False)
            )
            return
        text = "record digest = commit trailer = propose event"
        self.add(_ok("evidence-record", text, sources, digest=record.digest, digest_verified=True, facts=facts))

    def _verdict(self) -> None:
        if self.head is None or self.base_registry is None:
            self.add(_missing("verdict", "no head commit (or base registry) to find the verdict attestation for"))
            return
        verdict, src, problem = load_verdict(self.req.attestations, self.head.hexsha, self.base_registry)
        sources = [src]
        if self.check is not None:
            sources.append(self.events.source(self.check))
        if verdict is None:
            make = _missing if src.verified is None else _broken
            self.add(make("verdict", problem or "no verdict", sources, signature_verified=src.verified))
            return
        c = verdict.change
        problems = []
        if c.head_commit != self.head.hexsha:
            problems.append(f"attests head {c.head_commit[:12]}, not {self.head.hexsha[:12]}")
        if c.head_tree != self.head.tree.hexsha:
            problems.append(f"attests tree {c.head_tree[:12]}, the commit's tree is {self.head.tree.hexsha[:12]}")
        if self.evidence is not None and c.evidence_digest != self.evidence.digest:
            problems.append(f"attests evidence {c.evidence_digest}, the record is {self.evidence.digest}")
        base = self._commit(c.base_commit)
        if base is None:
            problems.append(f"attested base commit {c.base_commit[:12]} is not in the repository")
        elif policy_pack_digest(base) != c.policy_pack_digest:
            problems.append("attested policy-pack digest is not the base commit's policy-pack/")
        if self.check is None:
            self.verdict = verdict
            self.add(_missing("verdict", f"the ledger has no check event for head {self.head.hexsha[:12]}", sources))
            return
        check_src = sources[1]
        if not check_src.verified:
            problems.append(check_src.detail)
        elif self.check.details.get("result") != verdict.result.value:
            problems.append(f"ledger check event says {self.check.details.get('result')}")
        self.verdict = verdict
        facts = {
            "result": verdict.result.value,
            "verifier": verdict.verifier,
            "time_verified": verdict.model_dump(mode="json")["time_verified"],
            "policy_pack_digest": c.policy_pack_digest,
            "base_commit": c.base_commit,
        }
        signer = src.detail.removeprefix("signed by ")
        if problems:
            self.add(_broken("verdict", "; ".join(problems), sources, signature_verified=True, facts=facts))
            return
        text = f"{verdict.result.value}, attestation signed by {signer}; subject = this commit and tree"
        self.add(
            _ok(
                "verdict",
                text,
                sources,
                digest=c.policy_pack_digest,
                digest_verified=True,
                signature_verified=True,
                signed_by=signer,
                facts=facts,
            )
        )

    def _needs_verdict(self, name: str) -> Verdict | None:
        if self.verdict is None or self.links["verdict"].status is LinkStatus.BROKEN:
            self.add(_missing(name, "not established: the verdict attestation is missing or does not verify"))
            return None
        return self.verdict

    def _verdict_sources(self) -> list[Source]:
        return self.links["verdict"].sources

    def _plan(self) -> None:
        verdict = self._needs_verdict("plan")
        if verdict is None:
            return
        plan = verdict.change.plan_digest
        facts: dict[str, Any] = {"plan_digest": plan}
        problems = []
        if self.check is not None and self.check.details.get("plan_digest") != plan:
            problems.append(f"ledger check event names plan {self.check.details.get('plan_digest')}")
        recomputed = self._deploy_check("plan recomputed")
        if recomputed is not None:
            facts["recomputed_at_deploy"] = recomputed
            if not recomputed["ok"]:
                problems.append(f"deploy recomputed another plan: {recomputed['detail']}")
        if problems:
            self.add(_broken("plan", "; ".join(problems), self._verdict_sources(), digest=plan, digest_verified=False))
            return
        text = f"{plan[:19]}… attested" + (", recomputed equal at deploy" if recomputed else "")
        self.add(_ok("plan", text, self._verdict_sources(), digest=plan, digest_verified=True, facts=facts))

    def _policy(self) -> None:
        verdict = self._needs_verdict("policy")
        if verdict is None:
            return
        findings = [
            {"engine": f.engine, "rule_id": f.rule_id, "severity": f.severity.value, "status": f.status.value}
            for f in verdict.findings
        ]
        facts = {"findings": findings, "errors": verdict.errors}
        if self.check is not None and self.check.details.get("findings") != findings:
            text = "the ledger check event lists other findings than the attestation"
            self.add(_broken("policy", text, self._verdict_sources(), facts=facts))
            return
        counts: dict[str, int] = {}
        for f in findings:
            counts[f["status"]] = counts.get(f["status"], 0) + 1
        summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no findings"
        self.add(_ok("policy", f"{summary}; errors: {len(verdict.errors)}", self._verdict_sources(), facts=facts))

    def _risk(self) -> None:
        verdict = self._needs_verdict("risk")
        if verdict is None:
            return
        facts = {"risk": verdict.risk.value, "reasons": verdict.risk_reasons}
        if self.check is not None and self.check.details.get("risk") != verdict.risk.value:
            text = f"ledger check event says risk {self.check.details.get('risk')}"
            self.add(_broken("risk", text, self._verdict_sources(), facts=facts))
            return
        reasons = "; ".join(verdict.risk_reasons) or "no reasons given"
        self.add(_ok("risk", f"{verdict.risk.value}: {reasons}", self._verdict_sources(), facts=facts))

    def _approvals(self) -> None:
        head = self.head.hexsha if self.head else None
        events = [e for e in self.pr_events if e.action == "approvals" and e.subject.commit == head]
        if self.merge is not None:
            events = [e for e in events if e.seq < self.merge.seq]
        if not events:
            self.add(_missing("approvals", f"no approvals event in the ledger for PR #{self.pr} at its head"))
            return
        last = events[-1]
        src = self.events.source(last)
        d = last.details
        facts = {
            "satisfied": d.get("satisfied"),
            "required": d.get("required", []),
            "counted": d.get("counted", []),
            "discarded": d.get("discarded", []),
            "evaluations": len(events),
        }
        if not src.verified:
            self.add(_broken("approvals", src.detail, [src], signature_verified=False, facts=facts))
            return
        bg = [e for e in self.commit_events if e.action == "breakglass.use" and e.outcome is Outcome.ALLOW]
        if self.merge_sha and not d.get("satisfied") and not bg:
            text = f"merged although the last approvals evaluation (seq {last.seq}) was not satisfied"
            self.add(_broken("approvals", text, [src], signature_verified=True, facts=facts))
            return
        text = (
            f"{'satisfied' if d.get('satisfied') else 'NOT satisfied'}: {len(facts['counted'])} counted, "
            f"{len(facts['discarded'])} discarded"
        )
        self.add(_ok("approvals", text, [src], signature_verified=True, signed_by=last.actor.id, facts=facts))

    def _merge(self) -> None:
        m = self.merge
        if m is None:
            self.add(_missing("merge", f"no merge event in the ledger for PR #{self.pr}"))
            return
        src = self.events.source(m)
        facts = {
            "method": m.details.get("method"),
            "head_sha": m.details.get("head_sha"),
            "merge_sha": m.subject.commit,
        }
        if not src.verified:
            self.add(_broken("merge", src.detail, [src], signature_verified=False, facts=facts))
            return
        if m.outcome is not Outcome.ALLOW or not self.merge_sha:
            reasons = "; ".join(m.details.get("reasons") or []) or m.reason
            self.add(_missing("merge", f"not merged: {reasons}", [src], facts=facts))
            return
        sources = [src]
        commit = self._commit(self.merge_sha)
        if commit is None:
            self.add(_broken("merge", f"merge commit {self.merge_sha[:12]} is not in the repository", sources))
            return
        sources.append(Source(kind=SourceKind.GIT, ref=f"commit {commit.hexsha}", verified=True))
        problems = []
        if self.head is not None and m.details.get("head_sha") != self.head.hexsha:
            problems.append(f"merged head {str(m.details.get('head_sha'))[:12]}, not {self.head.hexsha[:12]}")
        try:
            tip = self.repo.commit(f"refs/heads/{self.req.branch}")
            on_branch = self.repo.is_ancestor(commit, tip)
        except (git.BadName, ValueError, git.exc.GitCommandError):
            on_branch = False
        facts["on_branch"] = on_branch
        if not on_branch:
            problems.append(f"{commit.hexsha[:12]} is not on {self.req.branch} (history rewritten?)")
        if self.verdict is not None and commit.tree.hexsha != self.verdict.change.head_tree:
            problems.append(f"merged tree {commit.tree.hexsha[:12]} is not the attested tree")
        if problems:
            self.add(_broken("merge", "; ".join(problems), sources, signature_verified=True, facts=facts))
            return
        text = f"{m.details.get('method')} merge {commit.hexsha[:12]} by {m.actor.id}, on {self.req.branch}"
        self.add(_ok("merge", text, sources, signature_verified=True, signed_by=m.actor.id, facts=facts))

    def _deploy_event(self) -> AuditEvent | None:
        deploys = [e for e in self.commit_events if e.action == "deploy"]
        allowed = [e for e in deploys if e.outcome is Outcome.ALLOW]
        return (allowed or deploys)[-1] if deploys else None

    def _deploy_check(self, name: str) -> dict[str, Any] | None:
        event = self._deploy_event()
        if event is None or self.events.problem(event) is not None:
            return None
        return next((c for c in event.details.get("checks", []) if c.get("name") == name), None)

    def _deploy(self) -> None:
        event = self._deploy_event()
        if event is None:
            what = f"merge {self.merge_sha[:12]}" if self.merge_sha else "this change (never merged)"
            self.add(_missing("deploy", f"no deploy event in the ledger for {what}"))
            self.add(_missing("verification", "no deploy, so no post-apply verification"))
            return
        src = self.events.source(event)
        deployments: list[dict[str, Any]] = list(event.details.get("deployments") or [])
        failed_checks: list[dict[str, Any]] = [c for c in event.details.get("checks", []) if not c.get("ok")]
        credential_ids = [str(d.get("credential_id")) for d in deployments]
        simulated = [bool(d.get("simulated")) for d in deployments]
        facts: dict[str, Any] = {
            "identity": event.actor.id,
            "stacks": event.subject.stack,
            "result": event.outcome.value,
            "deployments": deployments,
            "credential_ids": credential_ids,
            "simulated": simulated,
            "failed_checks": failed_checks,
        }
        if not src.verified:
            self.add(_broken("deploy", src.detail, [src], signature_verified=False, facts=facts))
            self._verification(None)
            return
        problems = []
        deployer = self.base_registry.service_identity("deployer") if self.base_registry else None
        if deployer is not None and event.actor.id != deployer:
            problems.append(f"deployed by {event.actor.id}, not the deploy identity {deployer}")
        if self.propose is not None and event.actor.id == self.propose.details.get("agent_id"):
            problems.append("the agent deployed its own change (I1)")
        if event.outcome is not Outcome.ALLOW:
            problems.append(f"deploy {event.outcome.value}: {event.reason}")
        if failed_checks:
            problems.append("gate checks failed: " + ", ".join(str(c.get("name")) for c in failed_checks))
        if problems:
            self.add(_broken("deploy", "; ".join(problems), [src], signature_verified=True, facts=facts))
        else:
            creds = ", ".join(credential_ids)
            sim = " (simulated)" if any(simulated) else ""
            text = f"{event.subject.stack} by {event.actor.id} with credential {creds}: succeeded{sim}"
            self.add(_ok("deploy", text, [src], signature_verified=True, signed_by=event.actor.id, facts=facts))
        self._verification(event)

    def _verification(self, event: AuditEvent | None) -> None:
        if event is None or self.links["deploy"].status is not LinkStatus.OK:
            self.add(_missing("verification", "not established: the deploy link is not ok"))
            return
        if self.req.deploy_state is None or self.merge_sha is None:
            self.add(_missing("verification", "no --deploy-state given to read the deploy record from"))
            return
        path = self.req.deploy_state / "deployments" / f"{self.merge_sha}.json"
        try:
            report = DeployReport.model_validate_json(path.read_bytes())
        except FileNotFoundError:
            self.add(_missing("verification", f"no deploy record at {path}"))
            return
        except ValidationError as exc:
            src = Source(kind=SourceKind.DEPLOY_RECORD, ref=str(path), verified=False)
            self.add(_broken("verification", f"deploy record is not valid: {exc.errors()[0]['msg']}", [src]))
            return
        logged = {d.get("deployment_id"): d for d in event.details.get("deployments") or []}
        problems = []
        for d in report.deployments:
            seen = logged.get(d.deployment_id)
            if seen is None:
                problems.append(f"deployment {d.deployment_id} is not in the ledger's deploy event")
            elif (seen.get("state_digest"), seen.get("credential_id"), seen.get("result")) != (
                d.state_digest,
                d.credential_id,
                d.result,
            ):
                problems.append(f"deployment {d.deployment_id} differs from the ledger's deploy event")
            if not d.verification.ok:
                problems.append(f"{d.stack}: post-apply verification failed: {'; '.join(d.verification.mismatches)}")
        if len(report.deployments) != len(logged):
            problems.append("the deploy record and the ledger list a different number of deployments")
        facts = {
            "verifications": [{"stack": d.stack, **d.verification.model_dump(mode="json")} for d in report.deployments]
        }
        src = Source(kind=SourceKind.DEPLOY_RECORD, ref=str(path), verified=not problems)
        if problems:
            self.add(_broken("verification", "; ".join(problems), [src], digest_verified=False, facts=facts))
            return
        checked = sum(d.verification.checked for d in report.deployments)
        text = f"{checked} resource(s) compared after apply, no mismatch; record agrees with ledger seq {event.seq}"
        self.add(_ok("verification", text, [src, self.events.source(event)], digest_verified=True, facts=facts))

    def ledger_chain(self) -> Link:
        """The whole live ledger: sequence, chain, digests and signatures, from the archive anchor on."""
        start_seq, start_prev = self.events.anchor
        report = self.ledger.verify(self.events.trusted, start_seq=start_seq, start_prev=start_prev)
        src = Source(kind=SourceKind.LEDGER, ref=f"seq {start_seq}-{start_seq + report.events - 1}", verified=report.ok)
        if report.ok:
            return _ok("ledger-chain", f"{report.events} event(s) verify from seq {start_seq}", [src])
        p = report.problems[0]
        text = f"{len(report.problems)} problem(s); first: line {p.line} seq {p.seq}: {p.kind}: {p.message}"
        return _broken("ledger-chain", text, [src])


def reconstruct(req: ShowRequest) -> Reconstruction:
    """Rebuild the chain for one correlation id, PR number or commit SHA."""
    b = _Builder(req)
    kind = b.resolve()
    b.build()
    links = [b.links[name] for name in LINK_ORDER]
    if req.full_ledger:
        links.append(b.ledger_chain())
    problems = [
        f"{link.name}: {link.status.value}: {link.explanation}" for link in links if link.status is not LinkStatus.OK
    ]
    agent = b.propose.details.get("agent_id") if b.propose else None
    return Reconstruction(
        query=req.query,
        query_kind=kind,
        correlation_id=b.cid,
        repo=b.repo_name,
        pr=b.pr,
        agent_id=agent,
        base_commit=b.head.parents[0].hexsha if b.head is not None and b.head.parents else None,
        head_commit=b.head.hexsha if b.head else None,
        merge_commit=b.merge_sha,
        links=links,
        ok=not problems,
        problems=problems,
    )
