"""Fault injection for the embedded forge (off unless configured).

A plan is a list of rules, read from ``DIR/faults.json`` at start-up or posted to ``POST /_glassbox/faults``
(admin token). A rule picks requests (``method`` and a ``path`` regex over the API path), then which of them
fail: the ``nth`` matching call, ``every`` one, the ``first`` time each distinct request (method + path +
body) is seen, or a ``fraction`` of them drawn from a seeded RNG. The failure is a 502, a 429 with
``Retry-After``, a 403 secondary rate limit, or a dropped connection; ``when`` says whether the request's
side effect is applied first (``after``) or not at all (``before``), so a client's check-before-retry logic
meets both cases. ``times`` caps how often a rule fires.
"""

from __future__ import annotations

import hashlib
import random
import re
import threading
from dataclasses import dataclass, field
from typing import Any, Literal

FaultKind = Literal["502", "429", "secondary", "drop"]
When = Literal["before", "after"]


@dataclass
class FaultRule:
    kind: FaultKind = "502"
    when: When = "before"
    method: str | None = None
    path: str | None = None
    nth: int | None = None
    every: bool = False
    first: bool = False
    fraction: float | None = None
    times: int | None = None
    retry_after: int = 1
    matched: int = 0
    fired: int = 0
    seen: set[str] = field(default_factory=set)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FaultRule:
        allowed = {"kind", "when", "method", "path", "nth", "every", "first", "fraction", "times", "retry_after"}
        unknown = set(data) - allowed
        if unknown:
            raise ValueError(f"unknown fault rule field(s): {', '.join(sorted(unknown))}")
        rule = cls(**data)
        if rule.kind not in ("502", "429", "secondary", "drop"):
            raise ValueError("kind must be one of 502, 429, secondary, drop")
        if rule.when not in ("before", "after"):
            raise ValueError("when must be before or after")
        if rule.path is not None:
            re.compile(rule.path)
        return rule

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "when": self.when,
            "method": self.method,
            "path": self.path,
            "nth": self.nth,
            "every": self.every,
            "first": self.first,
            "fraction": self.fraction,
            "times": self.times,
            "retry_after": self.retry_after,
            "matched": self.matched,
            "fired": self.fired,
        }


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    when: When
    retry_after: int


class FaultPlan:
    def __init__(self, rules: list[FaultRule] | None = None, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self.rules = rules or []
        self.rng = random.Random(seed)  # noqa: S311 - test determinism, not security

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FaultPlan:
        rules = [FaultRule.from_json(r) for r in data.get("rules", [])]
        return cls(rules, seed=int(data.get("seed", 0)))

    def to_json(self) -> dict[str, Any]:
        return {"rules": [r.to_json() for r in self.rules]}

    def decide(self, method: str, path: str, body: bytes) -> Fault | None:
        with self._lock:
            for rule in self.rules:
                if rule.method and rule.method.upper() != method.upper():
                    continue
                if rule.path and not re.search(rule.path, path):
                    continue
                if rule.times is not None and rule.fired >= rule.times:
                    continue
                rule.matched += 1
                fire = False
                if rule.every:
                    fire = True
                elif rule.nth is not None:
                    fire = rule.matched == rule.nth
                elif rule.first:
                    key = hashlib.sha256(method.encode() + b" " + path.encode() + b"\0" + body).hexdigest()
                    fire = key not in rule.seen
                    rule.seen.add(key)
                elif rule.fraction is not None:
                    fire = self.rng.random() < rule.fraction
                if fire:
                    rule.fired += 1
                    return Fault(rule.kind, rule.when, rule.retry_after)
            return None
