"""Repository contents at a ref, and the comparison of two revisions."""

from __future__ import annotations

import base64
import urllib.parse
from typing import TYPE_CHECKING, Any

from bot.forge.server import shapes
from bot.forge.server.api import ApiError, Request, Response, not_found
from bot.forge.server.routes import gitdata

if TYPE_CHECKING:
    from bot.forge.server.app import ForgeApp


def get_contents(app: ForgeApp, req: Request) -> Response:
    repo, git = app.repo(req)
    o, n = repo["owner"], repo["name"]
    ref = req.query.get("ref") or repo["default_branch"]
    sha = git.resolve_commit(ref)
    if sha is None:
        raise ApiError(404, f"No commit found for the ref {ref}")
    path = req.params["path"].strip("/")
    api = app.urls.repo(o, n)
    web = app.urls.repo_web(o, n)

    def entry_json(e: Any, with_content: bytes | None = None) -> dict[str, Any]:
        kind = {"blob": "file", "tree": "dir", "commit": "submodule"}.get(e.type, "file")
        self_url = f"{api}/contents/{e.path}?ref={urllib.parse.quote(ref)}"
        git_url = f"{api}/git/{'blobs' if e.type == 'blob' else 'trees'}/{e.sha}"
        html_url = f"{web}/{'blob' if e.type == 'blob' else 'tree'}/{ref}/{e.path}"
        data: dict[str, Any] = {
            "type": kind,
            "size": e.size or 0,
            "name": e.path.rsplit("/", 1)[-1],
            "path": e.path,
            "sha": e.sha,
            "url": self_url,
            "git_url": git_url,
            "html_url": html_url,
            "download_url": f"{web}/raw/{ref}/{e.path}" if e.type == "blob" else None,
            "_links": {"self": self_url, "git": git_url, "html": html_url},
        }
        if with_content is not None:
            data["content"] = base64.encodebytes(with_content).decode("ascii")
            data["encoding"] = "base64"
        return data

    if not path:
        return Response(200, [entry_json(e) for e in git.ls_tree(sha)])
    entry = git.entry_at(sha, path)
    if entry is None:
        raise not_found()
    if entry.type == "tree":
        return Response(200, [entry_json(e) for e in git.ls_tree(sha, path + "/")])
    if entry.type != "blob":
        raise not_found()
    return Response(200, entry_json(entry, git.read_blob(entry.sha)))


def compare(app: ForgeApp, req: Request) -> Response:
    repo, git = app.repo(req)
    o, n = repo["owner"], repo["name"]
    base_rev, sep, head_rev = req.params["spec"].partition("...")
    if not sep:
        raise not_found()
    base_sha, head_sha = git.resolve_commit(base_rev), git.resolve_commit(head_rev)
    if base_sha is None or head_sha is None:
        raise not_found()
    merge_base = git.merge_base(base_sha, head_sha)
    if merge_base is None:
        raise ApiError(404, f"No common ancestor between {base_rev} and {head_rev}.")
    ahead = git.rev_list(merge_base, head_sha)
    behind = git.rev_list(merge_base, base_sha)
    status = (
        "identical" if not ahead and not behind else "ahead" if not behind else "behind" if not ahead else "diverged"
    )
    diffs = git.diff(merge_base, head_sha, patches=True)

    def commit_json(sha: str) -> dict[str, Any]:
        info = git.read_commit(sha)
        assert info is not None
        return gitdata.commit_json(app, repo, info)

    api, web = app.urls.repo(o, n), app.urls.repo_web(o, n)
    spec = f"{base_rev}...{head_rev}"
    data = {
        "url": f"{api}/compare/{spec}",
        "html_url": f"{web}/compare/{spec}",
        "permalink_url": f"{web}/compare/{o}:{base_sha}...{o}:{head_sha}",
        "diff_url": f"{web}/compare/{spec}.diff",
        "patch_url": f"{web}/compare/{spec}.patch",
        "base_commit": commit_json(base_sha),
        "merge_base_commit": commit_json(merge_base),
        "status": status,
        "ahead_by": len(ahead),
        "behind_by": len(behind),
        "total_commits": len(ahead),
        "commits": [commit_json(s) for s in ahead[:250]],
        "files": [shapes.diff_entry(d, app.urls, o, n, head_sha) for d in diffs[:300]],
    }
    return Response(200, data)
