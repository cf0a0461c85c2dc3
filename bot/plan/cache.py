"""The plan cache: what one sandbox run reported for the stacks of one side, kept under every input that can
change it, so that a plan already computed is not computed again.

Every PR against the same main plans the same base, and an agent calling the pre-flight in a loop plans the same
base (often the same head) on every call. :func:`bot.plan.plan_change` looks each side up here before it starts a
sandbox and stores what a sandbox run reported after it.

**The key** (:meth:`PlanCache.key`) is the digest of everything a side's plan is a function of:

- per job, in batch order: project, stack, repository path, entry point, the digest of the project's tree at that
  commit (:func:`bot.trust.anchors.tree_digest`: every file the export writes, and its symlinks), the digest of the
  stack config the program is handed (values, secret keys, region, environment), and the registry's estate entry
  for that stack (name, directory, the stack's environment class). The jobs of one side share one interpreter and
  one filesystem view (:mod:`bot.plan.runner`), so every job of the batch is an input of each job's plan;
- the side: a program can tell base from head by its working directory, so a plan is reused only at its side;
- glassbox's version and a digest of the modules that shape a plan (every module of :mod:`bot.plan`, including
  the mock cloud, the collector and the sandbox, and the records and documents modules they use): changing any of
  them retires every entry;
- the interpreter's version and every distribution installed where the sandbox imports from (by dist-info
  name, so with its version: ``pulumi``, ``pulumi_aws`` and whatever a program imports);
- the sandbox mode, its limits and the plan timeout.

**What the cache trusts.** Its directory: created 0700 and owned by this uid, entries and key 0600, refused
(a :class:`~bot.errors.UserError` naming the fix) when looser, when the sandbox could see it (it lies under a
path the jail binds, :func:`bot.plan.runner.visible_paths`) or when it lies inside the repository being planned
(a checkout is PR content). Every entry carries an HMAC-SHA256, under a key made once per directory
(``mac.key``, 32 random bytes), over its canonical body, which names its own key and stacks: a truncated,
corrupt, edited, renamed or swapped entry, a symlink, or one written under another directory's key fails
verification and is a miss (logged as a warning), never a plan. Entries are written to a temporary file and
renamed into place. A process keeps the last few entries it verified (:data:`VERIFIED_IN_MEMORY`) and answers
them from memory, so that a long-lived one reads and checks the base of every change against one main once.
Whoever can read ``mac.key`` can write entries that verify: that is this uid outside the
sandbox, which could as well change glassbox itself. The only way PR code runs as that uid outside the sandbox is
``--sandbox=none`` (development only): such a run never reads or keeps entries, but its program could have read
the key, so a host where one ran should delete the directory before sandboxed checks trust it again.

**What a forged entry could do**: change a check's plan, and so its verdict; deploy never reads the cache
(:func:`bot.plan.build_plan`, which deploy calls, runs every program) and refuses a recomputed plan whose digest
differs from the verdict's. A plan is assumed to be a function of its key (the mock cloud is deterministic): a
program that reads the clock or randomness is frozen at its first run, as deploy's recomputation would show.

**A directory that travels** (CI restores it from ``actions/cache``, which other workflow runs can write) must not
carry its key: ``GLASSBOX_PLAN_CACHE_KEY`` (a CI secret, 64 hex digits) is then the MAC key, the directory's
``mac.key`` is never read or made, and an entry written by anyone without the secret is a miss.

``GLASSBOX_PLAN_CACHE=off`` (or ``--no-plan-cache``) turns it off; ``GLASSBOX_PLAN_CACHE_DIR`` moves it from its
default under glassbox's state directory (``<user data dir>/glassbox/plan-cache``). The entries are kept within
``GLASSBOX_PLAN_CACHE_MAX_MB`` (default 512): on opening and every 64 entries kept, the least recently used go
(a hit touches its entry). Deleting the directory (or any entry) is always safe.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import os
import secrets
import site
import stat
import sys
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import bot
from bot.errors import UserError
from bot.plan.model import Resource
from bot.records import canonical_json, digest

if TYPE_CHECKING:
    from git.objects import Commit

    from bot.plan.runner import Job, Sandbox
    from bot.registry import EstateFile

ENABLE_ENV = "GLASSBOX_PLAN_CACHE"
DIR_ENV = "GLASSBOX_PLAN_CACHE_DIR"
KEY_ENV = "GLASSBOX_PLAN_CACHE_KEY"
MAX_BYTES_ENV = "GLASSBOX_PLAN_CACHE_MAX_MB"
DEFAULT_MAX_BYTES = 512 << 20
_PRUNE_EVERY = 64  # entries kept between two looks at the cache's size
OFF_VALUES = frozenset({"off", "0", "false", "no"})
SCHEMA = 1
KEY_FILE = "mac.key"
ENTRIES_DIR = "entries"
KEY_BYTES = 32
MAX_ENTRY_BYTES = 64 << 20
# The modules outside bot/plan that the sandbox and the collector use to shape a plan.
_SHAPING_MODULES = ("__init__.py", "errors.py", "records.py", "documents.py")

log = logging.getLogger(__name__)

ResultsBySide = dict[tuple[str, str], list[Resource]]


def default_cache_dir() -> Path:
    """``$GLASSBOX_PLAN_CACHE_DIR``, else ``plan-cache`` under glassbox's user data directory."""
    env = os.environ.get(DIR_ENV)
    if env:
        return Path(env)
    from platformdirs import user_data_dir

    return Path(user_data_dir("glassbox")) / "plan-cache"


def cache_enabled() -> bool:
    """False when ``GLASSBOX_PLAN_CACHE`` says off."""
    return os.environ.get(ENABLE_ENV, "").strip().lower() not in OFF_VALUES


def configured_cache(*, enabled: bool = True) -> PlanCache | None:
    """The plan cache the environment asks for, or None when it (or ``enabled``, a ``--no-plan-cache``) says off.
    ``$GLASSBOX_PLAN_CACHE_KEY`` set: entries are MAC'd under that key, not under the directory's own."""
    if not enabled or not cache_enabled():
        return None
    return PlanCache(default_cache_dir(), mac_key=external_key(), max_bytes=max_bytes())


def external_key() -> bytes | None:
    """The MAC key ``$GLASSBOX_PLAN_CACHE_KEY`` holds (64 hex digits), or None when it is unset.

    For a cache directory that travels (CI restores it from a shared cache that others can write): a key file
    inside it would travel with it, and whoever could write the directory could then write entries that verify.
    A key held apart (a CI secret, never written to the directory) leaves them nothing that verifies."""
    text = os.environ.get(KEY_ENV)
    if text is None or not text.strip():
        return None
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        key = b""
    if len(key) < KEY_BYTES:
        raise UserError(
            f"{KEY_ENV} must be at least {KEY_BYTES} bytes as hex ({2 * KEY_BYTES} hex digits; "
            f"python -c 'import secrets; print(secrets.token_hex({KEY_BYTES}))' makes one)"
        )
    return key


def max_bytes() -> int:
    """The size the cache is pruned to: ``$GLASSBOX_PLAN_CACHE_MAX_MB`` megabytes, else 512 MiB."""
    text = os.environ.get(MAX_BYTES_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_BYTES
    try:
        megabytes = int(text)
    except ValueError:
        megabytes = 0
    if megabytes < 1:
        raise UserError(f"{MAX_BYTES_ENV} must be a whole number of megabytes, at least 1 (got {text!r})")
    return megabytes << 20


def modules_digest() -> str:
    """Digest of the source of every module that shapes a plan (read now: a running server sees an upgrade)."""
    package = Path(bot.__file__).resolve().parent
    files = [package / name for name in _SHAPING_MODULES] + sorted((package / "plan").glob("*.py"))
    return digest([{"path": str(f.relative_to(package)), "sha256": _sha256_file(f)} for f in files])


def installed_distributions() -> list[str]:
    """Every distribution installed where a sandboxed program imports from, by dist-info name (name-version)."""
    names: set[str] = set()
    for directory in site.getsitepackages():
        with contextlib.suppress(OSError):
            names.update(e for e in os.listdir(directory) if e.endswith((".dist-info", ".egg-info")))
    return sorted(names)


def _sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _estate_entry(estate: EstateFile | None, job: Job) -> dict[str, Any] | None:
    project = estate.project_at(job.path) if estate is not None else None
    if project is None:
        return None
    stack = next((s for s in project.stacks if s.name == job.stack), None)
    return {
        "name": project.name,
        "directory": project.directory,
        "stack": stack.model_dump(mode="json") if stack is not None else None,
    }


# Entries a long-lived process (glassbox mcp, a pre-flight) keeps once it has read and verified them: the base of
# every change an agent tries against one main is read from disk and checked once, not on every call.
VERIFIED_IN_MEMORY = 8


class PlanCache:
    """A directory of MAC'd plan entries. Safe to share between threads and processes: entries are written to a
    temporary file and renamed, and the MAC key is created once with a no-clobber link."""

    def __init__(self, directory: Path, *, mac_key: bytes | None = None, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.directory = Path(os.path.abspath(directory))
        self.hits = 0
        self.misses = 0
        self.rejected = 0
        self.evicted = 0
        self.max_bytes = max_bytes
        self.external_key = mac_key is not None
        self._puts = 0
        self._lock = threading.Lock()
        self._writer: ThreadPoolExecutor | None = None
        self._pending: list[Future[None]] = []
        self._held: list[tuple[str, str, list[Job], ResultsBySide]] = []
        self._verified: OrderedDict[str, ResultsBySide] = OrderedDict()
        self._refuse_visible()
        self._mac_key = self._open(mac_key)
        self.prune()

    # ---------------------------------------------------------------------------------------------- set-up

    def _refuse_visible(self) -> None:
        from bot.plan.runner import visible_paths  # the runner imports this module's package

        real = os.path.realpath(self.directory)
        for path in visible_paths():
            if _within(real, path) or _within(str(self.directory), path):
                raise UserError(
                    f"plan cache {self.directory}: it lies under {path}, which the plan sandbox can read; "
                    f"set {DIR_ENV} to a directory outside it (the default is under the user data directory)"
                )

    def _open(self, external: bytes | None) -> bytes:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        info = os.lstat(self.directory)
        if not stat.S_ISDIR(info.st_mode):
            raise UserError(f"plan cache {self.directory}: not a directory (a symlink?); set {DIR_ENV} to a directory")
        _private(self.directory, info, "chmod 700")
        if external is not None:
            return external  # a key file the directory holds (it may have travelled with it) is never read
        path = self.directory / KEY_FILE
        try:
            return self._read_key(path)
        except FileNotFoundError:
            pass
        fd, tmp = tempfile.mkstemp(prefix=f".{KEY_FILE}.", dir=self.directory)  # 0600
        try:
            os.write(fd, secrets.token_bytes(KEY_BYTES))
            os.fsync(fd)
            os.close(fd)
            with contextlib.suppress(FileExistsError):  # another process made it first: use that one
                os.link(tmp, path)
        finally:
            os.unlink(tmp)
        return self._read_key(path)

    def _read_key(self, path: Path) -> bytes:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_size != KEY_BYTES:
                raise UserError(f"plan cache key {path}: not a {KEY_BYTES}-byte file; delete {self.directory}")
            _private(path, info, "chmod 600")
            return os.read(fd, KEY_BYTES)
        finally:
            os.close(fd)

    def admit(self, repo_path: Path) -> None:
        """Refuse to serve the repository at ``repo_path`` when the cache lies inside it (a checkout is PR content)."""
        real = os.path.realpath(self.directory)
        repo = os.path.realpath(repo_path)
        if _within(real, repo):
            raise UserError(
                f"plan cache {self.directory} lies inside the repository {repo_path}, whose files a change controls; "
                f"set {DIR_ENV} to a directory outside every repository"
            )

    # ---------------------------------------------------------------------------------------------- entries

    def key(
        self,
        side: str,
        commit: Commit,
        jobs: Sequence[Job],
        *,
        sandbox: Sandbox,
        timeout: float,
        estate: EstateFile | None,
    ) -> str:
        """The key of ``jobs`` (every stack of one side, in batch order) at ``commit``: see the module docstring."""
        from bot.trust.anchors import tree_digest  # here: the sandbox imports this package and must start fast

        trees: dict[str, str] = {}
        described = []
        for job in jobs:
            if job.path not in trees:
                trees[job.path] = tree_digest(commit, job.path)
            described.append(
                {
                    "project": job.project,
                    "stack": job.stack,
                    "path": job.path,
                    "main": job.main,
                    "tree": trees[job.path],
                    "config": digest(
                        {
                            "values": job.config,
                            "secret_keys": job.secret_keys,
                            "region": job.region,
                            "environment": job.environment,
                        }
                    ),
                    "estate": _estate_entry(estate, job),
                }
            )
        inputs = {
            "schema": SCHEMA,
            "side": side,
            "glassbox": bot.__version__,
            "modules": modules_digest(),
            "python": sys.version,
            "distributions": installed_distributions(),
            "sandbox": {"mode": sandbox.mode, "limits": asdict(sandbox.limits)},
            "timeout": timeout,
            "jobs": described,
        }
        return digest(inputs).removeprefix("sha256:")

    def _path(self, key: str) -> Path:
        return self.directory / ENTRIES_DIR / key[:2] / f"{key}.json"

    def _mac(self, body: dict[str, Any]) -> str:
        return hmac.new(self._mac_key, canonical_json(body), hashlib.sha256).hexdigest()

    def get(self, key: str, side: str, jobs: Sequence[Job]) -> ResultsBySide | None:
        """The verified resources of the entry under ``key`` (``jobs`` at ``side``), or None (a miss). An entry
        that exists but does not verify is logged, counted in :attr:`rejected` and treated as a miss."""
        self.settle()
        path = self._path(key)
        with self._lock:
            known = self._verified.get(key)
            if known is not None:
                self._verified.move_to_end(key)
        if known is not None:
            # Verified by this process when it was first read; its key names every input, so it is still the
            # entry (the file may have been pruned or replaced since: the copy held here is the one verified).
            self._count("hits")
            with contextlib.suppress(OSError):
                os.utime(path)
            return {k: list(v) for k, v in known.items()}
        try:
            raw = _read_entry(path)
        except FileNotFoundError:
            self._count("misses")
            return None
        except (OSError, _Rejected) as exc:
            self._reject(path, str(exc))
            return None
        try:
            found = self._verify(key, side, raw, jobs)
        except _Rejected as exc:
            self._reject(path, str(exc))
            return None
        self._count("hits")
        with contextlib.suppress(OSError):
            os.utime(path)  # recently used: pruned last
        with self._lock:
            self._verified[key] = {k: list(v) for k, v in found.items()}
            while len(self._verified) > VERIFIED_IN_MEMORY:
                self._verified.popitem(last=False)
        return found

    def _verify(self, key: str, side: str, raw: bytes, jobs: Sequence[Job]) -> ResultsBySide:
        try:
            entry = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise _Rejected(f"not JSON ({exc})") from None
        if not isinstance(entry, dict) or not isinstance(entry.get("mac"), str):
            raise _Rejected("no MAC")
        mac = entry.pop("mac")
        try:
            expected = self._mac(entry)
        except (TypeError, ValueError) as exc:
            raise _Rejected(f"not canonical JSON ({exc})") from None
        if not hmac.compare_digest(mac, expected):
            raise _Rejected("its MAC does not verify under this cache's key")
        # A body that verifies was written here; it must still be the entry for this key and these stacks.
        if entry.get("schema") != SCHEMA or entry.get("key") != key or entry.get("side") != side:
            raise _Rejected("it is the entry of another key")
        stacks = entry.get("stacks")
        wanted = [(job.project, job.stack) for job in jobs]
        if not isinstance(stacks, list) or [(s.get("project"), s.get("stack")) for s in stacks] != wanted:
            raise _Rejected("its stacks are not this side's")
        out: ResultsBySide = {}
        for job, item in zip(jobs, stacks, strict=True):
            try:
                resources = [Resource.model_validate(r) for r in item["resources"]]
            except (KeyError, TypeError, ValueError) as exc:
                raise _Rejected(f"a resource of {job.project}/{job.stack} is malformed ({exc})") from None
            if any((r.project, r.stack, r.environment) != (job.project, job.stack, job.environment) for r in resources):
                raise _Rejected(f"a resource of {job.project}/{job.stack} names another stack")
            out[(job.project, job.stack)] = resources
        return out

    def put_soon(self, key: str, side: str, jobs: Sequence[Job], results: ResultsBySide) -> None:
        """:meth:`put`, later and on a writer thread of this cache. The entry waits for :meth:`release` (the check
        that planned releases it once it has judged the plan, so that writing it takes none of the check's time),
        then is written while the caller goes on. Every read (:meth:`get`, :meth:`prune`) first releases and
        waits for the entries put before it, and the interpreter's exit waits for those released."""
        snapshot = {k: list(v) for k, v in results.items()}  # the caller's dict may change; the models do not
        with self._lock:
            self._held.append((key, side, list(jobs), snapshot))

    def release(self) -> None:
        """Start writing the entries :meth:`put_soon` holds; returns at once."""
        with self._lock:
            held, self._held = self._held, []
            if not held:
                return
            if self._writer is None:
                self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="glassbox-plan-cache")
            self._pending = [f for f in self._pending if not f.done()]
            self._pending += [self._writer.submit(self._put_logged, *entry) for entry in held]

    def _put_logged(self, key: str, side: str, jobs: Sequence[Job], results: ResultsBySide) -> None:
        try:
            self.put(key, side, jobs, results)
        except Exception:  # an entry not kept only costs a plan; the check it belongs to has its verdict already
            log.exception("plan cache: could not keep entry %s", key)

    def settle(self) -> None:
        """Release the entries :meth:`put_soon` holds and wait until every one is written (or failed)."""
        self.release()
        with self._lock:
            pending, self._pending = self._pending, []
        for future in pending:
            future.result()

    def put(self, key: str, side: str, jobs: Sequence[Job], results: ResultsBySide) -> None:
        """Keep ``results`` (what the sandbox run of ``jobs`` at ``side`` reported) under ``key``; a failure to
        write is logged."""
        body: dict[str, Any] = {
            "schema": SCHEMA,
            "key": key,
            "side": side,
            "stacks": [
                {
                    "project": job.project,
                    "stack": job.stack,
                    "resources": [r.model_dump(mode="json") for r in results.get((job.project, job.stack), [])],
                }
                for job in jobs
            ],
        }
        data = json.dumps({**body, "mac": self._mac(body)}, separators=(",", ":")).encode("utf-8")
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, tmp = tempfile.mkstemp(prefix=f".{key[:12]}.", suffix=".tmp", dir=path.parent)  # 0600
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError as exc:
            log.warning("plan cache: could not keep entry %s: %s", path, exc)
            return
        with self._lock:
            self._puts += 1
            due = self._puts % _PRUNE_EVERY == 0
        if due:
            self._prune()  # not prune(): this may run on the writer thread, which settle() waits for

    def prune(self) -> int:
        """Delete the least recently used entries (by modification time: a hit touches its entry) until the
        entries take at most :attr:`max_bytes`; the number deleted. Deleting an entry only costs a plan."""
        self.settle()
        return self._prune()

    def _prune(self) -> int:
        found: list[tuple[float, int, Path]] = []
        total = 0
        for path in (self.directory / ENTRIES_DIR).glob("??/*.json"):
            try:
                info = os.lstat(path)
            except OSError:
                continue
            found.append((info.st_mtime, info.st_size, path))
            total += info.st_size
        removed = 0
        for _, size, path in sorted(found):
            if total <= self.max_bytes:
                break
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
                removed += 1
            total -= size
        if removed:
            log.info("plan cache: pruned %d entries to stay within %d MiB", removed, self.max_bytes >> 20)
            with self._lock:
                self.evicted += removed
        return removed

    def _reject(self, path: Path, why: str) -> None:
        self._count("rejected")
        self._count("misses")
        log.warning("plan cache: entry %s rejected, planning again: %s", path, why)

    def _count(self, name: str) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + 1)


class _Rejected(Exception):
    pass


def _read_entry(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _Rejected("not a regular file")
        if info.st_size > MAX_ENTRY_BYTES:
            raise _Rejected(f"{info.st_size} bytes is larger than {MAX_ENTRY_BYTES}")
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _private(path: Path, info: os.stat_result, fix: str) -> None:
    if info.st_uid != os.geteuid():
        raise UserError(f"plan cache {path}: owned by uid {info.st_uid}, not by this user; set {DIR_ENV} elsewhere")
    if info.st_mode & 0o077:
        mode = stat.S_IMODE(info.st_mode)
        raise UserError(f"plan cache {path}: mode {mode:04o} lets others read or write it; {fix} {path}")


def _within(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")
