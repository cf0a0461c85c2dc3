"""The embedded forge's state in SQLite: users and token digests, teams, repositories, pull requests,
labels, reviews and review requests, comments, commit statuses, check suites, runs and annotations, SSH
signing keys, branch protection and who moved each branch (``ref_updates``, for ``require_last_push_approval``).

Tokens are stored only as SHA-256 digests; the clear tokens live in ``tokens.json`` (mode 0600) for the
identities' clients. One connection serves the whole server; callers hold :attr:`Store.lock` around
every request, which also makes each request's read-check-write sequence atomic.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
  id INTEGER PRIMARY KEY, login TEXT UNIQUE NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL DEFAULT '',
  email TEXT NOT NULL DEFAULT '', token_sha256 TEXT UNIQUE, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS orgs (id INTEGER PRIMARY KEY, login TEXT UNIQUE NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS teams (
  id INTEGER PRIMARY KEY, org TEXT NOT NULL, slug TEXT NOT NULL, name TEXT NOT NULL,
  description TEXT NOT NULL DEFAULT '', UNIQUE(org, slug));
CREATE TABLE IF NOT EXISTS team_members (team_id INTEGER NOT NULL, user_id INTEGER NOT NULL,
  PRIMARY KEY(team_id, user_id));
CREATE TABLE IF NOT EXISTS repos (
  id INTEGER PRIMARY KEY, owner TEXT NOT NULL, name TEXT NOT NULL, default_branch TEXT NOT NULL,
  created_at TEXT NOT NULL, pushed_at TEXT NOT NULL, UNIQUE(owner, name));
CREATE TABLE IF NOT EXISTS pulls (
  id INTEGER PRIMARY KEY, repo_id INTEGER NOT NULL, number INTEGER NOT NULL, title TEXT NOT NULL,
  body TEXT NOT NULL DEFAULT '', state TEXT NOT NULL, draft INTEGER NOT NULL DEFAULT 0,
  head_ref TEXT NOT NULL, head_sha TEXT NOT NULL, base_ref TEXT NOT NULL, base_sha TEXT NOT NULL,
  user_id INTEGER NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL, closed_at TEXT,
  merged_at TEXT, merge_commit_sha TEXT, merged_by INTEGER, UNIQUE(repo_id, number));
CREATE TABLE IF NOT EXISTS labels (
  id INTEGER PRIMARY KEY, repo_id INTEGER NOT NULL, name TEXT NOT NULL, color TEXT NOT NULL DEFAULT 'ededed',
  description TEXT, UNIQUE(repo_id, name));
CREATE TABLE IF NOT EXISTS pull_labels (pull_id INTEGER NOT NULL, label_id INTEGER NOT NULL,
  PRIMARY KEY(pull_id, label_id));
CREATE TABLE IF NOT EXISTS reviews (
  id INTEGER PRIMARY KEY, pull_id INTEGER NOT NULL, user_id INTEGER NOT NULL, state TEXT NOT NULL,
  body TEXT NOT NULL DEFAULT '', commit_id TEXT NOT NULL, submitted_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS comments (
  id INTEGER PRIMARY KEY, pull_id INTEGER NOT NULL, user_id INTEGER NOT NULL, body TEXT NOT NULL,
  created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS statuses (
  id INTEGER PRIMARY KEY, repo_id INTEGER NOT NULL, sha TEXT NOT NULL, context TEXT NOT NULL,
  state TEXT NOT NULL, description TEXT, target_url TEXT, creator_id INTEGER NOT NULL,
  created_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS statuses_sha ON statuses(repo_id, sha);
CREATE TABLE IF NOT EXISTS protections (
  repo_id INTEGER NOT NULL, branch TEXT NOT NULL, config TEXT NOT NULL, PRIMARY KEY(repo_id, branch));
CREATE TABLE IF NOT EXISTS ref_updates (
  id INTEGER PRIMARY KEY, repo_id INTEGER NOT NULL, ref TEXT NOT NULL, sha TEXT NOT NULL,
  user_id INTEGER NOT NULL, created_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS ref_updates_ref ON ref_updates(repo_id, ref, sha);
CREATE TABLE IF NOT EXISTS issue_events (
  id INTEGER PRIMARY KEY, pull_id INTEGER NOT NULL, event TEXT NOT NULL, user_id INTEGER NOT NULL,
  commit_id TEXT, created_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS issue_events_pull ON issue_events(pull_id);
CREATE TABLE IF NOT EXISTS review_requests (
  id INTEGER PRIMARY KEY, pull_id INTEGER NOT NULL, user_id INTEGER, team_id INTEGER, created_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS review_requests_pull ON review_requests(pull_id);
CREATE TABLE IF NOT EXISTS check_suites (
  id INTEGER PRIMARY KEY, repo_id INTEGER NOT NULL, head_sha TEXT NOT NULL, creator_id INTEGER NOT NULL,
  created_at TEXT NOT NULL, UNIQUE(repo_id, head_sha, creator_id));
CREATE TABLE IF NOT EXISTS check_runs (
  id INTEGER PRIMARY KEY, repo_id INTEGER NOT NULL, suite_id INTEGER NOT NULL, head_sha TEXT NOT NULL,
  name TEXT NOT NULL, status TEXT NOT NULL, conclusion TEXT, details_url TEXT, external_id TEXT,
  started_at TEXT, completed_at TEXT, title TEXT, summary TEXT, text TEXT, creator_id INTEGER NOT NULL,
  created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS check_runs_sha ON check_runs(repo_id, head_sha);
CREATE TABLE IF NOT EXISTS check_annotations (
  id INTEGER PRIMARY KEY, check_run_id INTEGER NOT NULL, path TEXT NOT NULL, start_line INTEGER NOT NULL,
  end_line INTEGER NOT NULL, start_column INTEGER, end_column INTEGER, level TEXT NOT NULL, message TEXT NOT NULL,
  title TEXT, raw_details TEXT);
CREATE INDEX IF NOT EXISTS check_annotations_run ON check_annotations(check_run_id);
CREATE TABLE IF NOT EXISTS signing_keys (
  id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL, title TEXT NOT NULL, key TEXT UNIQUE NOT NULL,
  created_at TEXT NOT NULL);
"""


def iso(when: datetime) -> str:
    """A timestamp as the forge stores and answers it: UTC, seconds, ``Z``."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_iso() -> str:
    return iso(datetime.now(UTC).replace(microsecond=0))


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


APP_KINDS = frozenset({"ci", "bot", "deployer"})
"""Service identities: on GitHub they are GitHub Apps, so what they create carries an ``app``."""


@dataclass(frozen=True)
class User:
    id: int
    login: str
    kind: str  # agent | human | ci | deployer | bot | admin
    name: str
    email: str


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.RLock()
        self.db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def q(self, sql: str, *args: Any) -> list[sqlite3.Row]:
        return list(self.db.execute(sql, args))

    def one(self, sql: str, *args: Any) -> sqlite3.Row | None:
        rows = self.q(sql, *args)
        return rows[0] if rows else None

    def insert(self, sql: str, *args: Any) -> int:
        cur = self.db.execute(sql, args)
        return int(cur.lastrowid or 0)

    # ----------------------------------------------------------------------------------------------
    # users and teams

    def add_user(self, login: str, kind: str, token: str, name: str = "", email: str = "") -> User:
        self.insert(
            "INSERT INTO users(login, kind, name, email, token_sha256, created_at) VALUES (?,?,?,?,?,?) "
            "ON CONFLICT(login) DO UPDATE SET kind=excluded.kind, name=excluded.name, email=excluded.email, "
            "token_sha256=excluded.token_sha256",
            login,
            kind,
            name or login,
            email or f"{login}@users.noreply.glassbox.local",
            token_digest(token),
            now_iso(),
        )
        user = self.user_by_login(login)
        assert user is not None
        return user

    @staticmethod
    def _user(row: sqlite3.Row | None) -> User | None:
        if row is None:
            return None
        return User(row["id"], row["login"], row["kind"], row["name"], row["email"])

    def user_by_token(self, token: str) -> User | None:
        return self._user(self.one("SELECT * FROM users WHERE token_sha256 = ?", token_digest(token)))

    def user_by_login(self, login: str) -> User | None:
        return self._user(self.one("SELECT * FROM users WHERE login = ?", login))

    def user_by_id(self, user_id: int) -> User | None:
        return self._user(self.one("SELECT * FROM users WHERE id = ?", user_id))

    def created_at(self, user_id: int) -> str:
        row = self.one("SELECT created_at FROM users WHERE id = ?", user_id)
        return str(row["created_at"]) if row else now_iso()

    def user_by_email(self, email: str) -> User | None:
        """The account whose email is ``email`` (case-insensitive), as GitHub maps a commit's git identity."""
        if not email.strip():
            return None
        return self._user(self.one("SELECT * FROM users WHERE lower(email) = lower(?) ORDER BY id LIMIT 1", email))

    def add_signing_key(self, user_id: int, title: str, key: str) -> int:
        """Register ``key`` (``type base64``) as an SSH signing key of ``user_id``."""
        return self.insert(
            "INSERT INTO signing_keys(user_id, title, key, created_at) VALUES (?,?,?,?)", user_id, title, key, now_iso()
        )

    def signing_keys(self, user_id: int) -> list[sqlite3.Row]:
        return self.q("SELECT * FROM signing_keys WHERE user_id = ? ORDER BY id", user_id)

    def signing_keys_for_email(self, email: str) -> list[str]:
        """The signing keys of the account whose email is ``email`` (what GitHub verifies a committer against)."""
        user = self.user_by_email(email)
        return [str(r["key"]) for r in self.signing_keys(user.id)] if user is not None else []

    def add_org(self, login: str) -> None:
        self.insert("INSERT OR IGNORE INTO orgs(login, created_at) VALUES (?, ?)", login, now_iso())

    def org_exists(self, login: str) -> bool:
        return self.one("SELECT 1 FROM orgs WHERE login = ?", login) is not None

    def add_team(self, org: str, slug: str, description: str, members: list[str]) -> int:
        self.insert(
            "INSERT INTO teams(org, slug, name, description) VALUES (?,?,?,?) "
            "ON CONFLICT(org, slug) DO UPDATE SET description=excluded.description",
            org,
            slug,
            slug,
            description,
        )
        row = self.one("SELECT id FROM teams WHERE org = ? AND slug = ?", org, slug)
        assert row is not None
        team_id = int(row["id"])
        self.db.execute("DELETE FROM team_members WHERE team_id = ?", (team_id,))
        for login in members:
            user = self.user_by_login(login)
            if user is not None:
                self.insert("INSERT OR IGNORE INTO team_members VALUES (?, ?)", team_id, user.id)
        return team_id

    def team(self, org: str, slug: str) -> sqlite3.Row | None:
        return self.one("SELECT * FROM teams WHERE org = ? AND slug = ?", org, slug)

    def team_members(self, team_id: int) -> list[User]:
        rows = self.q(
            "SELECT u.* FROM users u JOIN team_members m ON m.user_id = u.id WHERE m.team_id = ? ORDER BY u.login",
            team_id,
        )
        return [u for u in (self._user(r) for r in rows) if u is not None]

    # ----------------------------------------------------------------------------------------------
    # repositories and protection

    def add_repo(self, owner: str, name: str, default_branch: str) -> int:
        stamp = now_iso()
        return self.insert(
            "INSERT INTO repos(owner, name, default_branch, created_at, pushed_at) VALUES (?,?,?,?,?)",
            owner,
            name,
            default_branch,
            stamp,
            stamp,
        )

    def repo(self, owner: str, name: str) -> sqlite3.Row | None:
        return self.one("SELECT * FROM repos WHERE owner = ? AND name = ?", owner, name)

    def touch_repo(self, repo_id: int) -> None:
        self.db.execute("UPDATE repos SET pushed_at = ? WHERE id = ?", (now_iso(), repo_id))

    def protection(self, repo_id: int, branch: str) -> dict[str, Any] | None:
        row = self.one("SELECT config FROM protections WHERE repo_id = ? AND branch = ?", repo_id, branch)
        return json.loads(row["config"]) if row else None

    def set_protection(self, repo_id: int, branch: str, config: dict[str, Any] | None) -> None:
        if config is None:
            self.db.execute("DELETE FROM protections WHERE repo_id = ? AND branch = ?", (repo_id, branch))
            return
        self.db.execute(
            "INSERT INTO protections VALUES (?,?,?) ON CONFLICT(repo_id, branch) DO UPDATE SET config=excluded.config",
            (repo_id, branch, json.dumps(config, sort_keys=True)),
        )

    def record_ref_update(self, repo_id: int, ref: str, sha: str, user_id: int) -> None:
        """Who moved ``ref`` to ``sha`` (the zero SHA for a deletion): every code path that moves a branch calls it."""
        self.insert(
            "INSERT INTO ref_updates(repo_id, ref, sha, user_id, created_at) VALUES (?,?,?,?,?)",
            repo_id,
            ref,
            sha,
            user_id,
            now_iso(),
        )

    def ref_activity(self, repo_id: int, ref: str) -> list[dict[str, Any]]:
        """Every recorded move of ``ref``, oldest first: (id, before, after, user_id, created_at)."""
        rows = self.q("SELECT * FROM ref_updates WHERE repo_id = ? AND ref = ? ORDER BY id", repo_id, ref)
        out: list[dict[str, Any]] = []
        before = "0" * 40
        for r in rows:
            out.append(
                {"id": r["id"], "before": before, "after": r["sha"], "user_id": r["user_id"], "at": r["created_at"]}
            )
            before = r["sha"]
        return out

    def record_issue_event(self, pull_id: int, event: str, user_id: int, commit_id: str | None = None) -> None:
        """A lifecycle event of a pull request (closed, reopened, base_ref_changed, review_dismissed, ...)."""
        self.insert(
            "INSERT INTO issue_events(pull_id, event, user_id, commit_id, created_at) VALUES (?,?,?,?,?)",
            pull_id,
            event,
            user_id,
            commit_id,
            now_iso(),
        )

    def last_pusher(self, repo_id: int, ref: str, sha: str) -> int | None:
        """The user who most recently moved ``ref`` to ``sha``; None when no such update was recorded."""
        row = self.one(
            "SELECT user_id FROM ref_updates WHERE repo_id = ? AND ref = ? AND sha = ? ORDER BY id DESC LIMIT 1",
            repo_id,
            ref,
            sha,
        )
        return int(row["user_id"]) if row else None

    def latest_statuses(self, repo_id: int, sha: str) -> dict[str, Any]:
        """The newest status row of each context on ``sha``."""
        latest: dict[str, Any] = {}
        for row in self.q("SELECT * FROM statuses WHERE repo_id = ? AND sha = ? ORDER BY id", repo_id, sha):
            latest[row["context"]] = row
        return latest

    # ----------------------------------------------------------------------------------------------
    # pull requests

    def next_number(self, repo_id: int) -> int:
        row = self.one("SELECT COALESCE(MAX(number), 0) + 1 AS n FROM pulls WHERE repo_id = ?", repo_id)
        return int(row["n"]) if row else 1

    def pull(self, repo_id: int, number: int) -> sqlite3.Row | None:
        return self.one("SELECT * FROM pulls WHERE repo_id = ? AND number = ?", repo_id, number)

    def labels_of(self, pull_id: int) -> list[sqlite3.Row]:
        return self.q(
            "SELECT l.* FROM labels l JOIN pull_labels p ON p.label_id = l.id WHERE p.pull_id = ? ORDER BY l.name",
            pull_id,
        )

    def add_labels(self, repo_id: int, pull_id: int, names: list[str]) -> None:
        for name in names:
            self.insert("INSERT OR IGNORE INTO labels(repo_id, name) VALUES (?, ?)", repo_id, name)
            row = self.one("SELECT id FROM labels WHERE repo_id = ? AND name = ?", repo_id, name)
            assert row is not None
            self.insert("INSERT OR IGNORE INTO pull_labels VALUES (?, ?)", pull_id, row["id"])
