"""What a long-lived process keeps warm between checks: checkov workers, loaded policy packs and the plan cache.

The MCP server (one per agent session) and any caller that checks change after change hold one
:class:`CheckServices` for their lifetime and pass it in each :class:`~bot.check.evaluate.CheckRequest`; closing
it stops the workers. What it keeps is keyed by the trusted inputs it stands for, so a changed input is loaded
afresh rather than reused:

- a checkov worker per checkov policy (severities and skipped checks, read from each check's base commit), by the
  policy's digest: starting checkov costs seconds, a warm scan tens of milliseconds;
- the trust anchors (registry, waivers, checkov policy, loaded pack) per base commit id: a commit names its trees,
  so a session's pre-flights against one main read them once;
- the policy pack per git tree digest of ``policy-pack/`` at the base (``bot.trust.anchors.policy_pack_digest``);
  the compiled engine is then kept per pack digest by :func:`bot.policy.engines.make_engine`, so a changed pack
  is loaded and compiled again;
- the plan cache (:mod:`bot.plan.cache`), or None when it is off;
- with ``warm_sandboxes=N`` (the MCP server asks for 2, one per side), a :class:`~bot.plan.pool.SandboxPool` of
  sandboxes started ahead of time with Pulumi imported, each used for one side of one plan and then destroyed.
  A one-shot check passes 0 (the default) and starts every sandbox cold.

Nothing of PR code lives here: every program still runs in a fresh sandbox (a warm one is fresh too: built by
this process before any job, used once), checkov only parses what it scans, and the plan cache holds what the
collector received, verified on every read.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TypeVar, cast

from bot.plan.cache import PlanCache
from bot.plan.pool import SandboxPool
from bot.policy.checkov import CheckovPolicy, CheckovWorker
from bot.policy.pack import PolicyPack, load_pack
from bot.records import digest

_WORKERS_KEPT = 2
_PACKS_KEPT = 4
_ANCHORS_KEPT = 4
T = TypeVar("T")


class CheckServices:
    """Warm checkov workers, loaded policy packs and the plan cache, for one process's run of checks."""

    def __init__(
        self, *, plan_cache: PlanCache | None = None, checkov_python: Path | None = None, warm_sandboxes: int = 0
    ) -> None:
        self.plan_cache = plan_cache
        self.sandbox_pool = SandboxPool(size=warm_sandboxes) if warm_sandboxes > 0 else None
        self._python = checkov_python
        self._workers: collections.OrderedDict[str, CheckovWorker] = collections.OrderedDict()
        self._packs: collections.OrderedDict[str, PolicyPack] = collections.OrderedDict()
        self._anchors: collections.OrderedDict[str, object] = collections.OrderedDict()
        self._lock = threading.Lock()
        self._closed = False

    def __enter__(self) -> CheckServices:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def checkov(self, policy: CheckovPolicy) -> CheckovWorker:
        """The worker that scans under ``policy`` (started on its first scan, kept for the next)."""
        key = digest(policy)
        retired: list[CheckovWorker] = []
        with self._lock:
            if self._closed:
                raise RuntimeError("the check services are closed")
            worker = self._workers.get(key)
            if worker is None:
                worker = self._workers[key] = CheckovWorker(policy=policy, python=self._python)
                while len(self._workers) > _WORKERS_KEPT:
                    retired.append(self._workers.popitem(last=False)[1])
            self._workers.move_to_end(key)
        for old in retired:
            old.close()
        return worker

    def anchors(self, base_commit: str, load: Callable[[], T]) -> T:
        """The trust anchors read from ``base_commit`` (``load()`` the first time): a commit id names its trees,
        so what was read from it once is what it holds. Every pre-flight of a session judges against one main."""
        with self._lock:
            found = self._anchors.get(base_commit)
            if found is not None:
                self._anchors.move_to_end(base_commit)
                return cast(T, found)
        value = load()
        with self._lock:
            self._anchors[base_commit] = value
            while len(self._anchors) > _ANCHORS_KEPT:
                self._anchors.popitem(last=False)
        return value

    def policy_pack(self, pack_dir: Path, tree_digest: str) -> PolicyPack:
        """The pack exported at ``pack_dir``, loaded once per git tree digest of the pack at its commit."""
        with self._lock:
            pack = self._packs.get(tree_digest)
            if pack is not None:
                self._packs.move_to_end(tree_digest)
                return pack
        pack = load_pack(pack_dir)
        with self._lock:
            self._packs[tree_digest] = pack
            while len(self._packs) > _PACKS_KEPT:
                self._packs.popitem(last=False)
        return pack

    @property
    def checkov_starts(self) -> int:
        """How many checkov processes these services have started (a warm run adds none)."""
        with self._lock:
            return sum(w.starts for w in self._workers.values())

    def close(self) -> None:
        """Stop every worker and warm sandbox and wait for the plan cache's writes; safe to call twice."""
        with self._lock:
            self._closed = True
            workers = list(self._workers.values())
            self._workers.clear()
            self._packs.clear()
        for worker in workers:
            worker.close()
        if self.sandbox_pool is not None:
            self.sandbox_pool.close()
        if self.plan_cache is not None:
            self.plan_cache.settle()  # the entries the checks made, written behind their reports, are on disk
