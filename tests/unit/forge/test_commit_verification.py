"""Signed main: the forge signs what it commits itself (the import, merges, squashes) with its own key, and reports
each commit's ``verification`` as GitHub does, against the SSH signing keys registered for the committer's account.
Read back through PyGithub, checked with plain ``git verify-commit``."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.forge.model import GitIdentity, MergeMethod, StatusState, commit_payload
from bot.forge.server import repo_path
from bot.forge.server.signing import WEB_FLOW, forge_signer
from bot.trust.gitsign import ssh_sign
from bot.trust.keys import Signer, generate_key, load_signer
from tests.forge_helpers import REPO, ForgeEnv, changes

AGENT = "patch-agent"
AGENT_ID = GitIdentity(name="Patching agent", email="patch-agent@agents.glassbox.local")
GPG = "-----BEGIN PGP SIGNATURE-----\n\niQEzBAABCAAdFiEE\n-----END PGP SIGNATURE-----\n"


def _key(forge: ForgeEnv, identity: str) -> Signer:
    return load_signer(forge.data / "keys", identity)


def _pr(forge: ForgeEnv, name: str, author: GitIdentity = AGENT_ID, **signing: Any) -> Any:
    return forge.client(AGENT).open_pull_request(
        base="main", branch=f"glassbox/{AGENT}/{name}", title=name, body="", changes=changes(1, f"d/{name}"),
        author=author, **signing,
    )  # fmt: skip


def _verification(forge: ForgeEnv, sha: str) -> Any:
    repo = forge.github("carol").get_repo(REPO)
    git_view, rest_view = repo.get_git_commit(sha).verification, repo.get_commit(sha).commit.verification
    assert (git_view.verified, git_view.reason) == (rest_view.verified, rest_view.reason)
    return git_view


def _signer_of(key: Signer) -> Callable[[bytes], str]:
    return lambda payload: ssh_sign(key, payload)


def _green(forge: ForgeEnv, pr: Any) -> None:
    for context in ("glassbox/check", "glassbox/approvals"):
        forge.client("glassbox-ci").set_status(pr.head_sha, context=context, state=StatusState.SUCCESS)
    forge.github("alice").get_repo(REPO).get_pull(pr.number).create_review(event="APPROVE")


def _git_verifies(
    forge: ForgeEnv, tmp_path: Path, sha: str, principal: str, key: Signer
) -> subprocess.CompletedProcess[str]:
    signers = tmp_path / "allowed_signers"
    algo, blob = key.public_line.split()[:2]
    signers.write_text(f'{principal} namespaces="git" {algo} {blob}\n')
    bare = repo_path(forge.data, REPO)
    return subprocess.run(
        ["git", f"--git-dir={bare}", "-c", "gpg.format=ssh", "-c", f"gpg.ssh.allowedSignersFile={signers}",
         "verify-commit", sha],
        capture_output=True, text=True, check=False,
    )  # fmt: skip


def test_the_import_and_every_merge_are_signed_by_the_forge(forge: ForgeEnv, tmp_path: Path) -> None:
    pr = _pr(forge, "merged", signer=_signer_of(_key(forge, AGENT)))
    assert _verification(forge, pr.base_sha).verified  # the initial import
    _green(forge, pr)
    result = forge.client("glassbox-bot").merge(pr.number, expected_head_sha=pr.head_sha, method=MergeMethod.SQUASH)
    assert result.merged and result.sha
    merged = forge.github("carol").get_repo(REPO).get_git_commit(result.sha)
    assert (merged.verification.verified, merged.verification.reason) == (True, "valid")
    assert merged.verification.signature.startswith("-----BEGIN SSH SIGNATURE-----")
    assert merged.verification.payload.startswith(f"tree {merged.tree.sha}\n")
    assert "gpgsig" not in merged.verification.payload
    assert (merged.author.email, merged.committer.email) == ("glassbox-bot@services.glassbox.local", WEB_FLOW.email)
    checked = _git_verifies(forge, tmp_path, result.sha, WEB_FLOW.email, forge_signer(forge.data))
    assert checked.returncode == 0 and 'Good "git" signature' in checked.stderr, checked.stderr


def test_an_agents_commit_signed_with_its_registered_key_verifies(forge: ForgeEnv) -> None:
    pr = _pr(forge, "signed", signer=_signer_of(_key(forge, AGENT)))
    seen = _verification(forge, pr.head_sha)
    assert (seen.verified, seen.reason, seen.verified_at is not None) == (True, "valid", True)
    keys = forge.ok("carol", "GET", f"/users/{AGENT}/ssh_signing_keys")
    assert [k["key"] for k in keys] == [" ".join(_key(forge, AGENT).public_line.split()[:2])]


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("unsigned", "unsigned"),
        ("someone else's key", "unknown_key"),
        ("no account has the email", "no_user"),
        ("signature over other bytes", "invalid"),
        ("a GPG signature", "unknown_signature_type"),
        ("claims to be the forge", "unknown_key"),
    ],
)
def test_what_does_not_verify_says_why(forge: ForgeEnv, case: str, reason: str) -> None:
    agent_key = _key(forge, AGENT)
    cases: dict[str, tuple[GitIdentity, dict[str, Any]]] = {
        "unsigned": (AGENT_ID, {}),
        "someone else's key": (AGENT_ID, {"signer": _signer_of(_key(forge, "alice"))}),
        "no account has the email": (
            GitIdentity(name="Nobody", email="nobody@example.com"),
            {"signer": _signer_of(agent_key)},
        ),
        "signature over other bytes": (AGENT_ID, {"signer": lambda _payload: ssh_sign(agent_key, b"other bytes")}),
        "a GPG signature": (AGENT_ID, {"signature": GPG}),
        "claims to be the forge": (
            GitIdentity(name=WEB_FLOW.name, email=WEB_FLOW.email),
            {"signer": _signer_of(agent_key)},
        ),
    }
    author, signing = cases[case]
    pr = _pr(forge, case.replace(" ", "-").replace("'", ""), author, **signing)
    seen = _verification(forge, pr.head_sha)
    assert (seen.verified, seen.reason) == (False, reason)
    assert (seen.signature is None) == (case == "unsigned") and seen.verified_at is None


def test_a_key_registered_later_verifies_what_it_signed(forge: ForgeEnv, tmp_path: Path) -> None:
    laptop = generate_key(tmp_path / "laptop", "carol-laptop")
    carol = GitIdentity(name="Carol Lindqvist", email="carol@example.com")
    head = forge.github("carol").get_repo(REPO).get_branch("main").commit.sha
    tree = forge.ok("carol", "GET", f"/repos/{REPO}/git/commits/{head}")["tree"]["sha"]
    who = carol.at(datetime.now(UTC))
    signature = ssh_sign(laptop, commit_payload(tree, [head], who, who, "from the laptop"))
    person = {"name": who.name, "email": who.email, "date": who.date.strftime("%Y-%m-%dT%H:%M:%SZ")}  # type: ignore[union-attr]
    made = forge.ok(
        "carol",
        "POST",
        f"/repos/{REPO}/git/commits",
        {"message": "from the laptop", "tree": tree, "parents": [head], "author": person, "committer": person,
         "signature": signature},
    )  # fmt: skip
    assert (made["verification"]["verified"], made["verification"]["reason"]) == (False, "unknown_key")

    key = " ".join(laptop.public_line.split()[:2])
    added = forge.ok("carol", "POST", "/user/ssh_signing_keys", {"title": "laptop", "key": laptop.public_line})
    assert (added["key"], added["title"]) == (key, "laptop")
    assert _verification(forge, made["sha"]).verified
    assert key in [k["key"] for k in forge.ok("carol", "GET", "/user/ssh_signing_keys")]

    for body, field in (({"key": laptop.public_line}, "key"), ({"key": "ssh-ed25519 bm90IGEga2V5"}, "key")):
        status, data = forge.request("dan", "POST", "/user/ssh_signing_keys", body)
        assert status == 422 and data["errors"][0]["field"] == field, data


def test_required_signatures_refuse_a_merge_commit_that_brings_unverified_commits(forge: ForgeEnv) -> None:
    forge.admin("POST", f"/api/v3/repos/{REPO}/branches/main/protection/required_signatures")
    unsigned = _pr(forge, "unsigned")
    _green(forge, unsigned)
    bot = forge.client("glassbox-bot")
    refused = bot.merge(unsigned.number, expected_head_sha=unsigned.head_sha, method=MergeMethod.MERGE)
    assert not refused.merged and f"Commits must have verified signatures: {unsigned.head_sha[:12]}" in refused.message
    # squashed, the change lands as one new commit the forge signs
    squashed = bot.merge(unsigned.number, expected_head_sha=unsigned.head_sha, method=MergeMethod.SQUASH)
    assert squashed.merged and squashed.sha and _verification(forge, squashed.sha).verified

    signed = _pr(forge, "signed-merge", signer=_signer_of(_key(forge, AGENT)))
    _green(forge, signed)
    merged = bot.merge(signed.number, expected_head_sha=signed.head_sha, method=MergeMethod.MERGE)
    assert merged.merged, merged.message


def test_glassbox_does_not_trust_the_forges_key(forge: ForgeEnv) -> None:
    # what the forge signs is GitHub's word, not a glassbox identity's: its key is in no trust anchor
    trust = forge.client("carol").read_file("registry/trust.yaml", "main")
    assert trust is not None and b"ssh-ed25519" in trust
    assert forge_signer(forge.data).public_line.split()[1].encode() not in trust
