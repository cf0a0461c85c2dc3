"""Reading YAML and JSON documents safely: size-capped, no duplicate keys, no alias bombs.

Every file glassbox reads from a user, an agent or a repository comes through :func:`load_document`,
so the same hostile-input rules apply everywhere.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node

from bot.errors import UserError

MAX_DOCUMENT_BYTES = 4 * 1024 * 1024
MAX_ALIASES = 64
# what a document may hold once its aliases are followed: a few aliases can still name each other in layers
# (2 per layer, 32 layers: 2**32 nodes for whoever walks it), so the walk is counted as well
MAX_EXPANDED_NODES = 200_000
MAX_DEPTH = 64


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys and counts alias expansions."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._aliases = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise ConstructorError(None, None, f"more than {MAX_ALIASES} aliases (a YAML bomb?)", None)
        return super().compose_node(parent, index)

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise ConstructorError(
                    "while constructing a mapping", node.start_mark, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _reject_duplicate_json_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def parse_document(text: str, source: str, *, fmt: str = "yaml") -> Any:
    """Parse ``text`` (YAML, or JSON when ``fmt == "json"``); errors name ``source``."""
    if len(text.encode("utf-8")) > MAX_DOCUMENT_BYTES:
        raise UserError(f"{source}: larger than {MAX_DOCUMENT_BYTES} bytes; refusing to read it")
    if fmt == "json":
        try:
            return json.loads(text, object_pairs_hook=_reject_duplicate_json_keys)
        except (ValueError, RecursionError) as exc:
            raise UserError(f"{source}: not valid JSON: {exc}") from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        detail = " ".join(str(exc).split())
        raise UserError(f"{source}: not valid YAML: {detail}") from None
    except RecursionError:
        raise UserError(f"{source}: nesting too deep") from None
    _within_limits(data, source)
    return data


def _within_limits(data: Any, source: str) -> None:
    """Walk ``data`` as a consumer would (aliases followed): at most MAX_EXPANDED_NODES nodes, MAX_DEPTH deep."""
    seen = 0
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        seen += 1
        if seen > MAX_EXPANDED_NODES:
            raise UserError(f"{source}: expands to more than {MAX_EXPANDED_NODES} values (a YAML bomb?)")
        if depth > MAX_DEPTH:
            raise UserError(f"{source}: nesting deeper than {MAX_DEPTH} levels")
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
            stack.extend((k, depth + 1) for k in value if isinstance(k, tuple))
        elif isinstance(value, list | tuple):
            stack.extend((v, depth + 1) for v in value)


def load_document(path: Path) -> Any:
    """Load a YAML or JSON file (by extension; ``.json`` is JSON, anything else YAML)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read: {exc.strerror}") from None
    if size > MAX_DOCUMENT_BYTES:
        raise UserError(f"{path}: {size} bytes is larger than {MAX_DOCUMENT_BYTES}; refusing to read it")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read: {exc.strerror}") from None
    return parse_document(text, str(path), fmt="json" if path.suffix.lower() == ".json" else "yaml")
