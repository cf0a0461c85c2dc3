"""Check runs (GitHub's Checks API): create, update, read, list a commit's runs, list a run's annotations.

Who may create a run is who may set a commit status (:data:`~bot.forge.server.routes.statuses.STATUS_SETTERS`):
agents may not. Only the account that created a run may update it, as on GitHub, where only the app that made
a run can change it. Each run belongs to the check suite of its commit and creator, made on first use. Runs
made by a service identity carry it as their ``app``; a person's runs carry none.

Annotations follow GitHub's limits: at most :data:`~bot.forge.model.MAX_ANNOTATIONS_PER_REQUEST` per request,
each PATCH appends to those already there. A bad field is a 422 that names it.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from bot.forge.model import (
    MAX_ANNOTATION_MESSAGE_BYTES,
    MAX_ANNOTATION_TITLE_CHARS,
    MAX_ANNOTATIONS_PER_REQUEST,
    MAX_CHECK_OUTPUT_CHARS,
    AnnotationLevel,
    CheckConclusion,
    CheckRunStatus,
)
from bot.forge.server import shapes
from bot.forge.server.api import ApiError, Request, Response, invalid, not_found, timestamp
from bot.forge.server.gitrepo import FULL_SHA, BareRepo
from bot.forge.server.routes import pulls
from bot.forge.server.routes.statuses import STATUS_SETTERS
from bot.forge.server.store import APP_KINDS, iso, now_iso

if TYPE_CHECKING:
    from bot.forge.server.app import ForgeApp

RESOURCE = "CheckRun"
SETTABLE_STATUSES = frozenset({CheckRunStatus.QUEUED, CheckRunStatus.IN_PROGRESS, CheckRunStatus.COMPLETED})
SETTABLE_CONCLUSIONS = frozenset(CheckConclusion) - {CheckConclusion.STALE}
MAX_ID_DIGITS = 18
"""Longer ids cannot name a row (SQLite integers are 64-bit)."""


# --------------------------------------------------------------------------------------------------
# shapes


def _run_json(
    app: ForgeApp, repo: Any, git: BareRepo, row: Any, pulls_at: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    o, n = repo["owner"], repo["name"]
    api, web = app.urls.repo(o, n), app.urls.repo_web(o, n)
    creator = app.store.user_by_id(row["creator_id"])
    count = app.store.one("SELECT COUNT(*) AS n FROM check_annotations WHERE check_run_id = ?", row["id"])
    url = f"{api}/check-runs/{row['id']}"
    return {
        "id": row["id"],
        "node_id": shapes.node_id("CheckRun", row["id"]),
        "head_sha": row["head_sha"],
        "external_id": row["external_id"],
        "url": url,
        "html_url": f"{web}/runs/{row['id']}",
        "details_url": row["details_url"],
        "status": row["status"],
        "conclusion": row["conclusion"],
        "started_at": row["started_at"],
        "completed_at": row["completed_at"],
        "output": {
            "title": row["title"],
            "summary": row["summary"],
            "text": row["text"],
            "annotations_count": int(count["n"]) if count else 0,
            "annotations_url": f"{url}/annotations",
        },
        "name": row["name"],
        "check_suite": {"id": row["suite_id"]},
        "app": (
            shapes.app(creator, app.urls, o, app.store.created_at(creator.id))
            if creator is not None and creator.kind in APP_KINDS
            else None
        ),
        "pull_requests": pulls_at if pulls_at is not None else _pulls_at(app, repo, git, row["head_sha"]),
    }


def _pulls_at(app: ForgeApp, repo: Any, git: BareRepo, sha: str) -> list[dict[str, Any]]:
    """The open PRs whose head is ``sha`` (``pull-request-minimal``), as GitHub lists them on a run."""
    api = app.urls.repo(repo["owner"], repo["name"])
    ref = {"id": repo["id"], "url": api, "name": repo["name"]}
    out = []
    for pull in app.store.q("SELECT * FROM pulls WHERE repo_id = ? AND state = 'open' ORDER BY number", repo["id"]):
        head, base = pulls.heads(git, pull)
        if head == sha:
            out.append(
                {
                    "id": pull["id"],
                    "number": pull["number"],
                    "url": f"{api}/pulls/{pull['number']}",
                    "head": {"ref": pull["head_ref"], "sha": head, "repo": ref},
                    "base": {"ref": pull["base_ref"], "sha": base, "repo": ref},
                }
            )
    return out


def _annotation_json(app: ForgeApp, repo: Any, run: Any, row: Any) -> dict[str, Any]:
    web = app.urls.repo_web(repo["owner"], repo["name"])
    return {
        "path": row["path"],
        "blob_href": f"{web}/blob/{run['head_sha']}/{row['path']}",
        "start_line": row["start_line"],
        "end_line": row["end_line"],
        "start_column": row["start_column"],
        "end_column": row["end_column"],
        "annotation_level": row["level"],
        "title": row["title"],
        "message": row["message"],
        "raw_details": row["raw_details"],
    }


# --------------------------------------------------------------------------------------------------
# request validation


def _one_of(value: Any, allowed: Iterable[StrEnum]) -> bool:
    return isinstance(value, str) and value in {a.value for a in allowed}


def _string(body: dict[str, Any], key: str, field: str | None = None, *, required: bool = False) -> str | None:
    value = body.get(key)
    if value is None:
        if required:
            raise invalid(RESOURCE, field or key, "is required", "missing_field")
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise invalid(RESOURCE, field or key, "must be a non-empty string" if required else "must be a string")
    return value


def _timestamp(body: dict[str, Any], key: str) -> str | None:
    value = _string(body, key)
    return iso(timestamp(value, RESOURCE, key)) if value is not None else None


def _line(item: dict[str, Any], key: str, field: str, *, required: bool) -> int | None:
    value = item.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise invalid(RESOURCE, f"{field}.{key}", "must be an integer of at least 1")
    return value


def _annotations(output: dict[str, Any]) -> list[dict[str, Any]]:
    raw = output.get("annotations")
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise invalid(RESOURCE, "output.annotations", "must be an array")
    if len(raw) > MAX_ANNOTATIONS_PER_REQUEST:
        raise invalid(
            RESOURCE,
            "output.annotations",
            f"at most {MAX_ANNOTATIONS_PER_REQUEST} per request ({len(raw)} given); "
            "send the rest in updates of the check run",
        )
    out = []
    for i, item in enumerate(raw):
        field = f"output.annotations[{i}]"
        if not isinstance(item, dict):
            raise invalid(RESOURCE, field, "must be an object")
        path = _string(item, "path", f"{field}.path", required=True)
        start = _line(item, "start_line", field, required=True)
        end = _line(item, "end_line", field, required=True)
        assert path is not None and start is not None and end is not None
        if end < start:
            raise invalid(RESOURCE, f"{field}.end_line", "must not be before start_line")
        start_col = _line(item, "start_column", field, required=False)
        end_col = _line(item, "end_column", field, required=False)
        if (start_col is not None or end_col is not None) and start != end:
            raise invalid(RESOURCE, f"{field}.start_column", "columns are allowed only when start_line = end_line")
        if start_col is not None and end_col is not None and end_col < start_col:
            raise invalid(RESOURCE, f"{field}.end_column", "must not be before start_column")
        level = item.get("annotation_level")
        if not _one_of(level, AnnotationLevel):
            raise invalid(RESOURCE, f"{field}.annotation_level", "must be one of notice, warning, failure")
        message = _string(item, "message", f"{field}.message", required=True)
        title = _string(item, "title", f"{field}.title")
        details = _string(item, "raw_details", f"{field}.raw_details")
        assert message is not None
        for name, text in (("message", message), ("raw_details", details)):
            if text is not None and len(text.encode("utf-8")) > MAX_ANNOTATION_MESSAGE_BYTES:
                raise invalid(RESOURCE, f"{field}.{name}", f"must be at most {MAX_ANNOTATION_MESSAGE_BYTES} bytes")
        if title is not None and len(title) > MAX_ANNOTATION_TITLE_CHARS:
            raise invalid(RESOURCE, f"{field}.title", f"must be at most {MAX_ANNOTATION_TITLE_CHARS} characters")
        out.append(
            {
                "path": path.strip("/"),
                "start_line": start,
                "end_line": end,
                "start_column": start_col,
                "end_column": end_col,
                "level": level,
                "message": message,
                "title": title,
                "raw_details": details,
            }
        )
    return out


def _output(body: dict[str, Any], *, title_required: bool) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """(the output's stored text fields, its annotations); None when the body has no ``output``."""
    output = body.get("output")
    if output is None:
        return None
    if not isinstance(output, dict):
        raise invalid(RESOURCE, "output", "must be an object")
    for unsupported in ("images",):
        if output.get(unsupported):
            raise invalid(RESOURCE, f"output.{unsupported}", "is not supported by this forge", "unprocessable")
    fields: dict[str, Any] = {}
    title = _string(output, "title", "output.title", required=title_required)
    summary = _string(output, "summary", "output.summary", required=True)
    text = _string(output, "text", "output.text")
    for name, value in (("summary", summary), ("text", text)):
        if value is not None and len(value) > MAX_CHECK_OUTPUT_CHARS:
            raise invalid(RESOURCE, f"output.{name}", f"must be at most {MAX_CHECK_OUTPUT_CHARS} characters")
    if title is not None:
        fields["title"] = title
    fields["summary"] = summary
    if text is not None:
        fields["text"] = text
    return fields, _annotations(output)


def _lifecycle(body: dict[str, Any], current: Any | None) -> dict[str, Any]:
    """The status, conclusion and times a body sets, by GitHub's rules: a conclusion completes the run, and a
    completed run (or a completion time) needs a conclusion."""
    status = body.get("status")
    if status is not None and not _one_of(status, SETTABLE_STATUSES):
        raise invalid(RESOURCE, "status", "must be one of queued, in_progress, completed")
    conclusion = body.get("conclusion")
    if conclusion is not None and not _one_of(conclusion, SETTABLE_CONCLUSIONS):
        raise invalid(
            RESOURCE,
            "conclusion",
            "must be one of " + ", ".join(sorted(c.value for c in SETTABLE_CONCLUSIONS)) + " (only GitHub sets stale)",
        )
    started = _timestamp(body, "started_at")
    completed = _timestamp(body, "completed_at")
    if conclusion is not None:
        if status is not None and status != CheckRunStatus.COMPLETED.value:
            raise invalid(RESOURCE, "status", "must be completed (or left out) when a conclusion is given")
        status = CheckRunStatus.COMPLETED.value
    elif status == CheckRunStatus.COMPLETED.value or completed is not None:
        if current is None or current["conclusion"] is None:
            raise invalid(RESOURCE, "conclusion", "is required when status is completed or completed_at is given")
        conclusion, status = current["conclusion"], CheckRunStatus.COMPLETED.value
    out: dict[str, Any] = {}
    if started is not None:
        out["started_at"] = started
    if status is not None:
        out["status"] = status
        if status == CheckRunStatus.COMPLETED.value:
            out["conclusion"] = conclusion
            out["completed_at"] = completed or now_iso()
        else:  # back to queued or in progress: no longer concluded
            out["conclusion"] = None
            out["completed_at"] = None
    return out


def _unsupported(body: dict[str, Any]) -> None:
    if body.get("actions"):
        raise invalid(RESOURCE, "actions", "requested actions are not supported by this forge", "unprocessable")


# --------------------------------------------------------------------------------------------------
# handlers


def _run_of(app: ForgeApp, req: Request) -> tuple[Any, BareRepo, Any]:
    repo, git = app.repo(req)
    run_id = req.params["check_run"]
    row = (
        app.store.one("SELECT * FROM check_runs WHERE id = ? AND repo_id = ?", int(run_id), repo["id"])
        if len(run_id) <= MAX_ID_DIGITS
        else None
    )
    if row is None:
        raise not_found()
    return repo, git, row


def _insert_annotations(app: ForgeApp, run_id: int, annotations: list[dict[str, Any]]) -> None:
    for a in annotations:
        app.store.insert(
            "INSERT INTO check_annotations(check_run_id, path, start_line, end_line, start_column, end_column, level, "
            "message, title, raw_details) VALUES (?,?,?,?,?,?,?,?,?,?)",
            run_id,
            a["path"],
            a["start_line"],
            a["end_line"],
            a["start_column"],
            a["end_column"],
            a["level"],
            a["message"],
            a["title"],
            a["raw_details"],
        )


def create_check_run(app: ForgeApp, req: Request) -> Response:
    """``POST /repos/{owner}/{repo}/check-runs``."""
    repo, git = app.repo(req)
    user = app.require(req, STATUS_SETTERS, "create check runs")
    body = req.body if isinstance(req.body, dict) else {}
    name = _string(body, "name", required=True)
    sha = _string(body, "head_sha", required=True)
    assert name is not None and sha is not None
    if not FULL_SHA.match(sha) or git.object_type(sha) != "commit":
        raise invalid(RESOURCE, "head_sha", f"no commit found for SHA {sha[:64]!r}")
    details_url = _string(body, "details_url")
    external_id = _string(body, "external_id")
    _unsupported(body)
    output = _output(body, title_required=True)
    lifecycle = {"status": CheckRunStatus.QUEUED.value, "conclusion": None, "completed_at": None}
    lifecycle |= _lifecycle(body, None)
    stamp = now_iso()
    app.store.insert(
        "INSERT OR IGNORE INTO check_suites(repo_id, head_sha, creator_id, created_at) VALUES (?,?,?,?)",
        repo["id"],
        sha,
        user.id,
        stamp,
    )
    suite = app.store.one(
        "SELECT id FROM check_suites WHERE repo_id = ? AND head_sha = ? AND creator_id = ?", repo["id"], sha, user.id
    )
    assert suite is not None
    fields, annotations = output if output is not None else ({}, [])
    run_id = app.store.insert(
        "INSERT INTO check_runs(repo_id, suite_id, head_sha, name, status, conclusion, details_url, external_id, "
        "started_at, completed_at, title, summary, text, creator_id, created_at, updated_at) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        repo["id"],
        suite["id"],
        sha,
        name,
        lifecycle["status"],
        lifecycle["conclusion"],
        details_url,
        external_id,
        lifecycle.get("started_at", stamp),
        lifecycle["completed_at"],
        fields.get("title"),
        fields.get("summary"),
        fields.get("text"),
        user.id,
        stamp,
        stamp,
    )
    _insert_annotations(app, run_id, annotations)
    row = app.store.one("SELECT * FROM check_runs WHERE id = ?", run_id)
    return Response(201, _run_json(app, repo, git, row))


def update_check_run(app: ForgeApp, req: Request) -> Response:
    """``PATCH /repos/{owner}/{repo}/check-runs/{id}``: only by its creator; annotations are appended."""
    repo, git, row = _run_of(app, req)
    assert req.user is not None
    if req.user.id != row["creator_id"]:
        raise ApiError(403, "Resource not accessible by integration: only the creator of a check run may update it")
    body = req.body if isinstance(req.body, dict) else {}
    updates: dict[str, Any] = {}
    name = body.get("name")
    if name is not None:
        updates["name"] = _string(body, "name", required=True)
    for key in ("details_url", "external_id"):
        if key in body:
            updates[key] = _string(body, key)
    _unsupported(body)
    updates |= _lifecycle(body, row)
    output = _output(body, title_required=False)
    annotations: list[dict[str, Any]] = []
    if output is not None:
        fields, annotations = output
        updates |= fields
    updates["updated_at"] = now_iso()
    sets = ", ".join(f"{k} = ?" for k in updates)
    app.store.db.execute(f"UPDATE check_runs SET {sets} WHERE id = ?", (*updates.values(), row["id"]))  # noqa: S608
    _insert_annotations(app, row["id"], annotations)
    row = app.store.one("SELECT * FROM check_runs WHERE id = ?", row["id"])
    return Response(200, _run_json(app, repo, git, row))


def get_check_run(app: ForgeApp, req: Request) -> Response:
    repo, git, row = _run_of(app, req)
    return Response(200, _run_json(app, repo, git, row))


def list_annotations(app: ForgeApp, req: Request) -> Response:
    repo, _git, row = _run_of(app, req)
    items = app.store.q("SELECT * FROM check_annotations WHERE check_run_id = ? ORDER BY id", row["id"])
    return app.page(req, [_annotation_json(app, repo, row, a) for a in items])


def list_for_ref(app: ForgeApp, req: Request) -> Response:
    """``GET .../commits/{ref}/check-runs`` with ``check_name``, ``status``, ``app_id`` and ``filter``
    (``latest``, the default: the newest run of each name; ``all``)."""
    repo, git = app.repo(req)
    sha = git.resolve_commit(req.params["ref"])
    if sha is None:
        raise invalid("Commit", "ref", f"no commit found for {req.params['ref'][:100]!r}")
    which = req.query.get("filter", "latest")
    if which not in ("latest", "all"):
        raise invalid(RESOURCE, "filter", "must be latest or all")
    status = req.query.get("status")
    if status is not None and status not in {s.value for s in CheckRunStatus}:
        raise invalid(RESOURCE, "status", "must be one of " + ", ".join(s.value for s in CheckRunStatus))
    app_id = req.query.get("app_id")
    if app_id is not None and not (app_id.isascii() and app_id.isdigit() and len(app_id) <= MAX_ID_DIGITS):
        raise invalid(RESOURCE, "app_id", "must be an integer")
    sql, args = "SELECT * FROM check_runs WHERE repo_id = ? AND head_sha = ?", [repo["id"], sha]
    if req.query.get("check_name") is not None:
        sql += " AND name = ?"
        args.append(req.query["check_name"])
    if app_id is not None:
        sql += " AND creator_id = ?"
        args.append(int(app_id))
    rows = app.store.q(sql + " ORDER BY id DESC", *args)
    if which == "latest":
        newest: dict[str, Any] = {}
        for r in rows:
            newest.setdefault(r["name"], r)
        rows = list(newest.values())
    if status is not None:
        rows = [r for r in rows if r["status"] == status]
    at = _pulls_at(app, repo, git, sha)  # every run listed is on this commit
    response = app.page(req, [_run_json(app, repo, git, r, at) for r in rows])
    response.body = {"total_count": len(rows), "check_runs": response.body}
    return response
