"""The forge port implemented with PyGithub, for github.com, GitHub Enterprise and the embedded forge.

Opening a PR costs a constant number of API calls whatever the number of files (Git Data API: one tree
with inline contents on ``base_tree``, one commit, one ref, one PR, one labels call, plus one look-up of an
existing PR and one of the base branch: 7). Every call goes through :meth:`GitHubForge._call`, which
retries 5xx, 429, secondary rate limits and dropped connections with capped backoff (honouring
``Retry-After`` and ``X-RateLimit-Reset``). A write that may have happened before its answer was lost is
never blindly repeated: the adapter first looks whether it took effect (commit by its precomputed SHA,
ref by name, PR by head branch, merge by the PR's state, comment by body) and reuses what it finds.
PyGithub's own retries and request throttling are off, so the retry policy lives here, once, and
:attr:`GitHubForge.calls` counts every HTTP request the client sends.
"""

from __future__ import annotations

import base64
import binascii
import functools
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import requests
from github import Auth, Github, GithubException
from github.Branch import Branch
from github.CheckRun import CheckRun as GithubCheckRun
from github.GithubObject import NotSet

from bot.errors import ForgeError, UserError
from bot.forge.model import (
    MAX_ANNOTATIONS_PER_REQUEST,
    MAX_PULL_COMMITS,
    ChangedFile,
    CheckAnnotation,
    CheckConclusion,
    CheckRun,
    CheckRunStatus,
    Comment,
    CommitSigner,
    CommitStatus,
    FileStatus,
    GitIdentity,
    IssueEvent,
    MergeMethod,
    MergeResult,
    PullCommit,
    PullRequest,
    PullState,
    RefActivity,
    Review,
    ReviewState,
    StatusState,
    commit_payload,
    commit_sha,
)
from bot.forge.port import BranchMoved, Forge, ProtectionPort
from bot.forge.settings import ForgeSettings
from bot.records import FileChange

T = TypeVar("T")
PER_PAGE = 100
_TRANSIENT_NETWORK = (
    requests.exceptions.ConnectionError,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.Timeout,
)


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 60.0


class _CountingToken(Auth.Token):
    """A token auth that counts requests: PyGithub asks it for the header once per HTTP request."""

    def __init__(self, token: str) -> None:
        super().__init__(token)
        self.count = 0

    def authentication(self, headers: dict[str, Any]) -> None:
        self.count += 1
        super().authentication(headers)


class _Transient(Exception):
    """A failure worth retrying; ``delay`` is what the server asked for, if it said."""

    def __init__(self, description: str, status: int | None, delay: float | None) -> None:
        super().__init__(description)
        self.status = status
        self.delay = delay


def _header(headers: Any, name: str) -> str | None:
    if not headers:
        return None
    for key, value in dict(headers).items():
        if str(key).lower() == name:
            return str(value)
    return None


def _message(exc: GithubException) -> str:
    data = exc.data if isinstance(exc.data, dict) else {}
    message = str(data.get("message") or exc.message or "")
    errors = data.get("errors")
    if isinstance(errors, list) and errors:
        details = [e.get("message") or str(e) if isinstance(e, dict) else str(e) for e in errors]
        message = f"{message}: {'; '.join(str(d) for d in details)}"
    return message or f"HTTP {exc.status}"


def _git_date(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


class GitHubForge:
    """The :class:`~bot.forge.port.Forge` port over PyGithub for one repository and one token."""

    def __init__(
        self,
        settings: ForgeSettings,
        *,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        timeout: int = 30,
    ) -> None:
        self._settings = settings
        self._policy = policy or RetryPolicy()
        self._sleep = sleep
        self._clock = clock
        self._auth = _CountingToken(settings.token)
        # retry=None and no throttling: the retry policy (and its check-before-retry) lives in _call.
        self._gh = Github(
            base_url=settings.url,
            auth=self._auth,
            timeout=timeout,
            per_page=PER_PAGE,
            retry=None,
            seconds_between_requests=None,
            seconds_between_writes=None,
            lazy=True,
        )
        self._req = self._gh.requester
        self._repo = self._gh.get_repo(settings.repo)  # lazy: no request
        self._url = self._repo.url
        self._login: str | None = None
        self.retries = 0

    # ----------------------------------------------------------------------------------------------
    # plumbing

    @property
    def repo(self) -> str:
        return self._settings.repo

    @property
    def calls(self) -> int:
        """HTTP requests sent so far, retries and look-ups included."""
        return self._auth.count

    def close(self) -> None:
        self._gh.close()

    def _classify(self, exc: Exception) -> _Transient | None:
        if isinstance(exc, _TRANSIENT_NETWORK):
            return _Transient(f"connection failed ({type(exc).__name__})", None, None)
        if not isinstance(exc, GithubException):
            return None
        status = exc.status
        headers = exc.headers
        retry_after = _header(headers, "retry-after")
        delay: float | None = None
        if retry_after is not None:
            try:
                delay = float(retry_after)
            except ValueError:
                delay = None
        if delay is None and _header(headers, "x-ratelimit-remaining") == "0":
            reset = _header(headers, "x-ratelimit-reset")
            if reset is not None:
                try:
                    delay = max(0.0, float(reset) - self._clock())
                except ValueError:
                    delay = None
        message = _message(exc).lower()
        secondary = "secondary rate limit" in message or message.startswith("api rate limit exceeded")
        # 501 is the forge saying it does not implement the endpoint: asking again cannot change that
        if (status >= 500 and status != 501) or status == 429 or (status == 403 and (secondary or delay is not None)):
            return _Transient(f"HTTP {status} {_message(exc)}", status, delay)
        return None

    def _translate(self, exc: GithubException, what: str) -> Exception:
        if exc.status == 401:
            return UserError(
                f"the forge rejected the token (401 {_message(exc)}): check --token / GLASSBOX_TOKEN / GITHUB_TOKEN"
            )
        return ForgeError(f"{what}: {exc.status} {_message(exc)}", status=exc.status, retryable=False)

    def _call(self, what: str, fn: Callable[[], T], *, verify: Callable[[], T | None] | None = None) -> T:
        """Run ``fn`` with retries. For a write, ``verify`` looks whether a lost attempt took effect."""
        policy = self._policy
        last: _Transient | None = None
        for attempt in range(policy.attempts):
            if attempt and verify is not None:
                found = verify()
                if found is not None:
                    return found
            try:
                return fn()
            except GithubException as exc:
                transient = self._classify(exc)
                if transient is None:
                    raise self._translate(exc, what) from None
                last = transient
            except _TRANSIENT_NETWORK as exc:
                last = self._classify(exc)
            assert last is not None
            if attempt + 1 < policy.attempts:
                self.retries += 1
                backoff = policy.base_delay * (2**attempt)
                self._sleep(min(policy.max_delay, last.delay if last.delay is not None else backoff))
        assert last is not None
        raise ForgeError(
            f"{what}: gave up after {policy.attempts} attempts: {last}", status=last.status, retryable=True
        )

    def _get(self, what: str, path: str, params: dict[str, Any] | None = None) -> Any:
        def fn() -> Any:
            return self._req.requestJsonAndCheck("GET", f"{self._url}{path}", parameters=params)[1]

        return self._call(what, fn)

    def _get_or_none(self, what: str, path: str, params: dict[str, Any] | None = None) -> Any:
        try:
            return self._get(what, path, params)
        except ForgeError as exc:
            if exc.status == 404:
                return None
            raise

    def _write(
        self, what: str, verb: str, path: str, body: Any, *, verify: Callable[[], Any | None] | None = None
    ) -> Any:
        def fn() -> Any:
            return self._req.requestJsonAndCheck(verb, f"{self._url}{path}", input=body)[1]

        return self._call(what, fn, verify=verify)

    def _get_all(self, what: str, url: str, params: dict[str, Any] | None = None) -> list[Any]:
        """Every page of a list endpoint, following ``Link: rel="next"``."""
        items: list[Any] = []
        next_url: str | None = url
        query: dict[str, Any] | None = {"per_page": PER_PAGE, **(params or {})}
        while next_url is not None:
            headers, data = self._call(what, functools.partial(self._req.requestJsonAndCheck, "GET", next_url, query))
            items.extend(data if isinstance(data, list) else [])
            next_url, query = _next_link(_header(headers, "link")), None
        return items

    # ----------------------------------------------------------------------------------------------
    # converters

    @staticmethod
    def _pull(data: dict[str, Any]) -> PullRequest:
        return PullRequest(
            number=int(data["number"]),
            title=str(data.get("title") or ""),
            body=str(data.get("body") or ""),
            state=PullState(data["state"]),
            draft=bool(data.get("draft")),
            merged=bool(data.get("merged")) or data.get("merged_at") is not None,
            merge_commit_sha=data.get("merge_commit_sha") if data.get("merged_at") else None,
            head_ref=str(data["head"]["ref"]),
            head_sha=str(data["head"]["sha"]),
            base_ref=str(data["base"]["ref"]),
            base_sha=str(data["base"]["sha"]),
            author=str((data.get("user") or {}).get("login") or ""),
            labels=[str(label["name"]) for label in data.get("labels") or []],
            url=str(data.get("html_url") or ""),
        )

    @staticmethod
    def _file(data: dict[str, Any]) -> ChangedFile:
        status = str(data.get("status") or "modified")
        return ChangedFile(
            path=str(data["filename"]),
            status=FileStatus(status) if status in FileStatus.__members__.values() else FileStatus.CHANGED,
            sha=None if status == "removed" else data.get("sha"),
            additions=int(data.get("additions") or 0),
            deletions=int(data.get("deletions") or 0),
            previous_path=data.get("previous_filename"),
        )

    @staticmethod
    def _pull_commit(data: dict[str, Any]) -> PullCommit:
        git = data.get("commit") or {}
        return PullCommit(
            sha=str(data["sha"]),
            author=(data.get("author") or {}).get("login"),
            committer=(data.get("committer") or {}).get("login"),
            author_email=(git.get("author") or {}).get("email"),
            committer_email=(git.get("committer") or {}).get("email"),
        )

    @staticmethod
    def _status(data: dict[str, Any]) -> CommitStatus:
        return CommitStatus(
            context=str(data.get("context") or "default"),
            state=StatusState(data["state"]),
            description=str(data.get("description") or ""),
            target_url=data.get("target_url"),
            creator=(data.get("creator") or {}).get("login"),
            created_at=_parse_time(data.get("created_at")),
        )

    @staticmethod
    def _comment(data: dict[str, Any]) -> Comment:
        return Comment(
            id=int(data["id"]),
            user=str((data.get("user") or {}).get("login") or ""),
            body=str(data.get("body") or ""),
            created_at=_parse_time(data.get("created_at")),
        )

    # ----------------------------------------------------------------------------------------------
    # the port

    def find_open_pull_request(self, branch: str) -> PullRequest | None:
        data = self._get(
            "find PR by head branch", "/pulls", {"state": "open", "head": f"{self._settings.owner}:{branch}"}
        )
        pulls = [p for p in data or [] if p.get("head", {}).get("ref") == branch]
        return self._pull(pulls[0]) if pulls else None

    def get_pull_request(self, number: int) -> PullRequest:
        return self._pull(self._get(f"read PR #{number}", f"/pulls/{number}"))

    def list_open_pull_requests(self) -> list[PullRequest]:
        return [self._pull(p) for p in self._get_all("list open PRs", f"{self._url}/pulls", {"state": "open"})]

    def _me(self) -> str:
        if self._login is None:

            def fn() -> str:
                return str(self._req.requestJsonAndCheck("GET", "/user")[1]["login"])

            self._login = self._call("read the token's user", fn)
        return self._login

    def _ref_sha(self, branch: str) -> str | None:
        data = self._get_or_none(f"read branch {branch}", f"/git/ref/heads/{_quote(branch)}")
        return str(data["object"]["sha"]) if isinstance(data, dict) else None

    def branch_head(self, branch: str) -> str | None:
        return self._ref_sha(branch)

    def append_commit(
        self,
        branch: str,
        *,
        parent: str | None,
        files: Mapping[str, str],
        message: str,
        author: GitIdentity,
        signer: CommitSigner,
    ) -> str:
        base_tree = None
        if parent is not None:
            commit = self._get(f"read commit {parent[:12]}", f"/git/commits/{parent}")
            base_tree = str(commit["tree"]["sha"])
        entries = [{"path": p, "mode": "100644", "type": "blob", "content": c} for p, c in sorted(files.items())]
        body: dict[str, Any] = {"tree": entries}
        if base_tree is not None:
            body["base_tree"] = base_tree
        tree_sha = str(self._write("create tree", "POST", "/git/trees", body)["sha"])
        if parent is not None and tree_sha == base_tree:
            return parent  # everything is there already: no empty commit
        who = author if author.date is not None else author.at(datetime.now(UTC))
        parents = [parent] if parent else []
        signature = signer(commit_payload(tree_sha, parents, who, who, message))
        expected = commit_sha(commit_payload(tree_sha, parents, who, who, message, signature))
        person = {"name": who.name, "email": who.email, "date": _git_date(who.date or datetime.now(UTC))}

        def commit_exists() -> dict[str, Any] | None:
            found = self._get_or_none("look up commit", f"/git/commits/{expected}")
            return found if isinstance(found, dict) else None

        created = self._write(
            "create commit",
            "POST",
            "/git/commits",
            {
                "message": message,
                "tree": tree_sha,
                "parents": parents,
                "author": person,
                "committer": person,
                "signature": signature,
            },
            verify=commit_exists,
        )
        new_sha = str(created["sha"])

        def moved_here() -> str | None:
            return new_sha if self._ref_sha(branch) == new_sha else None

        try:
            if parent is None:
                self._write(
                    "create branch",
                    "POST",
                    "/git/refs",
                    {"ref": f"refs/heads/{branch}", "sha": new_sha},
                    verify=moved_here,
                )
            else:
                self._write(
                    "advance branch",
                    "PATCH",
                    f"/git/refs/heads/{_quote(branch)}",
                    {"sha": new_sha, "force": False},
                    verify=moved_here,
                )
        except ForgeError as exc:
            if exc.status in (409, 422) and self._ref_sha(branch) != new_sha:
                raise BranchMoved(f"{branch} moved past {str(parent)[:12]}: {exc.message}", status=exc.status) from None
            if exc.status not in (409, 422):
                raise
        return new_sha

    def open_pull_request(
        self,
        *,
        base: str,
        branch: str,
        title: str,
        body: str,
        changes: Sequence[FileChange],
        labels: Sequence[str] = (),
        draft: bool = False,
        commit_message: str | None = None,
        author: GitIdentity | None = None,
        signature: str | None = None,
        signer: CommitSigner | None = None,
    ) -> PullRequest:
        if signature and signer:
            raise UserError("give either a pre-computed commit signature or a signer, not both")
        if not changes:
            raise UserError("a pull request needs at least one file change")
        existing = self.find_open_pull_request(branch)
        if existing is not None:
            missing = [label for label in labels if label not in existing.labels]
            if missing:  # an earlier attempt stopped between opening the PR and labelling it
                data = self._write("label PR", "POST", f"/issues/{existing.number}/labels", {"labels": missing})
                existing = existing.model_copy(update={"labels": [str(label["name"]) for label in data]})
            return existing

        # 1. base commit and tree in one request
        branch_data = self._get(f"read base branch {base}", f"/branches/{_quote(base)}")
        base_sha = str(branch_data["commit"]["sha"])
        base_tree = str(branch_data["commit"]["commit"]["tree"]["sha"])

        # 2. one tree with inline contents; deletes are sha null. Content-addressed, so a retry is safe.
        entries: list[dict[str, Any]] = []
        for change in changes:
            if change.delete:
                entries.append({"path": change.path, "mode": "100644", "type": "blob", "sha": None})
            else:
                entries.append({"path": change.path, "mode": "100644", "type": "blob", "content": change.content})
        tree = self._write("create tree", "POST", "/git/trees", {"base_tree": base_tree, "tree": entries})
        tree_sha = str(tree["sha"])

        # 3. one commit, dated now so its bytes (and SHA) are known before it is sent
        now = datetime.now(UTC).replace(microsecond=0)
        who = author or GitIdentity(name="glassbox", email="glassbox@users.noreply.glassbox.local")
        who = who if who.date is not None else who.at(now)
        message = commit_message or title
        unsigned = commit_payload(tree_sha, [base_sha], who, who, message)
        sig = signature or (signer(unsigned) if signer else None)
        expected = commit_sha(commit_payload(tree_sha, [base_sha], who, who, message, sig))
        person = {"name": who.name, "email": who.email, "date": _git_date(who.date or now)}
        commit_body: dict[str, Any] = {
            "message": message,
            "tree": tree_sha,
            "parents": [base_sha],
            "author": person,
            "committer": person,
        }
        if sig:
            commit_body["signature"] = sig

        def commit_exists() -> dict[str, Any] | None:
            found = self._get_or_none("look up commit", f"/git/commits/{expected}")
            return found if isinstance(found, dict) else None

        commit = self._write("create commit", "POST", "/git/commits", commit_body, verify=commit_exists)
        new_sha = str(commit["sha"])

        # 4. the branch: reuse it if a lost attempt made it; move it if an abandoned attempt left it elsewhere
        ref = f"refs/heads/{branch}"

        def ref_at_commit() -> str | None:
            current = self._ref_sha(branch)
            return current if current == new_sha else None

        try:
            self._write("create branch", "POST", "/git/refs", {"ref": ref, "sha": new_sha}, verify=ref_at_commit)
        except ForgeError as exc:
            current = self._ref_sha(branch) if exc.status == 422 else None
            if current is None:
                raise
            if current != new_sha:
                # left by an abandoned attempt with no open PR (checked above): the branch is ours to move
                self._write(
                    "move branch",
                    "PATCH",
                    f"/git/refs/heads/{_quote(branch)}",
                    {"sha": new_sha, "force": True},
                    verify=ref_at_commit,
                )

        # 5. the PR; a lost attempt is found by its head branch
        pr_body = {"title": title, "head": branch, "base": base, "body": body, "draft": draft}

        def pr_exists() -> dict[str, Any] | None:
            found = self.find_open_pull_request(branch)
            return {"pull": found} if found is not None else None

        try:
            created = self._write("open PR", "POST", "/pulls", pr_body, verify=pr_exists)
        except ForgeError as exc:
            found = self.find_open_pull_request(branch) if exc.status == 422 else None
            if found is None:
                raise
            created = {"pull": found}
        pull = created["pull"] if "pull" in created else self._pull(created)

        # 6. labels: adding is a set union, so a retry is harmless
        if labels:
            data = self._write("label PR", "POST", f"/issues/{pull.number}/labels", {"labels": list(labels)})
            pull = pull.model_copy(update={"labels": [str(label["name"]) for label in data]})
        return pull

    def list_changed_files(self, number: int) -> list[ChangedFile]:
        items = self._get_all(f"list files of PR #{number}", f"{self._url}/pulls/{number}/files")
        return [self._file(item) for item in items]

    def list_reviews(self, number: int) -> list[Review]:
        items = self._get_all(f"list reviews of PR #{number}", f"{self._url}/pulls/{number}/reviews")
        return [
            Review(
                id=int(item["id"]),
                user=str((item.get("user") or {}).get("login") or ""),
                state=ReviewState(item["state"]),
                commit_id=item.get("commit_id"),
                submitted_at=_parse_time(item.get("submitted_at")),
                body=str(item.get("body") or ""),
            )
            for item in items
        ]

    def list_pull_commits(self, number: int) -> list[PullCommit]:
        what = f"list commits of PR #{number}"
        items = self._get_all(what, f"{self._url}/pulls/{number}/commits")
        if len(items) >= MAX_PULL_COMMITS:
            # GitHub stops listing at 250: only the PR's own count tells whether that is all of them
            total = self._get(f"read PR #{number}", f"/pulls/{number}").get("commits")
            if not isinstance(total, int) or total > len(items):
                of = str(total) if isinstance(total, int) else "an unknown number of"
                raise ForgeError(
                    f"{what}: the forge lists only {len(items)} of {of} commits (at most {MAX_PULL_COMMITS}),"
                    " so not every contributor can be known",
                    status=None,
                    retryable=False,
                )
        return [self._pull_commit(item) for item in items]

    def list_issue_events(self, number: int) -> list[IssueEvent]:
        items = self._get_all(f"list events of PR #{number}", f"{self._url}/issues/{number}/events")
        events = [
            IssueEvent(
                id=int(item["id"]),
                event=str(item.get("event") or ""),
                actor=(item.get("actor") or {}).get("login"),
                commit_id=item.get("commit_id"),
                created_at=_parse_time(item.get("created_at")),
            )
            for item in items
        ]
        return sorted(events, key=lambda e: e.id)

    def list_ref_activity(self, branch: str) -> list[RefActivity]:
        what = f"list pushes to {branch}"
        items = self._get_all(what, f"{self._url}/activity", {"ref": f"refs/heads/{branch}", "direction": "asc"})
        moves = [
            RefActivity(
                id=int(item["id"]),
                ref=str(item.get("ref") or f"refs/heads/{branch}"),
                before=str(item.get("before") or ""),
                after=str(item.get("after") or ""),
                actor=(item.get("actor") or {}).get("login"),
                activity_type=str(item.get("activity_type") or "push"),
                timestamp=_parse_time(item.get("timestamp")),
            )
            for item in items
        ]
        return sorted(moves, key=lambda m: m.id)

    def set_status(
        self,
        sha: str,
        *,
        context: str,
        state: StatusState,
        description: str = "",
        target_url: str | None = None,
    ) -> CommitStatus:
        body: dict[str, Any] = {"state": state.value, "context": context, "description": description[:140]}
        if target_url:
            body["target_url"] = target_url
        # The latest status per context wins, so repeating this POST cannot change the outcome.
        return self._status(self._write(f"set status {context}", "POST", f"/statuses/{sha}", body))

    def list_statuses(self, ref: str) -> list[CommitStatus]:
        data = self._get(f"read statuses of {ref}", f"/commits/{_quote(ref)}/status", {"per_page": PER_PAGE})
        return [self._status(item) for item in data.get("statuses") or []]

    @staticmethod
    def _check_run(run: GithubCheckRun) -> CheckRun:
        # read from the attributes: after CheckRun.edit() they hold the answer, raw_data does not
        output = run.output
        app = run.app
        return CheckRun(
            id=int(run.id),
            name=str(run.name),
            head_sha=str(run.head_sha),
            status=CheckRunStatus(run.status),
            conclusion=CheckConclusion(run.conclusion) if run.conclusion else None,
            title=output.title if output is not None else None,
            summary=output.summary if output is not None else None,
            annotations_count=int(output.annotations_count or 0) if output is not None else 0,
            details_url=run.details_url,
            external_id=run.external_id,
            app=app.slug if app is not None else None,
            url=str(run.html_url or ""),
        )

    def _check_runs(self, ref: str, name: str | None, *, every: bool = False) -> list[GithubCheckRun]:
        def fn() -> list[GithubCheckRun]:
            runs = self._repo.get_commit(ref).get_check_runs(
                check_name=name if name else NotSet, filter="all" if every else "latest"
            )
            return list(runs)

        return self._call(f"list check runs of {ref}", fn)

    def list_check_runs(self, ref: str, *, name: str | None = None) -> list[CheckRun]:
        return [self._check_run(run) for run in self._check_runs(ref, name)]

    def create_check_run(
        self,
        sha: str,
        *,
        name: str,
        conclusion: CheckConclusion,
        title: str,
        summary: str,
        text: str | None = None,
        annotations: Sequence[CheckAnnotation] = (),
        details_url: str | None = None,
        external_id: str | None = None,
    ) -> CheckRun:
        step = MAX_ANNOTATIONS_PER_REQUEST
        batches = [list(annotations[i : i + step]) for i in range(0, len(annotations), step)] or [[]]
        output: dict[str, Any] = {"title": title, "summary": summary}
        if text is not None:
            output["text"] = text
        what = f"create check run {name}"

        def create() -> GithubCheckRun:
            return self._repo.create_check_run(
                name=name,
                head_sha=sha,
                conclusion=conclusion.value,
                output={**output, "annotations": [a.request() for a in batches[0]]},
                details_url=NotSet if details_url is None else details_url,
                external_id=NotSet if external_id is None else external_id,
            )

        def created() -> GithubCheckRun | None:
            if external_id is None:
                return None  # nothing tells our run from another: a retry may create a second one
            mine = [r for r in self._check_runs(sha, name, every=True) if r.external_id == external_id]
            return mine[0] if mine else None

        run = self._call(what, create, verify=created)
        sent = len(batches[0])
        for batch in batches[1:]:
            sent += len(batch)
            run = self._append_annotations(run, name, {**output, "annotations": [a.request() for a in batch]}, sent)
        return self._check_run(run)

    def _append_annotations(self, run: GithubCheckRun, name: str, output: dict[str, Any], total: int) -> GithubCheckRun:
        """One update of ``run`` adding ``output``'s annotations, after which it has ``total`` of them."""

        def append() -> GithubCheckRun:
            run.edit(output=output)
            return run

        def appended() -> GithubCheckRun | None:
            # each update appends, so whether a lost one took effect shows in the count it left
            current = self._call("read check run", lambda: self._repo.get_check_run(run.id).complete())
            return current if int(current.output.annotations_count or 0) >= total else None

        return self._call(f"annotate check run {name}", append, verify=appended)

    def comment(self, number: int, body: str) -> Comment:
        def posted() -> dict[str, Any] | None:
            me = self._me()
            items = self._get_all("list comments", f"{self._url}/issues/{number}/comments")
            mine = [c for c in items if c.get("body") == body and (c.get("user") or {}).get("login") == me]
            return mine[-1] if mine else None

        data = self._write(
            f"comment on PR #{number}", "POST", f"/issues/{number}/comments", {"body": body}, verify=posted
        )
        return self._comment(data)

    def list_team_members(self, team: str) -> list[str]:
        owner = self._settings.owner
        url = f"{self._req.base_url.rstrip('/')}/orgs/{_quote(owner)}/teams/{_quote(team)}/members"
        try:
            items = self._get_all(f"list members of team {team}", url)
        except ForgeError as exc:
            if exc.status == 404:
                return []
            raise
        return sorted(str(item["login"]) for item in items)

    def merge(
        self,
        number: int,
        *,
        expected_head_sha: str,
        method: MergeMethod = MergeMethod.SQUASH,
        commit_message: str | None = None,
    ) -> MergeResult:
        body: dict[str, Any] = {"merge_method": method.value, "sha": expected_head_sha}
        if commit_message:
            body["commit_title"] = commit_message

        def merged() -> dict[str, Any] | None:
            pull = self.get_pull_request(number)
            if pull.merged and pull.head_sha == expected_head_sha:
                return {"merged": True, "sha": pull.merge_commit_sha, "message": "Pull Request successfully merged"}
            return None

        try:
            data = self._write(f"merge PR #{number}", "PUT", f"/pulls/{number}/merge", body, verify=merged)
        except ForgeError as exc:
            if exc.status in (405, 409):
                # GitHub's refusals (protection not satisfied, head moved): a decision, not a failure.
                return MergeResult(merged=False, sha=None, message=exc.message)
            raise
        return MergeResult(merged=bool(data.get("merged")), sha=data.get("sha"), message=str(data.get("message", "")))

    def read_file(self, path: str, ref: str) -> bytes | None:
        data = self._get_or_none(f"read {path} at {ref}", f"/contents/{_quote(path.strip('/'))}", {"ref": ref})
        if data is None:
            return None
        if not isinstance(data, dict) or data.get("type") != "file":
            raise ForgeError(f"read {path} at {ref}: not a file", status=None, retryable=False)
        try:
            return base64.b64decode(str(data.get("content") or ""))
        except binascii.Error as exc:
            raise ForgeError(f"read {path} at {ref}: undecodable content ({exc})") from None

    def compare(self, base: str, head: str) -> list[ChangedFile]:
        data = self._get(f"compare {base}...{head}", f"/compare/{_quote(base)}...{_quote(head)}")
        return [self._file(item) for item in data.get("files") or []]

    # ----------------------------------------------------------------------------------------------
    # branch protection (the ProtectionPort capability, for `glassbox protect`)

    def _branch(self, branch: str) -> Branch:
        return self._call(f"read branch {branch}", lambda: self._repo.get_branch(branch))

    def get_branch_protection(self, branch: str) -> dict[str, Any] | None:
        """GitHub's protection JSON for ``branch``; None when it is unprotected. Two or three requests."""
        handle = self._branch(branch)
        try:
            found = self._call(f"read protection of {branch}", handle.get_protection)
        except ForgeError as exc:
            if exc.status == 404:  # "Branch not protected"
                return None
            raise
        data: dict[str, Any] = dict(found.raw_data)
        if not isinstance(data.get("required_signatures"), dict):
            # some GitHub versions answer signatures only on their own endpoint
            enabled = self._call(f"read required signatures of {branch}", handle.get_required_signatures)
            data["required_signatures"] = {"enabled": bool(enabled)}
        return data

    def set_branch_protection(self, branch: str, body: Mapping[str, Any], *, required_signatures: bool) -> None:
        """PUT ``body`` (GitHub's protection request) through PyGithub, then set required signatures.

        Every call is a full replacement or a toggle, so a retry after a lost answer cannot do harm.
        """
        handle = self._branch(branch)
        kwargs: dict[str, Any] = {
            "enforce_admins": bool(body.get("enforce_admins")),
            "allow_force_pushes": bool(body.get("allow_force_pushes")),
            "allow_deletions": bool(body.get("allow_deletions")),
        }
        checks = body.get("required_status_checks")
        if checks is not None:
            kwargs["strict"] = bool(checks.get("strict"))
            # each check as GitHub's {context, app_id}: a pinned one as (context, app id), else any setter
            listed = checks.get("checks") or [{"context": c} for c in checks.get("contexts") or []]
            kwargs["checks"] = [
                (str(c["context"]), int(c["app_id"])) if c.get("app_id") else str(c["context"]) for c in listed
            ]
        if "required_linear_history" in body:
            kwargs["required_linear_history"] = bool(body["required_linear_history"])
        reviews = body.get("required_pull_request_reviews")
        if reviews is not None:
            kwargs["dismiss_stale_reviews"] = bool(reviews.get("dismiss_stale_reviews"))
            kwargs["require_code_owner_reviews"] = bool(reviews.get("require_code_owner_reviews"))
            kwargs["required_approving_review_count"] = int(reviews.get("required_approving_review_count", 0))
            kwargs["require_last_push_approval"] = bool(reviews.get("require_last_push_approval"))
            bypass = reviews.get("bypass_pull_request_allowances") or {}
            kwargs["users_bypass_pull_request_allowances"] = [str(u) for u in bypass.get("users") or []]
            kwargs["teams_bypass_pull_request_allowances"] = [str(t) for t in bypass.get("teams") or []]
            kwargs["apps_bypass_pull_request_allowances"] = [str(a) for a in bypass.get("apps") or []]
        restrictions = body.get("restrictions")
        if restrictions is not None:
            kwargs["user_push_restrictions"] = [str(u) for u in restrictions.get("users") or []]
            kwargs["team_push_restrictions"] = [str(t) for t in restrictions.get("teams") or []]
            kwargs["app_push_restrictions"] = [str(a) for a in restrictions.get("apps") or []]
        self._call(f"protect {branch}", functools.partial(handle.edit_protection, **kwargs))
        if required_signatures:
            self._call(f"require signatures on {branch}", handle.add_required_signatures)
        else:
            try:
                self._call(f"stop requiring signatures on {branch}", handle.remove_required_signatures)
            except ForgeError as exc:
                if exc.status != 404:  # already off
                    raise


def _quote(value: str) -> str:
    return urllib.parse.quote(value, safe="/")


def _next_link(header: str | None) -> str | None:
    if not header:
        return None
    for part in header.split(","):
        url, _, rel = part.partition(";")
        if 'rel="next"' in rel:
            return url.strip().strip("<>")
    return None


def connect(settings: ForgeSettings, **kwargs: Any) -> GitHubForge:
    """A forge client for ``settings``; keyword arguments go to :class:`GitHubForge`."""
    return GitHubForge(settings, **kwargs)


def _implements_port(forge: GitHubForge) -> Forge:
    # mypy checks here, once, that the adapter satisfies the port structurally.
    return forge


def _implements_protection(forge: GitHubForge) -> ProtectionPort:
    # and the optional branch-protection capability
    return forge
