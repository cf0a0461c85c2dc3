"""The top-level ``author`` / ``committer`` of the commit schema: the forge account whose email matches the
git identity's (case-insensitive), null when none does, on every endpoint returning that schema."""

from __future__ import annotations

from typing import Any

from tests.forge_helpers import ForgeEnv
from tests.unit.forge.test_last_push_approval import AGENT, API

BRANCH = f"glassbox/{AGENT}/accounts"


def _commit(forge: ForgeEnv, parent: str, path: str, author_email: str) -> str:
    tree = forge.ok(AGENT, "GET", f"{API}/git/commits/{parent}")["tree"]["sha"]
    new_tree = forge.ok(
        AGENT, "POST", f"{API}/git/trees", {"base_tree": tree, "tree": [{"path": path, "content": path}]}
    )["sha"]
    body = {
        "message": path,
        "tree": new_tree,
        "parents": [parent],
        "author": {"name": "Someone", "email": author_email, "date": "2024-01-02T03:04:05Z"},
    }
    return str(forge.ok(AGENT, "POST", f"{API}/git/commits", body)["sha"])


def _accounts(data: dict[str, Any]) -> tuple[str | None, str | None]:
    author, committer = data["author"], data["committer"]
    return (author["login"] if author else None, committer["login"] if committer else None)


def test_commit_accounts_follow_the_git_emails(forge: ForgeEnv) -> None:
    main = forge.ok(AGENT, "GET", f"{API}/git/ref/heads/main")["object"]["sha"]
    known = _commit(forge, main, "a.txt", "ALICE@Example.com")  # alice@example.com in the registry
    unknown = _commit(forge, known, "b.txt", "nobody@example.invalid")
    forge.ok(AGENT, "POST", f"{API}/git/refs", {"ref": f"refs/heads/{BRANCH}", "sha": unknown})
    pr = forge.ok(AGENT, "POST", f"{API}/pulls", {"title": "accounts", "head": BRANCH, "base": "main"})

    # GET /commits/{ref}: by sha and by branch name
    got = forge.ok("carol", "GET", f"{API}/commits/{known}")
    assert _accounts(got) == ("alice", AGENT)  # the committer defaults to the calling identity
    assert got["author"]["id"] > 0 and got["author"]["type"] == "User"
    assert got["commit"]["author"]["email"] == "ALICE@Example.com"
    assert _accounts(forge.ok("carol", "GET", f"{API}/commits/{BRANCH}")) == (None, AGENT)

    # GET /pulls/{n}/commits, oldest first
    listed = forge.ok("carol", "GET", f"{API}/pulls/{pr['number']}/commits")
    assert [(c["sha"], *_accounts(c)) for c in listed] == [(known, "alice", AGENT), (unknown, None, AGENT)]

    # compare and branches carry the same schema
    compared = forge.ok("carol", "GET", f"{API}/compare/main...{BRANCH}")
    assert [_accounts(c) for c in compared["commits"]] == [("alice", AGENT), (None, AGENT)]
    assert _accounts(compared["base_commit"]) == (None, None)  # the import is by the forge itself, no account
    assert _accounts(forge.ok("carol", "GET", f"{API}/branches/{BRANCH}")["commit"]) == (None, AGENT)
