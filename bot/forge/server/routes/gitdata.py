"""Git data: refs, trees, commits and blobs (``/git/...``), and the REST commit of ``/commits/{ref}``.

Every ref write goes through :func:`bot.forge.server.protection.check_ref_write` and records who moved it.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bot.forge.model import GitIdentity, commit_payload
from bot.forge.server import protection, shapes, signing
from bot.forge.server.api import ApiError, Request, Response, invalid, not_found, not_implemented, timestamp
from bot.forge.server.gitrepo import ZERO_SHA, BareRepo, CommitInfo, GitFailed, NewEntry
from bot.forge.server.store import User
from bot.records import tree_conflicts

if TYPE_CHECKING:
    from bot.forge.server.app import ForgeApp


def _person(data: Any, fallback: User, when: datetime) -> GitIdentity:
    if not isinstance(data, dict):
        return GitIdentity(name=fallback.name, email=fallback.email, date=when)
    date_raw = data.get("date")
    date = datetime.fromisoformat(str(date_raw).replace("Z", "+00:00")) if date_raw else when
    return GitIdentity(
        name=str(data.get("name") or fallback.name), email=str(data.get("email") or fallback.email), date=date
    )


def commit_json(app: ForgeApp, repo: Any, info: CommitInfo) -> dict[str, Any]:
    """The ``commit`` schema, with ``author``/``committer`` the accounts matching the git emails, as GitHub."""
    author = app.store.user_by_email(info.author.email)
    committer = (
        author
        if info.committer.email.lower() == info.author.email.lower()
        else app.store.user_by_email(info.committer.email)
    )
    return shapes.commit(
        info, app.urls, repo["owner"], repo["name"], signing.verification(app, info), author, committer
    )


COMMIT_ENDPOINTS = frozenset({"branches-where-head", "comments", "pulls", "check-suites"})
"""GitHub's endpoints under ``/commits/{ref}/`` that no route here serves."""


def git_commit_json(app: ForgeApp, repo: Any, info: CommitInfo) -> dict[str, Any]:
    return shapes.git_commit(info, app.urls, repo["owner"], repo["name"], signing.verification(app, info))


def get_ref(app: ForgeApp, req: Request) -> Response:
    repo, git = app.repo(req)
    ref = "refs/" + req.params["ref"].removeprefix("refs/")
    sha = git.ref(ref)
    if sha is not None:
        return Response(200, shapes.git_ref(ref, sha, app.urls, repo["owner"], repo["name"]))
    matches = [(n, s) for n, s in git.refs(ref) if n.startswith(ref + "/")]
    if not matches or "/git/ref/" in req.path:
        raise not_found()
    return Response(200, [shapes.git_ref(n, s, app.urls, repo["owner"], repo["name"]) for n, s in matches])


def list_refs(app: ForgeApp, req: Request) -> Response:
    repo, git = app.repo(req)
    prefix = "refs/" + req.params.get("ref", "").removeprefix("refs/")
    items = [
        shapes.git_ref(n, s, app.urls, repo["owner"], repo["name"])
        for n, s in git.refs("refs/")
        if n.startswith(prefix)
    ]
    return app.page(req, items)


def create_ref(app: ForgeApp, req: Request) -> Response:
    repo, git = app.repo(req)
    body = req.body if isinstance(req.body, dict) else {}
    ref, sha = str(body.get("ref", "")), str(body.get("sha", ""))
    assert req.user is not None
    protection.check_ref_write(app.store, req.user, repo, ref)
    if git.object_type(sha) != "commit":
        raise ApiError(422, "Object does not exist")
    if not git.update_ref(ref, sha, ZERO_SHA):
        raise ApiError(422, "Reference already exists")
    app.store.record_ref_update(repo["id"], ref, sha, req.user.id)
    app.store.touch_repo(repo["id"])
    return Response(201, shapes.git_ref(ref, sha, app.urls, repo["owner"], repo["name"]))


def update_ref(app: ForgeApp, req: Request) -> Response:
    repo, git = app.repo(req)
    ref = "refs/" + req.params["ref"].removeprefix("refs/")
    body = req.body if isinstance(req.body, dict) else {}
    sha = str(body.get("sha", ""))
    assert req.user is not None
    protection.check_ref_write(app.store, req.user, repo, ref)
    old = git.ref(ref)
    if old is None:
        raise ApiError(422, "Reference does not exist")
    if git.object_type(sha) != "commit":
        raise ApiError(422, "Object does not exist")
    if not git.is_ancestor(old, sha):
        if not body.get("force"):
            raise ApiError(422, "Update is not a fast forward")
        protection.refuse_rewrite(app.store, req.user, repo, ref, delete=False)
    if not git.update_ref(ref, sha, old):
        raise ApiError(409, "Reference update failed: the reference moved; try again")
    app.store.record_ref_update(repo["id"], ref, sha, req.user.id)
    app.store.touch_repo(repo["id"])
    return Response(200, shapes.git_ref(ref, sha, app.urls, repo["owner"], repo["name"]))


def delete_ref(app: ForgeApp, req: Request) -> Response:
    repo, git = app.repo(req)
    ref = "refs/" + req.params["ref"].removeprefix("refs/")
    assert req.user is not None
    protection.check_ref_write(app.store, req.user, repo, ref)
    protection.refuse_rewrite(app.store, req.user, repo, ref, delete=True)
    if git.ref(ref) is None or not git.delete_ref(ref):
        raise ApiError(422, "Reference does not exist")
    app.store.record_ref_update(repo["id"], ref, ZERO_SHA, req.user.id)
    return Response(204)


def _tree_json(app: ForgeApp, repo: Any, git: BareRepo, sha: str, recursive: bool = False) -> dict[str, Any]:
    base = app.urls.repo(repo["owner"], repo["name"])
    entries = []
    for e in git.ls_tree(sha, recursive=recursive):
        item: dict[str, Any] = {"path": e.path, "mode": e.mode, "type": e.type, "sha": e.sha}
        if e.type == "blob":
            item["size"] = e.size
            item["url"] = f"{base}/git/blobs/{e.sha}"
        else:
            item["url"] = f"{base}/git/trees/{e.sha}"
        entries.append(item)
    return {"sha": sha, "url": f"{base}/git/trees/{sha}", "tree": entries, "truncated": False}


def create_tree(app: ForgeApp, req: Request) -> Response:
    repo, git = app.repo(req)
    body = req.body if isinstance(req.body, dict) else {}
    raw_entries = body.get("tree")
    if not isinstance(raw_entries, list):
        raise ApiError(422, 'Invalid request.\n\n"tree" wasn\'t supplied.')
    base_tree = body.get("base_tree")
    if base_tree is not None:
        base_tree = git.resolve(f"{base_tree}^{{tree}}")
        if base_tree is None:
            raise ApiError(422, "base_tree is not a valid tree oid")
    entries = []
    for raw in raw_entries:
        if not isinstance(raw, dict) or not raw.get("path"):
            raise ApiError(422, "Invalid tree entry: path is required")
        path = str(raw["path"]).strip("/")
        if ".." in path.split("/") or path.startswith(".git/") or path == ".git":
            raise ApiError(422, f"Invalid tree entry path: {path}")
        mode, etype = str(raw.get("mode", "100644")), str(raw.get("type", "blob"))
        if "content" in raw and raw["content"] is not None:
            entries.append(NewEntry(path, mode, etype, content=str(raw["content"])))
        elif "sha" in raw and raw["sha"] is None:
            entries.append(NewEntry(path, mode, etype, delete=True))
        elif isinstance(raw.get("sha"), str) and git.object_type(raw["sha"]) is not None:
            entries.append(NewEntry(path, mode, etype, sha=raw["sha"]))
        else:
            raise ApiError(422, f"Invalid tree entry for {path}: give content, an existing sha, or sha null")
    # one path as both file and directory, or two names one case apart: git would keep one and drop the other
    deleted = {e.path for e in entries if e.delete}
    kept = (
        (e.path for e in git.ls_tree(base_tree, recursive=True) if e.type != "tree" and e.path not in deleted)
        if base_tree
        else ()
    )
    conflicts = tree_conflicts([e.path for e in entries if not e.delete], kept)
    if conflicts:
        raise ApiError(422, "Invalid tree: " + "; ".join(conflicts))
    try:
        sha = git.build_tree(base_tree, entries)
    except GitFailed as exc:
        raise ApiError(422, f"tree could not be built: {exc}") from None
    return Response(201, _tree_json(app, repo, git, sha))


def get_tree(app: ForgeApp, req: Request) -> Response:
    repo, git = app.repo(req)
    sha = git.resolve(f"{req.params['sha']}^{{tree}}")
    if sha is None:
        raise not_found()
    recursive = req.query.get("recursive") not in (None, "", "0", "false")
    return Response(200, _tree_json(app, repo, git, sha, recursive=recursive))


def create_commit(app: ForgeApp, req: Request) -> Response:
    repo, git = app.repo(req)
    assert req.user is not None
    body = req.body if isinstance(req.body, dict) else {}
    message, tree = body.get("message"), body.get("tree")
    parents = body.get("parents") or []
    if not isinstance(message, str) or not isinstance(tree, str):
        raise ApiError(422, 'Invalid request.\n\n"message" and "tree" are required.')
    if git.object_type(tree) != "tree":
        raise ApiError(422, "Tree SHA does not exist")
    if not isinstance(parents, list) or any(git.object_type(str(p)) != "commit" for p in parents):
        raise ApiError(422, "Parent SHA does not exist or is not a commit object")
    when = datetime.now(UTC).replace(microsecond=0)
    try:
        author = _person(body.get("author"), req.user, when)
        committer = _person(body.get("committer"), req.user, author.date or when)
    except ValueError as exc:
        raise ApiError(422, f"Invalid author or committer: {exc}") from None
    signature = body.get("signature")
    payload = commit_payload(
        tree, [str(p) for p in parents], author, committer, message, str(signature) if signature else None
    )
    try:
        sha = git.write_commit(payload)
    except GitFailed as exc:
        raise ApiError(422, f"commit could not be written: {exc}") from None
    info = git.read_commit(sha)
    assert info is not None
    return Response(201, git_commit_json(app, repo, info))


def get_git_commit(app: ForgeApp, req: Request) -> Response:
    repo, git = app.repo(req)
    info = git.read_commit(req.params["sha"])
    if info is None:
        raise not_found()
    return Response(200, git_commit_json(app, repo, info))


def get_blob(app: ForgeApp, req: Request) -> Response:
    repo, git = app.repo(req)
    sha = req.params["sha"]
    if git.object_type(sha) != "blob":
        raise not_found()
    data = git.read_blob(sha)
    return Response(
        200,
        {
            "sha": sha,
            "node_id": shapes.node_id("Blob", sha),
            "size": len(data),
            "url": f"{app.urls.repo(repo['owner'], repo['name'])}/git/blobs/{sha}",
            "content": base64.b64encode(data).decode("ascii"),
            "encoding": "base64",
        },
    )


def get_commit(app: ForgeApp, req: Request) -> Response:
    repo, git = app.repo(req)
    ref = req.params["ref"]
    sha = git.resolve_commit(ref)
    info = git.read_commit(sha) if sha else None
    if info is None:
        prefix, _, rest = ref.rpartition("/")
        if rest in COMMIT_ENDPOINTS and git.resolve_commit(prefix) is not None:
            # ``/commits/{ref}/comments`` and the like: GitHub serves them, this forge does not; not a bad ref
            raise not_implemented(req.method, req.path)
        raise ApiError(422, f"No commit found for SHA: {ref}")
    data = commit_json(app, repo, info)
    parent = info.parents[0] if info.parents else None
    diffs = git.diff(parent, info.sha, patches=True)
    data["files"] = [shapes.diff_entry(d, app.urls, repo["owner"], repo["name"], info.sha) for d in diffs]
    adds = sum(d.additions for d in diffs)
    dels = sum(d.deletions for d in diffs)
    data["stats"] = {"additions": adds, "deletions": dels, "total": adds + dels}
    return Response(200, data)


def list_commits(app: ForgeApp, req: Request) -> Response:
    """``GET /repos/{owner}/{repo}/commits``: newest first from ``sha`` (default branch by default), only those
    touching ``path``, by ``author`` (a login or an email), between ``since`` and ``until``."""
    repo, git = app.repo(req)
    q = req.query
    for key in ("sha", "path", "author"):
        if "\x00" in q.get(key, ""):
            raise invalid("Commit", key, "must not contain a NUL character")
    start = q.get("sha") or repo["default_branch"]
    sha = git.resolve_commit(start)
    if sha is None:
        raise ApiError(404, f"No commit found for SHA: {start}")
    author = q.get("author") or None
    if author is not None and "@" not in author:
        account = app.store.user_by_login(author)
        if account is None:
            return app.page(req, [])
        author = account.email
    bounds = {key: timestamp(q[key], "Commit", key).isoformat() for key in ("since", "until") if q.get(key)}
    shas = git.log(sha, path=q.get("path") or None, author=author, **bounds)
    response = app.page(req, shas)
    infos = [git.read_commit(s) for s in response.body]
    response.body = [commit_json(app, repo, info) for info in infos if info is not None]
    return response
