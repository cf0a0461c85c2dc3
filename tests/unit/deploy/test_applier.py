from __future__ import annotations

import json
import shutil
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.deploy.applier import (
    ApplierKind,
    ApplyRefused,
    LocalApplier,
    PulumiAutomationApplier,
    StackBusy,
    resolve_applier_kind,
    select_applier,
    stack_file_config,
    stack_lock,
)
from bot.deploy.broker import CredentialRefused
from bot.deploy.model import Deployment, IssuedCredential
from bot.errors import EngineError, UserError
from bot.records import canonical_json
from tests.factories import REPO_ROOT
from tests.unit.deploy.conftest import COMMIT, NOW, OTHER_COMMIT, STACK, DeployEnv, resource

V1 = [
    resource("logs", {"bucket": "acme-logs", "tags": {"Owner": "data"}}),
    resource("assets", {"bucket": "acme-assets"}),
]
V2 = [
    resource("logs", {"bucket": "acme-logs", "tags": {"Owner": "platform"}}),  # update
    resource("reports", {"bucket": "acme-reports"}),  # create; "assets" is deleted
]
V3 = [resource("reports", {"bucket": "acme-reports", "versioning": "Enabled"})]


class Crash(Exception):
    """Stands in for the process dying at a given stage."""


def _cred(env: DeployEnv, *, stack: str = STACK, commit: str = COMMIT) -> IssuedCredential:
    return env.broker.mint(stack, commit=commit, run_id="run-1", now=NOW)


def _applier(env: DeployEnv, **kwargs: Any) -> LocalApplier:
    return LocalApplier(env.state, trusted=env.trusted, replay_store=env.replay, sink=env.sink, **kwargs)


def _apply(env: DeployEnv, resources: list[dict[str, Any]], applier: LocalApplier | None = None) -> Deployment:
    return (applier or _applier(env)).apply(resources, stack=STACK, commit=COMMIT, credential=_cred(env), now=NOW)


def _state_file(env: DeployEnv) -> Path:
    return env.state / "stacks" / "data" / "prod" / "state.json"


def _urns(resources: list[dict[str, Any]]) -> set[str]:
    return {r["urn"] for r in resources}


def test_first_apply_creates_and_says_it_simulated(env: DeployEnv) -> None:
    dep = _apply(env, V1)
    assert dep.result == "succeeded" and dep.simulated is True and dep.applier == "local"
    assert "simulated" in dep.message and "no cloud API" in dep.message
    assert [(a.name, a.action) for a in dep.actions] == [("logs", "create"), ("assets", "create")]
    state = json.loads(_state_file(env).read_text())
    assert set(state["resources"]) == _urns(V1) and state["commit"] == COMMIT
    assert dep.verification.ok and dep.verification.checked == 2
    assert dep.state_digest.startswith("sha256:") and dep.outputs_digest.startswith("sha256:")
    assert not (_state_file(env).parent / "inflight.json").exists()


def test_update_create_delete_against_previous_state(env: DeployEnv) -> None:
    first = _apply(env, V1)
    dep = _apply(env, V2)
    actions = {a.name: a for a in dep.actions}
    assert {n: a.action for n, a in actions.items()} == {"logs": "update", "reports": "create", "assets": "delete"}
    assert actions["logs"].changed == ["inputs.tags"]
    assert set(json.loads(_state_file(env).read_text())["resources"]) == _urns(V2)
    prev = json.loads((_state_file(env).parent / "state.prev.json").read_text())
    assert set(prev["resources"]) == _urns(V1)  # the previous generation is kept
    assert dep.state_digest != first.state_digest
    assert _applier(env).state(STACK) is not None


def test_apply_is_idempotent(env: DeployEnv) -> None:
    first = _apply(env, V1)
    again = _apply(env, V1)
    assert again.actions == [] and again.result == "succeeded"
    assert again.state_digest == first.state_digest and again.outputs_digest == first.outputs_digest


def test_no_valid_credential_no_apply(env: DeployEnv) -> None:
    applier = _applier(env)
    with pytest.raises(CredentialRefused):
        applier.apply(V1, stack=STACK, commit=COMMIT, credential=_cred(env, commit=OTHER_COMMIT), now=NOW)
    with pytest.raises(CredentialRefused):
        applier.apply(V1, stack=STACK, commit=COMMIT, credential=_cred(env, stack="data/dev"), now=NOW)
    cred = _cred(env)
    with pytest.raises(CredentialRefused):
        applier.apply(V1, stack=STACK, commit=COMMIT, credential=cred, now=NOW + timedelta(hours=1))
    assert not _state_file(env).exists()
    applier.apply(V1, stack=STACK, commit=COMMIT, credential=cred, now=NOW)
    with pytest.raises(CredentialRefused) as info:  # the same credential twice: replay
        applier.apply(V1, stack=STACK, commit=COMMIT, credential=cred, now=NOW)
    assert info.value.code == "replayed"


def test_resources_of_another_stack_are_refused(env: DeployEnv) -> None:
    with pytest.raises(ApplyRefused, match="one stack"):
        _apply(env, [*V1, resource("vpc", {}, stack="network/prod", rtype="aws:ec2/vpc:Vpc")])
    assert not _state_file(env).exists()


def test_protected_resource_is_not_deleted(env: DeployEnv) -> None:
    _apply(env, [{**V1[0], "protect": True}, V1[1]])
    with pytest.raises(ApplyRefused, match="protected"):
        _apply(env, [V1[1]])
    assert set(json.loads(_state_file(env).read_text())["resources"]) == _urns(V1)


def test_concurrent_applies_of_one_stack_are_serialised(env: DeployEnv) -> None:
    spans: dict[str, list[float]] = {}
    lock = threading.Lock()

    def hook_for(name: str) -> Any:
        def hook(stage: str) -> None:
            with lock:
                spans.setdefault(name, []).append(time.monotonic())
            if stage == "inflight-written":
                time.sleep(0.3)  # a slow apply: the other thread must wait for the whole of it

        return hook

    results: dict[str, Deployment] = {}
    creds = {"a": _cred(env), "b": _cred(env)}
    targets = {"a": V1, "b": V2}

    def run(name: str) -> None:
        applier = _applier(env, hook=hook_for(name), lock_timeout=10)
        results[name] = applier.apply(targets[name], stack=STACK, commit=COMMIT, credential=creds[name], now=NOW)

    threads = [threading.Thread(target=run, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(results) == {"a", "b"} and all(r.result == "succeeded" for r in results.values())
    (first, second) = sorted(spans, key=lambda n: spans[n][0])
    assert spans[second][0] >= spans[first][-1], "the second apply entered before the first one finished"
    # the last apply wins, and its diff was computed against the first one's state
    state = json.loads(_state_file(env).read_text())
    assert set(state["resources"]) == _urns(targets[second])
    assert ("logs", "update") in {(a.name, a.action) for a in results[second].actions}


def test_second_deploy_waits_then_refuses_clearly(env: DeployEnv) -> None:
    lock_path = _state_file(env).parent / ".lock"
    with stack_lock(lock_path, timeout=1, stack=STACK):
        started = time.monotonic()
        with pytest.raises(StackBusy) as info:
            _apply(env, V1, _applier(env, lock_timeout=0.3))
        assert time.monotonic() - started >= 0.3
    assert "another deploy of data/prod" in info.value.message and "waited 0.3s" in info.value.message
    assert _apply(env, V1).result == "succeeded"  # free again once the holder is gone


@pytest.mark.parametrize("stage", ["inflight-written", "state-written"])
def test_crash_mid_apply_then_rerun_rolls_back_and_applies(env: DeployEnv, stage: str) -> None:
    v1 = _apply(env, V1)

    def crash(at: str) -> None:
        if at == stage:
            raise Crash(at)

    with pytest.raises(Crash):
        _apply(env, V2, _applier(env, hook=crash))
    inflight = _state_file(env).parent / "inflight.json"
    assert inflight.exists()
    crashed = json.loads(inflight.read_text())

    dep = _apply(env, V3)
    assert dep.recovery is not None and dep.recovery.action == "rolled-back"
    assert dep.recovery.found_deployment_id == crashed["deployment_id"]
    assert dep.recovery.restored_state_digest == v1.state_digest
    assert "did not finish" in dep.recovery.message
    # V3's diff is against V1 (the rolled-back state), never against the half-applied V2
    assert {(a.name, a.action) for a in dep.actions} == {
        ("reports", "create"),
        ("logs", "delete"),
        ("assets", "delete"),
    }
    assert set(json.loads(_state_file(env).read_text())["resources"]) == _urns(V3)
    assert not inflight.exists() and dep.verification.ok


def test_crash_during_first_apply_rolls_back_to_no_state(env: DeployEnv) -> None:
    def crash(at: str) -> None:
        if at == "state-written":
            raise Crash(at)

    with pytest.raises(Crash):
        _apply(env, V1, _applier(env, hook=crash))
    dep = _apply(env, V1)
    assert dep.recovery is not None and dep.recovery.restored_state_digest is None
    assert {a.action for a in dep.actions} == {"create"}


def test_post_apply_verification_catches_a_mismatch(env: DeployEnv) -> None:
    path = _state_file(env)

    def drift(stage: str) -> None:
        if stage == "state-written":  # the "cloud" stores something other than what was asked
            state = json.loads(path.read_text())
            urn = V1[0]["urn"]
            state["resources"][urn]["inputs"]["bucket"] = "someone-elses-bucket"
            state["resources"]["urn:pulumi:prod::data::aws:s3/bucket:Bucket::stray"] = dict(V1[1], name="stray")
            path.write_bytes(canonical_json(state))

    dep = _apply(env, V1, _applier(env, hook=drift))
    assert dep.result == "failed" and not dep.verification.ok
    assert any("inputs.bucket" in m for m in dep.verification.mismatches)
    assert any("stray" in m and "not in the plan" in m for m in dep.verification.mismatches)
    assert "verification FAILED" in dep.message


def test_without_the_pulumi_cli_nothing_falls_back_to_the_simulation(
    env: DeployEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    chosen = select_applier(env.state, trusted=env.trusted)
    assert isinstance(chosen, PulumiAutomationApplier)
    cred = _cred(env)
    with pytest.raises(EngineError, match="not on PATH, so nothing was applied") as refused:
        chosen.apply(V1, stack=STACK, commit=COMMIT, credential=cred, now=NOW)
    assert "GLASSBOX_APPLIER=local" in refused.value.message
    assert not _state_file(env).exists() and not env.replay.seen(cred.claims.nonce)
    assert isinstance(select_applier(env.state, trusted=env.trusted, kind=ApplierKind.LOCAL), LocalApplier)


@pytest.mark.parametrize(
    ("option", "environ", "kind"),
    [
        (None, {}, ApplierKind.PULUMI),
        (None, {"GLASSBOX_APPLIER": "local"}, ApplierKind.LOCAL),
        ("pulumi", {"GLASSBOX_APPLIER": "local"}, ApplierKind.PULUMI),
        ("LOCAL", {"GITHUB_ACTIONS": "false"}, ApplierKind.LOCAL),
        (None, {"GITHUB_ACTIONS": "true"}, ApplierKind.PULUMI),
    ],
)
def test_the_applier_is_what_was_configured(option: str | None, environ: dict[str, str], kind: ApplierKind) -> None:
    assert resolve_applier_kind(option, environ) is kind


@pytest.mark.parametrize(
    ("option", "environ", "match"),
    [
        ("local", {"GITHUB_ACTIONS": "true"}, "refused in GitHub Actions"),
        (None, {"GLASSBOX_APPLIER": "local", "GITHUB_ACTIONS": "true"}, "refused in GitHub Actions"),
        ("terraform", {}, "choose pulumi"),
    ],
)
def test_the_simulation_is_never_chosen_in_github_actions(
    option: str | None, environ: dict[str, str], match: str
) -> None:
    with pytest.raises(UserError, match=match):
        resolve_applier_kind(option, environ)


def test_each_stack_gets_its_own_environment_for_the_real_apply(
    env: DeployEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pulumi import automation as auto

    seen: list[dict[str, str]] = []

    class Selected(Exception):
        """The workspace was about to run `pulumi`: what it was given is all this test needs."""

    def select_stack(*, stack_name: str, work_dir: str, opts: Any) -> Any:
        seen.append(dict(opts.env_vars))
        raise Selected(stack_name)

    monkeypatch.setattr(PulumiAutomationApplier, "available", staticmethod(lambda: True))
    monkeypatch.setattr(auto, "select_stack", select_stack)
    chosen = select_applier(
        env.state,
        trusted=env.trusted,
        infra_dir=REPO_ROOT / "infra",
        stack_env=lambda stack: {"AWS_ROLE_ARN": f"arn:aws:iam::123456789012:role/{stack.replace('/', '-')}"},
    )
    with pytest.raises(Selected, match="prod"):
        chosen.apply(V1, stack=STACK, commit=COMMIT, credential=_cred(env), now=NOW)
    (given,) = seen
    assert given["AWS_ROLE_ARN"] == "arn:aws:iam::123456789012:role/data-prod"
    assert given[PulumiAutomationApplier.CREDENTIAL_ENV]  # the one-stack credential rides along


def test_stack_file_config_reads_plain_values() -> None:
    config = stack_file_config(REPO_ROOT / "infra" / "data", "prod")
    assert config["glassbox:environment"] == "prod"
    assert config["data:dbMultiAz"] == "true" and config["data:dbAllocatedStorage"] == "200"
    assert "data:privateSubnetIds" not in config  # structured: left in the file for the workspace


@pytest.mark.skipif(shutil.which("pulumi") is None, reason="the pulumi CLI is not on PATH; the Automation API needs it")
def test_pulumi_automation_applier_up(
    env: DeployEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # pragma: no cover - needs pulumi
    project = tmp_path / "infra" / "demo"
    project.mkdir(parents=True)
    runtime = f"runtime:\n  name: python\n  options:\n    virtualenv: {sys.prefix}\n"
    (project / "Pulumi.yaml").write_text("name: demo\n" + runtime)
    (project / "__main__.py").write_text("import pulumi\n\npulumi.export('hello', 'world')\n")
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "test")
    backend = tmp_path / "backend"
    backend.mkdir()
    from pulumi import automation as auto

    auto.create_or_select_stack(
        stack_name="dev",
        work_dir=str(project),
        opts=auto.LocalWorkspaceOptions(env_vars={"PULUMI_BACKEND_URL": f"file://{backend}"}),
    )
    applier = PulumiAutomationApplier(
        tmp_path / "infra",
        env.state,
        trusted=env.trusted,
        replay_store=env.replay,
        env={"PULUMI_BACKEND_URL": f"file://{backend}"},
    )
    cred = env.broker.mint("demo/dev", commit=COMMIT, run_id="run-1")
    dep = applier.apply([], stack="demo/dev", commit=COMMIT, credential=cred)
    assert dep.simulated is False and dep.applier == "pulumi" and dep.result == "succeeded"
