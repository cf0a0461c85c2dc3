"""Finding secrets and redacting them from evidence, keeping a salted hash as proof (invariant I9).

A redaction replaces the secret with ``[REDACTED:<kind>]`` and records the field path, the kind, a fresh
random salt and ``sha256(salt || secret)``: whoever later holds the secret can prove it was the one
removed, and nobody can recover it from the record.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from bot.records import Redaction

# Patterns for secrets that are recognisable by shape anywhere in text.
_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    (
        "private-key",
        re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----"),
    ),
    ("aws-access-key-id", re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b")),
    ("github-token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})\b")),
    ("slack-token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b")),
    ("jwt", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\b")),
    ("url-password", re.compile(r"(?<=://)[^/\s:@]+:([^/\s@]+)(?=@)")),
    (
        "aws-secret-access-key",
        re.compile(r"(?i)aws_?secret_?access_?key[\"']?\s*[:=]\s*[\"']?([A-Za-z0-9/+=]{40})\b"),
    ),
    (
        "assigned-secret",
        re.compile(
            r"(?i)\b(?:password|passwd|secret|api[_-]?key|access[_-]?token|auth[_-]?token|client[_-]?secret)"
            r"[\"']?\s*[:=]\s*[\"']?([^\s\"',;]{8,})"
        ),
    ),
]

# Field names whose values are secrets when they look random enough.
_SECRET_FIELD = re.compile(r"(?i)(password|passwd|secret|token|api[_-]?key|private[_-]?key|credential)")
_PLACEHOLDER = re.compile(r"^\[REDACTED:[a-z-]+\]$")


def shannon_entropy(text: str) -> float:
    if not text:
        return 0.0
    counts: dict[str, int] = {}
    for ch in text:
        counts[ch] = counts.get(ch, 0) + 1
    return -sum(c / len(text) * math.log2(c / len(text)) for c in counts.values())


def _high_entropy(value: str) -> bool:
    return len(value) >= 16 and " " not in value and shannon_entropy(value) >= 3.5


@dataclass(frozen=True)
class Finding:
    kind: str
    start: int
    end: int

    def secret(self, text: str) -> str:
        return text[self.start : self.end]


def find_secrets(text: str, *, field_name: str | None = None) -> list[Finding]:
    """Non-overlapping secrets in ``text``, by pattern, or the whole value for a random-looking secret field."""
    found: list[Finding] = []
    for kind, pattern in _PATTERNS:
        for m in pattern.finditer(text):
            start, end = (m.start(1), m.end(1)) if m.groups() else (m.start(), m.end())
            if _PLACEHOLDER.match(text[start:end]):
                continue
            if not any(f.start < end and start < f.end for f in found):
                found.append(Finding(kind, start, end))
    if not found and field_name and _SECRET_FIELD.search(field_name) and _high_entropy(text.strip()):
        found.append(Finding("high-entropy-secret-field", 0, len(text)))
    return sorted(found, key=lambda f: f.start)


def salted_hash(secret: str, salt: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + secret.encode("utf-8")).hexdigest()


def proves(redaction: Redaction, candidate: str) -> bool:
    """Whether ``candidate`` is the secret this redaction removed."""
    return salted_hash(candidate, redaction.salt) == redaction.salted_sha256


SaltFn = Callable[[str, str], str]
"""(field path, kind) → 32 hex chars of salt. The default is random; propose derives salts from its key."""


def _random_salt(path: str, kind: str) -> str:
    return os.urandom(16).hex()


def redact_text(
    text: str, field_path: str, *, field_name: str | None = None, salt_fn: SaltFn = _random_salt
) -> tuple[str, list[Redaction]]:
    findings = find_secrets(text, field_name=field_name)
    if not findings:
        return text, []
    out, redactions, last = [], [], 0
    for i, f in enumerate(findings):
        salt = salt_fn(f"{field_path}#{i}", f.kind)
        redactions.append(
            Redaction(field_path=field_path, kind=f.kind, salt=salt, salted_sha256=salted_hash(f.secret(text), salt))
        )
        out.append(text[last : f.start])
        out.append(f"[REDACTED:{f.kind}]")
        last = f.end
    out.append(text[last:])
    return "".join(out), redactions


def _walk(value: Any, path: str, name: str | None) -> Iterator[tuple[str, str | None, str]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(v, f"{path}.{k}" if path else str(k), str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _walk(v, f"{path}.{i}", name)
    elif isinstance(value, str):
        yield path, name, value


def redact_tree(data: Any, path: str = "", *, salt_fn: SaltFn = _random_salt) -> tuple[Any, list[Redaction]]:
    """A copy of JSON-like ``data`` with every secret in every string (keys included) redacted."""
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        found: list[Redaction] = []
        for key, value in data.items():
            sub = f"{path}.{key}" if path else str(key)
            clean_key, key_red = redact_text(str(key), sub + "(key)", salt_fn=salt_fn)
            if isinstance(value, str):
                clean, red = redact_text(value, sub, field_name=str(key), salt_fn=salt_fn)
            else:
                clean, red = redact_tree(value, sub, salt_fn=salt_fn)
            out[clean_key] = clean
            found += key_red + red
        return out, found
    if isinstance(data, list):
        items, found = [], []
        for i, value in enumerate(data):
            clean, red = redact_tree(value, f"{path}.{i}", salt_fn=salt_fn)
            items.append(clean)
            found += red
        return items, found
    if isinstance(data, str):
        return redact_text(data, path, salt_fn=salt_fn)
    return data, []


def secrets_in_tree(data: Any) -> list[tuple[str, str]]:
    """(field path, kind) of every secret found, without changing anything."""
    hits = []
    for path, name, text in _walk(data, "", None):
        hits += [(path, f.kind) for f in find_secrets(text, field_name=name)]
    return hits
