"""The in-process engines kept per pack digest, so a process compiles one pack once."""

from __future__ import annotations

import collections
import threading

from bot.policy.engines.opa_embedded import EmbeddedOpaEngine
from bot.policy.engines.regopy import RegopyEngine
from bot.policy.engines.regorus import RegorusEngine
from bot.policy.pack import PolicyPack

InProcess = RegopyEngine | RegorusEngine | EmbeddedOpaEngine
_KINDS: dict[str, type[InProcess]] = {"opa": EmbeddedOpaEngine, "regopy": RegopyEngine, "regorus": RegorusEngine}

# Compiled regopy engines by pack digest: a process that checks many PRs against one base pack (the
# pre-flight, the demo, a CI runner) compiles it once. The digest covers every module's bytes, and an
# engine reads nothing of the pack but its modules and rule metadata, so equal digests are equal engines.
_ENGINES: collections.OrderedDict[tuple[str, str], InProcess] = collections.OrderedDict()
_ENGINES_LOCK = threading.Lock()
_ENGINES_KEPT = 4


def kept_engine(kind: str, pack: PolicyPack) -> InProcess:
    """The ``opa``, ``regopy`` or ``regorus`` engine for ``pack``, compiled at most once per pack digest (the
    last few)."""
    key = (kind, pack.digest)
    with _ENGINES_LOCK:
        engine = _ENGINES.get(key)
        if engine is not None:
            _ENGINES.move_to_end(key)
            return engine
    engine = _KINDS[kind](pack)
    if not pack.digest:
        return engine
    with _ENGINES_LOCK:
        _ENGINES[key] = engine
        while len(_ENGINES) > _ENGINES_KEPT:
            _ENGINES.popitem(last=False)
    return engine
