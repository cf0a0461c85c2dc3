"""An agent hides an undeclared change behind a manifest entry that only joins to the same text.

GB-CHG-002 denies an undeclared delete or replace on an agent PR; GB-CHG-003 warns about a declared change the
plan does not make. Both compare each change's (project, stack, type, name, action) with the entries of the
agent's ``expected_changes``, as one text joined with ``|``. An agent whose program names a resource ``x|y``
could declare the type ``<type>|x`` and the name ``y``: a declaration of a resource that does not exist, whose
text matched the real delete letter for letter. Neither rule fired, and the reviewer read a manifest that did
not describe the change. Now a row whose fields hold ``|`` has no key: such a change is undeclared and such an
entry not planned, whatever it is matched with.
"""

from __future__ import annotations

import pytest

from bot.policy.engines import make_engine
from bot.policy.pack import load_pack
from tests.unit.policy.rego_inputs import change, policy_input, resource

BUCKET = "aws:s3/bucket:Bucket"


def _findings(engine_name: str, expected: list[dict[str, str]], name: str = "x|y") -> dict[str, list[str]]:
    bucket = resource(BUCKET, name, {"bucket": "acme-logs", "tags": {"Owner": "data"}}, env="dev")
    doc = policy_input(
        [bucket], [change(bucket, "delete")], agent=True, evidence_overrides={"expected_changes": expected}
    )
    evaluation = make_engine(load_pack(), engine_name).evaluate(doc)
    out: dict[str, list[str]] = {}
    for r in evaluation.results:
        if r.rule_id in ("GB-CHG-002", "GB-CHG-003"):
            out.setdefault(f"{r.rule_id} {r.status}", []).append(r.message)
    return out


@pytest.mark.parametrize("engine_name", ["opa", "regopy", "regorus"])
def test_a_lookalike_entry_does_not_declare_a_delete_whose_name_holds_the_separator(engine_name: str) -> None:
    lookalike = {"project": "app", "stack": "dev", "type": f"{BUCKET}|x", "name": "y", "action": "delete"}
    found = _findings(engine_name, [lookalike])
    assert found == {
        "GB-CHG-002 deny": [f"undeclared delete of {BUCKET} x|y in app/dev"],
        "GB-CHG-003 warn": [f"declared delete of {BUCKET}|x y in app/dev is not in the plan"],
    }


@pytest.mark.parametrize("engine_name", ["opa", "regopy", "regorus"])
def test_a_name_holding_the_separator_cannot_be_declared_at_all(engine_name: str) -> None:
    honest = {"project": "app", "stack": "dev", "type": BUCKET, "name": "x|y", "action": "delete"}
    assert _findings(engine_name, [honest]) == {
        "GB-CHG-002 deny": [f"undeclared delete of {BUCKET} x|y in app/dev"],
        "GB-CHG-003 warn": [f"declared delete of {BUCKET} x|y in app/dev is not in the plan"],
    }


@pytest.mark.parametrize("engine_name", ["opa", "regopy", "regorus"])
def test_an_ordinary_name_is_declared_as_before(engine_name: str) -> None:
    entry = {"project": "app", "stack": "dev", "type": BUCKET, "name": "logs", "action": "delete"}
    assert _findings(engine_name, [entry], name="logs") == {}
