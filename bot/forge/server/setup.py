"""``glassbox forge init``: a fresh embedded forge from a working tree and a registry.

It creates one identity (with a token and an ed25519 key) per registry agent, person and service identity,
plus the forge admin; writes ``tokens.json`` (identity → token, mode 0600) and ``keys/`` beside the state;
imports the working tree as the repository's first commit on the default branch (signed by the forge's own
key), with a ``registry/trust.yaml`` that trusts exactly the generated keys; registers each identity's key as
its SSH signing key; creates the registry's teams; and protects the default branch. Tokens and private keys
are written to files only, never printed.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import yaml
from pydantic import Field

from bot.errors import UserError
from bot.forge.model import commit_payload
from bot.forge.server.app import repo_path
from bot.forge.server.gitrepo import BareRepo
from bot.forge.server.signing import WEB_FLOW, check_identity_name, sign
from bot.forge.server.store import Store
from bot.records import Record
from bot.registry import KeyRole, Registry, load_registry
from bot.trust.conventions import APPROVALS_CONTEXT, CHECK_CONTEXT, TRAIL_BRANCH
from bot.trust.keys import generate_key

ADMIN = "forge-admin"
TOKENS_FILE = "tokens.json"
DEFAULT_CONTEXTS: tuple[str, ...] = (CHECK_CONTEXT, APPROVALS_CONTEXT)
EXCLUDED = {
    ".git",
    ".venv",
    ".tools",
    ".glassbox-demo",
    "__pycache__",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    ".hypothesis",
    "node_modules",
    ".tox",
    ".nox",
}

ROLES: dict[str, list[KeyRole]] = {
    "agent": [KeyRole.COMMIT_SIGNER, KeyRole.LEDGER_SIGNER],
    "human": [KeyRole.COMMIT_SIGNER, KeyRole.LEDGER_SIGNER],
    "ci": [KeyRole.VERDICT_SIGNER, KeyRole.LEDGER_SIGNER],
    "deployer": [KeyRole.DEPLOY_SIGNER, KeyRole.LEDGER_SIGNER],
    "bot": [KeyRole.COMMIT_SIGNER, KeyRole.LEDGER_SIGNER],
}


class InitResult(Record):
    data_dir: str
    repo: str
    repo_path: str
    branch: str
    head: str
    identities: dict[str, str] = Field(description="identity → kind (agent, human, ci, deployer, bot, admin)")
    tokens_file: str
    keys_dir: str
    required_contexts: list[str]
    required_approvals: int


def load_tokens(data_dir: Path) -> dict[str, str]:
    """identity → token, from ``DIR/tokens.json``."""
    path = data_dir / TOKENS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: no tokens file; run `glassbox forge init --data {data_dir} ...` first") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected an object of identity → token")
    return {str(k): str(v) for k, v in data.items()}


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(path, 0o600)


def _identities(reg: Registry) -> list[tuple[str, str, str, str]]:
    """(login, kind, name, email) for every registry identity."""
    out = [(a.id, "agent", a.display_name, f"{a.id}@agents.glassbox.local") for a in reg.agents.agents]
    out += [(p.id, "human", p.name, p.email) for p in reg.teams.people]
    out += [(s.id, s.kind, s.id, f"{s.id}@services.glassbox.local") for s in reg.teams.service_identities]
    return out


def trail_protection(reg: Registry) -> dict[str, object]:
    """The audit trail's branch, in GitHub's protection JSON: only the service identities push, fast-forward only
    (linear), signed, never deleted, admins too. ``glassbox protect`` applies the same on GitHub."""
    return {
        "required_status_checks": None,
        "enforce_admins": True,
        "required_pull_request_reviews": None,
        "restrictions": {"users": sorted(s.id for s in reg.teams.service_identities), "teams": [], "apps": []},
        "required_linear_history": True,
        "required_signatures": True,
        "allow_force_pushes": False,
        "allow_deletions": False,
    }


def _source_files(source: Path, data_dir: Path) -> list[str]:
    """Repository-relative paths of the working tree to import (git's view when it is a repository)."""
    if (source / ".git").exists():
        out = subprocess.run(
            ["git", "-C", str(source), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            capture_output=True,
            check=True,
        ).stdout.decode("utf-8")
        candidates = [p for p in out.split("\0") if p]
    else:
        candidates = [str(p.relative_to(source)) for p in source.rglob("*") if p.is_file() or p.is_symlink()]
    data_abs = data_dir.resolve()
    files = []
    for rel in sorted(set(candidates)):
        parts = Path(rel).parts
        if any(part in EXCLUDED for part in parts):
            continue
        full = source / rel
        if not (full.is_file() or full.is_symlink()):
            continue
        if full.resolve() == data_abs or data_abs in full.resolve().parents:
            continue
        files.append(rel)
    return files


def _trust_yaml(entries: list[dict[str, object]]) -> str:
    header = (
        "# Public keys per identity and the roles each key may sign for.\n"
        "# Written by `glassbox forge init` for the embedded forge's identities.\n"
    )
    return header + yaml.safe_dump({"schema_version": 1, "keys": entries}, sort_keys=False, width=200)


def _trust_path(registry_root: Path, source: Path) -> str:
    """Where trust.yaml goes in the imported tree: beside the registry when it is inside ``--from``."""
    root, src = registry_root.resolve(), source.resolve()
    if root.is_relative_to(src):
        return (root.relative_to(src) / "trust.yaml").as_posix()
    return "registry/trust.yaml"


def init_forge(
    data_dir: Path,
    repo: str,
    source: Path,
    registry_dir: Path | None = None,
    *,
    branch: str = "main",
    required_contexts: tuple[str, ...] = DEFAULT_CONTEXTS,
    required_approvals: int = 1,
) -> InitResult:
    owner, sep, name = repo.partition("/")
    if not sep or not owner or not name or "/" in name:
        raise UserError(f"--repo {repo!r}: give it as ORG/NAME, e.g. acme/infra")
    if not source.is_dir():
        raise UserError(f"--from {source}: not a directory")
    if (data_dir / "forge.sqlite3").exists():
        raise UserError(f"--data {data_dir}: a forge already lives here; pick an empty directory")
    registry_root = registry_dir if registry_dir is not None else source / "registry"
    if not registry_root.is_absolute() and not registry_root.exists():
        registry_root = source / registry_root
    reg = load_registry(registry_root)
    data_dir.mkdir(parents=True, exist_ok=True)

    identities = _identities(reg)
    for login, *_ in identities:
        check_identity_name(login)
    tokens = {login: "gbt_" + secrets.token_urlsafe(30) for login, *_ in identities}
    tokens[ADMIN] = "gbt_" + secrets.token_urlsafe(30)
    keys_dir = data_dir / "keys"
    trust: list[dict[str, object]] = []
    public: dict[str, str] = {}
    for login, kind, _name, _email in identities:
        signer = generate_key(keys_dir, login, overwrite=True)
        public[login] = " ".join(signer.public_line.split()[:2])
        trust.append(
            {
                "identity": login,
                "keyid": signer.keyid,
                "public_key": signer.public_line,
                "roles": [r.value for r in ROLES[kind]],
            }
        )

    # the initial commit: the working tree, with a trust.yaml matching the keys just made
    path = repo_path(data_dir, repo)
    git = BareRepo.init(path, branch)
    files = _source_files(source, data_dir)
    with tempfile.TemporaryDirectory(prefix="gbx-init-") as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index"), "GIT_WORK_TREE": str(source)}
        git.git("read-tree", "--empty", env=env)
        if files:
            git.git("update-index", "--add", "-z", "--stdin", input=("\0".join(files) + "\0").encode(), env=env)
        trust_rel = _trust_path(registry_root, source)
        blob = git.write_blobs([_trust_yaml(trust).encode("utf-8")])[0]
        git.git("update-index", "--index-info", input=f"100644 {blob}\t{trust_rel}\n".encode(), env=env)
        tree = git.git("write-tree", env=env).decode("ascii").strip()
    when = datetime.now(UTC).replace(microsecond=0)
    who = WEB_FLOW.at(when)
    message = f"Initial import of {repo}"
    signature = sign(data_dir, commit_payload(tree, [], who, who, message))
    head = git.write_commit(commit_payload(tree, [], who, who, message, signature))
    git.update_ref(f"refs/heads/{branch}", head)

    store = Store(data_dir / "forge.sqlite3")
    try:
        with store.lock:
            for login, kind, display, email in identities:
                user = store.add_user(login, kind, tokens[login], display, email)
                store.add_signing_key(user.id, f"{login} (forge init)", public[login])
            admin = store.add_user(ADMIN, "admin", tokens[ADMIN], "Forge admin", "forge-admin@glassbox.local")
            store.add_org(owner)
            for team in reg.teams.teams:
                store.add_team(owner, team.id, team.description, list(team.members))
            repo_id = store.add_repo(owner, name, branch)
            store.record_ref_update(repo_id, f"refs/heads/{branch}", head, admin.id)
            store.set_protection(
                repo_id,
                branch,
                {
                    "required_status_checks": {"strict": False, "contexts": list(required_contexts)},
                    "enforce_admins": False,
                    "required_pull_request_reviews": {
                        "required_approving_review_count": required_approvals,
                        "dismiss_stale_reviews": False,
                    },
                },
            )
            store.set_protection(repo_id, TRAIL_BRANCH, trail_protection(reg))
    finally:
        store.close()
    _write_private(data_dir / TOKENS_FILE, json.dumps(tokens, indent=2, sort_keys=True) + "\n")
    (data_dir / "forge.json").write_text(
        json.dumps({"repos": [repo], "default_branch": branch, "created_at": when.isoformat()}, indent=2) + "\n",
        encoding="utf-8",
    )
    kinds = {login: kind for login, kind, *_ in identities} | {ADMIN: "admin"}
    return InitResult(
        data_dir=str(data_dir),
        repo=repo,
        repo_path=str(path),
        branch=branch,
        head=head,
        identities=kinds,
        tokens_file=str(data_dir / TOKENS_FILE),
        keys_dir=str(keys_dir),
        required_contexts=list(required_contexts),
        required_approvals=required_approvals,
    )
