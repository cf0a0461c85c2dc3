"""The forge port: everything glassbox asks of a code host, in glassbox's own records.

Services (propose, check, approvals, deploy, audit) depend on this Protocol only. It is implemented once
for GitHub with PyGithub (:mod:`bot.forge.github`); the embedded forge server speaks the same GitHub REST
subset, so tests and the offline demo run that very adapter.

:class:`ProtectionPort` is a separate, optional capability (reading and writing branch protection, for
``glassbox protect``): it is not part of :class:`Forge`, so a forge that cannot do it (a fake in a test, a
read-only client) is still a whole :class:`Forge`, and the CLI asks ``isinstance(forge, ProtectionPort)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from bot.errors import ForgeError
from bot.forge.model import (
    ChangedFile,
    CheckAnnotation,
    CheckConclusion,
    CheckRun,
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


class Forge(Protocol):
    """One repository on one code host, seen through one identity (the token's)."""

    @property
    def repo(self) -> str:
        """``owner/name``."""
        ...

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
        """Branch ``branch`` off ``base`` with ONE commit applying ``changes``, and open a PR for it.

        Idempotent on ``branch``: if an open PR for it exists, that PR is returned unchanged. ``signer``
        receives the exact bytes of the commit object and returns its signature (e.g. ``ssh-keygen -Y sign``);
        ``signature`` is the same, pre-computed by a caller that pinned the tree and the dates in ``author``.
        """
        ...

    def get_pull_request(self, number: int) -> PullRequest: ...

    def list_open_pull_requests(self) -> list[PullRequest]:
        """Every open PR of the repository (budgets count them per author)."""
        ...

    def find_open_pull_request(self, branch: str) -> PullRequest | None:
        """The open PR whose head is ``branch`` in this repository, if any."""
        ...

    def list_changed_files(self, number: int) -> list[ChangedFile]: ...

    def list_reviews(self, number: int) -> list[Review]: ...

    def list_pull_commits(self, number: int) -> list[PullCommit]:
        """Every commit of PR ``number``, oldest first, with the accounts linked to its author and committer.

        Raises :class:`~bot.errors.ForgeError` when the forge cannot list them all (GitHub stops at
        :data:`~bot.forge.model.MAX_PULL_COMMITS`): a partial list would hide contributors.
        """
        ...

    def list_issue_events(self, number: int) -> list[IssueEvent]:
        """The lifecycle events of PR ``number`` (closed, reopened, base changed, draft toggled, review
        dismissed), oldest first, each with the account that caused it."""
        ...

    def list_ref_activity(self, branch: str) -> list[RefActivity]:
        """Every recorded move of ``branch``, oldest first, with the account that pushed it: who wrote a PR is
        known by push, never by the email a commit claims."""
        ...

    def set_status(
        self,
        sha: str,
        *,
        context: str,
        state: StatusState,
        description: str = "",
        target_url: str | None = None,
    ) -> CommitStatus: ...

    def list_statuses(self, ref: str) -> list[CommitStatus]:
        """The latest status per context for a commit SHA or branch."""
        ...

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
        """A completed check run ``name`` on commit ``sha``, with every annotation.

        The forge takes at most :data:`~bot.forge.model.MAX_ANNOTATIONS_PER_REQUEST` annotations per request:
        the first batch goes with the run, the rest follow in updates of it. ``external_id`` identifies this
        run, so a retried creation whose first answer was lost finds the run instead of making a second one.
        """
        ...

    def list_check_runs(self, ref: str, *, name: str | None = None) -> list[CheckRun]:
        """The latest check run of each name on a commit SHA or branch; only ``name``'s when given."""
        ...

    def comment(self, number: int, body: str) -> Comment: ...

    def list_team_members(self, team: str) -> list[str]:
        """Logins of the members of team ``team`` (slug) in the repository's organisation."""
        ...

    def merge(
        self,
        number: int,
        *,
        expected_head_sha: str,
        method: MergeMethod = MergeMethod.SQUASH,
        commit_message: str | None = None,
    ) -> MergeResult:
        """Merge only if the PR's head is still ``expected_head_sha``."""
        ...

    def read_file(self, path: str, ref: str) -> bytes | None:
        """A file's bytes at ``ref`` (branch, tag or SHA); None when the path does not exist there."""
        ...

    def compare(self, base: str, head: str) -> list[ChangedFile]:
        """Files changed between the merge base of ``base`` and ``head``, and ``head``."""
        ...

    def branch_head(self, branch: str) -> str | None:
        """The commit SHA a branch points at; None when the branch does not exist."""
        ...


class BranchMoved(ForgeError):
    """An append lost the race: the branch no longer points at the parent it was built on."""


@runtime_checkable
class AppendPort(Protocol):
    """Fast-forward appends to one branch through the Git Data API (optimistic concurrency on its head)."""

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
        """Add ``files`` (path → UTF-8 text) on top of ``parent`` (None: the branch's first commit) in one signed
        commit and move ``branch`` to it, fast-forward only; its SHA (``parent`` itself when the files are all there
        already). :class:`BranchMoved` when ``branch`` is no longer at ``parent`` (or, for None, already exists)."""
        ...


@runtime_checkable
class ProtectionPort(Protocol):
    """Branch protection on one repository, as GitHub's REST JSON (the shape people paste and diff).

    JSON rather than a record on purpose: ``glassbox protect --live FILE`` diffs the very same document,
    and :mod:`bot.approvals.protection` owns the one mapping between it and glassbox's settings record.
    """

    def get_branch_protection(self, branch: str) -> dict[str, Any] | None:
        """``GET /repos/{repo}/branches/{branch}/protection``, with ``required_signatures``; None if unprotected."""
        ...

    def set_branch_protection(self, branch: str, body: Mapping[str, Any], *, required_signatures: bool) -> None:
        """``PUT`` the protection body, then enable or disable required signatures (a separate endpoint)."""
        ...
