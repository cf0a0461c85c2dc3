"""`glassbox mcp` as an agent meets it: a stdio subprocess driven by the MCP client of the same SDK, against
the embedded forge. One server per test module (it acts as ``cost-optimizer``); the calls run in order."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters

from bot.plan.cache import DIR_ENV
from bot.records import ChangeRequest, Outcome
from tests.flow_helpers import REPO, Flow, _dev_network_config, flow_env, request

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

AGENT = "cost-optimizer"
ROOT = Path(__file__).resolve().parents[2]
GLASSBOX = Path(sys.executable).parent / "glassbox"


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flow]:
    yield from flow_env(tmp_path_factory.mktemp("mcp"))


def server(flow: Flow, *extra: str, cache: Path | None = None) -> StdioServerParameters:
    args = ["mcp", "--agent", AGENT, "--base-repo", str(flow.bare), "--forge-url", flow.url]
    args += ["--repo", REPO, "--keys", str(flow.keys), "--ledger", str(flow.ledger.path), *extra]
    env = {
        "GLASSBOX_TOKEN": flow.tokens[AGENT],  # the token stays off the command line
        "GLASSBOX_LOG": str(flow.data / "glassbox.log"),
        "NO_PROXY": "127.0.0.1,localhost",
        DIR_ENV: str(cache or flow.data / "plan-cache"),
    }
    if "GLASSBOX_CHECKOV_PYTHON" in os.environ:
        env["GLASSBOX_CHECKOV_PYTHON"] = os.environ["GLASSBOX_CHECKOV_PYTHON"]
    return StdioServerParameters(command=str(GLASSBOX), args=args, env=env, cwd=str(ROOT))


def call(
    flow: Flow, calls: list[tuple[str, dict[str, Any]]], *extra: str, cache: Path | None = None
) -> tuple[dict[str, dict[str, Any]], list[Any]]:
    """Start one server, list its tools, make ``calls`` in order; return each tool's input schema and the results."""

    async def run() -> tuple[dict[str, dict[str, Any]], list[Any]]:
        with anyio.fail_after(240):
            return await session()

    async def session() -> tuple[dict[str, dict[str, Any]], list[Any]]:
        async with Client(server(flow, *extra, cache=cache), read_timeout_seconds=120) as client:
            listed = await client.list_tools()
            results = []
            for name, arguments in calls:
                result = await client.call_tool(name, arguments)
                assert not result.is_error, f"{name}: {result.content}"
                # the structured result, and the same JSON as text for clients that read only text
                assert result.structured_content == json.loads(result.content[0].text)  # type: ignore[union-attr]
                results.append(result.structured_content)
            return {t.name: t.input_schema for t in listed.tools}, results

    return anyio.run(run)


def change(**overrides: Any) -> dict[str, Any]:
    return request(**overrides).model_dump(mode="json")


def test_the_agent_sees_its_scope_proposes_and_follows_its_change(flow: Flow) -> None:
    req = change()
    names, (scope, preflight, proposal, again, status) = call(
        flow,
        [
            ("list_my_scope", {}),
            ("preflight_change", {"request": req}),
            ("propose_change", {"request": req}),
            ("propose_change", {"request": req}),  # a retry returns the same PR
            ("get_change_status", {"correlation_id": req["correlation_id"]}),
        ],
    )
    assert set(names) == {"propose_change", "preflight_change", "get_change_status", "list_my_scope"}

    assert scope["agent_id"] == AGENT and scope["agent"]["id"] == AGENT
    assert "infra/network/Pulumi.dev.yaml" in scope["agent"]["scope"]["paths"]
    assert {t["id"] for t in scope["tools"]} >= {"propose_change", "preflight_change"}

    assert preflight["outcome"] == "would_pass", preflight
    assert preflight["risk"] == "low" and preflight["reasons"] == []

    assert proposal["accepted"] is True and proposal["outcome"] == "opened", proposal
    pr = proposal["proposal"]
    assert pr["agent_id"] == AGENT and pr["branch"] == f"glassbox/{AGENT}/{req['correlation_id']}"
    assert again["outcome"] == "existing" and again["proposal"]["pr_number"] == pr["pr_number"]

    assert status["found"] is True and status["pr"] == pr["pr_number"]
    assert status["pull_request"]["state"] == "open" and status["pull_request"]["head_sha"] == pr["head_sha"]
    assert status["proposal"]["state"] == "existing"
    assert status["check"]["state"] == "pending" and "not reported" in status["check"]["explanation"]
    assert status["approvals"]["state"] == "pending"
    assert status["merge"]["state"] == "open" and status["deploy"]["state"] == "not_started"
    assert [e["action"] for e in status["events"]] == ["propose", "propose"]

    # the same PR looked up by number
    (by_pr,) = call(flow, [("get_change_status", {"pr": pr["pr_number"]})], "--no-preflight")[1]
    assert by_pr["correlation_id"] == req["correlation_id"] and by_pr["pr"] == pr["pr_number"]


def test_later_preflights_take_their_plans_from_the_servers_warm_cache(flow: Flow, tmp_path: Path) -> None:
    # an agent in a loop: the same change asked twice (two requests, two would-be commits), then a different one
    three_weeks = {"path": "infra/network/Pulumi.dev.yaml", "content": _dev_network_config(21)}
    first, again, other = change(), change(), change(changes=[three_weeks])
    _, (one, two, three) = call(
        flow,
        [
            ("preflight_change", {"request": first}),
            ("preflight_change", {"request": again}),
            ("preflight_change", {"request": other}),
        ],
        cache=tmp_path / "cache",
    )
    assert one["outcome"] == two["outcome"] == three["outcome"] == "would_pass", (one, two, three)
    assert plan_sources(one) == {("network", "dev", "base", "miss"), ("network", "dev", "head", "miss")}
    assert plan_sources(two) == {("network", "dev", "base", "hit"), ("network", "dev", "head", "hit")}
    assert plan_sources(three) == {("network", "dev", "base", "hit"), ("network", "dev", "head", "miss")}
    decided = ("result", "risk", "risk_reasons", "reasons", "required_approvals", "warnings")
    assert {k: two[k] for k in decided} == {k: one[k] for k in decided}

    # --no-plan-cache: every plan run in its sandbox, nothing read or kept
    _, (cold,) = call(flow, [("preflight_change", {"request": change()})], "--no-plan-cache", cache=tmp_path / "off")
    assert {s[3] for s in plan_sources(cold)} == {"off"} and not (tmp_path / "off").exists()
    assert {k: cold[k] for k in decided} == {k: one[k] for k in decided}


def plan_sources(result: dict[str, Any]) -> set[tuple[str, str, str, str]]:
    return {(s["project"], s["stack"], s["side"], s["cache"]) for s in result["plan_sources"]}


def test_refusals_carry_every_reason_and_are_recorded(flow: Flow) -> None:
    governance = change(
        changes=[
            {"path": "registry/agents.yaml", "content": "agents: []\n"},
            {"path": "infra/identity/Pulumi.prod.yaml", "content": "config: {}\n"},
        ]
    )
    other = change(agent_id="patch-agent")
    _, (refused, preflight, not_me, status) = call(
        flow,
        [
            ("propose_change", {"request": governance}),
            ("preflight_change", {"request": governance}),
            ("propose_change", {"request": other}),
            ("get_change_status", {"correlation_id": other["correlation_id"]}),
        ],
        "--no-preflight",
    )
    assert refused["accepted"] is False and refused["outcome"] == "refused"
    reasons = refused["reasons"]
    assert any("registry/agents.yaml" in r and "governance" in r for r in reasons), reasons
    assert any("infra/identity/Pulumi.prod.yaml" in r and "outside" in r for r in reasons), reasons
    assert any("project 'identity'" in r for r in reasons), reasons
    assert any("stack identity/prod" in r for r in reasons), reasons

    assert preflight["outcome"] == "refused" and preflight["stage"] == "scope"
    assert preflight["reasons"] == reasons  # the same scope rules, the same words

    assert not_me["outcome"] == "refused"
    assert any(f"belongs to {AGENT!r}" in r for r in not_me["reasons"]), not_me
    assert status["found"] is False  # another agent's change is not this agent's to read

    events = flow.ledger.find(correlation_id=governance["correlation_id"])
    assert [(e.action, e.outcome) for e in events] == [("propose", Outcome.DENY)]
    assert events[0].details["reasons"] == reasons and events[0].details["result"] == "refused"
    spoofed = flow.ledger.find(correlation_id=other["correlation_id"])
    assert [(e.action, e.outcome) for e in spoofed] == [("propose", Outcome.DENY)]


def test_bad_input_is_answered_not_crashed(flow: Flow) -> None:
    no_intent = change()
    del no_intent["intent"]
    bad_file = change()
    del bad_file["changes"][0]["path"]
    _, (invalid, missing_field, missing_path, missing) = call(
        flow,
        [
            ("propose_change", {"request": {"agent_id": AGENT}}),
            ("preflight_change", {"request": no_intent}),
            ("propose_change", {"request": bad_file}),
            ("get_change_status", {"pr": 999}),
        ],
        "--no-preflight",
    )
    assert invalid["outcome"] == "invalid", invalid
    assert any(r.startswith("request: intent:") for r in invalid["reasons"]), invalid
    assert missing_field["outcome"] == "invalid"
    assert missing_field["reasons"] == ["request: intent: required field is missing"], missing_field
    assert missing_path["outcome"] == "invalid"
    assert "request: changes.0.path: required field is missing" in missing_path["reasons"], missing_path
    assert missing["found"] is False


def test_the_listed_tools_publish_the_change_request_schema(flow: Flow) -> None:
    tools, _ = call(flow, [], "--no-preflight")
    published = ChangeRequest.model_json_schema()
    for name in ("propose_change", "preflight_change"):
        schema = tools[name]
        assert schema["required"] == ["request"], schema
        request_schema = schema["properties"]["request"]
        # an agent framework can build a valid request from it: every required field, every nested model
        assert request_schema["required"] == published["required"]
        assert {"intent", "changes", "rationale", "model", "prompt"} <= set(request_schema["required"])
        assert request_schema["properties"] == published["properties"]
        assert schema["$defs"] == published["$defs"]
        file_change = schema["$defs"]["FileChange"]
        assert request_schema["properties"]["changes"]["items"] == {"$ref": "#/$defs/FileChange"}
        assert file_change["required"] == ["path"]
