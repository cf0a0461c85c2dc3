"""The deploy state directory: where each part of deploy keeps its files, and how they are written.

Layout under one state directory (``--state DIR``, ``$GLASSBOX_DEPLOY_STATE``, else the user data dir)::

    stacks/<project>/<stack>/state.json        the stack's resources as last applied
    stacks/<project>/<stack>/state.prev.json   the generation before it (what a rollback restores)
    stacks/<project>/<stack>/inflight.json     present only while an apply runs (or after it crashed)
    stacks/<project>/<stack>/.lock             fcntl lock serialising deploys of one stack
    credentials/replay.sqlite                  nonces of credentials already used (invariant I10)
    breakglass/grants.sqlite                   break-glass grants and whether each was used (a cache and index:
                                               when deploy has the audit trail, its claim there decides)
    reviews/<grant_id>.json                    post-incident review tasks opened by break-glass uses
    alerts.jsonl                               high-severity alerts waiting for the SIEM export

Every JSON file is written atomically (temp file in the same directory, fsync, rename), so a reader or a
crash sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.errors import UserError
from bot.records import canonical_json

STATE_ENV = "GLASSBOX_DEPLOY_STATE"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


@dataclass(frozen=True)
class StackRef:
    """One Pulumi stack of one project, written ``project/stack`` (e.g. ``data/prod``)."""

    project: str
    stack: str

    @classmethod
    def parse(cls, value: str) -> StackRef:
        parts = value.split("/")
        # one name each side: no wildcard, no list, no path tricks, so a reference names exactly one stack
        if len(parts) != 2 or not all(_NAME.match(p) for p in parts) or ".." in value:
            raise UserError(
                f"stack {value!r}: write exactly one stack as project/stack (e.g. data/prod); "
                "letters, digits, '-', '_' and '.', no wildcards or lists"
            )
        return cls(parts[0], parts[1])

    def __str__(self) -> str:
        return f"{self.project}/{self.stack}"


def default_state_dir() -> Path:
    env = os.environ.get(STATE_ENV)
    if env:
        return Path(env)
    from platformdirs import user_data_dir

    return Path(user_data_dir("glassbox")) / "deploy"


def stack_dir(state_dir: Path, ref: StackRef) -> Path:
    return state_dir / "stacks" / ref.project / ref.stack


def replay_db(state_dir: Path) -> Path:
    return state_dir / "credentials" / "replay.sqlite"


def grants_db(state_dir: Path) -> Path:
    return state_dir / "breakglass" / "grants.sqlite"


def reviews_dir(state_dir: Path) -> Path:
    return state_dir / "reviews"


def alerts_file(state_dir: Path) -> Path:
    return state_dir / "alerts.jsonl"


def write_json_atomic(path: Path, data: Any) -> None:
    """Write canonical JSON to ``path`` via temp file + fsync + rename (+ fsync of the directory)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(canonical_json(data) + b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a power cut only once the directory is synced
    finally:
        os.close(dir_fd)


def read_json(path: Path) -> Any | None:
    """The JSON in ``path``, or None when the file does not exist."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise UserError(f"{path}: not valid JSON ({exc}); restore it from state.prev.json or a backup") from None
