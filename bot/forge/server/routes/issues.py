"""Issues, their labels, comments and events. The forge's only issues are its pull requests (on GitHub every
PR is an issue too), listed here with ``pull_request`` set; agents touch only their own PRs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.forge.server import shapes
from bot.forge.server.api import ApiError, Request, Response, invalid, timestamp
from bot.forge.server.routes import pulls, teams
from bot.forge.server.store import iso, now_iso

if TYPE_CHECKING:
    from bot.forge.server.app import ForgeApp


def check_issue_write(req: Request, pull: Any) -> None:
    """Agents write only to their own pull requests (labels, comments, review requests)."""
    assert req.user is not None
    if req.user.kind == "agent" and pull["user_id"] != req.user.id:
        raise ApiError(403, "Resource not accessible by integration: agents may only touch their own PRs")


def list_labels(app: ForgeApp, req: Request) -> Response:
    repo, _git, pull = pulls.pull_of(app, req)
    items = [shapes.label(row, app.urls, repo["owner"], repo["name"]) for row in app.store.labels_of(pull["id"])]
    return app.page(req, items)


def add_labels(app: ForgeApp, req: Request) -> Response:
    repo, _git, pull = pulls.pull_of(app, req)
    check_issue_write(req, pull)
    body = req.body
    names = body.get("labels") if isinstance(body, dict) else body
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise ApiError(422, 'Invalid request.\n\n"labels" must be a list of names.')
    app.store.add_labels(repo["id"], pull["id"], names)
    items = [shapes.label(row, app.urls, repo["owner"], repo["name"]) for row in app.store.labels_of(pull["id"])]
    return Response(200, items)


def remove_label(app: ForgeApp, req: Request) -> Response:
    repo, _git, pull = pulls.pull_of(app, req)
    check_issue_write(req, pull)
    row = app.store.one("SELECT id FROM labels WHERE repo_id = ? AND name = ?", repo["id"], req.params["name"])
    if row is None:
        raise ApiError(404, "Label does not exist")
    app.store.db.execute("DELETE FROM pull_labels WHERE pull_id = ? AND label_id = ?", (pull["id"], row["id"]))
    items = [shapes.label(r, app.urls, repo["owner"], repo["name"]) for r in app.store.labels_of(pull["id"])]
    return Response(200, items)


def _comment_json(app: ForgeApp, repo: Any, pull: Any, row: Any) -> dict[str, Any]:
    api = app.urls.repo(repo["owner"], repo["name"])
    web = app.urls.repo_web(repo["owner"], repo["name"])
    return {
        "id": row["id"],
        "node_id": shapes.node_id("IssueComment", row["id"]),
        "url": f"{api}/issues/comments/{row['id']}",
        "html_url": f"{web}/pull/{pull['number']}#issuecomment-{row['id']}",
        "issue_url": f"{api}/issues/{pull['number']}",
        "body": row["body"],
        "user": teams.user_json(app, row["user_id"]),
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "author_association": "MEMBER",
    }


def list_comments(app: ForgeApp, req: Request) -> Response:
    repo, _git, pull = pulls.pull_of(app, req)
    rows = app.store.q("SELECT * FROM comments WHERE pull_id = ? ORDER BY id", pull["id"])
    return app.page(req, [_comment_json(app, repo, pull, r) for r in rows])


def create_comment(app: ForgeApp, req: Request) -> Response:
    repo, _git, pull = pulls.pull_of(app, req)
    check_issue_write(req, pull)
    assert req.user is not None
    body = req.body if isinstance(req.body, dict) else {}
    text = body.get("body")
    if not isinstance(text, str) or not text:
        raise ApiError(422, 'Invalid request.\n\n"body" wasn\'t supplied.')
    stamp = now_iso()
    cid = app.store.insert(
        "INSERT INTO comments(pull_id, user_id, body, created_at, updated_at) VALUES (?,?,?,?,?)",
        pull["id"],
        req.user.id,
        text,
        stamp,
        stamp,
    )
    row = app.store.one("SELECT * FROM comments WHERE id = ?", cid)
    return Response(201, _comment_json(app, repo, pull, row))


def list_events(app: ForgeApp, req: Request) -> Response:
    """``GET .../issues/{n}/events``: the PR's lifecycle events, oldest first, each with its actor."""
    repo, _git, pull = pulls.pull_of(app, req)
    api = app.urls.repo(repo["owner"], repo["name"])
    rows = app.store.q("SELECT * FROM issue_events WHERE pull_id = ? ORDER BY id", pull["id"])
    items = [
        {
            "id": r["id"],
            "node_id": shapes.node_id("IssueEvent", r["id"]),
            "url": f"{api}/issues/events/{r['id']}",
            "actor": teams.user_json(app, r["user_id"]),
            "event": r["event"],
            "commit_id": r["commit_id"],
            "commit_url": f"{api}/commits/{r['commit_id']}" if r["commit_id"] else None,
            "created_at": r["created_at"],
            "performed_via_github_app": None,
        }
        for r in rows
    ]
    return app.page(req, items)


def issue_json(app: ForgeApp, repo: Any, pull: Any) -> dict[str, Any]:
    """A pull request as the ``issue`` GitHub also lists it as."""
    o, n = repo["owner"], repo["name"]
    api, web = app.urls.repo(o, n), app.urls.repo_web(o, n)
    num = pull["number"]
    url = f"{api}/issues/{num}"
    comments = app.store.one("SELECT COUNT(*) AS n FROM comments WHERE pull_id = ?", pull["id"])
    closer = None
    if pull["state"] == "closed":
        closed = app.store.one(
            "SELECT user_id FROM issue_events WHERE pull_id = ? AND event = 'closed' ORDER BY id DESC LIMIT 1",
            pull["id"],
        )
        closer = pull["merged_by"] if pull["merged_by"] else (closed["user_id"] if closed else None)
    return {
        "id": pull["id"],
        "node_id": shapes.node_id("Issue", pull["id"]),
        "url": url,
        "repository_url": api,
        "labels_url": f"{url}/labels{{/name}}",
        "comments_url": f"{url}/comments",
        "events_url": f"{url}/events",
        "timeline_url": f"{url}/timeline",
        "html_url": f"{web}/pull/{num}",
        "number": num,
        "state": pull["state"],
        "state_reason": "completed" if pull["state"] == "closed" else None,
        "title": pull["title"],
        "body": pull["body"],
        "user": teams.user_json(app, pull["user_id"]),
        "labels": [shapes.label(lab, app.urls, o, n) for lab in app.store.labels_of(pull["id"])],
        "assignee": None,
        "assignees": [],
        "milestone": None,
        "locked": False,
        "active_lock_reason": None,
        "comments": int(comments["n"]) if comments else 0,
        "pull_request": {
            "url": f"{api}/pulls/{num}",
            "html_url": f"{web}/pull/{num}",
            "diff_url": f"{web}/pull/{num}.diff",
            "patch_url": f"{web}/pull/{num}.patch",
            "merged_at": pull["merged_at"],
        },
        "closed_at": pull["closed_at"],
        "created_at": pull["created_at"],
        "updated_at": pull["updated_at"],
        "draft": bool(pull["draft"]),
        "closed_by": teams.user_json(app, closer) if closer else None,
        "author_association": "MEMBER",
        "performed_via_github_app": None,
    }


def get_issue(app: ForgeApp, req: Request) -> Response:
    repo, _git, pull = pulls.pull_of(app, req)
    return Response(200, issue_json(app, repo, pull))


_ISSUE_SORTS = {"created": "created_at", "updated": "updated_at", "comments": "n_comments"}


def list_issues(app: ForgeApp, req: Request) -> Response:
    """``GET /repos/{owner}/{repo}/issues``: ``state``, ``labels`` (all of them), ``creator``, ``mentioned``,
    ``assignee`` and ``milestone`` (none exist here: ``none`` matches all, anything else nothing), ``type``,
    ``since``, ``sort`` and ``direction``."""
    repo, _git = app.repo(req)
    q = req.query
    state = q.get("state", "open")
    if state not in ("open", "closed", "all"):
        raise invalid("Issue", "state", "must be open, closed or all")
    sort = q.get("sort", "created")
    if sort not in _ISSUE_SORTS:
        raise invalid("Issue", "sort", "must be created, updated or comments")
    direction = q.get("direction", "desc")
    if direction not in ("asc", "desc"):
        raise invalid("Issue", "direction", "must be asc or desc")
    for unmatched in ("assignee", "milestone"):
        if q.get(unmatched) not in (None, "", "none"):
            return app.page(req, [])  # nothing here has an assignee or a milestone
    if q.get("type"):
        return app.page(req, [])  # nor an issue type
    sql = (
        "SELECT p.*, (SELECT COUNT(*) FROM comments c WHERE c.pull_id = p.id) AS n_comments "
        "FROM pulls p WHERE p.repo_id = ?"
    )
    args: list[Any] = [repo["id"]]
    if state != "all":
        sql += " AND p.state = ?"
        args.append(state)
    if q.get("creator"):
        creator = app.store.user_by_login(q["creator"])
        if creator is None:
            return app.page(req, [])
        sql += " AND p.user_id = ?"
        args.append(creator.id)
    for name in [n.strip() for n in q.get("labels", "").split(",") if n.strip()]:
        sql += " AND EXISTS (SELECT 1 FROM pull_labels pl JOIN labels l ON l.id = pl.label_id "
        sql += "WHERE pl.pull_id = p.id AND l.name = ?)"
        args.append(name)
    if q.get("mentioned"):
        mention = "%@" + q["mentioned"].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        sql += " AND (p.body LIKE ? ESCAPE '\\' OR EXISTS (SELECT 1 FROM comments c WHERE c.pull_id = p.id "
        sql += "AND c.body LIKE ? ESCAPE '\\'))"
        args += [mention, mention]
    if q.get("since"):
        sql += " AND p.updated_at >= ?"
        args.append(iso(timestamp(q["since"], "Issue", "since")))
    order = "ASC" if direction == "asc" else "DESC"
    rows = app.store.q(sql + f" ORDER BY {_ISSUE_SORTS[sort]} {order}, p.number {order}", *args)
    return app.page(req, [issue_json(app, repo, r) for r in rows])
