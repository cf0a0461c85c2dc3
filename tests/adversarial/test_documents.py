"""Hostile request files: every one is bad input (a UserError naming the file; the CLI exits 2), never a crash."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from bot.cli import main
from bot.commands.propose import load_request
from bot.documents import MAX_ALIASES, MAX_DOCUMENT_BYTES
from bot.errors import UserError
from tests.factories import change_request_data

BILLION_LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def _valid_yaml() -> str:
    return yaml.safe_dump(change_request_data(), sort_keys=False)


def _bomb(path: Path) -> None:
    path.write_text(BILLION_LAUGHS)


def _duplicate_agent(path: Path) -> None:
    # a second agent_id after the first: a lenient parser keeps the last, so a reviewer reads another agent
    path.write_text(_valid_yaml() + "agent_id: patch-agent\n")


def _duplicate_nested(path: Path) -> None:
    text = _valid_yaml().replace("  ticket: OPS-1234\n", "  ticket: OPS-1234\n  ticket: OPS-9999\n")
    assert "OPS-9999" in text
    path.write_text(text)


def _duplicate_json(path: Path) -> None:
    data = json.dumps(change_request_data())
    path.write_text(data[:-1] + ', "agent_id": "patch-agent"}')


def _python_tag(path: Path) -> None:
    path.write_text(_valid_yaml() + "intent: !!python/object/apply:os.system ['touch /tmp/pwned']\n")


def _merge_key_bomb(path: Path) -> None:
    anchors = "\n".join(f"k{i}: &k{i} {{x{i}: 1}}" for i in range(MAX_ALIASES + 1))
    refs = ", ".join(f"*k{i}" for i in range(MAX_ALIASES + 1))
    path.write_text(f"{anchors}\nall: [{refs}]\n")


def _oversized(path: Path) -> None:
    path.write_text("intent: " + "x" * (MAX_DOCUMENT_BYTES + 1) + "\n")


def _not_utf8(path: Path) -> None:
    path.write_bytes(_valid_yaml().encode("utf-8").replace(b"OPS-1234", b"OPS-\xff\xfe"))


def _deep_nesting(path: Path) -> None:
    path.write_text("intent: " + "[" * 5000 + "]" * 5000 + "\n")


def _deep_json(path: Path) -> None:
    path.write_text('{"intent": ' + "[" * 100_000 + "]" * 100_000 + "}")


def _not_a_mapping(path: Path) -> None:
    path.write_text("- just\n- a\n- list\n")


def _unknown_field(path: Path) -> None:
    path.write_text(_valid_yaml() + "auto_merge: true\n")


CASES: dict[str, tuple[Callable[[Path], None], str, str]] = {
    "billion-laughs": (_bomb, "req.yaml", "a YAML bomb?"),
    "alias-flood": (_merge_key_bomb, "req.yaml", "a YAML bomb?"),
    "duplicate-top-level-key": (_duplicate_agent, "req.yaml", "duplicate key 'agent_id'"),
    "duplicate-nested-key": (_duplicate_nested, "req.yaml", "duplicate key 'ticket'"),
    "duplicate-json-key": (_duplicate_json, "req.json", "duplicate key 'agent_id'"),
    "python-object-tag": (_python_tag, "req.yaml", "not valid YAML"),
    "oversized": (_oversized, "req.yaml", f"larger than {MAX_DOCUMENT_BYTES}"),
    "not-utf8": (_not_utf8, "req.yaml", "not UTF-8 text"),
    "deep-yaml": (_deep_nesting, "req.yaml", "req.yaml"),
    "deep-json": (_deep_json, "req.json", "req.json"),
    "not-a-mapping": (_not_a_mapping, "req.yaml", "not a valid change request"),
    "unknown-field": (_unknown_field, "req.yaml", "not a valid change request"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_request_file_is_bad_input(tmp_path: Path, case: str) -> None:
    write, name, expected = CASES[case]
    path = tmp_path / name
    write(path)
    with pytest.raises(UserError) as info:
        load_request(path)
    text = " ".join([info.value.message, *getattr(info.value, "problems", [])])
    assert expected in text, text
    assert not Path("/tmp/pwned").exists()


@pytest.mark.parametrize("case", ["billion-laughs", "duplicate-top-level-key", "python-object-tag", "oversized"])
def test_cli_propose_exits_2_on_a_hostile_request_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    write, name, expected = CASES[case]
    path = tmp_path / name
    write(path)
    code = main(["propose", str(path), "--base-repo", str(tmp_path), "--ledger", str(tmp_path / "l.jsonl")])
    _out, err = capsys.readouterr()
    assert code == 2, err
    assert expected in err, err
    assert not (tmp_path / "l.jsonl").exists()  # nothing reached the forge or the ledger
