from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bot.errors import UserError, ValidationFailed
from bot.registry import FILES, load_registry, path_in_scope, resolved_scope, schema_for, schema_path
from bot.trust.keys import generate_key
from tests.factories import SAMPLE_REGISTRY, copy_registry, edit_yaml


def test_sample_registry_is_valid() -> None:
    reg = load_registry(SAMPLE_REGISTRY)
    assert {"cost-optimizer", "patch-agent", "network-agent"} <= set(reg.agent_ids())
    assert {"security", "platform", "data"} <= {t.id for t in reg.teams.teams}
    assert reg.identity_kind("glassbox-deployer") == "deployer"
    assert reg.identity_kind("cost-optimizer") == "agent"
    assert reg.identity_kind("alice") == "human"


@pytest.mark.parametrize("filename", list(FILES))
def test_checked_in_schemas_match_the_models(filename: str) -> None:
    on_disk = json.loads(schema_path(SAMPLE_REGISTRY, filename).read_text(encoding="utf-8"))
    assert on_disk == json.loads(json.dumps(schema_for(filename))), "run `glassbox registry schemas`"


def _problems(root: Path) -> list[str]:
    with pytest.raises(ValidationFailed) as info:
        load_registry(root)
    return info.value.problems


def _agent(data: dict[str, Any], agent_id: str) -> dict[str, Any]:
    return next(a for a in data["agents"] if a["id"] == agent_id)


CASES: list[tuple[str, str, Any, str]] = [
    (
        "unknown agent in a team",
        "teams.yaml",
        lambda d: d["teams"][0]["members"].append("cost-optimizer"),
        "teams.yaml: teams.0.members.3: 'cost-optimizer' is an agent",
    ),
    (
        "unknown person in a team",
        "teams.yaml",
        lambda d: d["teams"][1]["members"].append("mallory"),
        "teams.yaml: teams.1.members.2: unknown identity 'mallory'",
    ),
    (
        "service identity in a team",
        "teams.yaml",
        lambda d: d["teams"][0]["members"].append("glassbox-deployer"),
        "'glassbox-deployer' is a service identity",
    ),
    (
        "duplicate agent ids",
        "agents.yaml",
        lambda d: d["agents"].append(dict(d["agents"][0])),
        "agents.yaml: agents: duplicate agent id 'cost-optimizer'",
    ),
    (
        "duplicate tool ids",
        "tools.yaml",
        lambda d: d["tools"].append(dict(d["tools"][0])),
        "tools.yaml: tools: duplicate tool id 'read_repo'",
    ),
    (
        "glob escaping the repo",
        "agents.yaml",
        lambda d: _agent(d, "patch-agent")["scope"]["paths"].append("infra/../../etc/*"),
        "agents.yaml: agents.1.scope.paths.2: glob 'infra/../../etc/*' escapes the repository",
    ),
    (
        "absolute glob",
        "agents.yaml",
        lambda d: _agent(d, "patch-agent")["scope"]["paths"].append("/etc/passwd"),
        "agents.1.scope.paths.2: glob '/etc/passwd' is absolute",
    ),
    (
        "glob reaching a governance path",
        "agents.yaml",
        lambda d: _agent(d, "network-agent")["scope"]["paths"].append("registry/*.yaml"),
        "agents.2.scope.paths.1: glob 'registry/*.yaml' reaches a governance path",
    ),
    (
        "tool not in the catalog",
        "agents.yaml",
        lambda d: _agent(d, "network-agent")["tools"].append("shell_exec"),
        "agents.yaml: agents.2.tools.3: tool 'shell_exec' is not in the catalog",
    ),
    (
        "suspended agent with an open budget",
        "agents.yaml",
        lambda d: _agent(d, "legacy-tagger")["budgets"].update(open_prs=2),
        "agents.4.budgets: agent 'legacy-tagger' is suspended but still has an open budget",
    ),
    (
        "unknown owner team",
        "agents.yaml",
        lambda d: _agent(d, "patch-agent").update(owner_team="nobody"),
        "agents.1.owner_team: unknown team 'nobody'",
    ),
    (
        "unknown requester",
        "agents.yaml",
        lambda d: _agent(d, "network-agent")["allowed_requesters"].append("mallory"),
        "agents.2.allowed_requesters.2: unknown identity 'mallory'",
    ),
    (
        "bad enum value",
        "agents.yaml",
        lambda d: _agent(d, "patch-agent").update(autonomy="yolo"),
        "agents.yaml: agents.1.autonomy: 'yolo' is not one of",
    ),
    (
        "missing field",
        "agents.yaml",
        lambda d: _agent(d, "patch-agent").pop("scope"),
        "agents.yaml: agents.1: 'scope' is a required property",
    ),
    (
        "unknown field",
        "tools.yaml",
        lambda d: d["tools"][0].update(danger="high"),
        "tools.yaml: tools.0: Additional properties are not allowed ('danger' was unexpected)",
    ),
    (
        "approval matrix names an unknown team",
        "approval-matrix.yaml",
        lambda d: d["tiers"]["high"]["required"].append({"team": "ghosts", "count": 1}),
        "approval-matrix.yaml: tiers.high.required.2.team: unknown team 'ghosts'",
    ),
    (
        "approval matrix asks more than a team has",
        "approval-matrix.yaml",
        lambda d: d["tiers"]["critical"]["required"][0].update(count=5),
        "tiers.critical.required.0.count: team 'security' has fewer people than the 5 required",
    ),
    (
        "auto-merge above low",
        "approval-matrix.yaml",
        lambda d: d["tiers"]["high"].update(auto_merge=True),
        "tiers.high.auto_merge: only the low tier may auto-merge",
    ),
    (
        "malformed key",
        "trust.yaml",
        lambda d: d["keys"].append(
            {
                "identity": "alice",
                "keyid": "sha256:" + "0" * 64,
                "public_key": "ssh-ed25519 AAAAnotbase64!!",
                "roles": ["commit-signer"],
            }
        ),
        "trust.yaml: keys.0.public_key: malformed ssh-ed25519 key",
    ),
    (
        "key of an unknown identity",
        "trust.yaml",
        lambda d: d["keys"].append(
            {
                "identity": "mallory",
                "keyid": "sha256:" + "0" * 64,
                "public_key": "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ mallory",
                "roles": ["commit-signer"],
            }
        ),
        "trust.yaml: keys.0.identity: unknown identity 'mallory'",
    ),
]


@pytest.mark.parametrize(("name", "filename", "mutate", "expected"), CASES, ids=[c[0] for c in CASES])
def test_registry_validation_names_file_field_and_problem(
    tmp_path: Path, name: str, filename: str, mutate: Any, expected: str
) -> None:
    root = copy_registry(tmp_path)
    edit_yaml(root / filename, mutate)
    problems = _problems(root)
    assert any(expected in p for p in problems), f"{name}: {problems}"
    assert all(p.startswith(str(root)) for p in problems)


def test_every_problem_is_reported_not_only_the_first(tmp_path: Path) -> None:
    root = copy_registry(tmp_path)
    edit_yaml(
        root / "agents.yaml",
        lambda d: (
            _agent(d, "network-agent")["tools"].append("shell_exec"),
            _agent(d, "legacy-tagger")["budgets"].update(open_prs=1),
        ),
    )
    edit_yaml(root / "teams.yaml", lambda d: d["teams"][0]["members"].append("mallory"))
    assert len(_problems(root)) == 3


def test_keyid_must_match_the_key(tmp_path: Path) -> None:
    root = copy_registry(tmp_path)
    signer = generate_key(tmp_path / "keys", "alice")
    edit_yaml(
        root / "trust.yaml",
        lambda d: d["keys"].append(
            {
                "identity": "alice",
                "keyid": "sha256:" + "0" * 64,
                "public_key": signer.public_line,
                "roles": ["commit-signer"],
            }
        ),
    )
    assert any(f"keys.0.keyid: does not match the public key (expected {signer.keyid})" in p for p in _problems(root))


def test_a_valid_key_is_accepted(tmp_path: Path) -> None:
    root = copy_registry(tmp_path)
    signer = generate_key(tmp_path / "keys", "alice")
    edit_yaml(
        root / "trust.yaml",
        lambda d: d["keys"].append(
            {"identity": "alice", "keyid": signer.keyid, "public_key": signer.public_line, "roles": ["commit-signer"]}
        ),
    )
    reg = load_registry(root)
    assert reg.keys_for("alice")[0].keyid == signer.keyid


def test_missing_file_and_missing_directory(tmp_path: Path) -> None:
    root = copy_registry(tmp_path)
    (root / "tools.yaml").unlink()
    assert any("tools.yaml: file is missing" in p for p in _problems(root))
    with pytest.raises(UserError, match="registry directory not found"):
        load_registry(tmp_path / "nowhere")


def test_duplicate_yaml_key_in_a_registry_file(tmp_path: Path) -> None:
    root = copy_registry(tmp_path)
    (root / "tools.yaml").write_text("schema_version: 1\ntools: []\ntools: []\n", encoding="utf-8")
    assert any("duplicate key 'tools'" in p for p in _problems(root))


def test_registry_digest_changes_with_any_edit(tmp_path: Path) -> None:
    root = copy_registry(tmp_path)
    before = load_registry(root).digest
    with (root / "tools.yaml").open("a", encoding="utf-8") as fh:
        fh.write("# a comment\n")
    assert load_registry(root).digest != before


def test_resolved_scope_expands_team_requesters() -> None:
    reg = load_registry(SAMPLE_REGISTRY)
    scope = resolved_scope(reg, "cost-optimizer")
    assert scope["requesters"] == ["carol", "dan", "erin"]
    assert {t["id"]: t["blast_radius"] for t in scope["tools"]}["propose_change"] == "draft"
    assert reg.requester_allowed(reg.agent("cost-optimizer"), "dan")
    assert not reg.requester_allowed(reg.agent("cost-optimizer"), "alice")
    assert path_in_scope(reg.agent("network-agent"), "infra/network/__main__.py")
    assert not path_in_scope(reg.agent("network-agent"), "infra/data/__main__.py")
    with pytest.raises(UserError, match="unknown agent 'ghost'"):
        resolved_scope(reg, "ghost")
