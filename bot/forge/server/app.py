"""The embedded forge's request handling: authentication, permissions, routing and the GitHub REST subset.

:class:`ForgeApp` turns one request (method, path, headers, body) into one response, independent of the
HTTP server around it (:mod:`bot.forge.server.http`). It enforces what GitHub enforces and glassbox relies
on: token auth; agents confined to ``refs/heads/glassbox/<agent-id>/`` and to opening PRs (never reviewing,
merging, setting statuses or touching a protected branch); no self-approval; reviews pinned to the head
they were given on; merges gated by branch protection (green required contexts on the head, enough
approvals on the current head, and with ``require_last_push_approval`` an approval from someone other than
the last pusher of the head) and by the expected head SHA. Every branch move records who made it.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import urllib.parse
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.forge.model import GitIdentity, commit_payload
from bot.forge.server import shapes
from bot.forge.server.faults import Fault, FaultPlan
from bot.forge.server.gitrepo import ZERO_SHA, BareRepo, CommitInfo, GitFailed, NewEntry
from bot.forge.server.store import Store, User, now_iso

API_PREFIX = "/api/v3"
ADMIN_PREFIX = "/_glassbox"
AGENT_REF_PREFIX = "refs/heads/glassbox/"
MERGERS = {"human", "bot", "admin"}
STATUS_SETTERS = {"human", "ci", "bot", "deployer", "admin"}
_SHA = re.compile(r"^[0-9a-f]{40}$")
LAST_PUSH_RULE = "The most recent push must be approved by someone other than the person who pushed it."


class ApiError(Exception):
    def __init__(self, status: int, message: str, doc: str = "", errors: list[Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.doc = doc
        self.errors = errors

    def body(self) -> dict[str, Any]:
        data = shapes.error(self.message, self.doc)
        if self.errors:
            data["errors"] = self.errors
        return data


def not_found() -> ApiError:
    return ApiError(404, "Not Found")


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    user: User | None
    params: dict[str, str] = field(default_factory=dict)


@dataclass
class Response:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False

    def encoded(self) -> bytes:
        if self.body is None:
            return b""
        return json.dumps(self.body, separators=(",", ":")).encode("utf-8")


Handler = Callable[[Request], Response]


def repo_path(data_dir: Path, full_name: str) -> Path:
    """Where the bare repository of ``owner/name`` lives: clones for CI and deploy come from here."""
    owner, _, name = full_name.partition("/")
    return data_dir / "repos" / owner / f"{name}.git"


def _person(data: Any, fallback: User, when: datetime) -> GitIdentity:
    if not isinstance(data, dict):
        return GitIdentity(name=fallback.name, email=fallback.email, date=when)
    date_raw = data.get("date")
    date = datetime.fromisoformat(str(date_raw).replace("Z", "+00:00")) if date_raw else when
    return GitIdentity(
        name=str(data.get("name") or fallback.name), email=str(data.get("email") or fallback.email), date=date
    )


def _int(value: str | None, default: int, low: int, high: int) -> int:
    try:
        number = int(value) if value is not None else default
    except ValueError:
        raise ApiError(422, f"Invalid value {value!r}") from None
    return max(low, min(high, number))


class ForgeApp:
    """One forge: a data directory holding ``forge.sqlite3``, ``repos/`` and optional ``faults.json``."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.store = Store(data_dir / "forge.sqlite3")
        self.urls = shapes.Urls("http://127.0.0.1")
        faults_file = data_dir / "faults.json"
        self.faults = (
            FaultPlan.from_json(json.loads(faults_file.read_text(encoding="utf-8")))
            if faults_file.exists()
            else FaultPlan()
        )
        self.stats: Counter[str] = Counter()
        self._stats_lock = threading.Lock()
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self._register_routes()

    def close(self) -> None:
        self.store.close()

    # ----------------------------------------------------------------------------------------------
    # dispatch

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        self.routes.append((method, re.compile("^" + pattern + "$"), handler))

    def handle(self, method: str, raw_path: str, headers: dict[str, str], raw_body: bytes) -> Response:
        parsed = urllib.parse.urlsplit(raw_path)
        path = urllib.parse.unquote(parsed.path)
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(parsed.query, keep_blank_values=True).items()}
        try:
            user = self._authenticate(headers)
            body = self._parse_body(raw_body)
            if path.startswith(ADMIN_PREFIX + "/"):
                return self._admin(method, path.removeprefix(ADMIN_PREFIX), user, body)
            if not path.startswith(API_PREFIX + "/"):
                raise not_found()
            api_path = path.removeprefix(API_PREFIX)
            with self._stats_lock:
                self.stats["requests"] += 1
                self.stats[f"{method} {self._route_name(method, api_path)}"] += 1
            fault = self.faults.decide(method, api_path, raw_body)
            if fault is not None and fault.when == "before":
                return self._fault_response(fault)
            if user is None:
                raise ApiError(401, "Requires authentication")
            response = self._dispatch(Request(method, api_path, query, body, user))
            if fault is not None:
                return self._fault_response(fault)
            return response
        except ApiError as exc:
            return Response(exc.status, exc.body())

    def _route_name(self, method: str, path: str) -> str:
        for verb, pattern, _ in self.routes:
            if verb == method and pattern.match(path):
                return pattern.pattern
        return "unknown"

    def _dispatch(self, req: Request) -> Response:
        for verb, pattern, handler in self.routes:
            match = pattern.match(req.path) if verb == req.method else None
            if match:
                req.params = {k: v for k, v in match.groupdict().items() if v is not None}
                with self.store.lock:
                    return handler(req)
        # GitHub answers an unknown path, or a known path with an unsupported method, with a plain 404
        raise not_found()

    def _authenticate(self, headers: dict[str, str]) -> User | None:
        value = headers.get("authorization", "")
        scheme, _, token = value.partition(" ")
        if not value:
            return None
        if scheme.lower() not in ("token", "bearer") or not token.strip():
            raise ApiError(401, "Bad credentials")
        with self.store.lock:
            user = self.store.user_by_token(token.strip())
        if user is None:
            raise ApiError(401, "Bad credentials")
        return user

    @staticmethod
    def _parse_body(raw: bytes) -> Any:
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise ApiError(400, "Problems parsing JSON") from None

    @staticmethod
    def _fault_response(fault: Fault) -> Response:
        if fault.kind == "drop":
            return Response(0, drop=True)
        if fault.kind == "429":
            return Response(429, shapes.error("API rate limit exceeded"), {"Retry-After": str(fault.retry_after)})
        if fault.kind == "secondary":
            return Response(
                403,
                shapes.error(
                    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
                ),
                {"Retry-After": str(fault.retry_after)},
            )
        return Response(502, {"message": "Server Error"})

    def _admin(self, method: str, path: str, user: User | None, body: Any) -> Response:
        if user is None or user.kind != "admin":
            raise ApiError(401 if user is None else 403, "Requires the forge admin token")
        if path == "/faults":
            if method == "GET":
                return Response(200, self.faults.to_json())
            if method == "POST":
                try:
                    self.faults = FaultPlan.from_json(body or {})
                except (TypeError, ValueError) as exc:
                    raise ApiError(422, f"Invalid fault plan: {exc}") from None
                return Response(200, self.faults.to_json())
            if method == "DELETE":
                self.faults = FaultPlan()
                return Response(204)
        if path == "/stats":
            if method == "GET":
                with self._stats_lock:
                    return Response(200, dict(self.stats))
            if method == "DELETE":
                with self._stats_lock:
                    self.stats.clear()
                return Response(204)
        raise not_found()

    # ----------------------------------------------------------------------------------------------
    # helpers

    def _repo(self, req: Request) -> tuple[Any, BareRepo]:
        row = self.store.repo(req.params["owner"], req.params["repo"])
        if row is None:
            raise not_found()
        return row, BareRepo(repo_path(self.data_dir, f"{row['owner']}/{row['name']}"))

    def _commit(self, git: BareRepo, rev: str) -> CommitInfo:
        sha = git.resolve_commit(rev)
        info = git.read_commit(sha) if sha else None
        if info is None:
            raise ApiError(422, f"No commit found for SHA: {rev}")
        return info

    def _page(self, req: Request, items: list[Any], default: int = 30) -> Response:
        per_page = _int(req.query.get("per_page"), default, 1, 100)
        page = _int(req.query.get("page"), 1, 1, 10**6)
        start = (page - 1) * per_page
        chunk = items[start : start + per_page]
        last = max(1, -(-len(items) // per_page))
        links = []
        base = f"{self.urls.api}{req.path}"

        def at(n: int) -> str:
            q = {**req.query, "per_page": str(per_page), "page": str(n)}
            return f"{base}?{urllib.parse.urlencode(q)}"

        if page < last:
            links += [f'<{at(page + 1)}>; rel="next"', f'<{at(last)}>; rel="last"']
        if page > 1:
            links += [f'<{at(1)}>; rel="first"', f'<{at(page - 1)}>; rel="prev"']
        headers = {"Link": ", ".join(links)} if links else {}
        return Response(200, chunk, headers)

    def _require(self, req: Request, kinds: set[str], what: str) -> User:
        assert req.user is not None
        if req.user.kind not in kinds:
            raise ApiError(403, f"Resource not accessible by integration: {req.user.kind} identities cannot {what}")
        return req.user

    def _check_ref_write(self, req: Request, repo: Any, ref: str) -> None:
        """Agents write only under their own namespace; nobody moves a protected branch through the API."""
        assert req.user is not None
        if not ref.startswith("refs/heads/") or ".." in ref or ref.endswith("/") or "//" in ref:
            raise ApiError(422, "Reference name is invalid")
        if req.user.kind == "agent" and not ref.startswith(f"{AGENT_REF_PREFIX}{req.user.login}/"):
            raise ApiError(
                403,
                f"Resource not accessible by integration: agent {req.user.login} may only write "
                f"{AGENT_REF_PREFIX}{req.user.login}/*",
            )
        if req.user.kind not in ("agent", "human", "bot", "admin"):
            raise ApiError(403, f"Resource not accessible by integration: {req.user.kind} identities cannot push")
        branch = ref.removeprefix("refs/heads/")
        protection = self.store.protection(repo["id"], branch)
        if protection is not None and not (req.user.kind == "admin" and not protection.get("enforce_admins")):
            raise ApiError(422, f"Protected branch update failed for {ref}.")

    def _open_issues(self, repo_id: int) -> int:
        row = self.store.one("SELECT COUNT(*) AS n FROM pulls WHERE repo_id = ? AND state = 'open'", repo_id)
        return int(row["n"]) if row else 0

    def _repo_json(self, repo: Any, full: bool = False) -> dict[str, Any]:
        return shapes.repository(repo, self.urls, self._open_issues(repo["id"]), full=full)

    def _commit_json(self, repo: Any, info: CommitInfo) -> dict[str, Any]:
        """The ``commit`` schema, with ``author``/``committer`` the accounts matching the git emails, as GitHub."""
        author = self.store.user_by_email(info.author.email)
        committer = (
            author
            if info.committer.email.lower() == info.author.email.lower()
            else self.store.user_by_email(info.committer.email)
        )
        return shapes.commit(info, self.urls, repo["owner"], repo["name"], author, committer)

    def _user_json(self, user_id: int) -> dict[str, Any] | None:
        user = self.store.user_by_id(user_id)
        return shapes.user(user, self.urls) if user else None

    # ----------------------------------------------------------------------------------------------
    # routes

    def _register_routes(self) -> None:
        repo = r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)"
        r = self.route
        r("GET", r"/user", self.get_user)
        r("GET", r"/users/(?P<login>[^/]+)", self.get_named_user)
        r("GET", repo, self.get_repo)
        signatures = repo + r"/branches/(?P<branch>.+)/protection/required_signatures"
        for verb in ("GET", "POST", "DELETE"):
            r(verb, signatures, self.required_signatures)
        r("GET", repo + r"/branches/(?P<branch>.+)/protection", self.get_protection)
        r("PUT", repo + r"/branches/(?P<branch>.+)/protection", self.put_protection)
        r("DELETE", repo + r"/branches/(?P<branch>.+)/protection", self.delete_protection)
        r("GET", repo + r"/branches/(?P<branch>.+)", self.get_branch)
        r("GET", repo + r"/git/ref/(?P<ref>.+)", self.get_ref)
        r("GET", repo + r"/git/refs", self.list_refs)
        r("GET", repo + r"/git/refs/(?P<ref>.+)", self.get_ref)
        r("GET", repo + r"/git/matching-refs/(?P<ref>.*)", self.list_refs)
        r("POST", repo + r"/git/refs", self.create_ref)
        r("PATCH", repo + r"/git/refs/(?P<ref>.+)", self.update_ref)
        r("DELETE", repo + r"/git/refs/(?P<ref>.+)", self.delete_ref)
        r("POST", repo + r"/git/trees", self.create_tree)
        r("GET", repo + r"/git/trees/(?P<sha>[^/]+)", self.get_tree)
        r("POST", repo + r"/git/commits", self.create_commit)
        r("GET", repo + r"/git/commits/(?P<sha>[0-9a-f]{40})", self.get_git_commit)
        r("GET", repo + r"/git/blobs/(?P<sha>[0-9a-f]{40})", self.get_blob)
        r("GET", repo + r"/pulls", self.list_pulls)
        r("POST", repo + r"/pulls", self.create_pull)
        r("GET", repo + r"/pulls/(?P<number>\d+)", self.get_pull)
        r("PATCH", repo + r"/pulls/(?P<number>\d+)", self.update_pull)
        r("GET", repo + r"/pulls/(?P<number>\d+)/files", self.list_pull_files)
        r("GET", repo + r"/pulls/(?P<number>\d+)/commits", self.list_pull_commits)
        r("GET", repo + r"/pulls/(?P<number>\d+)/reviews", self.list_reviews)
        r("POST", repo + r"/pulls/(?P<number>\d+)/reviews", self.create_review)
        r("GET", repo + r"/pulls/(?P<number>\d+)/merge", self.get_merged)
        r("PUT", repo + r"/pulls/(?P<number>\d+)/merge", self.merge_pull)
        r("GET", repo + r"/issues/(?P<number>\d+)/labels", self.list_labels)
        r("POST", repo + r"/issues/(?P<number>\d+)/labels", self.add_labels)
        r("DELETE", repo + r"/issues/(?P<number>\d+)/labels/(?P<name>.+)", self.remove_label)
        r("GET", repo + r"/issues/(?P<number>\d+)/comments", self.list_comments)
        r("POST", repo + r"/issues/(?P<number>\d+)/comments", self.create_comment)
        r("POST", repo + r"/statuses/(?P<sha>[^/]+)", self.create_status)
        r("GET", repo + r"/statuses/(?P<ref>.+)", self.list_statuses)
        r("GET", repo + r"/commits/(?P<ref>.+)/status", self.combined_status)
        r("GET", repo + r"/commits/(?P<ref>.+)/statuses", self.list_statuses)
        r("GET", repo + r"/commits/(?P<ref>.+)", self.get_commit)
        r("GET", repo + r"/contents/(?P<path>.*)", self.get_contents)
        r("GET", repo + r"/compare/(?P<spec>.+)", self.compare)
        r("GET", r"/orgs/(?P<org>[^/]+)/teams/(?P<slug>[^/]+)/members", self.team_members)

    # users ----------------------------------------------------------------------------------------

    def get_user(self, req: Request) -> Response:
        assert req.user is not None
        row = self.store.one("SELECT created_at FROM users WHERE id = ?", req.user.id)
        data = shapes.full_user(req.user, self.urls, row["created_at"] if row else now_iso())
        data.update(
            {
                "private_gists": 0,
                "total_private_repos": 0,
                "owned_private_repos": 0,
                "disk_usage": 0,
                "collaborators": 0,
                "two_factor_authentication": False,
            }
        )
        return Response(200, data)

    def get_named_user(self, req: Request) -> Response:
        user = self.store.user_by_login(req.params["login"])
        if user is None:
            raise not_found()
        row = self.store.one("SELECT created_at FROM users WHERE id = ?", user.id)
        return Response(200, shapes.full_user(user, self.urls, row["created_at"] if row else now_iso()))

    def get_repo(self, req: Request) -> Response:
        repo, _ = self._repo(req)
        return Response(200, self._repo_json(repo, full=True))

    # branches and protection ----------------------------------------------------------------------

    def _protection_json(self, repo: Any, branch: str, config: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.urls.repo(repo['owner'], repo['name'])}/branches/{branch}/protection"
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
            data["required_status_checks"] = {
                "url": f"{url}/required_status_checks",
                "enforcement_level": "non_admins",
                "contexts": contexts,
                "checks": [{"context": c, "app_id": None} for c in contexts],
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
        restrictions = config.get("restrictions")
        if restrictions is not None:
            data["restrictions"] = self._restrictions_json(repo, url, restrictions)
        return data

    def _restrictions_json(self, repo: Any, url: str, restrictions: dict[str, Any]) -> dict[str, Any]:
        users = [self.store.user_by_login(login) for login in restrictions.get("users") or []]
        teams = [self.store.team(repo["owner"], slug) for slug in restrictions.get("teams") or []]
        org_url = f"{self.urls.api}/orgs/{repo['owner']}"
        return {
            "url": f"{url}/restrictions",
            "users_url": f"{url}/restrictions/users",
            "teams_url": f"{url}/restrictions/teams",
            "apps_url": f"{url}/restrictions/apps",
            "users": [shapes.user(u, self.urls) for u in users if u is not None],
            "teams": [
                {
                    "id": t["id"],
                    "node_id": shapes.node_id("Team", t["id"]),
                    "url": f"{org_url}/teams/{t['slug']}",
                    "name": t["name"],
                    "slug": t["slug"],
                    "description": t["description"],
                    "permission": "push",
                    "privacy": "closed",
                    "html_url": f"{self.urls.web}/orgs/{repo['owner']}/teams/{t['slug']}",
                    "members_url": f"{org_url}/teams/{t['slug']}/members{{/member}}",
                    "repositories_url": f"{org_url}/teams/{t['slug']}/repos",
                    "parent": None,
                    "type": "organization",
                }
                for t in teams
                if t is not None
            ],
            "apps": [],
        }

    def _protection_config(self, repo: Any, body: dict[str, Any], previous: dict[str, Any] | None) -> dict[str, Any]:
        """The stored form of a PUT body, validated the way GitHub validates it (422 on a bad value)."""
        for key in ("required_status_checks", "enforce_admins", "required_pull_request_reviews", "restrictions"):
            if key not in body:
                raise ApiError(422, f'Invalid request.\n\n"{key}" wasn\'t supplied.')
        checks = body["required_status_checks"]
        if checks is not None:
            if not isinstance(checks, dict):
                raise ApiError(422, "Invalid request.\n\nrequired_status_checks must be an object or null.")
            # PyGithub sends "checks" ([{context, app_id}]); older clients send "contexts" ([str])
            listed = checks.get("checks")
            contexts = [c.get("context") for c in listed if isinstance(c, dict)] if listed else checks.get("contexts")
            checks = {"strict": bool(checks.get("strict")), "contexts": [str(c) for c in contexts or [] if c]}
        reviews = body["required_pull_request_reviews"]
        if reviews is not None:
            if not isinstance(reviews, dict):
                raise ApiError(422, "Invalid request.\n\nrequired_pull_request_reviews must be an object or null.")
            count = reviews.get("required_approving_review_count", 1)
            if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= 6:
                raise ApiError(422, "Invalid request.\n\nrequired_approving_review_count must be 0 to 6.")
            reviews = {
                "dismiss_stale_reviews": bool(reviews.get("dismiss_stale_reviews")),
                "require_code_owner_reviews": bool(reviews.get("require_code_owner_reviews")),
                "required_approving_review_count": count,
                "require_last_push_approval": bool(reviews.get("require_last_push_approval")),
            }
        restrictions = body["restrictions"]
        if restrictions is not None:
            if not isinstance(restrictions, dict):
                raise ApiError(422, "Invalid request.\n\nrestrictions must be an object or null.")
            users = [str(u) for u in restrictions.get("users") or []]
            teams = [str(t) for t in restrictions.get("teams") or []]
            unknown = [u for u in users if self.store.user_by_login(u) is None]
            unknown += [t for t in teams if self.store.team(repo["owner"], t) is None]
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

    def get_protection(self, req: Request) -> Response:
        repo, _ = self._repo(req)
        config = self.store.protection(repo["id"], req.params["branch"])
        if config is None:
            raise ApiError(404, "Branch not protected")
        return Response(200, self._protection_json(repo, req.params["branch"], config))

    def put_protection(self, req: Request) -> Response:
        self._require(req, {"admin"}, "change branch protection")
        repo, git = self._repo(req)
        branch = req.params["branch"]
        if git.ref(f"refs/heads/{branch}") is None:
            raise ApiError(404, "Branch not found")
        body = req.body if isinstance(req.body, dict) else {}
        config = self._protection_config(repo, body, self.store.protection(repo["id"], branch))
        self.store.set_protection(repo["id"], branch, config)
        return Response(200, self._protection_json(repo, branch, config))

    def delete_protection(self, req: Request) -> Response:
        self._require(req, {"admin"}, "change branch protection")
        repo, _ = self._repo(req)
        self.store.set_protection(repo["id"], req.params["branch"], None)
        return Response(204)

    def required_signatures(self, req: Request) -> Response:
        """``.../protection/required_signatures``: GET reads, POST enables, DELETE disables (admins only)."""
        enabled = {"GET": None, "POST": True, "DELETE": False}[req.method]
        if enabled is not None:
            self._require(req, {"admin"}, "change branch protection")
        repo, _ = self._repo(req)
        branch = req.params["branch"]
        config = self.store.protection(repo["id"], branch)
        if config is None:
            raise ApiError(404, "Branch not protected")
        if enabled is not None:
            config = {**config, "required_signatures": enabled}
            self.store.set_protection(repo["id"], branch, config)
            if not enabled:
                return Response(204)
        return Response(200, self._protection_json(repo, branch, config)["required_signatures"])

    def get_branch(self, req: Request) -> Response:
        repo, git = self._repo(req)
        branch = req.params["branch"]
        sha = git.ref(f"refs/heads/{branch}")
        if sha is None:
            raise ApiError(404, "Branch not found")
        info = git.read_commit(sha)
        assert info is not None
        config = self.store.protection(repo["id"], branch)
        base = self.urls.repo(repo["owner"], repo["name"])
        data = {
            "name": branch,
            "commit": self._commit_json(repo, info),
            "_links": {
                "self": f"{base}/branches/{branch}",
                "html": f"{self.urls.repo_web(repo['owner'], repo['name'])}/tree/{branch}",
            },
            "protected": config is not None,
            "protection": self._protection_json(repo, branch, config) if config else {"enabled": False},
            "protection_url": f"{base}/branches/{branch}/protection",
        }
        return Response(200, data)

    # refs -----------------------------------------------------------------------------------------

    def get_ref(self, req: Request) -> Response:
        repo, git = self._repo(req)
        ref = "refs/" + req.params["ref"].removeprefix("refs/")
        sha = git.ref(ref)
        if sha is not None:
            return Response(200, shapes.git_ref(ref, sha, self.urls, repo["owner"], repo["name"]))
        matches = [(n, s) for n, s in git.refs(ref) if n.startswith(ref + "/")]
        if not matches or "/git/ref/" in req.path:
            raise not_found()
        return Response(200, [shapes.git_ref(n, s, self.urls, repo["owner"], repo["name"]) for n, s in matches])

    def list_refs(self, req: Request) -> Response:
        repo, git = self._repo(req)
        prefix = "refs/" + req.params.get("ref", "").removeprefix("refs/")
        items = [
            shapes.git_ref(n, s, self.urls, repo["owner"], repo["name"])
            for n, s in git.refs("refs/")
            if n.startswith(prefix)
        ]
        return self._page(req, items)

    def create_ref(self, req: Request) -> Response:
        repo, git = self._repo(req)
        body = req.body if isinstance(req.body, dict) else {}
        ref, sha = str(body.get("ref", "")), str(body.get("sha", ""))
        self._check_ref_write(req, repo, ref)
        if git.object_type(sha) != "commit":
            raise ApiError(422, "Object does not exist")
        if not git.update_ref(ref, sha, ZERO_SHA):
            raise ApiError(422, "Reference already exists")
        assert req.user is not None
        self.store.record_ref_update(repo["id"], ref, sha, req.user.id)
        self.store.touch_repo(repo["id"])
        return Response(201, shapes.git_ref(ref, sha, self.urls, repo["owner"], repo["name"]))

    def update_ref(self, req: Request) -> Response:
        repo, git = self._repo(req)
        ref = "refs/" + req.params["ref"].removeprefix("refs/")
        body = req.body if isinstance(req.body, dict) else {}
        sha = str(body.get("sha", ""))
        self._check_ref_write(req, repo, ref)
        old = git.ref(ref)
        if old is None:
            raise ApiError(422, "Reference does not exist")
        if git.object_type(sha) != "commit":
            raise ApiError(422, "Object does not exist")
        if not body.get("force") and not git.is_ancestor(old, sha):
            raise ApiError(422, "Update is not a fast forward")
        if not git.update_ref(ref, sha, old):
            raise ApiError(409, "Reference update failed: the reference moved; try again")
        assert req.user is not None
        self.store.record_ref_update(repo["id"], ref, sha, req.user.id)
        self.store.touch_repo(repo["id"])
        return Response(200, shapes.git_ref(ref, sha, self.urls, repo["owner"], repo["name"]))

    def delete_ref(self, req: Request) -> Response:
        repo, git = self._repo(req)
        ref = "refs/" + req.params["ref"].removeprefix("refs/")
        self._check_ref_write(req, repo, ref)
        if git.ref(ref) is None or not git.delete_ref(ref):
            raise ApiError(422, "Reference does not exist")
        assert req.user is not None
        self.store.record_ref_update(repo["id"], ref, ZERO_SHA, req.user.id)
        return Response(204)

    # git data -------------------------------------------------------------------------------------

    def _tree_json(self, repo: Any, git: BareRepo, sha: str, recursive: bool = False) -> dict[str, Any]:
        base = self.urls.repo(repo["owner"], repo["name"])
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

    def create_tree(self, req: Request) -> Response:
        repo, git = self._repo(req)
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
        try:
            sha = git.build_tree(base_tree, entries)
        except GitFailed as exc:
            raise ApiError(422, f"tree could not be built: {exc}") from None
        return Response(201, self._tree_json(repo, git, sha))

    def get_tree(self, req: Request) -> Response:
        repo, git = self._repo(req)
        sha = git.resolve(f"{req.params['sha']}^{{tree}}")
        if sha is None:
            raise not_found()
        recursive = req.query.get("recursive") not in (None, "", "0", "false")
        return Response(200, self._tree_json(repo, git, sha, recursive=recursive))

    def create_commit(self, req: Request) -> Response:
        repo, git = self._repo(req)
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
        return Response(201, shapes.git_commit(info, self.urls, repo["owner"], repo["name"]))

    def get_git_commit(self, req: Request) -> Response:
        repo, git = self._repo(req)
        info = git.read_commit(req.params["sha"])
        if info is None:
            raise not_found()
        return Response(200, shapes.git_commit(info, self.urls, repo["owner"], repo["name"]))

    def get_blob(self, req: Request) -> Response:
        repo, git = self._repo(req)
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
                "url": f"{self.urls.repo(repo['owner'], repo['name'])}/git/blobs/{sha}",
                "content": base64.b64encode(data).decode("ascii"),
                "encoding": "base64",
            },
        )

    def get_commit(self, req: Request) -> Response:
        repo, git = self._repo(req)
        sha = git.resolve_commit(req.params["ref"])
        info = git.read_commit(sha) if sha else None
        if info is None:
            raise ApiError(422, f"No commit found for SHA: {req.params['ref']}")
        data = self._commit_json(repo, info)
        parent = info.parents[0] if info.parents else None
        diffs = git.diff(parent, info.sha)
        data["files"] = [shapes.diff_entry(d, self.urls, repo["owner"], repo["name"], info.sha) for d in diffs]
        adds = sum(d.additions for d in diffs)
        dels = sum(d.deletions for d in diffs)
        data["stats"] = {"additions": adds, "deletions": dels, "total": adds + dels}
        return Response(200, data)

    # pull requests --------------------------------------------------------------------------------

    def _pull(self, req: Request) -> tuple[Any, BareRepo, Any]:
        repo, git = self._repo(req)
        pull = self.store.pull(repo["id"], int(req.params["number"]))
        if pull is None:
            raise not_found()
        return repo, git, pull

    def _heads(self, git: BareRepo, pull: Any) -> tuple[str, str]:
        """(head sha, base sha): live refs while open, frozen once closed."""
        if pull["state"] == "open":
            head = git.ref(f"refs/heads/{pull['head_ref']}") or pull["head_sha"]
            base = git.ref(f"refs/heads/{pull['base_ref']}") or pull["base_sha"]
            return head, base
        return pull["head_sha"], pull["base_sha"]

    def _pull_json(self, repo: Any, git: BareRepo, pull: Any, *, full: bool) -> dict[str, Any]:
        o, n = repo["owner"], repo["name"]
        api, web = self.urls.repo(o, n), self.urls.repo_web(o, n)
        num = pull["number"]
        head_sha, base_sha = self._heads(git, pull)
        author = self._user_json(pull["user_id"])
        repo_json = self._repo_json(repo)
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
            "labels": [shapes.label(lab, self.urls, o, n) for lab in self.store.labels_of(pull["id"])],
            "milestone": None,
            "active_lock_reason": None,
            "created_at": pull["created_at"],
            "updated_at": pull["updated_at"],
            "closed_at": pull["closed_at"],
            "merged_at": pull["merged_at"],
            "merge_commit_sha": pull["merge_commit_sha"],
            "assignee": None,
            "assignees": [],
            "requested_reviewers": [],
            "requested_teams": [],
            "head": {
                "label": f"{o}:{pull['head_ref']}",
                "ref": pull["head_ref"],
                "sha": head_sha,
                "user": shapes.owner(o, self.urls),
                "repo": repo_json,
            },
            "base": {
                "label": f"{o}:{pull['base_ref']}",
                "ref": pull["base_ref"],
                "sha": base_sha,
                "user": shapes.owner(o, self.urls),
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
            comments = self.store.one("SELECT COUNT(*) AS n FROM comments WHERE pull_id = ?", pull["id"])
            data.update(
                {
                    "merged": pull["merged_at"] is not None,
                    "mergeable": None if pull["state"] == "open" else False,
                    "rebaseable": None,
                    "mergeable_state": "unknown",
                    "merged_by": self._user_json(pull["merged_by"]) if pull["merged_by"] else None,
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

    def list_pulls(self, req: Request) -> Response:
        repo, git = self._repo(req)
        state = req.query.get("state", "open")
        sql, args = "SELECT * FROM pulls WHERE repo_id = ?", [repo["id"]]
        if state in ("open", "closed"):
            sql += " AND state = ?"
            args.append(state)
        head = req.query.get("head")
        if head:
            owner_, _, branch = head.rpartition(":")
            if owner_ and owner_ != repo["owner"]:
                return self._page(req, [])
            sql += " AND head_ref = ?"
            args.append(branch)
        if req.query.get("base"):
            sql += " AND base_ref = ?"
            args.append(req.query["base"])
        direction = "ASC" if req.query.get("direction") == "asc" else "DESC"
        rows = self.store.q(sql + f" ORDER BY number {direction}", *args)
        return self._page(req, [self._pull_json(repo, git, p, full=False) for p in rows])

    def create_pull(self, req: Request) -> Response:
        repo, git = self._repo(req)
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
        existing = self.store.one(
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
        number = self.store.next_number(repo["id"])
        self.store.insert(
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
        pull = self.store.pull(repo["id"], number)
        return Response(201, self._pull_json(repo, git, pull, full=True))

    def get_pull(self, req: Request) -> Response:
        repo, git, pull = self._pull(req)
        return Response(200, self._pull_json(repo, git, pull, full=True))

    def update_pull(self, req: Request) -> Response:
        repo, git, pull = self._pull(req)
        assert req.user is not None
        if req.user.kind == "agent" and pull["user_id"] != req.user.id:
            raise ApiError(403, "Resource not accessible by integration: agents may only edit their own PRs")
        body = req.body if isinstance(req.body, dict) else {}
        updates: dict[str, Any] = {}
        for key in ("title", "body"):
            if isinstance(body.get(key), str):
                updates[key] = body[key]
        state = body.get("state")
        if state in ("open", "closed") and state != pull["state"] and pull["merged_at"] is None:
            updates["state"] = state
            if state == "closed":
                head_sha, base_sha = self._heads(git, pull)
                updates.update(closed_at=now_iso(), head_sha=head_sha, base_sha=base_sha)
            else:
                updates["closed_at"] = None
        if updates:
            updates["updated_at"] = now_iso()
            sets = ", ".join(f"{k} = ?" for k in updates)
            self.store.db.execute(f"UPDATE pulls SET {sets} WHERE id = ?", (*updates.values(), pull["id"]))  # noqa: S608
            pull = self.store.pull(repo["id"], pull["number"])
        return Response(200, self._pull_json(repo, git, pull, full=True))

    def list_pull_files(self, req: Request) -> Response:
        repo, git, pull = self._pull(req)
        head_sha, base_sha = self._heads(git, pull)
        merge_base = git.merge_base(base_sha, head_sha) if pull["state"] == "open" else pull["base_sha"]
        diffs = git.diff(merge_base, head_sha)
        items = [shapes.diff_entry(d, self.urls, repo["owner"], repo["name"], head_sha) for d in diffs]
        return self._page(req, items)

    def list_pull_commits(self, req: Request) -> Response:
        repo, git, pull = self._pull(req)
        head_sha, base_sha = self._heads(git, pull)
        merge_base = git.merge_base(base_sha, head_sha) if pull["state"] == "open" else pull["base_sha"]
        items = []
        for sha in git.rev_list(merge_base, head_sha):
            info = git.read_commit(sha)
            assert info is not None
            items.append(self._commit_json(repo, info))
        return self._page(req, items)

    # reviews --------------------------------------------------------------------------------------

    def _review_json(self, repo: Any, pull: Any, row: Any) -> dict[str, Any]:
        api = self.urls.repo(repo["owner"], repo["name"])
        html = f"{self.urls.repo_web(repo['owner'], repo['name'])}/pull/{pull['number']}#pullrequestreview-{row['id']}"
        data = {
            "id": row["id"],
            "node_id": shapes.node_id("PullRequestReview", row["id"]),
            "user": self._user_json(row["user_id"]),
            "body": row["body"],
            "state": row["state"],
            "commit_id": row["commit_id"],
            "html_url": html,
            "pull_request_url": f"{api}/pulls/{pull['number']}",
            "_links": {"html": shapes.link(html), "pull_request": shapes.link(f"{api}/pulls/{pull['number']}")},
            "author_association": "MEMBER",
        }
        if row["state"] != "PENDING":
            data["submitted_at"] = row["submitted_at"]
        return data

    def list_reviews(self, req: Request) -> Response:
        repo, _git, pull = self._pull(req)
        rows = self.store.q("SELECT * FROM reviews WHERE pull_id = ? ORDER BY id", pull["id"])
        return self._page(req, [self._review_json(repo, pull, r) for r in rows])

    def create_review(self, req: Request) -> Response:
        repo, git, pull = self._pull(req)
        user = self._require(req, {"human", "admin"}, "review pull requests")
        body = req.body if isinstance(req.body, dict) else {}
        event = body.get("event")
        states = {
            "APPROVE": "APPROVED",
            "REQUEST_CHANGES": "CHANGES_REQUESTED",
            "COMMENT": "COMMENTED",
            None: "PENDING",
        }
        if event not in states:
            raise ApiError(
                422, f"Unprocessable Entity: event {event!r} is not one of APPROVE, REQUEST_CHANGES, COMMENT"
            )
        if pull["state"] != "open":
            raise ApiError(422, "Unprocessable Entity: Can not review a closed pull request")
        if pull["user_id"] == user.id and event == "APPROVE":
            raise ApiError(422, "Unprocessable Entity", errors=["Can not approve your own pull request"])
        if pull["user_id"] == user.id and event == "REQUEST_CHANGES":
            raise ApiError(422, "Unprocessable Entity", errors=["Can not request changes on your own pull request"])
        head_sha, _ = self._heads(git, pull)
        commit_id = str(body.get("commit_id") or head_sha)
        if not _SHA.match(commit_id) or git.object_type(commit_id) != "commit":
            raise ApiError(422, "Unprocessable Entity: commit_id is not a commit of this repository")
        review_id = self.store.insert(
            "INSERT INTO reviews(pull_id, user_id, state, body, commit_id, submitted_at) VALUES (?,?,?,?,?,?)",
            pull["id"],
            user.id,
            states[event],
            str(body.get("body") or ""),
            commit_id,
            now_iso(),
        )
        row = self.store.one("SELECT * FROM reviews WHERE id = ?", review_id)
        return Response(200, self._review_json(repo, pull, row))

    # merging --------------------------------------------------------------------------------------

    def _protection_problems(self, repo: Any, pull: Any, head_sha: str) -> list[str]:
        config = self.store.protection(repo["id"], pull["base_ref"])
        if config is None:
            return []
        problems = []
        checks = config.get("required_status_checks") or {}
        latest = self._latest_statuses(repo["id"], head_sha)
        for context in checks.get("contexts") or []:
            row = latest.get(context)
            state = row["state"] if row is not None else None
            if state is None:
                problems.append(f'Required status check "{context}" is expected.')
            elif state != "success":
                problems.append(f'Required status check "{context}" is {state}.')
        reviews = config.get("required_pull_request_reviews")
        if reviews is not None:
            required = int(reviews.get("required_approving_review_count", 1))
            latest_by_user: dict[int, Any] = {}
            for row in self.store.q(
                "SELECT * FROM reviews WHERE pull_id = ? AND state IN ('APPROVED', 'CHANGES_REQUESTED', 'DISMISSED') "
                "ORDER BY id",
                pull["id"],
            ):
                latest_by_user[row["user_id"]] = row
            if any(r["state"] == "CHANGES_REQUESTED" for r in latest_by_user.values()):
                problems.append("Changes have been requested.")
            approvers = [
                uid
                for uid, r in latest_by_user.items()
                if r["state"] == "APPROVED" and r["commit_id"] == head_sha and uid != pull["user_id"]
            ]
            approvals = len(approvers)
            if approvals < required:
                problems.append(
                    f"At least {required} approving review{'s are' if required > 1 else ' is'} required by "
                    f"reviewers with write access (approvals on the current head {head_sha[:12]}: {approvals})."
                )
            if reviews.get("require_last_push_approval"):
                pusher = self._last_pusher(repo, pull, head_sha)
                if not any(uid != pusher for uid in approvers):
                    who = self.store.user_by_id(pusher)
                    problems.append(
                        f"{LAST_PUSH_RULE} The push of {head_sha[:12]} to {pull['head_ref']} was made by "
                        f"{who.login if who else f'user {pusher}'}."
                    )
        return problems

    def _last_pusher(self, repo: Any, pull: Any, head_sha: str) -> int:
        """Who last pushed the head branch to ``head_sha``; the PR author when no such push was recorded."""
        pusher = self.store.last_pusher(repo["id"], f"refs/heads/{pull['head_ref']}", head_sha)
        return int(pull["user_id"]) if pusher is None else pusher

    def _push_restricted(self, repo: Any, branch: str, user: User) -> str | None:
        """GitHub's push restrictions: when set, only the listed users and team members may push, so merge."""
        config = self.store.protection(repo["id"], branch)
        restrictions = (config or {}).get("restrictions")
        if config is None or restrictions is None:
            return None
        if user.kind == "admin" and not config.get("enforce_admins"):
            return None
        if user.login in (restrictions.get("users") or []):
            return None
        for slug in restrictions.get("teams") or []:
            team = self.store.team(repo["owner"], slug)
            if team is not None and any(m.id == user.id for m in self.store.team_members(team["id"])):
                return None
        return f"You're not authorized to push to this branch: pushes to {branch} are restricted."

    def get_merged(self, req: Request) -> Response:
        _repo, _git, pull = self._pull(req)
        if pull["merged_at"] is None:
            raise not_found()
        return Response(204)

    def merge_pull(self, req: Request) -> Response:
        repo, git, pull = self._pull(req)
        user = self._require(req, MERGERS, "merge pull requests")
        body = req.body if isinstance(req.body, dict) else {}
        method = body.get("merge_method", "merge")
        if method not in ("merge", "squash"):
            raise ApiError(422, f"Invalid merge_method {method!r}: this forge supports merge and squash")
        if pull["state"] != "open":
            raise ApiError(405, "Pull Request is not mergeable")
        if pull["draft"]:
            raise ApiError(405, "Pull Request is still a draft")
        head_sha, base_sha = self._heads(git, pull)
        expected = body.get("sha")
        if expected is not None and expected != head_sha:
            raise ApiError(409, "Head branch was modified. Review and try the merge again.")
        refusal = self._push_restricted(repo, pull["base_ref"], user)
        if refusal is not None:
            raise ApiError(405, refusal)
        problems = self._protection_problems(repo, pull, head_sha)
        if problems:
            raise ApiError(405, "Repository rule violations found\n\n" + "\n".join(problems))
        tree = git.merge_trees(base_sha, head_sha)
        if tree is None:
            raise ApiError(405, "Pull Request is not mergeable: merge conflict")
        when = datetime.now(UTC).replace(microsecond=0)
        who = GitIdentity(name=user.name, email=user.email, date=when)
        title = body.get("commit_title")
        if method == "squash":
            message = str(title or f"{pull['title']} (#{pull['number']})")
            parents = [base_sha]
        else:
            message = str(title or f"Merge pull request #{pull['number']} from {repo['owner']}/{pull['head_ref']}")
            parents = [base_sha, head_sha]
        if body.get("commit_message"):
            message += "\n\n" + str(body["commit_message"])
        sha = git.write_commit(commit_payload(tree, parents, who, who, message))
        if not git.update_ref(f"refs/heads/{pull['base_ref']}", sha, base_sha):
            raise ApiError(409, "Base branch was modified. Review and try the merge again.")
        self.store.record_ref_update(repo["id"], f"refs/heads/{pull['base_ref']}", sha, user.id)
        stamp = now_iso()
        self.store.db.execute(
            "UPDATE pulls SET state='closed', merged_at=?, closed_at=?, updated_at=?, merge_commit_sha=?, "
            "merged_by=?, head_sha=?, base_sha=? WHERE id=?",
            (stamp, stamp, stamp, sha, user.id, head_sha, base_sha, pull["id"]),
        )
        self.store.touch_repo(repo["id"])
        return Response(200, {"sha": sha, "merged": True, "message": "Pull Request successfully merged"})

    # labels and comments --------------------------------------------------------------------------

    def _check_issue_write(self, req: Request, pull: Any) -> None:
        assert req.user is not None
        if req.user.kind == "agent" and pull["user_id"] != req.user.id:
            raise ApiError(403, "Resource not accessible by integration: agents may only touch their own PRs")

    def list_labels(self, req: Request) -> Response:
        repo, _git, pull = self._pull(req)
        items = [shapes.label(row, self.urls, repo["owner"], repo["name"]) for row in self.store.labels_of(pull["id"])]
        return self._page(req, items)

    def add_labels(self, req: Request) -> Response:
        repo, _git, pull = self._pull(req)
        self._check_issue_write(req, pull)
        body = req.body
        names = body.get("labels") if isinstance(body, dict) else body
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            raise ApiError(422, 'Invalid request.\n\n"labels" must be a list of names.')
        self.store.add_labels(repo["id"], pull["id"], names)
        items = [shapes.label(row, self.urls, repo["owner"], repo["name"]) for row in self.store.labels_of(pull["id"])]
        return Response(200, items)

    def remove_label(self, req: Request) -> Response:
        repo, _git, pull = self._pull(req)
        self._check_issue_write(req, pull)
        row = self.store.one("SELECT id FROM labels WHERE repo_id = ? AND name = ?", repo["id"], req.params["name"])
        if row is None:
            raise ApiError(404, "Label does not exist")
        self.store.db.execute("DELETE FROM pull_labels WHERE pull_id = ? AND label_id = ?", (pull["id"], row["id"]))
        items = [shapes.label(r, self.urls, repo["owner"], repo["name"]) for r in self.store.labels_of(pull["id"])]
        return Response(200, items)

    def _comment_json(self, repo: Any, pull: Any, row: Any) -> dict[str, Any]:
        api = self.urls.repo(repo["owner"], repo["name"])
        web = self.urls.repo_web(repo["owner"], repo["name"])
        return {
            "id": row["id"],
            "node_id": shapes.node_id("IssueComment", row["id"]),
            "url": f"{api}/issues/comments/{row['id']}",
            "html_url": f"{web}/pull/{pull['number']}#issuecomment-{row['id']}",
            "issue_url": f"{api}/issues/{pull['number']}",
            "body": row["body"],
            "user": self._user_json(row["user_id"]),
            "created_at": row["created_at"],
            "updated_at": row["updated_at"],
            "author_association": "MEMBER",
        }

    def list_comments(self, req: Request) -> Response:
        repo, _git, pull = self._pull(req)
        rows = self.store.q("SELECT * FROM comments WHERE pull_id = ? ORDER BY id", pull["id"])
        return self._page(req, [self._comment_json(repo, pull, r) for r in rows])

    def create_comment(self, req: Request) -> Response:
        repo, _git, pull = self._pull(req)
        self._check_issue_write(req, pull)
        assert req.user is not None
        body = req.body if isinstance(req.body, dict) else {}
        text = body.get("body")
        if not isinstance(text, str) or not text:
            raise ApiError(422, 'Invalid request.\n\n"body" wasn\'t supplied.')
        stamp = now_iso()
        cid = self.store.insert(
            "INSERT INTO comments(pull_id, user_id, body, created_at, updated_at) VALUES (?,?,?,?,?)",
            pull["id"],
            req.user.id,
            text,
            stamp,
            stamp,
        )
        row = self.store.one("SELECT * FROM comments WHERE id = ?", cid)
        return Response(201, self._comment_json(repo, pull, row))

    # statuses -------------------------------------------------------------------------------------

    def _status_json(self, repo: Any, row: Any) -> dict[str, Any]:
        creator = self.store.user_by_id(row["creator_id"])
        return {
            "url": f"{self.urls.repo(repo['owner'], repo['name'])}/statuses/{row['sha']}",
            "avatar_url": f"{self.urls.web}/avatars/{creator.login if creator else 'ghost'}",
            "id": row["id"],
            "node_id": shapes.node_id("StatusContext", row["id"]),
            "state": row["state"],
            "description": row["description"],
            "target_url": row["target_url"],
            "context": row["context"],
            "created_at": row["created_at"],
            "updated_at": row["created_at"],
            "creator": shapes.user(creator, self.urls) if creator else None,
        }

    def _latest_statuses(self, repo_id: int, sha: str) -> dict[str, Any]:
        latest: dict[str, Any] = {}
        for row in self.store.q("SELECT * FROM statuses WHERE repo_id = ? AND sha = ? ORDER BY id", repo_id, sha):
            latest[row["context"]] = row
        return latest

    def create_status(self, req: Request) -> Response:
        repo, git = self._repo(req)
        user = self._require(req, STATUS_SETTERS, "set commit statuses")
        sha = req.params["sha"]
        if not _SHA.match(sha) or git.object_type(sha) != "commit":
            raise ApiError(422, f"No commit found for SHA: {sha}")
        body = req.body if isinstance(req.body, dict) else {}
        state = body.get("state")
        if state not in ("error", "failure", "pending", "success"):
            raise ApiError(
                422, "Validation Failed", errors=[{"resource": "Status", "field": "state", "code": "custom"}]
            )
        sid = self.store.insert(
            "INSERT INTO statuses(repo_id, sha, context, state, description, target_url, creator_id, created_at) "
            "VALUES (?,?,?,?,?,?,?,?)",
            repo["id"],
            sha,
            str(body.get("context") or "default"),
            state,
            body.get("description"),
            body.get("target_url"),
            user.id,
            now_iso(),
        )
        row = self.store.one("SELECT * FROM statuses WHERE id = ?", sid)
        return Response(201, self._status_json(repo, row))

    def list_statuses(self, req: Request) -> Response:
        repo, git = self._repo(req)
        sha = git.resolve_commit(req.params["ref"])
        if sha is None:
            raise not_found()
        rows = self.store.q("SELECT * FROM statuses WHERE repo_id = ? AND sha = ? ORDER BY id DESC", repo["id"], sha)
        return self._page(req, [self._status_json(repo, r) for r in rows])

    def combined_status(self, req: Request) -> Response:
        repo, git = self._repo(req)
        sha = git.resolve_commit(req.params["ref"])
        if sha is None:
            raise not_found()
        latest = self._latest_statuses(repo["id"], sha)
        states = {row["state"] for row in latest.values()}
        if states & {"error", "failure"}:
            state = "failure"
        elif not states or "pending" in states:
            state = "pending"
        else:
            state = "success"
        api = self.urls.repo(repo["owner"], repo["name"])
        data = {
            "state": state,
            "sha": sha,
            "total_count": len(latest),
            "statuses": [self._status_json(repo, r) for r in latest.values()],
            "repository": shapes.repository(repo, self.urls, self._open_issues(repo["id"])),
            "commit_url": f"{api}/commits/{sha}",
            "url": f"{api}/commits/{sha}/status",
        }
        return Response(200, data)

    # contents and compare -------------------------------------------------------------------------

    def get_contents(self, req: Request) -> Response:
        repo, git = self._repo(req)
        o, n = repo["owner"], repo["name"]
        ref = req.query.get("ref") or repo["default_branch"]
        sha = git.resolve_commit(ref)
        if sha is None:
            raise ApiError(404, f"No commit found for the ref {ref}")
        path = req.params["path"].strip("/")
        api = self.urls.repo(o, n)
        web = self.urls.repo_web(o, n)

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

    def compare(self, req: Request) -> Response:
        repo, git = self._repo(req)
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
            "identical"
            if not ahead and not behind
            else "ahead"
            if not behind
            else "behind"
            if not ahead
            else "diverged"
        )
        diffs = git.diff(merge_base, head_sha)

        def commit_json(sha: str) -> dict[str, Any]:
            info = git.read_commit(sha)
            assert info is not None
            return self._commit_json(repo, info)

        api, web = self.urls.repo(o, n), self.urls.repo_web(o, n)
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
            "files": [shapes.diff_entry(d, self.urls, o, n, head_sha) for d in diffs[:300]],
        }
        return Response(200, data)

    # teams ----------------------------------------------------------------------------------------

    def team_members(self, req: Request) -> Response:
        team = self.store.team(req.params["org"], req.params["slug"])
        if team is None:
            raise not_found()
        return self._page(req, [shapes.user(u, self.urls) for u in self.store.team_members(team["id"])])
