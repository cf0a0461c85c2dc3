from __future__ import annotations

from pathlib import Path

import pytest

from bot.documents import load_document, parse_document
from bot.errors import UserError


def test_duplicate_yaml_keys_are_refused() -> None:
    with pytest.raises(UserError, match="duplicate key 'a'"):
        parse_document("a: 1\nb: 2\na: 3\n", "x.yaml")


def test_duplicate_json_keys_are_refused() -> None:
    with pytest.raises(UserError, match="duplicate key 'a'"):
        parse_document('{"a": 1, "a": 2}', "x.json", fmt="json")


def test_yaml_alias_bomb_is_refused() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)
    )
    with pytest.raises(UserError, match="aliases"):
        parse_document(bomb, "bomb.yaml")


def test_python_tags_are_not_constructed() -> None:
    with pytest.raises(UserError, match="not valid YAML"):
        parse_document("!!python/object/apply:os.system ['true']", "evil.yaml")


def test_missing_and_non_utf8_files_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such file"):
        load_document(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"\xff\xfe")
    with pytest.raises(UserError, match="not UTF-8"):
        load_document(bad)
