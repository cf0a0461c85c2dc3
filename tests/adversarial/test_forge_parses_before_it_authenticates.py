"""The forge is a door an agent's token opens: whatever it sends, the forge never answers 5xx, never parses a
body for a caller it has not authenticated, and changes nothing for one without a valid token."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.forge.server import init_forge, load_tokens
from bot.forge.server.app import MAX_BODY_DEPTH, ROUTES, ForgeApp
from tests.forge_helpers import REPO, ForgeEnv, forge_env, make_source

SAMPLES = {
    "owner": "acme",
    "repo": "infra",
    "login": "glassbox-bot",
    "branch": "main",
    "ref": "heads/main",
    "sha": "0" * 40,
    "number": "1",
    "review": "1",
    "name": "glassbox:agent",
    "path": "README.md",
    "spec": "main...main",
    "org": "acme",
    "slug": "platform",
    "check_run": "1",
}


def concrete(pattern: str) -> str:
    return "/api/v3" + re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: SAMPLES[m.group(1)], pattern)


PATHS = sorted({(verb, concrete(pattern)) for verb, pattern, _ in ROUTES})
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
FIELDS = st.sampled_from(
    [
        "title",
        "head",
        "base",
        "body",
        "state",
        "event",
        "sha",
        "ref",
        "tree",
        "message",
        "parents",
        "labels",
        "draft",
        "commit_id",
        "merge_method",
        "context",
        "force",
        "content",
        "encoding",
        "required_status_checks",
        "name",
        "head_sha",
        "conclusion",
        "output",
        "reviewers",
        "team_reviewers",
        "color",
    ]
)
BODIES = (
    st.binary(max_size=64)
    | JSON.map(lambda v: json.dumps(v).encode())
    | st.dictionaries(FIELDS, JSON, max_size=6).map(lambda v: json.dumps(v).encode())
)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ForgeApp, dict[str, str]]]:
    tmp = tmp_path_factory.mktemp("fuzzforge")
    data = tmp / "forge"
    init_forge(data, REPO, make_source(tmp))
    forge = ForgeApp(data)
    try:
        yield forge, load_tokens(data)
    finally:
        forge.close()


@pytest.fixture
def forge(tmp_path: Path) -> Iterator[ForgeEnv]:
    yield from forge_env(tmp_path)


def state(forge: ForgeApp) -> list[str]:
    """Everything the forge holds: its database and every ref of its repositories."""
    with forge.store.lock:
        rows = list(forge.store.db.iterdump())
    refs = sorted(
        str(p.relative_to(forge.data_dir)) + ":" + p.read_text()
        for p in (forge.data_dir / "repos").rglob("refs/**/*")
        if p.is_file()
    )
    packed = sorted(p.read_text() for p in (forge.data_dir / "repos").rglob("packed-refs"))
    return rows + refs + packed


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize("headers", [{}, {"authorization": "token gbt_not_a_real_token"}, {"authorization": "Basic x"}])
def test_a_deeply_nested_body_without_a_token_is_401_not_500(
    app: tuple[ForgeApp, dict[str, str]], headers: dict[str, str]
) -> None:
    forge, _ = app
    response = forge.handle("POST", f"/api/v3/repos/{REPO}/pulls", headers, nested(200_000))
    assert response.status == 401


def test_a_deeply_nested_body_with_a_token_is_a_400_naming_the_limit(app: tuple[ForgeApp, dict[str, str]]) -> None:
    forge, tokens = app
    response = forge.handle(
        "POST", f"/api/v3/repos/{REPO}/pulls", {"authorization": f"token {tokens['glassbox-bot']}"}, nested(200_000)
    )
    assert response.status == 400
    assert "Problems parsing JSON" in response.body["message"] and str(MAX_BODY_DEPTH) in response.body["message"]


def test_malformed_json_is_githubs_400(app: tuple[ForgeApp, dict[str, str]]) -> None:
    forge, tokens = app
    response = forge.handle(
        "POST", f"/api/v3/repos/{REPO}/pulls", {"authorization": f"token {tokens['glassbox-bot']}"}, b'{"title": '
    )
    assert response.status == 400 and response.body["message"] == "Problems parsing JSON"
    assert "documentation_url" in response.body


def test_an_oversized_or_lying_content_length_is_refused_over_http(forge: ForgeEnv) -> None:
    import http.client

    host, port = forge.url.removeprefix("http://").split("/")[0].split(":")
    for length, expected in (("99999999999", 413), ("-5", 400), ("12abc", 400)):
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        conn.putrequest("POST", f"/api/v3/repos/{REPO}/pulls")
        conn.putheader("Content-Length", length)
        conn.endheaders()
        assert conn.getresponse().status == expected
        conn.close()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(route=st.sampled_from(PATHS), body=BODIES, token=st.sampled_from(["", "token gbt_forged", "bearer ", "token"]))
def test_fuzz_every_route_without_a_valid_token_changes_nothing(
    app: tuple[ForgeApp, dict[str, str]], route: tuple[str, str], body: bytes, token: str
) -> None:
    forge, _ = app
    before = state(forge)
    method, path = route
    response = forge.handle(method, path, {"authorization": token} if token else {}, body)
    assert response.status == 401, (method, path, response.status, response.body)
    assert state(forge) == before


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    route=st.sampled_from(PATHS),
    body=BODIES,
    identity=st.sampled_from(["glassbox-bot", "network-agent", "alice", "glassbox-ci", "forge-admin"]),
    query=st.sampled_from(["", "?per_page=abc", "?page=-1&per_page=0", "?state=%00", "?ref=..%2F.."]),
)
def test_fuzz_every_route_with_a_valid_token_never_answers_5xx(
    app: tuple[ForgeApp, dict[str, str]], route: tuple[str, str], body: bytes, identity: str, query: str
) -> None:
    forge, tokens = app
    method, path = route
    response = forge.handle(method, path + query, {"authorization": f"token {tokens[identity]}"}, body)
    assert 200 <= response.status < 500, (method, path, body, response.status, response.body)
