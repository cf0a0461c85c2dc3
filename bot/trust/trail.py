"""The audit trail in the governed repository itself: a branch only glassbox's service identities advance.

The branch ``TRAIL_BRANCH`` (outside the agent namespace; protected: fast-forward only, no deletion, pushes
restricted to the service identities) holds, in an append-only tree:

- ``ledger/<seq // 10000>/<seq>.json``: each ledger event, the exact canonical line the ledger file holds;
- ``attestations/<head sha>/<sha256 of the bytes>.dsse.json``: every verdict attestation filed for a head;
- ``deployments/<commit sha>/<sha256 of the bytes>.json``: every deploy record;
- ``breakglass/<grant id>.dsse.json``: a break-glass grant, the person's signed envelope exactly as presented;
- ``breakglass/<grant id>.used.json``: the grant's one use, a claim signed by the deploy identity (naming the commit,
  the stack and the grant's digest), appended *before* it applies; ``breakglass/<grant id>.review.json``: the
  post-incident review that use opened (all three in one commit: ``bot.deploy.breakglass`` explains the lock);
  ``breakglass/<grant id>.closed.dsse.json``: the closure of that review, signed by the reviewer who closed it;
- ``high-water.json``: the signed high-water mark of the last event (the one file a commit may rewrite).

Every trail commit is SSH-signed (namespace ``git``) by the service identity that appended it, with its
ledger-signer key; it has one parent and only adds files (and rewrites ``high-water.json``). A fresh clone of the
repository is therefore enough to verify every decision: :func:`materialise` rebuilds the ledger file, the
attestation store and the deploy state from the trail, and :func:`trail_problems` checks the trail's own history
(signatures, linearity, append-only). The local ledger file is a cache of the trail; writing happens through
the forge (``bot.forge.trail``), with optimistic concurrency on the branch head.

What the trail trusts: nothing it holds decides on its own. Events, attestations and high-water marks carry
their own signatures and are verified by the ledger and attestation readers against the registry at the trust
anchor; the commit signatures only add who appended what, and the append-only rule makes a rewrite visible.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from bot.errors import IntegrityError, UserError
from bot.registry import KeyRole, Registry
from bot.trust.conventions import TRAIL_BRANCH
from bot.trust.gitsign import allowed_signers, verify_commit_against

LEDGER_DIR = "ledger"
ATTESTATIONS_DIR = "attestations"
DEPLOYMENTS_DIR = "deployments"
BREAKGLASS_DIR = "breakglass"
HIGH_WATER_FILE = "high-water.json"
LEDGER_FILE = "ledger.jsonl"  # the name the materialised ledger (and its high-water mark) carries
_SHARD = 10_000


def event_path(seq: int) -> str:
    return f"{LEDGER_DIR}/{seq // _SHARD:04d}/{seq:012d}.json"


def attestation_entry(head_sha: str, data: bytes) -> str:
    return f"{ATTESTATIONS_DIR}/{head_sha}/{hashlib.sha256(data).hexdigest()}.dsse.json"


def deployment_entry(commit_sha: str, data: bytes) -> str:
    return f"{DEPLOYMENTS_DIR}/{commit_sha}/{hashlib.sha256(data).hexdigest()}.json"


_GRANT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")


def grant_name(grant_id: str) -> str:
    """``grant_id`` if it can name trail files (letters, digits, ``-``, ``_``); anything else is bad input."""
    if not _GRANT_ID.match(grant_id):
        raise IntegrityError(f"grant id {grant_id[:40]!r} cannot name a trail object")
    return grant_id


def grant_entry(grant_id: str) -> str:
    return f"{BREAKGLASS_DIR}/{grant_name(grant_id)}.dsse.json"


def claim_entry(grant_id: str) -> str:
    return f"{BREAKGLASS_DIR}/{grant_name(grant_id)}.used.json"


def review_entry(grant_id: str) -> str:
    return f"{BREAKGLASS_DIR}/{grant_name(grant_id)}.review.json"


def closure_entry(grant_id: str) -> str:
    return f"{BREAKGLASS_DIR}/{grant_name(grant_id)}.closed.dsse.json"


def breakglass_objects(repo: Path, commit: str) -> dict[str, bytes]:
    """path → bytes of every file under ``breakglass/`` in the trail's tree at ``commit`` (unverified)."""
    files = {p: sha for p, sha in _tree_files(repo, commit).items() if p.startswith(f"{BREAKGLASS_DIR}/")}
    blobs = _blobs(repo, list(files.values()))
    return {path: blobs[sha] for path, sha in sorted(files.items())}


def trail_ref(repo: Path, name: str | None = None) -> str | None:
    """The commit the trail branch points at in ``repo`` (a clone: its remote-tracking branch counts), or None."""
    candidates = [name] if name else [f"refs/heads/{TRAIL_BRANCH}", f"refs/remotes/origin/{TRAIL_BRANCH}"]
    for ref in candidates:
        proc = _git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
        if proc.returncode == 0:
            return proc.stdout.decode().strip()
    return None


@dataclass
class TrailView:
    """A trail materialised into a directory, in the layouts the ledger, attestation and deploy readers use."""

    commit: str
    root: Path
    events: int = 0
    attestations: int = 0
    deployments: int = 0
    breakglass: int = 0  # files under breakglass/: grants, their use claims, post-incident reviews and closures
    ledger_name: str = LEDGER_FILE  # the name the high-water mark was signed for

    @property
    def ledger(self) -> Path:
        return self.root / self.ledger_name

    @property
    def attestation_store(self) -> Path:
        return self.root / ATTESTATIONS_DIR

    @property
    def deploy_state(self) -> Path:
        return self.root / "deploy-state"

    @property
    def high_water(self) -> Path:
        return self.root / f"{self.ledger_name}.high-water.json"

    @property
    def breakglass_dir(self) -> Path:
        return self.root / BREAKGLASS_DIR


def materialise(repo: Path, commit: str, into: Path) -> TrailView:
    """Write the trail at ``commit`` into ``into``: the ledger file (events in sequence order), the attestation
    store and the deploy state (for each head or commit, the entry the trail added last), the break-glass grants,
    claims and reviews (``breakglass/``, as the trail holds them), and the high-water mark.
    """
    into.mkdir(parents=True, exist_ok=True)
    view = TrailView(commit=commit, root=into)
    files = _tree_files(repo, commit)
    mark = _blobs(repo, [files[HIGH_WATER_FILE]])[files[HIGH_WATER_FILE]] if HIGH_WATER_FILE in files else None
    if mark is not None:
        name = str(high_water_of(mark).get("ledger", ""))
        if re.fullmatch(r"[A-Za-z0-9._-]{1,100}\.jsonl", name):
            view.ledger_name = name
    events = sorted(p for p in files if p.startswith(f"{LEDGER_DIR}/"))
    blobs = _blobs(repo, [files[p] for p in events])
    with view.ledger.open("wb") as out:
        for path in events:
            out.write(blobs[files[path]])
    view.events = len(events)
    view.attestation_store.mkdir(exist_ok=True)
    (view.deploy_state / DEPLOYMENTS_DIR).mkdir(parents=True, exist_ok=True)
    latest = _latest_additions(repo, commit)
    picked = {k: v for k, v in latest.items() if k[0] in (ATTESTATIONS_DIR, DEPLOYMENTS_DIR)}
    contents = _blobs(repo, [files[p] for p in picked.values() if p in files])
    for (kind, key), path in sorted(picked.items()):
        if path not in files:
            continue
        data = contents[files[path]]
        if kind == ATTESTATIONS_DIR:
            (view.attestation_store / f"{key}.dsse.json").write_bytes(data)
            view.attestations += 1
        else:
            (view.deploy_state / DEPLOYMENTS_DIR / f"{key}.json").write_bytes(data)
            view.deployments += 1
    objects = [p for p in files if re.fullmatch(rf"{BREAKGLASS_DIR}/[A-Za-z0-9][A-Za-z0-9_.-]{{0,150}}", p)]
    if objects:
        view.breakglass_dir.mkdir(exist_ok=True)
        found = _blobs(repo, [files[p] for p in objects])
        for path in objects:
            (view.root / path).write_bytes(found[files[path]])
            view.breakglass += 1
    if mark is not None:
        view.high_water.write_bytes(mark)
    return view


@dataclass
class TrailProblem:
    commit: str
    message: str


@dataclass
class TrailHistory:
    commits: int = 0
    appenders: dict[str, int] = field(default_factory=dict)  # identity → commits it signed
    problems: list[TrailProblem] = field(default_factory=list)


def trail_problems(repo: Path, commit: str, registry: Registry) -> TrailHistory:
    """The trail's own history: one parent per commit, each signed by a service identity's ledger-signer key, each
    adding files only (``high-water.json`` may be rewritten). Each failure is a problem naming the commit."""
    services = {s.id for s in registry.teams.service_identities}
    signers = allowed_signers(registry, role=KeyRole.LEDGER_SIGNER, identities=services)
    history = TrailHistory()
    out = _git(repo, "rev-list", "--parents", "--reverse", commit).stdout.decode().split("\n")
    for line in filter(None, out):
        sha, *parents = line.split()
        history.commits += 1
        if len(parents) > 1:
            history.problems.append(TrailProblem(sha, f"has {len(parents)} parents: the trail is linear"))
        try:
            who = verify_commit_against(repo, sha, signers, "a glassbox service identity's ledger-signer key")
            history.appenders[who] = history.appenders.get(who, 0) + 1
        except IntegrityError as exc:
            history.problems.append(TrailProblem(sha, exc.message))
        if parents:
            changes = _git(repo, "diff-tree", "-r", "--no-renames", "--name-status", "-z", parents[0], sha)
            fields = changes.stdout.decode("utf-8", "replace").split("\0")
            for status, path in zip(fields[0::2], fields[1::2], strict=False):
                if status != "A" and not (status == "M" and path == HIGH_WATER_FILE):
                    verb = {"M": "rewrites", "D": "deletes"}.get(status, f"changes ({status})")
                    history.problems.append(TrailProblem(sha, f"{verb} {path}: the trail only adds"))
    return history


def high_water_of(data: bytes) -> dict[str, object]:
    """The unverified payload of a high-water envelope (seq, digest): for ordering only, verified elsewhere."""
    import base64

    try:
        envelope = json.loads(data)
        payload = json.loads(base64.b64decode(envelope["payload"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(f"{HIGH_WATER_FILE} is not a high-water envelope: {exc}") from None
    if not isinstance(payload, dict):
        raise IntegrityError(f"{HIGH_WATER_FILE} is not a high-water envelope")
    return payload


# ------------------------------------------------------------------------------------------------ git plumbing


def _git(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=False, timeout=120)
    if check and proc.returncode != 0:
        raise UserError(f"git {args[0]} in {repo} failed: {proc.stderr.decode('utf-8', 'replace').strip()[:300]}")
    return proc


def _tree_files(repo: Path, commit: str) -> dict[str, str]:
    """path → blob id of every file in the trail's tree at ``commit``."""
    out = _git(repo, "ls-tree", "-r", "-z", "--full-tree", commit).stdout.decode("utf-8", "replace")
    files: dict[str, str] = {}
    for entry in filter(None, out.split("\0")):
        meta, path = entry.split("\t", 1)
        _mode, kind, sha = meta.split()
        if kind == "blob":
            files[path] = sha
    return files


def _blobs(repo: Path, shas: list[str]) -> dict[str, bytes]:
    """The contents of ``shas`` in one ``git cat-file --batch``."""
    wanted = list(dict.fromkeys(shas))
    if not wanted:
        return {}
    proc = subprocess.run(
        ["git", "-C", str(repo), "cat-file", "--batch"],
        input=("\n".join(wanted) + "\n").encode(),
        capture_output=True,
        check=False,
        timeout=300,
    )
    if proc.returncode != 0:
        raise UserError(f"git cat-file in {repo} failed: {proc.stderr.decode('utf-8', 'replace').strip()[:300]}")
    data, out, pos = proc.stdout, {}, 0
    for sha in wanted:
        end = data.index(b"\n", pos)
        header = data[pos:end].split()
        if len(header) != 3:
            raise IntegrityError(f"the trail names object {sha} that the repository does not have")
        size = int(header[2])
        out[sha] = data[end + 1 : end + 1 + size]
        pos = end + 1 + size + 1
    return out


def _latest_additions(repo: Path, commit: str) -> dict[tuple[str, str], str]:
    """(kind, head or commit) → the attestation or deploy record path the trail added last for it."""
    out = _git(
        repo,
        "log",
        "--reverse",
        "--first-parent",
        "--diff-filter=A",
        "--name-only",
        "--format=",
        "-z",
        commit,
        "--",
        ATTESTATIONS_DIR,
        DEPLOYMENTS_DIR,
    ).stdout.decode("utf-8", "replace")
    latest: dict[tuple[str, str], str] = {}
    for path in filter(None, (p.strip("\n") for p in out.split("\0"))):
        parts = path.split("/")
        if len(parts) == 3:
            latest[(parts[0], parts[1])] = path
    return latest
