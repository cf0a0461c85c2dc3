"""Branch protection's ``require_last_push_approval``: the most recent push to a PR's head must be approved
by someone other than its pusher; and every branch move records who made it (``ref_updates``)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from bot.forge.server import init_forge, load_tokens, start_forge
from tests.forge_helpers import REPO, ForgeEnv, LockedLog, make_source

AGENT = "patch-agent"
API = f"/repos/{REPO}"
RULE = "The most recent push must be approved by someone other than the person who pushed it."


def protect(forge: ForgeEnv, *, last_push: bool) -> None:
    forge.ok(
        "forge-admin",
        "PUT",
        f"{API}/branches/main/protection",
        {
            "required_status_checks": None,
            "enforce_admins": False,
            "required_pull_request_reviews": {
                "required_approving_review_count": 1,
                "require_last_push_approval": last_push,
            },
            "restrictions": None,
        },
    )


def commit_on(forge: ForgeEnv, identity: str, parent: str, path: str) -> str:
    """A new commit on top of ``parent`` adding ``path``, made through the git data API as ``identity``."""
    tree = forge.ok(identity, "GET", f"{API}/git/commits/{parent}")["tree"]["sha"]
    new_tree = forge.ok(
        identity, "POST", f"{API}/git/trees", {"base_tree": tree, "tree": [{"path": path, "content": path}]}
    )["sha"]
    return str(
        forge.ok(identity, "POST", f"{API}/git/commits", {"message": path, "tree": new_tree, "parents": [parent]})[
            "sha"
        ]
    )


def open_pr(forge: ForgeEnv, name: str) -> tuple[int, str, str]:
    """The agent pushes a branch and opens a PR: (number, branch, head sha)."""
    main = forge.ok(AGENT, "GET", f"{API}/git/ref/heads/main")["object"]["sha"]
    branch = f"glassbox/{AGENT}/{name}"
    sha = commit_on(forge, AGENT, main, f"d/{name}/a.txt")
    forge.ok(AGENT, "POST", f"{API}/git/refs", {"ref": f"refs/heads/{branch}", "sha": sha})
    pr = forge.ok(AGENT, "POST", f"{API}/pulls", {"title": name, "head": branch, "base": "main"})
    return int(pr["number"]), branch, sha


def push(forge: ForgeEnv, identity: str, branch: str, parent: str, path: str) -> str:
    """``identity`` adds a commit to ``branch`` (REST ref update, as PyGithub's ``edit`` of a ref does)."""
    sha = commit_on(forge, identity, parent, path)
    forge.ok(identity, "PATCH", f"{API}/git/refs/heads/{branch}", {"sha": sha})
    return sha


def approve(forge: ForgeEnv, identity: str, number: int, sha: str) -> None:
    forge.ok(identity, "POST", f"{API}/pulls/{number}/reviews", {"event": "APPROVE", "commit_id": sha})


def merge(forge: ForgeEnv, number: int, sha: str, identity: str = "glassbox-bot") -> tuple[int, Any]:
    return forge.request(identity, "PUT", f"{API}/pulls/{number}/merge", {"sha": sha})


def ref_updates(data: Path) -> list[tuple[str, str, str]]:
    """(ref, sha, login) of every recorded branch move, oldest first."""
    db = sqlite3.connect(str(data / "forge.sqlite3"))
    try:
        rows = db.execute(
            "SELECT r.ref, r.sha, u.login FROM ref_updates r JOIN users u ON u.id = r.user_id ORDER BY r.id"
        ).fetchall()
    finally:
        db.close()
    return [(str(a), str(b), str(c)) for a, b, c in rows]


def test_the_pushers_own_approval_does_not_count_but_a_third_persons_does(forge: ForgeEnv) -> None:
    protect(forge, last_push=True)
    number, branch, first = open_pr(forge, "lp")
    head = push(forge, "alice", branch, first, "d/lp/alice.txt")
    approve(forge, "alice", number, head)

    status, data = merge(forge, number, head)
    assert status == 405, data
    assert data["message"].startswith("Repository rule violations found")
    assert RULE in data["message"]
    assert "made by alice" in data["message"]
    # the protection reads back as set
    got = forge.ok("forge-admin", "GET", f"{API}/branches/main/protection")
    assert got["required_pull_request_reviews"]["require_last_push_approval"] is True

    approve(forge, "bob", number, head)
    status, data = merge(forge, number, head)
    assert status == 200 and data["merged"], data


def test_an_approval_of_an_older_push_does_not_satisfy_the_rule(forge: ForgeEnv) -> None:
    protect(forge, last_push=True)
    number, branch, first = open_pr(forge, "older")
    approve(forge, "bob", number, first)
    head = push(forge, "bob", branch, first, "d/older/bob.txt")
    approve(forge, "bob", number, head)
    status, data = merge(forge, number, head)
    assert status == 405 and RULE in data["message"], data
    approve(forge, "carol", number, head)
    status, data = merge(forge, number, head)
    assert status == 200, data


def test_with_the_setting_off_the_pushers_approval_suffices(forge: ForgeEnv) -> None:
    protect(forge, last_push=False)
    number, branch, first = open_pr(forge, "off")
    head = push(forge, "alice", branch, first, "d/off/alice.txt")
    approve(forge, "alice", number, head)
    status, data = merge(forge, number, head)
    assert status == 200 and data["merged"], data


def test_the_author_counts_as_pusher_when_no_push_was_recorded(forge: ForgeEnv) -> None:
    protect(forge, last_push=True)
    number, branch, first = open_pr(forge, "unrecorded")
    head = push(forge, "alice", branch, first, "d/unrecorded/alice.txt")
    db = sqlite3.connect(str(forge.data / "forge.sqlite3"))
    try:
        db.execute("DELETE FROM ref_updates WHERE ref = ?", (f"refs/heads/{branch}",))
        db.commit()
    finally:
        db.close()
    # without a record the pusher is taken to be the PR author (the agent), so alice's approval counts
    approve(forge, "alice", number, head)
    status, data = merge(forge, number, head)
    assert status == 200, data


def test_every_branch_move_records_its_pusher(forge: ForgeEnv) -> None:
    protect(forge, last_push=False)
    init = ref_updates(forge.data)
    assert [(ref, login) for ref, _sha, login in init] == [("refs/heads/main", "forge-admin")]

    number, branch, first = open_pr(forge, "rec")
    head = push(forge, "alice", branch, first, "d/rec/alice.txt")
    approve(forge, "bob", number, head)
    status, data = merge(forge, number, head, identity="carol")
    assert status == 200, data
    forge.ok("alice", "DELETE", f"{API}/git/refs/heads/{branch}")

    assert ref_updates(forge.data)[1:] == [
        (f"refs/heads/{branch}", first, AGENT),  # REST ref create
        (f"refs/heads/{branch}", head, "alice"),  # REST ref update
        ("refs/heads/main", data["sha"], "carol"),  # merge moves the base branch
        (f"refs/heads/{branch}", "0" * 40, "alice"),  # REST ref delete
    ]


def test_a_database_from_before_ref_updates_still_opens(tmp_path: Path) -> None:
    src = make_source(tmp_path)
    data = tmp_path / "forge"
    init_forge(data, REPO, src)
    db = sqlite3.connect(str(data / "forge.sqlite3"))
    try:
        db.execute("DROP INDEX ref_updates_ref")
        db.execute("DROP TABLE ref_updates")
        db.commit()
    finally:
        db.close()
    log = LockedLog()
    url, stop = start_forge(data, log=log)
    try:
        forge = ForgeEnv(data=data, url=url, tokens=load_tokens(data), stop=stop, log=log)
        protect(forge, last_push=True)
        number, branch, first = open_pr(forge, "old")
        head = push(forge, "alice", branch, first, "d/old/alice.txt")
        approve(forge, "alice", number, head)
        status, body = merge(forge, number, head)
        assert status == 405 and RULE in body["message"], body
        assert [login for _ref, _sha, login in ref_updates(data)] == [AGENT, "alice"]
    finally:
        stop()
