"""The embedded forge's application core: one request (method, path, headers, body) in, one response out.

:class:`ForgeApp` parses the request, authenticates its token, injects the configured faults, counts the
request, dispatches it through the routing table below to a handler of :mod:`bot.forge.server.routes`
(one module per resource) and turns an :class:`~bot.forge.server.api.ApiError` into GitHub's error body. A
request no route serves is a 404 when what it names does not exist, and a 501 when it is a GitHub endpoint
this forge does not implement (never a 404 that reads as "no such thing"). It is independent of the HTTP
server around it (:mod:`bot.forge.server.http`). What the forge enforces on branches and merges lives in
:mod:`bot.forge.server.protection`; every branch move records who made it.
"""

from __future__ import annotations

import json
import re
import threading
import urllib.parse
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot.forge.server import shapes
from bot.forge.server.api import ApiError, Request, Response, not_found, not_implemented
from bot.forge.server.faults import Fault, FaultPlan
from bot.forge.server.gitrepo import BareRepo
from bot.forge.server.routes import (
    branches,
    checks,
    collaborators,
    contents,
    gitdata,
    issues,
    keys,
    labels,
    pulls,
    repos,
    reviews,
    statuses,
    teams,
)
from bot.forge.server.store import Store, User

__all__ = ["ApiError", "ForgeApp", "Request", "Response", "not_found", "repo_path"]

API_PREFIX = "/api/v3"
ADMIN_PREFIX = "/_glassbox"
MAX_BODY_BYTES = 32 * 1024 * 1024
"""The largest request body the forge reads (a 1 MiB file is about 1.4 MB of base64 in a blob request)."""
MAX_BODY_DEPTH = 64
"""The deepest nesting of arrays and objects a request body may have; no GitHub request needs more than a few."""

Handler = Callable[["ForgeApp", Request], Response]

_REPO = r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)"
_SIGNATURES = _REPO + r"/branches/(?P<branch>.+)/protection/required_signatures"
_CHECK_RUN = _REPO + r"/check-runs/(?P<check_run>[0-9]+)"
_REVIEWERS = _REPO + r"/pulls/(?P<number>\d+)/requested_reviewers"
_ORG = r"/orgs/(?P<org>[^/]+)"
GITHUB_RESOURCES = frozenset(
    {
        "advisories", "agents", "app", "app-manifests", "applications", "apps", "assignments", "classrooms",
        "codes_of_conduct", "credentials", "emojis", "enterprises", "events", "feeds", "gists", "gitignore",
        "installation", "issues", "licenses", "markdown", "marketplace_listing", "meta", "networks",
        "notifications", "octocat", "organizations", "orgs", "rate_limit", "repos", "repositories", "search",
        "teams", "user", "users", "versions", "zen",
    }
)  # fmt: skip
"""The first path segments of GitHub's REST API: a path under one that no route serves is a 501, not a 404."""
# The first matching route serves a request, so a longer path comes before a shorter one it would also match.
ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", r"/user", teams.get_user),
    ("GET", r"/users/(?P<login>[^/]+)", teams.get_named_user),
    ("GET", r"/user/ssh_signing_keys", keys.list_mine),
    ("POST", r"/user/ssh_signing_keys", keys.add_mine),
    ("GET", r"/users/(?P<login>[^/]+)/ssh_signing_keys", keys.list_for_user),
    ("GET", _REPO, repos.get_repo),
    ("GET", _REPO + r"/activity", repos.list_activity),
    *((verb, _SIGNATURES, branches.required_signatures) for verb in ("GET", "POST", "DELETE")),
    ("GET", _REPO + r"/branches", branches.list_branches),
    ("GET", _REPO + r"/branches/(?P<branch>.+)/protection", branches.get_protection),
    ("PUT", _REPO + r"/branches/(?P<branch>.+)/protection", branches.put_protection),
    ("DELETE", _REPO + r"/branches/(?P<branch>.+)/protection", branches.delete_protection),
    ("GET", _REPO + r"/branches/(?P<branch>.+)", branches.get_branch),
    ("GET", _REPO + r"/git/ref/(?P<ref>.+)", gitdata.get_ref),
    ("GET", _REPO + r"/git/refs", gitdata.list_refs),
    ("GET", _REPO + r"/git/refs/(?P<ref>.+)", gitdata.get_ref),
    ("GET", _REPO + r"/git/matching-refs/(?P<ref>.*)", gitdata.list_refs),
    ("POST", _REPO + r"/git/refs", gitdata.create_ref),
    ("PATCH", _REPO + r"/git/refs/(?P<ref>.+)", gitdata.update_ref),
    ("DELETE", _REPO + r"/git/refs/(?P<ref>.+)", gitdata.delete_ref),
    ("POST", _REPO + r"/git/trees", gitdata.create_tree),
    ("GET", _REPO + r"/git/trees/(?P<sha>[^/]+)", gitdata.get_tree),
    ("POST", _REPO + r"/git/commits", gitdata.create_commit),
    ("GET", _REPO + r"/git/commits/(?P<sha>[0-9a-f]{40})", gitdata.get_git_commit),
    ("GET", _REPO + r"/git/blobs/(?P<sha>[0-9a-f]{40})", gitdata.get_blob),
    ("GET", _REPO + r"/pulls", pulls.list_pulls),
    ("POST", _REPO + r"/pulls", pulls.create_pull),
    ("GET", _REPO + r"/pulls/(?P<number>\d+)", pulls.get_pull),
    ("PATCH", _REPO + r"/pulls/(?P<number>\d+)", pulls.update_pull),
    ("GET", _REPO + r"/pulls/(?P<number>\d+)/files", pulls.list_pull_files),
    ("GET", _REPO + r"/pulls/(?P<number>\d+)/commits", pulls.list_pull_commits),
    ("GET", _REPO + r"/pulls/(?P<number>\d+)/reviews", reviews.list_reviews),
    ("POST", _REPO + r"/pulls/(?P<number>\d+)/reviews", reviews.create_review),
    ("PUT", _REPO + r"/pulls/(?P<number>\d+)/reviews/(?P<review>\d+)/dismissals", reviews.dismiss_review),
    ("GET", _REVIEWERS, reviews.list_requested_reviewers),
    ("POST", _REVIEWERS, reviews.request_reviewers),
    ("DELETE", _REVIEWERS, reviews.remove_requested_reviewers),
    ("GET", _REPO + r"/pulls/(?P<number>\d+)/merge", pulls.get_merged),
    ("PUT", _REPO + r"/pulls/(?P<number>\d+)/merge", pulls.merge_pull),
    ("GET", _REPO + r"/issues", issues.list_issues),
    ("GET", _REPO + r"/issues/(?P<number>\d+)", issues.get_issue),
    ("GET", _REPO + r"/issues/(?P<number>\d+)/labels", issues.list_labels),
    ("POST", _REPO + r"/issues/(?P<number>\d+)/labels", issues.add_labels),
    ("DELETE", _REPO + r"/issues/(?P<number>\d+)/labels/(?P<name>.+)", issues.remove_label),
    ("GET", _REPO + r"/issues/(?P<number>\d+)/comments", issues.list_comments),
    ("POST", _REPO + r"/issues/(?P<number>\d+)/comments", issues.create_comment),
    ("GET", _REPO + r"/issues/(?P<number>\d+)/events", issues.list_events),
    ("POST", _REPO + r"/statuses/(?P<sha>[^/]+)", statuses.create_status),
    ("GET", _REPO + r"/statuses/(?P<ref>.+)", statuses.list_statuses),
    ("GET", _REPO + r"/commits/(?P<ref>.+)/status", statuses.combined_status),
    ("GET", _REPO + r"/commits/(?P<ref>.+)/statuses", statuses.list_statuses),
    ("GET", _REPO + r"/commits/(?P<ref>.+)/check-runs", checks.list_for_ref),
    ("GET", _REPO + r"/commits", gitdata.list_commits),
    ("GET", _REPO + r"/commits/(?P<ref>.+)", gitdata.get_commit),
    ("POST", _REPO + r"/check-runs", checks.create_check_run),
    ("GET", _CHECK_RUN, checks.get_check_run),
    ("PATCH", _CHECK_RUN, checks.update_check_run),
    ("GET", _CHECK_RUN + r"/annotations", checks.list_annotations),
    ("GET", _REPO + r"/labels", labels.list_labels),
    ("POST", _REPO + r"/labels", labels.create_label),
    ("GET", _REPO + r"/labels/(?P<name>.+)", labels.get_label),
    ("GET", _REPO + r"/collaborators", collaborators.list_collaborators),
    ("GET", _REPO + r"/collaborators/(?P<login>[^/]+)", collaborators.check_collaborator),
    ("GET", _REPO + r"/collaborators/(?P<login>[^/]+)/permission", collaborators.get_permission),
    ("GET", _REPO + r"/contents/(?P<path>.*)", contents.get_contents),
    ("GET", _REPO + r"/compare/(?P<spec>.+)", contents.compare),
    ("GET", _ORG, teams.get_org),
    ("GET", _ORG + r"/teams", teams.list_teams),
    ("GET", _ORG + r"/teams/(?P<slug>[^/]+)", teams.get_team),
    ("GET", _ORG + r"/teams/(?P<slug>[^/]+)/members", teams.team_members),
]


def repo_path(data_dir: Path, full_name: str) -> Path:
    """Where the bare repository of ``owner/name`` lives: clones for CI and deploy come from here."""
    owner, _, name = full_name.partition("/")
    return data_dir / "repos" / owner / f"{name}.git"


def _int(value: str | None, default: int, low: int, high: int) -> int:
    try:
        number = int(value) if value is not None else default
    except ValueError:
        raise ApiError(422, f"Invalid value {value!r}") from None
    return max(low, min(high, number))


def _nesting_depth(raw: bytes) -> int:
    """How deeply arrays and objects nest in ``raw``, brackets inside strings not counted; one linear scan,
    so a hostile body is measured before the recursive JSON parser ever sees it."""
    if raw.count(b"[") + raw.count(b"{") <= MAX_BODY_DEPTH:
        return 0  # too few brackets to nest too deep: skip the scan (file blobs in base64 have none)
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return deepest


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
        self.verifications: dict[str, tuple[str, str]] = {}
        """Commit SHA → (reason, when) of its signature's verification (see :mod:`bot.forge.server.signing`)."""
        self.stats: Counter[str] = Counter()
        self._stats_lock = threading.Lock()
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = [
            (method, re.compile("^" + pattern + "$"), handler) for method, pattern, handler in ROUTES
        ]

    def close(self) -> None:
        self.store.close()

    # ----------------------------------------------------------------------------------------------
    # dispatch

    def handle(self, method: str, raw_path: str, headers: dict[str, str], raw_body: bytes) -> Response:
        parsed = urllib.parse.urlsplit(raw_path)
        path = urllib.parse.unquote(parsed.path)
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(parsed.query, keep_blank_values=True).items()}
        try:
            # who is asking is settled before a byte of the body is parsed: without a valid token nothing
            # from the caller reaches the JSON parser or a handler
            user = self._authenticate(headers)
            if user is None:
                raise ApiError(401, "Requires authentication")
            if len(raw_body) > MAX_BODY_BYTES:
                raise ApiError(413, f"Request body is larger than {MAX_BODY_BYTES} bytes")
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
                    return handler(self, req)
        raise self._unserved(req)

    def _unserved(self, req: Request) -> ApiError:
        """No route serves ``req``: 404 for what does not exist (a path outside GitHub's API, an unknown
        repository or organisation), 501 for a GitHub endpoint this forge does not implement."""
        segments = req.path.split("/")
        if len(segments) < 2 or segments[1] not in GITHUB_RESOURCES:
            return not_found()
        with self.store.lock:
            if segments[1] == "repos" and len(segments) >= 4 and self.store.repo(segments[2], segments[3]) is None:
                return not_found()
            if segments[1] == "orgs" and len(segments) >= 3 and not self.store.org_exists(segments[2]):
                return not_found()
        return not_implemented(req.method, req.path)

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
        if _nesting_depth(raw) > MAX_BODY_DEPTH:
            raise ApiError(400, f"Problems parsing JSON: nested deeper than {MAX_BODY_DEPTH} levels")
        try:
            return json.loads(raw)
        except (ValueError, RecursionError):
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
    # helpers shared by the routes

    def repo(self, req: Request) -> tuple[Any, BareRepo]:
        """The repository a ``/repos/{owner}/{repo}/...`` request names, and its bare git repo; 404 if unknown."""
        row = self.store.repo(req.params["owner"], req.params["repo"])
        if row is None:
            raise not_found()
        return row, BareRepo(repo_path(self.data_dir, f"{row['owner']}/{row['name']}"))

    def page(self, req: Request, items: list[Any], default: int = 30) -> Response:
        """One page of ``items`` per ``per_page``/``page``, with GitHub's ``Link`` header."""
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

    @staticmethod
    def require(req: Request, kinds: set[str], what: str) -> User:
        """The caller, if its identity kind is one of ``kinds``; 403 naming ``what`` it may not do otherwise."""
        assert req.user is not None
        if req.user.kind not in kinds:
            raise ApiError(403, f"Resource not accessible by integration: {req.user.kind} identities cannot {what}")
        return req.user
