"""An agent's text carries a secret in a format the scanner does not know, encoded, or cut into pieces, and it
lands in clear in the PR body, the commit message, the evidence record or a committed stack file (I9).

Every sample of ``tests/redaction_corpus.py`` must be found and fully removed; every look-alike (digests, ids,
ARNs, URNs, paths, our own placeholders...) must be left exactly as it is.
"""

from __future__ import annotations

import base64
import copy
from pathlib import Path

import pytest
import yaml

from bot.records import ChangeRequest
from bot.redaction import find_secrets, proves, redact_text, redact_tree, secrets_in_tree
from tests.factories import change_request_data
from tests.redaction_corpus import (
    ANTHROPIC,
    AWS_KEY_ID,
    GITHUB_PAT,
    LOOKALIKES,
    OPENAI_PROJECT,
    SECRETS,
    STRIPE_LIVE,
    Secret,
    halves,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def _ids(samples: list[Secret]) -> list[str]:
    return [s.name for s in samples]


# --------------------------------------------------------------------------------------------------
# the corpus


def test_the_corpus_is_broad_enough() -> None:
    assert len({s.name for s in SECRETS}) == len(SECRETS) >= 55
    assert len({name for name, _ in LOOKALIKES}) == len(LOOKALIKES) >= 40
    assert any(s.name.startswith("base64-") for s in SECRETS)
    assert any(s.name.startswith("percent-") for s in SECRETS)
    assert any(s.name.startswith("split-") for s in SECRETS)


@pytest.mark.parametrize("sample", SECRETS, ids=_ids(SECRETS))
def test_agent_hides_a_secret_in_a_common_format(sample: Secret) -> None:
    assert find_secrets(sample.text), f"{sample.name}: not found"
    clean, redactions = redact_text(sample.text, "rationale.objective")
    assert redactions and all(r.field_path == "rationale.objective" for r in redactions)
    assert sample.token not in clean, f"{sample.name}: the token is still in clear"
    for piece in sample.pieces:
        assert piece not in clean, f"{sample.name}: {piece[:24]!r}... is still in clear"
    assert "[REDACTED:" in clean


@pytest.mark.parametrize("sample", SECRETS, ids=_ids(SECRETS))
def test_redacting_a_redacted_sample_changes_nothing(sample: Secret) -> None:
    clean, _ = redact_text(sample.text, "f")
    assert redact_text(clean, "f") == (clean, [])


@pytest.mark.parametrize(("name", "text"), LOOKALIKES, ids=[n for n, _ in LOOKALIKES])
def test_a_lookalike_is_left_alone(name: str, text: str) -> None:
    assert find_secrets(text) == [], name
    assert redact_text(text, "x") == (text, [])
    tree = {"commit": text, "token_count": text, "name": text, "digest": text, "items": [text, text]}
    clean, redactions = redact_tree(copy.deepcopy(tree), "request")
    assert redactions == [] and clean == tree
    assert secrets_in_tree(tree) == []


@pytest.mark.parametrize(
    "value",
    [
        "sha256:" + "9f" * 32,
        "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-AbCdEf",
        "urn:pulumi:prod::data::aws:rds/instance:Instance::orders",
        "/prod/orders/db/password",
        "orders-db-credentials-7d4b9c8f6",
        "2026-11-25T09:00:00+00:00",
        "v1:" + "Zm9vYmFyYmF6" * 4,
        "[REDACTED:high-entropy-secret-field]",
        "${DB_PASSWORD}",
    ],
)
def test_a_secret_named_field_holding_a_reference_is_left_alone(value: str) -> None:
    data = {"db_password": value, "api_token": value, "secret": value, "client_secret": value}
    assert redact_tree(data) == (data, [])


@pytest.mark.parametrize(
    ("name", "redacted"),
    [
        ("db_password", True),
        ("apiToken", True),
        ("X-API-Key", True),
        ("password2", True),
        ("token_count", False),
        ("token_sha256", False),
        ("secret_arn", False),
        ("password_updated_at", False),
        ("NextToken", False),
        ("commit", False),
    ],
)
def test_the_random_value_heuristic_reads_the_field_name(name: str, redacted: bool) -> None:
    value = "q8Zr2LpX9vTs4WkB7mNc"
    clean, redactions = redact_tree({name: value})
    assert bool(redactions) is redacted
    assert clean == {name: "[REDACTED:high-entropy-secret-field]" if redacted else value}


# --------------------------------------------------------------------------------------------------
# a few kinds by name: the placeholder tells a reviewer what was removed


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        (f"key {ANTHROPIC}", "anthropic-api-key"),
        (f"key {OPENAI_PROJECT}", "openai-api-key"),
        (f"key {STRIPE_LIVE}", "stripe-secret-key"),
        (f"key {GITHUB_PAT}", "github-token"),
        (f"key {AWS_KEY_ID}", "aws-access-key-id"),
    ],
)
def test_the_placeholder_names_the_kind(text: str, kind: str) -> None:
    clean, [redaction] = redact_text(text, "f")
    assert clean == f"key [REDACTED:{kind}]"
    assert redaction.kind == kind and proves(redaction, text[4:])


def test_a_secret_inside_base64_redacts_the_whole_encoded_value_with_a_proof_of_it() -> None:
    blob = base64.b64encode(f"ANTHROPIC_API_KEY={ANTHROPIC}".encode()).decode()
    clean, [redaction] = redact_text(f"env: {blob} end", "f")
    assert clean == "env: [REDACTED:anthropic-api-key] end"
    assert proves(redaction, blob)


# --------------------------------------------------------------------------------------------------
# split across fields and encoded, through redact_tree


def test_agent_splits_a_token_across_two_sibling_fields() -> None:
    head, tail = halves(ANTHROPIC, 13)
    data = {"intent": "tidy up", "rationale": {"objective": f"use {head}", "expected_impact": f"{tail} then"}}
    clean, redactions = redact_tree(data, "request")
    assert ANTHROPIC not in str(clean) and head not in str(clean) and tail not in str(clean)
    assert clean["intent"] == "tidy up"
    assert clean["rationale"] == {
        "objective": "use [REDACTED:anthropic-api-key]",
        "expected_impact": "[REDACTED:anthropic-api-key] then",
    }
    # every field that contributed is named, and each proof is over the whole token
    assert sorted(r.field_path for r in redactions) == [
        "request.rationale.expected_impact",
        "request.rationale.objective",
    ]
    assert all(proves(r, ANTHROPIC) for r in redactions)
    assert sorted(secrets_in_tree(data)) == [
        ("rationale.expected_impact", "anthropic-api-key"),
        ("rationale.objective", "anthropic-api-key"),
    ]


def test_agent_splits_a_token_into_a_list_of_fragments() -> None:
    parts = [STRIPE_LIVE[:20], STRIPE_LIVE[20:60], STRIPE_LIVE[60:]]
    clean, redactions = redact_tree({"notes": parts, "n": 3})
    assert clean == {"notes": ["[REDACTED:stripe-secret-key]"] * 3, "n": 3}
    assert [r.field_path for r in redactions] == ["notes.0", "notes.1", "notes.2"]
    assert all(proves(r, STRIPE_LIVE) for r in redactions)


def test_fragments_apart_are_not_joined() -> None:
    head, tail = halves(GITHUB_PAT)
    data = {"a": head, "gap": 1, "b": tail}
    assert redact_tree(data) == (data, [])


@pytest.mark.parametrize(
    "encode",
    [
        lambda s: base64.b64encode(s.encode()).decode(),
        lambda s: base64.urlsafe_b64encode(s.encode()).decode().rstrip("="),
        lambda s: "".join(f"%{b:02X}" for b in s.encode()),
        lambda s: s.encode().hex(),
    ],
    ids=["base64", "base64-urlsafe", "percent", "hex"],
)
def test_agent_encodes_a_token_in_an_evidence_field(encode: object) -> None:
    assert callable(encode)
    value = encode(GITHUB_PAT)
    data = {"rationale": {"evidence_sources": [{"uri": "https://wiki.example/x", "retrieval_id": value}]}}
    clean, [redaction] = redact_tree(data, "request")
    assert clean["rationale"]["evidence_sources"][0]["retrieval_id"] == "[REDACTED:github-token]"
    assert redaction.field_path == "request.rationale.evidence_sources.0.retrieval_id"
    assert proves(redaction, value)


# --------------------------------------------------------------------------------------------------
# a change request: the stack file it would commit


def _request(**overrides: object) -> dict[str, object]:
    return ChangeRequest.model_validate(change_request_data(**overrides)).model_dump(mode="json")


def test_a_clean_change_request_has_no_secret() -> None:
    data = _request()
    assert secrets_in_tree(data) == []
    assert redact_tree(copy.deepcopy(data), "request") == (data, [])


@pytest.mark.parametrize("path", sorted((REPO_ROOT / "examples" / "requests").glob("*.yaml")), ids=lambda p: p.stem)
def test_the_example_requests_have_no_secret(path: Path) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert secrets_in_tree(data) == []
    for change in data.get("changes", []):
        assert find_secrets(change.get("content") or "") == []


@pytest.mark.parametrize(
    "content",
    [
        f"config:\n  aws:region: eu-west-1\n  payments:stripeKey: {STRIPE_LIVE}\n",
        "config:\n  app:keyParts:\n" + "".join(f"    - {p}\n" for p in halves(OPENAI_PROJECT)),
        "config:\n  app:token: " + base64.b64encode(GITHUB_PAT.encode()).decode() + "\n",
    ],
    ids=["plain", "split-list", "base64"],
)
def test_agent_commits_a_stack_file_with_a_secret(content: str) -> None:
    changes = [{"path": "infra/network/Pulumi.dev.yaml", "content": content}]
    data = _request(changes=changes)
    hits = secrets_in_tree(data)
    assert [path for path, _ in hits] == ["changes.0.content"]
    # what propose checks before it commits the file
    assert find_secrets(data["changes"][0]["content"])  # type: ignore[index]


# --------------------------------------------------------------------------------------------------
# hostile sizes: linear patterns, bounded decoding


@pytest.mark.parametrize(
    "text",
    [
        "a" * 1_000_000,
        "A0" * 500_000,
        "=" * 1_000_000,
        ("a" * 999 + "=") * 1000,
        "-----BEGIN PRIVATE KEY-----\n" * 36_000,
        '"ab" + ' * 140_000,
        "%41" * 333_000,
        "a" * 999_990 + " %41%42",
        "\n- ab" * 200_000,
        "password=" * 110_000,
        "QUFB" * 250_000,
        "sk-" * 333_000,
        "eyJ." * 250_000,
    ],
    ids=lambda t: f"{t[:6]!r}x{len(t)}",
)
def test_a_megabyte_of_hostile_text_returns(text: str) -> None:
    found = find_secrets(text)
    assert isinstance(found, list)
    assert all(0 <= f.start < f.end <= len(text) for f in found)
