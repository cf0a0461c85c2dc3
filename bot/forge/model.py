"""Records the forge port speaks: pull requests and their commits, reviews, statuses, check runs, changed files,
comments, merges.

These are glassbox's own types; the GitHub adapter translates PyGithub objects into them so nothing outside
``bot/forge/`` ever sees a PyGithub type. Git identities and the exact bytes of a commit object live here
too, because the client (to sign a commit) and the embedded server (to store it) must agree on them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import Field

from bot.records import Record, UtcDateTime


class PullState(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class ReviewState(StrEnum):
    APPROVED = "APPROVED"
    CHANGES_REQUESTED = "CHANGES_REQUESTED"
    COMMENTED = "COMMENTED"
    DISMISSED = "DISMISSED"
    PENDING = "PENDING"


class StatusState(StrEnum):
    ERROR = "error"
    FAILURE = "failure"
    PENDING = "pending"
    SUCCESS = "success"


class MergeMethod(StrEnum):
    MERGE = "merge"
    SQUASH = "squash"


class FileStatus(StrEnum):
    ADDED = "added"
    REMOVED = "removed"
    MODIFIED = "modified"
    RENAMED = "renamed"
    COPIED = "copied"
    CHANGED = "changed"
    UNCHANGED = "unchanged"


class GitIdentity(Record):
    """Who wrote or committed a commit, and when (second precision, as git stores it)."""

    name: str = Field(min_length=1)
    email: str = Field(min_length=1)
    date: UtcDateTime | None = None

    def at(self, when: datetime) -> GitIdentity:
        return self.model_copy(update={"date": when.astimezone(UTC).replace(microsecond=0)})


class PullRequest(Record):
    number: int = Field(ge=1)
    title: str
    body: str = ""
    state: PullState
    draft: bool = False
    merged: bool = False
    merge_commit_sha: str | None = None
    head_ref: str
    head_sha: str
    base_ref: str
    base_sha: str
    author: str
    labels: list[str] = Field(default_factory=list)
    url: str = Field(default="", description="The PR's web page (html_url).")


class ChangedFile(Record):
    path: str
    status: FileStatus
    sha: str | None = Field(default=None, description="Blob SHA at head; null when removed.")
    additions: int = 0
    deletions: int = 0
    previous_path: str | None = None


class Review(Record):
    id: int
    user: str
    state: ReviewState
    commit_id: str | None
    submitted_at: UtcDateTime | None = None
    body: str = ""


class IssueEvent(Record):
    """One lifecycle event of a pull request (``GET /issues/{n}/events``): who closed, reopened, rebased it."""

    id: int
    event: str = Field(description="closed, reopened, base_ref_changed, ready_for_review, convert_to_draft, ...")
    actor: str | None = None
    commit_id: str | None = None
    created_at: UtcDateTime | None = None


LIFECYCLE_EVENTS = frozenset(
    {"closed", "reopened", "base_ref_changed", "convert_to_draft", "ready_for_review", "review_dismissed"}
)
"""Events after which approvals given before them no longer count (a new head is the other reset)."""


class RefActivity(Record):
    """One move of a branch (``GET /repos/{o}/{r}/activity``): who pushed, from what to what."""

    id: int
    ref: str
    before: str
    after: str
    actor: str | None = None
    activity_type: str = "push"
    timestamp: UtcDateTime | None = None


MAX_PULL_COMMITS = 250
"""GitHub lists at most this many commits of a pull request (``GET /pulls/{number}/commits``)."""


class PullCommit(Record):
    """One commit of a pull request, with the forge accounts GitHub links to its git identities."""

    sha: str
    author: str | None = Field(default=None, description="Login linked to the git author email; None if none.")
    committer: str | None = Field(default=None, description="Login linked to the git committer email; None if none.")
    author_email: str | None = Field(default=None, description="The git author email, as recorded in the commit.")
    committer_email: str | None = Field(default=None, description="The git committer email.")


class CommitStatus(Record):
    context: str
    state: StatusState
    description: str = ""
    target_url: str | None = None
    creator: str | None = None
    created_at: UtcDateTime | None = None


MAX_ANNOTATIONS_PER_REQUEST = 50
"""GitHub takes at most this many check-run annotations per request; more follow in updates of the run."""
MAX_CHECK_OUTPUT_CHARS = 65535
"""The longest ``output.summary`` or ``output.text`` of a check run GitHub accepts, in characters."""
MAX_ANNOTATION_TITLE_CHARS = 255
MAX_ANNOTATION_MESSAGE_BYTES = 64 * 1024
"""An annotation's ``message`` (and ``raw_details``) may be at most 64 KB."""


class CheckRunStatus(StrEnum):
    QUEUED = "queued"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    # reserved for GitHub Actions runs: read, never set
    WAITING = "waiting"
    REQUESTED = "requested"
    PENDING = "pending"


class CheckConclusion(StrEnum):
    ACTION_REQUIRED = "action_required"
    CANCELLED = "cancelled"
    FAILURE = "failure"
    NEUTRAL = "neutral"
    SKIPPED = "skipped"
    STALE = "stale"  # set by GitHub only, never by a client
    SUCCESS = "success"
    TIMED_OUT = "timed_out"


class AnnotationLevel(StrEnum):
    NOTICE = "notice"
    WARNING = "warning"
    FAILURE = "failure"


class CheckAnnotation(Record):
    """One annotation of a check run: a message on lines of one repository file."""

    path: str = Field(min_length=1)
    start_line: int = Field(ge=1)
    end_line: int = Field(ge=1)
    level: AnnotationLevel
    message: str = Field(min_length=1)
    title: str | None = None

    def request(self) -> dict[str, Any]:
        """The annotation as GitHub's ``output.annotations[]`` item."""
        data: dict[str, Any] = {
            "path": self.path,
            "start_line": self.start_line,
            "end_line": self.end_line,
            "annotation_level": self.level.value,
            "message": self.message,
        }
        if self.title:
            data["title"] = self.title
        return data


class CheckRun(Record):
    """A check run on a commit (GitHub's Checks API), as the forge reports it."""

    id: int
    name: str
    head_sha: str
    status: CheckRunStatus
    conclusion: CheckConclusion | None = None
    title: str | None = None
    summary: str | None = None
    annotations_count: int = 0
    details_url: str | None = None
    external_id: str | None = None
    app: str | None = Field(default=None, description="Slug of the app that created the run; None for a person.")
    url: str = Field(default="", description="The run's web page (html_url).")


class Comment(Record):
    id: int
    user: str
    body: str
    created_at: UtcDateTime | None = None


class MergeResult(Record):
    merged: bool
    sha: str | None
    message: str = ""


# --------------------------------------------------------------------------------------------------
# git commit objects


CommitSigner = Callable[[bytes], str]
"""Signs the exact bytes of an unsigned commit object; returns an armored signature (e.g. SSH)."""


def _git_person(person: GitIdentity) -> bytes:
    if person.date is None:
        raise ValueError("a commit identity needs a date to be encoded")
    seconds = int(person.date.timestamp())
    return f"{person.name} <{person.email}> {seconds} +0000".encode()


def commit_payload(
    tree: str,
    parents: Sequence[str],
    author: GitIdentity,
    committer: GitIdentity,
    message: str,
    signature: str | None = None,
) -> bytes:
    """The raw bytes of a git commit object (without the ``commit <len>\\0`` header).

    Unsigned, these are the bytes a signer signs; with ``signature`` they carry a ``gpgsig`` header, exactly
    as ``git commit -S`` writes it, so ``git verify-commit`` accepts the result.
    """
    lines = [b"tree " + tree.encode("ascii")]
    lines += [b"parent " + p.encode("ascii") for p in parents]
    lines.append(b"author " + _git_person(author))
    lines.append(b"committer " + _git_person(committer))
    if signature:
        sig_lines = signature.strip("\n").split("\n")
        lines.append(b"gpgsig " + sig_lines[0].encode("ascii"))
        lines += [b" " + line.encode("ascii") for line in sig_lines[1:]]
    body = message if message.endswith("\n") else message + "\n"
    return b"\n".join(lines) + b"\n\n" + body.encode("utf-8")


def commit_sha(payload: bytes) -> str:
    """The object id git gives a commit with these bytes."""
    return hashlib.sha1(b"commit %d\x00" % len(payload) + payload, usedforsecurity=False).hexdigest()
