"""An in-memory forge: canned PR, reviews, files, commits and statuses behind the port (like policy-bot's pulltest)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from bot.errors import ForgeError
from bot.forge.model import (
    ChangedFile,
    Comment,
    CommitSigner,
    CommitStatus,
    GitIdentity,
    IssueEvent,
    MergeMethod,
    MergeResult,
    PullCommit,
    PullRequest,
    RefActivity,
    Review,
    StatusState,
)
from bot.records import FileChange


@dataclass
class MemoryForge:
    pr: PullRequest
    reviews: list[Review] = field(default_factory=list)
    files: list[ChangedFile] = field(default_factory=list)
    commits: list[PullCommit] = field(default_factory=list)  # the PR's commits, oldest first
    contents: dict[tuple[str, str], bytes] = field(default_factory=dict)  # (path, ref) -> bytes
    statuses: dict[str, dict[str, CommitStatus]] = field(default_factory=dict)
    teams: dict[str, list[str]] = field(default_factory=dict)
    me: str = "glassbox-bot"
    fail_on: set[str] = field(default_factory=set)
    merged: list[tuple[int, str, MergeMethod]] = field(default_factory=list)
    events: list[IssueEvent] = field(default_factory=list)
    pushes: list[RefActivity] = field(default_factory=list)

    @property
    def repo(self) -> str:
        return "acme/infra"

    def _maybe_fail(self, what: str) -> None:
        if what in self.fail_on:
            raise ForgeError(f"{what}: 502 Bad Gateway", status=502, retryable=True)

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
        raise NotImplementedError

    def get_pull_request(self, number: int) -> PullRequest:
        self._maybe_fail("get_pull_request")
        return self.pr

    def find_open_pull_request(self, branch: str) -> PullRequest | None:
        return None

    def list_changed_files(self, number: int) -> list[ChangedFile]:
        self._maybe_fail("list_changed_files")
        return list(self.files)

    def list_reviews(self, number: int) -> list[Review]:
        self._maybe_fail("list_reviews")
        return list(self.reviews)

    def list_pull_commits(self, number: int) -> list[PullCommit]:
        self._maybe_fail("list_pull_commits")
        return list(self.commits)

    def list_issue_events(self, number: int) -> list[IssueEvent]:
        self._maybe_fail("list_issue_events")
        return list(self.events)

    def list_ref_activity(self, branch: str) -> list[RefActivity]:
        self._maybe_fail("list_ref_activity")
        return list(self.pushes)

    def list_open_pull_requests(self) -> list[PullRequest]:
        return [self.pr] if self.pr.state.value == "open" else []

    def set_status(
        self, sha: str, *, context: str, state: StatusState, description: str = "", target_url: str | None = None
    ) -> CommitStatus:
        self._maybe_fail("set_status")
        status = CommitStatus(context=context, state=state, description=description, creator=self.me)
        self.statuses.setdefault(sha, {})[context] = status
        return status

    def list_statuses(self, ref: str) -> list[CommitStatus]:
        return list(self.statuses.get(ref, {}).values())

    def comment(self, number: int, body: str) -> Comment:
        raise NotImplementedError

    def list_team_members(self, team: str) -> list[str]:
        return list(self.teams.get(team, []))

    def merge(
        self,
        number: int,
        *,
        expected_head_sha: str,
        method: MergeMethod = MergeMethod.SQUASH,
        commit_message: str | None = None,
    ) -> MergeResult:
        self._maybe_fail("merge")
        if expected_head_sha != self.pr.head_sha:
            return MergeResult(merged=False, sha=None, message="Head branch was modified.")
        self.merged.append((number, expected_head_sha, method))
        return MergeResult(merged=True, sha="f" * 40, message="Pull Request successfully merged")

    def read_file(self, path: str, ref: str) -> bytes | None:
        self._maybe_fail("read_file")
        return self.contents.get((path, ref))

    def compare(self, base: str, head: str) -> list[ChangedFile]:
        return list(self.files)

    def branch_head(self, branch: str) -> str | None:
        return None
