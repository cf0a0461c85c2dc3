from __future__ import annotations

import pytest

from bot.redaction import find_secrets, proves, redact_text, redact_tree, secrets_in_tree

AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
GH_TOKEN = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
PEM = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----"


@pytest.mark.parametrize(
    ("text", "kind", "secret"),
    [
        (f"use key {AWS_KEY} for the job", "aws-access-key-id", AWS_KEY),
        (f"aws_secret_access_key = {AWS_SECRET}", "aws-secret-access-key", AWS_SECRET),
        (f"token {GH_TOKEN} found", "github-token", GH_TOKEN),
        (f"key:\n{PEM}\n", "private-key", PEM),
        ("db at postgres://app:hunter2hunter2@db.internal:5432/app", "url-password", "hunter2hunter2"),
        ("password: Sup3rS3cretValue!", "assigned-secret", "Sup3rS3cretValue!"),
        ("slack xoxb-1234567890-abcdefghij", "slack-token", "xoxb-1234567890-abcdefghij"),
    ],
)
def test_each_kind_of_secret_is_found_and_redacted_with_a_provable_hash(text: str, kind: str, secret: str) -> None:
    clean, redactions = redact_text(text, "rationale.objective")
    assert secret not in clean
    assert f"[REDACTED:{kind}]" in clean
    assert [r.kind for r in redactions] == [kind]
    assert proves(redactions[0], secret)
    assert not proves(redactions[0], secret + "x")
    assert redactions[0].field_path == "rationale.objective"


def test_high_entropy_values_in_secret_named_fields_are_redacted() -> None:
    clean, redactions = redact_tree({"db_password": "q8Zr2LpX9vTs4WkB", "name": "q8Zr2LpX9vTs4WkB"})
    assert clean == {"db_password": "[REDACTED:high-entropy-secret-field]", "name": "q8Zr2LpX9vTs4WkB"}
    assert [r.field_path for r in redactions] == ["db_password"]


def test_plain_prose_is_left_alone() -> None:
    text = "Right-size the bastion; password rotation is handled by the vault team."
    assert find_secrets(text) == []
    assert redact_text(text, "x") == (text, [])


def test_secrets_in_every_nested_field_and_in_keys() -> None:
    data = {"a": [{"b": f"x {AWS_KEY}"}], AWS_KEY: "value", "n": 3}
    clean, redactions = redact_tree(data, "request")
    assert AWS_KEY not in str(clean)
    assert sorted(r.field_path for r in redactions) == ["request.AKIAIOSFODNN7EXAMPLE(key)", "request.a.0.b"]
    assert secrets_in_tree(clean) == []


def test_redaction_is_idempotent_on_its_own_placeholders() -> None:
    clean, _ = redact_text(f"password: {AWS_SECRET}", "f")
    again, more = redact_text(clean, "f")
    assert again == clean and more == []
