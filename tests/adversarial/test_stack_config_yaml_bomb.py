"""A YAML alias bomb in a stack config: the file the most restricted agent may edit is read by the checker itself.
It is parsed with the same limits as requests (aliases, expanded size, depth), so the check fails naming the cause
instead of expanding gigabytes."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.documents import MAX_ALIASES, parse_document
from bot.errors import UserError
from tests.flow_helpers import checked_edit


def _layered_bomb(layers: int) -> str:
    """Two aliases per layer: few enough aliases to pass an alias count, 2**layers values for whoever walks it."""
    lines = ["config:", '  network:seed: &l0 ["boom"]']
    for i in range(1, layers + 1):
        lines.append(f"  network:l{i}: &l{i} [*l{i - 1}, *l{i - 1}]")
    return "\n".join(lines) + "\n"


def _laughs() -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    prev = "a"
    for name in "bcdefghi":
        lines.append(f"{name}: &{name} [{', '.join(['*' + prev] * 9)}]")
        prev = name
    return "config:\n" + "\n".join("  network:" + line for line in lines) + "\n"


def test_layered_bomb_under_the_alias_count_is_still_refused() -> None:
    text = _layered_bomb(30)
    assert text.count("*") <= MAX_ALIASES
    with pytest.raises(UserError, match="expands to more than"):
        parse_document(text, "Pulumi.dev.yaml")


@pytest.mark.slow
@pytest.mark.parametrize("bomb", [_layered_bomb(30), _laughs()], ids=["layered", "billion-laughs"])
def test_yaml_bomb_in_a_stack_config_fails_the_check_with_its_cause(tmp_path: Path, bomb: str) -> None:
    def plant(src: Path) -> None:
        (src / "infra/network/Pulumi.dev.yaml").write_text(bomb)

    verdict = checked_edit(tmp_path, plant)
    assert verdict.result.value == "FAILED"
    assert any("Pulumi.dev.yaml" in e and ("YAML bomb" in e or "aliases" in e) for e in verdict.errors), verdict.errors
