"""The policy input document an engine evaluates: normalised, shape-checked, plus its derived ``index``.

:func:`prepare_input` is the one way in (docs/contracts.md, "Policy input" and "Derived index"): a
JSON-only copy with every RFC 3339 timestamp in UTC ``+00:00`` form, refused unless it has the top-level
shape the pack reads by plain reference, with the engine's own ``index`` (never the caller's).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

from bot.policy.engines.results import fail

# RFC 3339 date-times; rego-cpp's time builtins reject a "Z" suffix, so every one is rewritten to UTC "+00:00".
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def _timestamp(value: str) -> str:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return value  # looks like a timestamp but is not one: leave the string as it is
    return parsed.astimezone(UTC).isoformat()


# Where a value sits, built only when an error names it: (parent, key or index), None at the top.
_At = tuple[Any, str | int] | None


def _where(at: _At) -> str:
    parts: list[str] = []
    while at is not None:
        at, key = at
        parts.append(f"[{key}]" if isinstance(key, int) else f".{key}")
    return "".join(reversed(parts)).lstrip(".")


def normalise_value(value: Any, at: _At) -> Any:
    """A JSON-only copy of ``value`` (found at ``at``, None at the top), naming where a value is not JSON."""
    kind = type(value)
    if kind is str:
        # Cheap test first: most strings are not timestamps and never reach the regex.
        if len(value) >= 19 and value[4:5] == "-" and _RFC3339.match(value):
            return _timestamp(value)
        return value
    if kind is dict or isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise fail(f"policy input key {key!r} at {_where(at) or '(top)'} is not a string")
            out[key] = normalise_value(item, (at, key))
        return out
    if kind is list or isinstance(value, list | tuple):
        return [normalise_value(item, (at, i)) for i, item in enumerate(value)]
    if kind is bool or value is None or kind is int:
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise fail(f"policy input {_where(at)}: timestamp without a timezone")
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        return _timestamp(value) if _RFC3339.match(value) else value
    if isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise fail(f"policy input {_where(at)}: {value} is not a JSON number")
        # Pulumi hands whole numbers over as floats; Rego compares 22 and 22.0 as equal, but keep JSON tidy.
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    raise fail(f"policy input {_where(at)}: {type(value).__name__} is not JSON")


# The containers the pack reads by plain reference (no defaults, for speed): a missing one would make
# rules silently undefined, so the engine refuses such an input instead.
_SHAPE: dict[str, type] = {"plan": dict, "changes": list, "files": dict, "evidence": dict, "pr": dict, "registry": dict}


def check_shape(document: Mapping[str, Any]) -> None:
    """Raise unless ``document`` has the top-level shape of docs/contracts.md's policy input."""
    for key, kind in _SHAPE.items():
        if not isinstance(document.get(key), kind):
            raise fail(f"policy input: {key} must be {'an object' if kind is dict else 'a list'}")
    if not isinstance(document["plan"].get("resources"), list):
        raise fail("policy input: plan.resources must be a list")


class _NotPlain(Exception):
    """Raised by :func:`_plain` at anything but plain JSON built from dict/list/str/int/bool/None/float."""


def _plain_str(value: str) -> str:
    if len(value) >= 19 and value[4:5] == "-" and _RFC3339.match(value):
        return _timestamp(value)
    return value


def _plain_float(value: float) -> float | int:
    if not math.isfinite(value):
        raise _NotPlain
    return int(value) if value.is_integer() and abs(value) < 2**53 else value


def _plain(value: Any) -> Any:
    """:func:`normalise_value` for plain JSON values (what json.loads and the plan builder produce), without
    tracking where each value sits and with leaves handled inline: about twice as fast. Anything else
    (another Mapping, a tuple, a datetime, a bad key or number) raises :class:`_NotPlain`, and the caller
    starts again with :func:`normalise_value`, which converts it or names where it is."""
    kind = type(value)
    if kind is dict:
        out: dict[str, Any] = {}
        for key, item in value.items():
            if type(key) is not str:
                raise _NotPlain
            t = type(item)
            if t is str:
                out[key] = _plain_str(item) if len(item) >= 19 else item
            elif t is int or t is bool or item is None:
                out[key] = item
            elif t is float:
                out[key] = _plain_float(item)
            else:
                out[key] = _plain(item)
        return out
    if kind is list:
        items: list[Any] = []
        for item in value:
            t = type(item)
            if t is str:
                items.append(_plain_str(item) if len(item) >= 19 else item)
            elif t is int or t is bool or item is None:
                items.append(item)
            elif t is float:
                items.append(_plain_float(item))
            else:
                items.append(_plain(item))
        return items
    if kind is str:
        return _plain_str(value)
    if kind is int or kind is bool or value is None:
        return value
    if kind is float:
        return _plain_float(value)
    raise _NotPlain


def normalise_input(document: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-only copy of the policy input with every RFC 3339 timestamp in UTC ``+00:00`` form."""
    if not isinstance(document, Mapping):
        raise fail("policy input must be an object")
    try:
        result = _plain(document)
    except (_NotPlain, RecursionError):
        result = normalise_value(document, None)
    assert isinstance(result, dict)
    return result


# --------------------------------------------------------------------------------------------------
# the derived index (docs/contracts.md, "Derived index")
#
# rego-cpp walks a list at roughly 5-20 µs per element and does not memoise function calls, so a pack
# that scans 1,000 resources once per rule pays seconds. The engine therefore adds ``index``: positions
# of resources and changes grouped by raw field values. It carries no policy (no "is prod", no "is
# tag-only"): rules decide per group on a representative and then expand the group's positions.


def _key(value: Any) -> tuple[str, Any]:
    """A hashable stand-in for one JSON value: equal keys only for equal values of the same JSON type
    (so 1 and 1.0, or true and 1, never share a group: finer groups are always safe)."""
    kind = type(value)
    if kind is str:
        return ("s", value)
    if kind is bool:
        return ("b", value)
    if kind is int:
        return ("i", value)
    if value is None:
        return ("n", None)
    return ("j", json.dumps(value, sort_keys=True, separators=(",", ":")))


def _as_list(value: Any) -> list[Any]:
    """Python twin of ``util.as_list``: lists stay, null is empty, anything else is one item."""
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _changed_paths_key(change: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    # Everything util.risk's tag_only reads: the set of `path` values of `changed` (an item without a
    # path, or not an object, is kept as itself so it never merges with a path).
    items = _as_list(change.get("changed", []))
    paths = {
        _key(x["path"]) if isinstance(x, Mapping) and "path" in x else ("x", json.dumps(x, sort_keys=True))
        for x in items
    }
    return tuple(sorted(paths))


_MISSING = ("m", None)


def _field(row: Mapping[str, Any], name: str) -> tuple[str, Any]:
    # A missing key and a null are different to Rego (undefined vs null): keep them apart.
    return _key(row[name]) if name in row else _MISSING


def _groups(rows: Sequence[Mapping[str, Any]], key: Any, singletons: bool) -> list[dict[str, list[int]]]:
    if singletons:
        return [{"changes": [i]} for i in range(len(rows))]
    groups: dict[Any, list[int]] = {}
    for i, row in enumerate(rows):
        groups.setdefault(key(row), []).append(i)
    return [{"changes": positions} for positions in groups.values()]


def derive_index(document: Mapping[str, Any], *, singletons: bool = False) -> dict[str, Any]:
    """The ``index`` of a (normalised, shape-checked) policy input; positions ascend within each group.

    - ``resources_by_type``: ``{type: [i, ...]}``, positions in ``plan.resources`` (string types only);
    - ``bucket_companions``: ``{"project|stack|bucket": [i, ...]}``, resources by their ``bucket`` input
      (absent or null: ``""``), keyed as ``lib.s3``'s ``scope_key`` (resources whose key is not text left out);
    - ``change_types``: ``[{"changes": [i, ...]}]``, changes grouped by ``type``;
    - ``change_stacks``: changes grouped by (``project``, ``stack``);
    - ``change_classes``: changes grouped by (``type``, ``action``, ``environment``, set of ``changed[].path``).
    Groups keep the order in which their first change appears. ``singletons`` puts every change in a
    group of its own (what rules see is then per change, as without an index; differential tests).
    """
    by_type: dict[str, list[int]] = {}
    for i, resource in enumerate(document["plan"]["resources"]):
        kind = resource.get("type") if isinstance(resource, Mapping) else None
        if isinstance(kind, str):
            by_type.setdefault(kind, []).append(i)
    companions: dict[str, list[int]] = {}
    for i, resource in enumerate(document["plan"]["resources"]):
        key = _bucket_key(resource)
        if key is not None:
            companions.setdefault(key, []).append(i)
    changes = [c if isinstance(c, Mapping) else {} for c in document["changes"]]
    return {
        "resources_by_type": by_type,
        "bucket_companions": companions,
        "change_types": _groups(changes, lambda c: _field(c, "type"), singletons),
        "change_stacks": _groups(changes, lambda c: (_field(c, "project"), _field(c, "stack")), singletons),
        "change_classes": _groups(
            changes,
            lambda c: (_field(c, "type"), _field(c, "action"), _field(c, "environment"), _changed_paths_key(c)),
            singletons,
        ),
    }


def _bucket_key(resource: Any) -> str | None:
    """Python twin of ``lib.s3``'s ``scope_key(r, util.input_value(r, "bucket", ""))``: None when Rego's
    concat would be undefined (a non-string part, or inputs that are not an object)."""
    if not isinstance(resource, Mapping):
        return None
    inputs = resource.get("inputs", {})
    if not isinstance(inputs, Mapping):
        return None
    ref = inputs.get("bucket")
    parts = [resource.get("project", ""), resource.get("stack", ""), "" if ref is None else ref]
    return "|".join(parts) if all(isinstance(p, str) for p in parts) else None


def prepare_input(document: Mapping[str, Any]) -> dict[str, Any]:
    """What an engine evaluates: the normalised, shape-checked input plus its derived ``index``.

    An ``index`` the caller supplied is replaced: only the engine's own derivation is trusted.
    """
    prepared = normalise_input(document)
    check_shape(prepared)
    prepared["index"] = derive_index(prepared)
    return prepared
