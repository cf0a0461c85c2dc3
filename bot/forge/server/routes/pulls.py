"""Pull requests: list, open, read, edit, their files and commits, and merging.

A merge is allowed only by :data:`MERGERS` and only when the base branch's protection allows it
(:mod:`bot.forge.server.protection`) at the expected head SHA. The merge or squash commit is authored by the
merger and committed and signed by the forge (:mod:`bot.forge.server.signing`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bot.forge.model import GitIdentity, commit_payload
from bot.forge.server import protection, shapes, signing
from bot.forge.server.api import ApiError, Request, Response, not_found
from bot.forge.server.gitrepo import BareRepo
from bot.forge.server.routes import gitdata, repos, teams
from bot.forge.server.store import User, now_iso

if TYPE_CHECKING:
    from bot.forge.server.app import ForgeApp


MERGERS = {"human", "bot", "admin"}


def pull_of(app: ForgeApp, req: Request) -> tuple[Any, BareRepo, Any]:
    repo, git = app.repo(req)
    pull = app.store.pull(repo["id"], int(req.params["number"]))
    if pull is None:
        raise not_found()
    return repo, git, pull


def heads(git: BareRepo, pull: Any) -> tuple[str, str]:
    """(head sha, base sha): live refs while open, frozen once closed."""
    if pull["state"] == "open":
        head = git.ref(f"refs/heads/{pull['head_ref']}") or pull["head_sha"]
        base = git.ref(f"refs/heads/{pull['base_ref']}") or pull["base_sha"]
        return head, base
    return pull["head_sha"], pull["base_sha"]


def requested_users(app: ForgeApp, pull: Any) -> list[User]:
    """The people asked to review ``pull`` who have not reviewed it since."""
    rows = app.store.q(
        "SELECT user_id FROM review_requests WHERE pull_id = ? AND user_id IS NOT NULL ORDER BY id", pull["id"]
    )
    return [u for u in (app.store.user_by_id(r["user_id"]) for r in rows) if u is not None]


def requested_teams(app: ForgeApp, pull: Any) -> list[Any]:
    return app.store.q(
        "SELECT t.* FROM teams t JOIN review_requests r ON r.team_id = t.id WHERE r.pull_id = ? ORDER BY r.id",
        pull["id"],
    )


def pull_json(app: ForgeApp, repo: Any, git: BareRepo, pull: Any, *, full: bool) -> dict[str, Any]:
    o, n = repo["owner"], repo["name"]
    api, web = app.urls.repo(o, n), app.urls.repo_web(o, n)
    num = pull["number"]
    head_sha, base_sha = heads(git, pull)
    author = teams.user_json(app, pull["user_id"])
    repo_json = repos.repo_json(app, repo)
    url = f"{api}/pulls/{num}"
    data: dict[str, Any] = {
        "url": url,
        "id": pull["id"],
        "node_id": shapes.node_id("PullRequest", pull["id"]),
        "html_url": f"{web}/pull/{num}",
        "diff_url": f"{web}/pull/{num}.diff",
        "patch_url": f"{web}/pull/{num}.patch",
        "issue_url": f"{api}/issues/{num}",
        "commits_url": f"{url}/commits",
        "review_comments_url": f"{url}/comments",
        "review_comment_url": f"{api}/pulls/comments{{/number}}",
        "comments_url": f"{api}/issues/{num}/comments",
        "statuses_url": f"{api}/statuses/{head_sha}",
        "number": num,
        "state": pull["state"],
        "locked": False,
        "title": pull["title"],
        "user": author,
        "body": pull["body"],
        "labels": [shapes.label(lab, app.urls, o, n) for lab in app.store.labels_of(pull["id"])],
        "milestone": None,
        "active_lock_reason": None,
        "created_at": pull["created_at"],
        "updated_at": pull["updated_at"],
        "closed_at": pull["closed_at"],
        "merged_at": pull["merged_at"],
        "merge_commit_sha": pull["merge_commit_sha"],
        "assignee": None,
        "assignees": [],
        "requested_reviewers": [shapes.user(u, app.urls) for u in requested_users(app, pull)],
        "requested_teams": [shapes.team(t, app.urls, o) for t in requested_teams(app, pull)],
        "head": {
            "label": f"{o}:{pull['head_ref']}",
            "ref": pull["head_ref"],
            "sha": head_sha,
            "user": shapes.owner(o, app.urls),
            "repo": repo_json,
        },
        "base": {
            "label": f"{o}:{pull['base_ref']}",
            "ref": pull["base_ref"],
            "sha": base_sha,
            "user": shapes.owner(o, app.urls),
            "repo": repo_json,
        },
        "_links": {
            "self": shapes.link(url),
            "html": shapes.link(f"{web}/pull/{num}"),
            "issue": shapes.link(f"{api}/issues/{num}"),
            "comments": shapes.link(f"{api}/issues/{num}/comments"),
            "review_comments": shapes.link(f"{url}/comments"),
            "review_comment": shapes.link(f"{api}/pulls/comments{{/number}}"),
            "commits": shapes.link(f"{url}/commits"),
            "statuses": shapes.link(f"{api}/statuses/{head_sha}"),
        },
        "author_association": "MEMBER",
        "auto_merge": None,
        "draft": bool(pull["draft"]),
    }
    if full:
        merge_base = git.merge_base(base_sha, head_sha) if pull["state"] == "open" else pull["base_sha"]
        diffs = git.diff(merge_base, head_sha)
        commits = git.rev_list(merge_base, head_sha)
        comments = app.store.one("SELECT COUNT(*) AS n FROM comments WHERE pull_id = ?", pull["id"])
        data.update(
            {
                "merged": pull["merged_at"] is not None,
                "mergeable": None if pull["state"] == "open" else False,
                "rebaseable": None,
                "mergeable_state": "unknown",
                "merged_by": teams.user_json(app, pull["merged_by"]) if pull["merged_by"] else None,
                "comments": int(comments["n"]) if comments else 0,
                "review_comments": 0,
                "maintainer_can_modify": False,
                "commits": len(commits),
                "additions": sum(d.additions for d in diffs),
                "deletions": sum(d.deletions for d in diffs),
                "changed_files": len(diffs),
            }
        )
    return data


def list_pulls(app: ForgeApp, req: Request) -> Response:
    repo, git = app.repo(req)
    state = req.query.get("state", "open")
    sql, args = "SELECT * FROM pulls WHERE repo_id = ?", [repo["id"]]
    if state in ("open", "closed"):
        sql += " AND state = ?"
        args.append(state)
    head = req.query.get("head")
    if head:
        owner_, _, branch = head.rpartition(":")
        if owner_ and owner_ != repo["owner"]:
            return app.page(req, [])
        sql += " AND head_ref = ?"
        args.append(branch)
    if req.query.get("base"):
        sql += " AND base_ref = ?"
        args.append(req.query["base"])
    direction = "ASC" if req.query.get("direction") == "asc" else "DESC"
    rows = app.store.q(sql + f" ORDER BY number {direction}", *args)
    return app.page(req, [pull_json(app, repo, git, p, full=False) for p in rows])


def create_pull(app: ForgeApp, req: Request) -> Response:
    repo, git = app.repo(req)
    assert req.user is not None
    body = req.body if isinstance(req.body, dict) else {}
    title, head, base = body.get("title"), str(body.get("head", "")), str(body.get("base", ""))
    if not isinstance(title, str) or not title.strip():
        raise ApiError(
            422,
            "Validation Failed",
            errors=[{"resource": "PullRequest", "field": "title", "code": "missing_field"}],
        )
    owner_, _, branch = head.rpartition(":")
    if owner_ and owner_ != repo["owner"]:
        raise ApiError(
            422, "Validation Failed", errors=[{"resource": "PullRequest", "field": "head", "code": "invalid"}]
        )
    if req.user.kind not in ("agent", "human", "bot", "admin"):
        raise ApiError(403, f"Resource not accessible by integration: {req.user.kind} identities cannot open PRs")
    head_sha = git.ref(f"refs/heads/{branch}")
    base_sha = git.ref(f"refs/heads/{base}")
    if head_sha is None or base_sha is None:
        field_ = "head" if head_sha is None else "base"
        raise ApiError(
            422, "Validation Failed", errors=[{"resource": "PullRequest", "field": field_, "code": "invalid"}]
        )
    existing = app.store.one(
        "SELECT number FROM pulls WHERE repo_id = ? AND head_ref = ? AND base_ref = ? AND state = 'open'",
        repo["id"],
        branch,
        base,
    )
    if existing is not None:
        raise ApiError(
            422,
            "Validation Failed",
            errors=[
                {
                    "resource": "PullRequest",
                    "code": "custom",
                    "message": f"A pull request already exists for {repo['owner']}:{branch}.",
                }
            ],
        )
    if git.is_ancestor(head_sha, base_sha):
        raise ApiError(
            422,
            "Validation Failed",
            errors=[
                {"resource": "PullRequest", "code": "custom", "message": f"No commits between {base} and {branch}"}
            ],
        )
    stamp = now_iso()
    number = app.store.next_number(repo["id"])
    app.store.insert(
        "INSERT INTO pulls(repo_id, number, title, body, state, draft, head_ref, head_sha, base_ref, base_sha, "
        "user_id, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
        repo["id"],
        number,
        title,
        str(body.get("body") or ""),
        "open",
        1 if body.get("draft") else 0,
        branch,
        head_sha,
        base,
        base_sha,
        req.user.id,
        stamp,
        stamp,
    )
    pull = app.store.pull(repo["id"], number)
    return Response(201, pull_json(app, repo, git, pull, full=True))


def get_pull(app: ForgeApp, req: Request) -> Response:
    repo, git, pull = pull_of(app, req)
    return Response(200, pull_json(app, repo, git, pull, full=True))


def update_pull(app: ForgeApp, req: Request) -> Response:
    repo, git, pull = pull_of(app, req)
    assert req.user is not None
    if req.user.kind == "agent" and pull["user_id"] != req.user.id:
        raise ApiError(403, "Resource not accessible by integration: agents may only edit their own PRs")
    body = req.body if isinstance(req.body, dict) else {}
    updates: dict[str, Any] = {}
    for key in ("title", "body"):
        if isinstance(body.get(key), str):
            updates[key] = body[key]
    events: list[str] = []
    state = body.get("state")
    if state in ("open", "closed") and state != pull["state"] and pull["merged_at"] is None:
        updates["state"] = state
        if state == "closed":
            head_sha, base_sha = heads(git, pull)
            updates.update(closed_at=now_iso(), head_sha=head_sha, base_sha=base_sha)
            events.append("closed")
        else:
            updates["closed_at"] = None
            events.append("reopened")
    base = body.get("base")
    if isinstance(base, str) and base != pull["base_ref"]:
        if pull["state"] != "open" and updates.get("state") != "open":
            raise ApiError(422, "Validation Failed: cannot change the base branch of a closed pull request")
        new_base = git.ref(f"refs/heads/{base}")
        if new_base is None:
            raise ApiError(
                422, "Validation Failed", errors=[{"resource": "PullRequest", "field": "base", "code": "invalid"}]
            )
        updates.update(base_ref=base, base_sha=new_base)
        events.append("base_ref_changed")
    if updates:
        updates["updated_at"] = now_iso()
        sets = ", ".join(f"{k} = ?" for k in updates)
        app.store.db.execute(f"UPDATE pulls SET {sets} WHERE id = ?", (*updates.values(), pull["id"]))  # noqa: S608
        for event in events:  # what approvals count from: a reviewer's close, an agent's reopen, a new base
            app.store.record_issue_event(pull["id"], event, req.user.id, heads(git, pull)[0])
        pull = app.store.pull(repo["id"], pull["number"])
    return Response(200, pull_json(app, repo, git, pull, full=True))


def list_pull_files(app: ForgeApp, req: Request) -> Response:
    repo, git, pull = pull_of(app, req)
    head_sha, base_sha = heads(git, pull)
    merge_base = git.merge_base(base_sha, head_sha) if pull["state"] == "open" else pull["base_sha"]
    diffs = git.diff(merge_base, head_sha, patches=True)
    items = [shapes.diff_entry(d, app.urls, repo["owner"], repo["name"], head_sha) for d in diffs]
    return app.page(req, items)


def list_pull_commits(app: ForgeApp, req: Request) -> Response:
    repo, git, pull = pull_of(app, req)
    head_sha, base_sha = heads(git, pull)
    merge_base = git.merge_base(base_sha, head_sha) if pull["state"] == "open" else pull["base_sha"]
    items = []
    for sha in git.rev_list(merge_base, head_sha):
        info = git.read_commit(sha)
        assert info is not None
        items.append(gitdata.commit_json(app, repo, info))
    return app.page(req, items)


def get_merged(app: ForgeApp, req: Request) -> Response:
    _repo, _git, pull = pull_of(app, req)
    if pull["merged_at"] is None:
        raise not_found()
    return Response(204)


def _unverified_commits(
    app: ForgeApp, repo: Any, git: BareRepo, branch: str, base_sha: str, head_sha: str
) -> list[str]:
    """With required signatures on ``branch``, a merge commit brings the PR's own commits onto it, so each must
    verify (a squash is one new commit, signed by the forge)."""
    config = app.store.protection(repo["id"], branch)
    if not (config or {}).get("required_signatures"):
        return []
    bad = []
    for sha in git.rev_list(git.merge_base(base_sha, head_sha), head_sha):
        info = git.read_commit(sha)
        if info is None or not signing.verification(app, info)["verified"]:
            bad.append(sha[:12])
    return [f"Commits must have verified signatures: {', '.join(bad)}."] if bad else []


def merge_pull(app: ForgeApp, req: Request) -> Response:
    repo, git, pull = pull_of(app, req)
    user = app.require(req, MERGERS, "merge pull requests")
    body = req.body if isinstance(req.body, dict) else {}
    method = body.get("merge_method", "merge")
    if method not in ("merge", "squash"):
        raise ApiError(422, f"Invalid merge_method {method!r}: this forge supports merge and squash")
    if pull["state"] != "open":
        raise ApiError(405, "Pull Request is not mergeable")
    if pull["draft"]:
        raise ApiError(405, "Pull Request is still a draft")
    head_sha, base_sha = heads(git, pull)
    expected = body.get("sha")
    if expected is not None and expected != head_sha:
        raise ApiError(409, "Head branch was modified. Review and try the merge again.")
    refusal = protection.push_restricted(app.store, repo, pull["base_ref"], user)
    if refusal is not None:
        raise ApiError(405, refusal)
    problems = protection.merge_problems(app.store, repo, pull, head_sha, user)
    if method == "merge":
        problems += _unverified_commits(app, repo, git, pull["base_ref"], base_sha, head_sha)
    if problems:
        raise ApiError(405, "Repository rule violations found\n\n" + "\n".join(problems))
    tree = git.merge_trees(base_sha, head_sha)
    if tree is None:
        raise ApiError(405, "Pull Request is not mergeable: merge conflict")
    when = datetime.now(UTC).replace(microsecond=0)
    who = GitIdentity(name=user.name, email=user.email, date=when)
    # authored by the merger, committed and signed by the forge, as GitHub does for merges through its API
    committer = signing.WEB_FLOW.at(when)
    title = body.get("commit_title")
    if method == "squash":
        message = str(title or f"{pull['title']} (#{pull['number']})")
        parents = [base_sha]
    else:
        message = str(title or f"Merge pull request #{pull['number']} from {repo['owner']}/{pull['head_ref']}")
        parents = [base_sha, head_sha]
    if body.get("commit_message"):
        message += "\n\n" + str(body["commit_message"])
    signature = signing.sign(app.data_dir, commit_payload(tree, parents, who, committer, message))
    sha = git.write_commit(commit_payload(tree, parents, who, committer, message, signature))
    if not git.update_ref(f"refs/heads/{pull['base_ref']}", sha, base_sha):
        raise ApiError(409, "Base branch was modified. Review and try the merge again.")
    app.store.record_ref_update(repo["id"], f"refs/heads/{pull['base_ref']}", sha, user.id)
    stamp = now_iso()
    app.store.db.execute(
        "UPDATE pulls SET state='closed', merged_at=?, closed_at=?, updated_at=?, merge_commit_sha=?, "
        "merged_by=?, head_sha=?, base_sha=? WHERE id=?",
        (stamp, stamp, stamp, sha, user.id, head_sha, base_sha, pull["id"]),
    )
    app.store.touch_repo(repo["id"])
    return Response(200, {"sha": sha, "merged": True, "message": "Pull Request successfully merged"})
