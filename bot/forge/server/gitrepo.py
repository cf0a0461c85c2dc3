"""Bare git repositories of the embedded forge, driven through the real git CLI.

Objects are written with ``git hash-object`` and trees are built through a throw-away index
(``read-tree`` + ``update-index --index-info`` + ``write-tree``), so building a tree costs a fixed number
of git processes whatever the number of files. Commit objects are written from their exact bytes
(:func:`bot.forge.model.commit_payload`), which is how a client-computed signature stays valid.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ZERO_SHA = "0" * 40
FULL_SHA = re.compile(r"^[0-9a-f]{40}$")


class GitFailed(RuntimeError):
    """A git command failed; the message carries git's stderr (never a token: git sees none)."""


@dataclass(frozen=True)
class Person:
    name: str
    email: str
    date: datetime


@dataclass(frozen=True)
class CommitInfo:
    sha: str
    tree: str
    parents: list[str]
    author: Person
    committer: Person
    message: str
    signature: str | None
    payload: bytes = b""  # the commit object's bytes without its signature: what the signature signs


@dataclass(frozen=True)
class TreeEntry:
    mode: str
    type: str
    sha: str
    path: str
    size: int | None


@dataclass(frozen=True)
class DiffEntry:
    path: str
    status: str  # added | removed | modified | renamed
    old_sha: str | None
    new_sha: str | None
    additions: int = 0
    deletions: int = 0
    previous_path: str | None = None
    patch: str | None = None  # the unified diff's hunks; None for a binary file or no hunk at all


@dataclass
class NewEntry:
    """One entry of a tree-creation request: content, an existing sha, or a delete (sha None)."""

    path: str
    mode: str = "100644"
    type: str = "blob"
    content: str | None = None
    sha: str | None = None
    delete: bool = False
    extra: dict[str, str] = field(default_factory=dict)


_STATUS = {"A": "added", "D": "removed", "M": "modified", "T": "modified", "R": "renamed", "C": "copied"}


def _unsigned(raw: bytes) -> bytes:
    """A commit object's bytes with its ``gpgsig`` header (and the header's continuation lines) removed."""
    head, sep, body = raw.partition(b"\n\n")
    kept: list[bytes] = []
    in_sig = False
    for line in head.split(b"\n"):
        if in_sig and line.startswith(b" "):
            continue
        in_sig = line.startswith(b"gpgsig ")
        if not in_sig:
            kept.append(line)
    return b"\n".join(kept) + sep + body


def _parse_person(raw: str) -> Person:
    # "Name <email> 1700000000 +0000"
    name, _, rest = raw.partition(" <")
    email, _, when = rest.partition("> ")
    seconds, _, _tz = when.partition(" ")
    return Person(name=name, email=email, date=datetime.fromtimestamp(int(seconds), tz=UTC))


class BareRepo:
    """One bare repository on disk."""

    def __init__(self, path: Path) -> None:
        self.path = path

    # ----------------------------------------------------------------------------------------------
    # plumbing

    def git(
        self,
        *args: str,
        input: bytes | None = None,
        env: Mapping[str, str] | None = None,
        check: bool = True,
    ) -> bytes:
        full_env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", **(env or {})}
        proc = subprocess.run(
            ["git", f"--git-dir={self.path}", *args], input=input, capture_output=True, env=full_env, check=False
        )
        if check and proc.returncode != 0:
            raise GitFailed(f"git {args[0]}: {proc.stderr.decode('utf-8', 'replace').strip()}")
        return proc.stdout

    @classmethod
    def init(cls, path: Path, default_branch: str = "main") -> BareRepo:
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["git", "init", "--bare", "--quiet", f"--initial-branch={default_branch}", str(path)],
            check=True,
            capture_output=True,
        )
        return cls(path)

    def resolve(self, rev: str) -> str | None:
        """The object id ``rev`` names (branch, tag, sha, sha^{tree}…), or None."""
        if rev.startswith("-"):
            return None
        out = self.git("rev-parse", "--verify", "--quiet", "--end-of-options", rev, check=False).strip()
        return out.decode("ascii") if out else None

    def resolve_commit(self, rev: str) -> str | None:
        if rev.startswith("-"):
            return None
        for candidate in (f"refs/heads/{rev}", rev):
            sha = self.resolve(f"{candidate}^{{commit}}")
            if sha:
                return sha
        return None

    def object_type(self, sha: str) -> str | None:
        if not sha or sha.startswith("-"):
            return None
        out = self.git("cat-file", "-t", sha, check=False).strip()
        return out.decode("ascii") if out else None

    def ref(self, name: str) -> str | None:
        """The sha a full ref name (``refs/heads/x``) points at."""
        out = self.git("rev-parse", "--verify", "--quiet", f"{name}^{{commit}}", check=False).strip()
        return out.decode("ascii") if out and name.startswith("refs/") else None

    def refs(self, prefix: str = "refs/") -> list[tuple[str, str]]:
        out = self.git("for-each-ref", "--format=%(refname) %(objectname)", prefix).decode("utf-8")
        return [tuple(line.split(" ", 1)) for line in out.splitlines() if line]  # type: ignore[misc]

    def update_ref(self, name: str, new: str, old: str | None = None) -> bool:
        """Point ``name`` at ``new``; with ``old`` (ZERO_SHA = must not exist) only if it still holds ``old``."""
        args = ["update-ref", name, new] + ([old] if old is not None else [])
        proc = subprocess.run(["git", f"--git-dir={self.path}", *args], capture_output=True, check=False)
        return proc.returncode == 0

    def delete_ref(self, name: str) -> bool:
        proc = subprocess.run(["git", f"--git-dir={self.path}", "update-ref", "-d", name], capture_output=True)
        return proc.returncode == 0

    # ----------------------------------------------------------------------------------------------
    # objects

    def write_blobs(self, contents: Sequence[bytes]) -> list[str]:
        """Write blobs in ONE git process (``--stdin-paths`` over temp files)."""
        if not contents:
            return []
        with tempfile.TemporaryDirectory(prefix="gbx-blobs-") as tmp:
            paths = []
            for i, data in enumerate(contents):
                p = Path(tmp) / f"{i}"
                p.write_bytes(data)
                paths.append(str(p))
            out = self.git("hash-object", "-w", "--no-filters", "--stdin-paths", input="\n".join(paths).encode())
        return out.decode("ascii").split()

    def build_tree(self, base_tree: str | None, entries: Sequence[NewEntry]) -> str:
        contents = [e.content.encode("utf-8") for e in entries if e.content is not None and not e.delete]
        blob_shas = iter(self.write_blobs(contents))
        lines = []
        for e in entries:
            if e.delete:
                lines.append(f"0 {ZERO_SHA}\t{e.path}")
            elif e.content is not None:
                lines.append(f"{e.mode} {next(blob_shas)}\t{e.path}")
            elif e.sha is not None:
                lines.append(f"{e.mode} {e.type} {e.sha}\t{e.path}")
        with tempfile.TemporaryDirectory(prefix="gbx-index-") as tmp:
            env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
            if base_tree:
                self.git("read-tree", base_tree, env=env)
            else:
                self.git("read-tree", "--empty", env=env)
            if lines:
                self.git("update-index", "--index-info", input=("\n".join(lines) + "\n").encode("utf-8"), env=env)
            return self.git("write-tree", env=env).decode("ascii").strip()

    def write_commit(self, payload: bytes) -> str:
        return self.git("hash-object", "-t", "commit", "-w", "--stdin", input=payload).decode("ascii").strip()

    def read_commit(self, sha: str) -> CommitInfo | None:
        if self.object_type(sha) != "commit":
            return None
        raw_bytes = self.git("cat-file", "commit", sha)
        raw = raw_bytes.decode("utf-8", "replace")
        header, _, message = raw.partition("\n\n")
        tree = ""
        parents: list[str] = []
        author = committer = None
        sig_lines: list[str] = []
        in_sig = False
        for line in header.split("\n"):
            if in_sig and line.startswith(" "):
                sig_lines.append(line[1:])
                continue
            in_sig = False
            key, _, value = line.partition(" ")
            if key == "tree":
                tree = value
            elif key == "parent":
                parents.append(value)
            elif key == "author":
                author = _parse_person(value)
            elif key == "committer":
                committer = _parse_person(value)
            elif key == "gpgsig":
                in_sig = True
                sig_lines = [value]
        assert author is not None and committer is not None
        signature = "\n".join(sig_lines) + "\n" if sig_lines else None
        return CommitInfo(sha, tree, parents, author, committer, message, signature, _unsigned(raw_bytes))

    def ls_tree(self, tree_ish: str, path: str | None = None, *, recursive: bool = False) -> list[TreeEntry]:
        args = ["ls-tree", "-l", "-z"] + (["-r"] if recursive else []) + ["--end-of-options", tree_ish]
        if path:
            args += ["--", path]
        out = self.git(*args, check=False).decode("utf-8", "replace")
        entries = []
        for item in out.split("\0"):
            if not item:
                continue
            meta, _, name = item.partition("\t")
            mode, otype, sha, size = meta.split(None, 3)
            entries.append(TreeEntry(mode, otype, sha, name, None if size.strip() == "-" else int(size)))
        return entries

    def read_blob(self, sha: str) -> bytes:
        return self.git("cat-file", "blob", sha)

    def entry_at(self, commit: str, path: str) -> TreeEntry | None:
        path = path.strip("/")
        if not path:
            return None
        found = self.ls_tree(commit, path)
        return next((e for e in found if e.path == path), None)

    # ----------------------------------------------------------------------------------------------
    # history

    def merge_base(self, a: str, b: str) -> str | None:
        out = self.git("merge-base", a, b, check=False).strip()
        return out.decode("ascii") if out else None

    def is_ancestor(self, a: str, b: str) -> bool:
        proc = subprocess.run(
            ["git", f"--git-dir={self.path}", "merge-base", "--is-ancestor", a, b], capture_output=True
        )
        return proc.returncode == 0

    def rev_list(self, exclude: str | None, include: str) -> list[str]:
        args = ["rev-list", "--reverse", include] + ([f"^{exclude}"] if exclude else [])
        return self.git(*args).decode("ascii").split()

    def log(
        self,
        start: str,
        *,
        path: str | None = None,
        author: str | None = None,
        since: str | None = None,
        until: str | None = None,
    ) -> list[str]:
        """Commits reachable from ``start``, newest first (``git rev-list``): only those touching ``path`` (a
        literal path, no pathspec magic), whose author matches ``author`` (a fixed string), in [since, until]."""
        args = ["rev-list", "--fixed-strings"]
        if author:
            args.append(f"--author={author}")
        if since:
            args.append(f"--since={since}")
        if until:
            args.append(f"--until={until}")
        args += ["--end-of-options", start]
        if path:
            args += ["--", path]
        return self.git(*args, env={"GIT_LITERAL_PATHSPECS": "1"}).decode("ascii").split()

    def diff(self, old: str | None, new: str, *, patches: bool = False) -> list[DiffEntry]:
        """Changed paths between two commits (or the empty tree), with line counts, and with ``patches`` each
        file's unified diff hunks as GitHub's ``patch`` (none for a binary file); renames off."""
        empty = self.git("hash-object", "-t", "tree", "--stdin", input=b"").decode("ascii").strip()
        left = old or empty
        raw = self.git("diff-tree", "-r", "-z", "--no-renames", "--raw", left, new).decode("utf-8", "replace")
        num = self.git("diff-tree", "-r", "-z", "--no-renames", "--numstat", left, new).decode("utf-8", "replace")
        counts: dict[str, tuple[int, int]] = {}
        parts = num.split("\0")
        for item in parts:
            if not item:
                continue
            fields = item.split("\t")
            if len(fields) == 3:
                adds, dels, path = fields
                counts[path] = (int(adds) if adds.isdigit() else 0, int(dels) if dels.isdigit() else 0)
        entries = []
        tokens = raw.split("\0")
        i = 0
        while i < len(tokens) - 1:
            meta = tokens[i]
            if not meta.startswith(":"):
                i += 1
                continue
            path = tokens[i + 1]
            i += 2
            _old_mode, _new_mode, old_sha, new_sha, code = meta[1:].split(" ")
            status = _STATUS.get(code[0], "modified")
            added, deleted = counts.get(path, (0, 0))
            entries.append(
                DiffEntry(
                    path=path,
                    status=status,
                    old_sha=None if old_sha == ZERO_SHA else old_sha,
                    new_sha=None if new_sha == ZERO_SHA else new_sha,
                    additions=added,
                    deletions=deleted,
                )
            )
        if patches and entries:
            hunks = self._hunks(left, new)
            if len(hunks) == len(entries):  # git writes one section per changed path, in the same order
                entries = [dataclasses.replace(e, patch=h) for e, h in zip(entries, hunks, strict=True)]
        return entries

    def _hunks(self, old: str, new: str) -> list[str | None]:
        """Per changed path, in ``diff-tree`` order: the text from its first ``@@`` line on, or None."""
        raw = self.git("diff-tree", "-r", "-p", "--no-renames", "--no-color", "--full-index", old, new)
        text = raw.decode("utf-8", "replace")
        sections = re.split(r"^diff --git ", text, flags=re.MULTILINE)[1:]
        out: list[str | None] = []
        for section in sections:
            at = section.find("\n@@")
            out.append(section[at + 1 :].removesuffix("\n") if at >= 0 else None)
        return out

    def merge_trees(self, base: str, head: str) -> str | None:
        """The tree of merging ``head`` into ``base`` (git merge-tree), or None on a conflict."""
        proc = subprocess.run(
            ["git", f"--git-dir={self.path}", "merge-tree", "--write-tree", "--no-messages", base, head],
            capture_output=True,
            check=False,
        )
        if proc.returncode != 0:
            return None
        return proc.stdout.decode("ascii").split()[0]
