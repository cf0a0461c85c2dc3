"""Branches and branch protection: a branch, its protection (GET, PUT, DELETE) and required signatures.

The stored protection is validated here the way GitHub validates a PUT; what it then enforces on ref
writes and merges is :mod:`bot.forge.server.protection`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.forge.server import shapes
from bot.forge.server.api import ApiError, Request, Response, not_implemented
from bot.forge.server.routes import gitdata

if TYPE_CHECKING:
    from bot.forge.server.app import ForgeApp


def protection_json(app: ForgeApp, repo: Any, branch: str, config: dict[str, Any]) -> dict[str, Any]:
    url = f"{app.urls.repo(repo['owner'], repo['name'])}/branches/{branch}/protection"
    data: dict[str, Any] = {
        "url": url,
        "enabled": True,
        "enforce_admins": {"url": f"{url}/enforce_admins", "enabled": bool(config.get("enforce_admins"))},
        "required_signatures": {
            "url": f"{url}/required_signatures",
            "enabled": bool(config.get("required_signatures")),
        },
        "required_linear_history": {"enabled": bool(config.get("required_linear_history"))},
        "allow_force_pushes": {"enabled": bool(config.get("allow_force_pushes"))},
        "allow_deletions": {"enabled": bool(config.get("allow_deletions"))},
    }
    checks = config.get("required_status_checks")
    if checks is not None:
        contexts = list(checks.get("contexts") or [])
        apps = checks.get("apps") or {}
        data["required_status_checks"] = {
            "url": f"{url}/required_status_checks",
            "enforcement_level": "non_admins",
            "contexts": contexts,
            "checks": [{"context": c, "app_id": apps.get(c)} for c in contexts],
            "contexts_url": f"{url}/required_status_checks/contexts",
            "strict": bool(checks.get("strict")),
        }
    reviews = config.get("required_pull_request_reviews")
    if reviews is not None:
        data["required_pull_request_reviews"] = {
            "url": f"{url}/required_pull_request_reviews",
            "dismiss_stale_reviews": bool(reviews.get("dismiss_stale_reviews")),
            "require_code_owner_reviews": bool(reviews.get("require_code_owner_reviews")),
            "required_approving_review_count": int(reviews.get("required_approving_review_count", 1)),
            "require_last_push_approval": bool(reviews.get("require_last_push_approval")),
        }
        bypass = reviews.get("bypass_users") or []
        if bypass:
            users = [app.store.user_by_login(login) for login in bypass]
            data["required_pull_request_reviews"]["bypass_pull_request_allowances"] = {
                "users": [shapes.user(u, app.urls) for u in users if u is not None],
                "teams": [],
                "apps": [],
            }
    restrictions = config.get("restrictions")
    if restrictions is not None:
        data["restrictions"] = _restrictions_json(app, repo, url, restrictions)
    return data


def _restrictions_json(app: ForgeApp, repo: Any, url: str, restrictions: dict[str, Any]) -> dict[str, Any]:
    users = [app.store.user_by_login(login) for login in restrictions.get("users") or []]
    teams = [app.store.team(repo["owner"], slug) for slug in restrictions.get("teams") or []]
    return {
        "url": f"{url}/restrictions",
        "users_url": f"{url}/restrictions/users",
        "teams_url": f"{url}/restrictions/teams",
        "apps_url": f"{url}/restrictions/apps",
        "users": [shapes.user(u, app.urls) for u in users if u is not None],
        "teams": [shapes.team(t, app.urls, repo["owner"]) for t in teams if t is not None],
        "apps": [],
    }


def _protection_config(
    app: ForgeApp, repo: Any, body: dict[str, Any], previous: dict[str, Any] | None
) -> dict[str, Any]:
    """The stored form of a PUT body, validated the way GitHub validates it (422 on a bad value)."""
    for key in ("required_status_checks", "enforce_admins", "required_pull_request_reviews", "restrictions"):
        if key not in body:
            raise ApiError(422, f'Invalid request.\n\n"{key}" wasn\'t supplied.')
    checks = body["required_status_checks"]
    if checks is not None:
        if not isinstance(checks, dict):
            raise ApiError(422, "Invalid request.\n\nrequired_status_checks must be an object or null.")
        # PyGithub sends "checks" ([{context, app_id}]); older clients send "contexts" ([str]). An app id is kept
        # and reported as GitHub does; this forge has no apps, so it cannot enforce one (its gate checks creators)
        listed = checks.get("checks")
        contexts = [c.get("context") for c in listed if isinstance(c, dict)] if listed else checks.get("contexts")
        apps = {
            str(c["context"]): c["app_id"]
            for c in listed or []
            if isinstance(c, dict) and isinstance(c.get("app_id"), int) and c["app_id"] > 0 and c.get("context")
        }
        checks = {"strict": bool(checks.get("strict")), "contexts": [str(c) for c in contexts or [] if c], "apps": apps}
    reviews = body["required_pull_request_reviews"]
    if reviews is not None:
        if not isinstance(reviews, dict):
            raise ApiError(422, "Invalid request.\n\nrequired_pull_request_reviews must be an object or null.")
        count = reviews.get("required_approving_review_count", 1)
        if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= 6:
            raise ApiError(422, "Invalid request.\n\nrequired_approving_review_count must be 0 to 6.")
        allowances = reviews.get("bypass_pull_request_allowances") or {}
        if not isinstance(allowances, dict):
            raise ApiError(422, "Invalid request.\n\nbypass_pull_request_allowances must be an object.")
        bypass = [str(u) for u in allowances.get("users") or []]
        missing = [u for u in bypass if app.store.user_by_login(u) is None]
        if missing or allowances.get("teams") or allowances.get("apps"):
            what = ", ".join(missing) or "teams and apps (this forge takes users only)"
            raise ApiError(422, f"Validation Failed: bypass_pull_request_allowances: {what}")
        reviews = {
            "dismiss_stale_reviews": bool(reviews.get("dismiss_stale_reviews")),
            "require_code_owner_reviews": bool(reviews.get("require_code_owner_reviews")),
            "required_approving_review_count": count,
            "require_last_push_approval": bool(reviews.get("require_last_push_approval")),
            "bypass_users": bypass,
        }
    restrictions = body["restrictions"]
    if restrictions is not None:
        if not isinstance(restrictions, dict):
            raise ApiError(422, "Invalid request.\n\nrestrictions must be an object or null.")
        users = [str(u) for u in restrictions.get("users") or []]
        teams = [str(t) for t in restrictions.get("teams") or []]
        unknown = [u for u in users if app.store.user_by_login(u) is None]
        unknown += [t for t in teams if app.store.team(repo["owner"], t) is None]
        if unknown:
            raise ApiError(422, f"Validation Failed: no such users or teams: {', '.join(unknown)}")
        restrictions = {"users": users, "teams": teams, "apps": [str(a) for a in restrictions.get("apps") or []]}
    return {
        "required_status_checks": checks,
        "enforce_admins": bool(body["enforce_admins"]),
        "required_pull_request_reviews": reviews,
        "restrictions": restrictions,
        "required_linear_history": bool(body.get("required_linear_history")),
        "allow_force_pushes": bool(body.get("allow_force_pushes")),
        "allow_deletions": bool(body.get("allow_deletions")),
        # GitHub keeps required signatures across a PUT: they have their own endpoint
        "required_signatures": bool((previous or {}).get("required_signatures")),
    }


def get_protection(app: ForgeApp, req: Request) -> Response:
    repo, _ = app.repo(req)
    config = app.store.protection(repo["id"], req.params["branch"])
    if config is None:
        raise ApiError(404, "Branch not protected")
    return Response(200, protection_json(app, repo, req.params["branch"], config))


def put_protection(app: ForgeApp, req: Request) -> Response:
    app.require(req, {"admin"}, "change branch protection")
    repo, git = app.repo(req)
    branch = req.params["branch"]
    if git.ref(f"refs/heads/{branch}") is None:
        raise ApiError(404, "Branch not found")
    body = req.body if isinstance(req.body, dict) else {}
    config = _protection_config(app, repo, body, app.store.protection(repo["id"], branch))
    app.store.set_protection(repo["id"], branch, config)
    return Response(200, protection_json(app, repo, branch, config))


def delete_protection(app: ForgeApp, req: Request) -> Response:
    app.require(req, {"admin"}, "change branch protection")
    repo, _ = app.repo(req)
    app.store.set_protection(repo["id"], req.params["branch"], None)
    return Response(204)


def required_signatures(app: ForgeApp, req: Request) -> Response:
    """``.../protection/required_signatures``: GET reads, POST enables, DELETE disables (admins only)."""
    enabled = {"GET": None, "POST": True, "DELETE": False}[req.method]
    if enabled is not None:
        app.require(req, {"admin"}, "change branch protection")
    repo, _ = app.repo(req)
    branch = req.params["branch"]
    config = app.store.protection(repo["id"], branch)
    if config is None:
        raise ApiError(404, "Branch not protected")
    if enabled is not None:
        config = {**config, "required_signatures": enabled}
        app.store.set_protection(repo["id"], branch, config)
        if not enabled:
            return Response(204)
    return Response(200, protection_json(app, repo, branch, config)["required_signatures"])


def get_branch(app: ForgeApp, req: Request) -> Response:
    repo, git = app.repo(req)
    branch = req.params["branch"]
    sha = git.ref(f"refs/heads/{branch}")
    if sha is None:
        name, sep, _rest = branch.partition("/protection/")
        if sep and git.ref(f"refs/heads/{name}") is not None:
            # ``.../protection/required_status_checks`` and the like: GitHub serves them, this forge does not
            raise not_implemented(req.method, req.path)
        raise ApiError(404, "Branch not found")
    info = git.read_commit(sha)
    assert info is not None
    config = app.store.protection(repo["id"], branch)
    base = app.urls.repo(repo["owner"], repo["name"])
    data = {
        "name": branch,
        "commit": gitdata.commit_json(app, repo, info),
        "_links": {
            "self": f"{base}/branches/{branch}",
            "html": f"{app.urls.repo_web(repo['owner'], repo['name'])}/tree/{branch}",
        },
        "protected": config is not None,
        "protection": protection_json(app, repo, branch, config) if config else {"enabled": False},
        "protection_url": f"{base}/branches/{branch}/protection",
    }
    return Response(200, data)


def list_branches(app: ForgeApp, req: Request) -> Response:
    """``GET /repos/{owner}/{repo}/branches``, by name, optionally only the (un)protected ones."""
    repo, git = app.repo(req)
    wanted = req.query.get("protected")
    if wanted not in (None, "true", "false"):
        raise ApiError(422, "Invalid value for protected: give true or false")
    base = app.urls.repo(repo["owner"], repo["name"])
    items = []
    for ref, sha in git.refs("refs/heads/"):
        name = ref.removeprefix("refs/heads/")
        config = app.store.protection(repo["id"], name)
        if wanted is not None and (config is not None) != (wanted == "true"):
            continue
        items.append(
            {
                "name": name,
                "commit": {"sha": sha, "url": f"{base}/commits/{sha}"},
                "protected": config is not None,
                "protection": protection_json(app, repo, name, config) if config else {"enabled": False},
                "protection_url": f"{base}/branches/{name}/protection",
            }
        )
    return app.page(req, sorted(items, key=lambda b: b["name"]))
