"""The one port to a code host (:class:`Forge`), its records, and its PyGithub implementation.

PyGithub types never leave this package. The embedded forge server lives in :mod:`bot.forge.server`.
"""

from __future__ import annotations

from bot.forge.github import GitHubForge, RetryPolicy, connect
from bot.forge.model import (
    AnnotationLevel,
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
    MergeMethod,
    MergeResult,
    PullRequest,
    PullState,
    Review,
    ReviewState,
    StatusState,
    commit_payload,
    commit_sha,
)
from bot.forge.port import Forge
from bot.forge.settings import ForgeSettings, ForgeUrlOption, RepoOption, TokenOption, resolve_settings

__all__ = [
    "AnnotationLevel",
    "ChangedFile",
    "CheckAnnotation",
    "CheckConclusion",
    "CheckRun",
    "CheckRunStatus",
    "Comment",
    "CommitSigner",
    "CommitStatus",
    "FileStatus",
    "Forge",
    "ForgeSettings",
    "ForgeUrlOption",
    "GitHubForge",
    "GitIdentity",
    "MergeMethod",
    "MergeResult",
    "PullRequest",
    "PullState",
    "RepoOption",
    "RetryPolicy",
    "Review",
    "ReviewState",
    "StatusState",
    "TokenOption",
    "commit_payload",
    "commit_sha",
    "connect",
    "resolve_settings",
]
