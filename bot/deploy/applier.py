"""Appliers: turn a stack's planned resources into its deployed state, after the credential checks out.

**LocalApplier is a simulation.** It is the documented stand-in for a cloud API (the embedded default, like
the embedded forge): it calls no cloud, it records the stack's resulting state under the deploy state
directory (``stacks/<project>/<stack>/state.json``) and every :class:`~bot.deploy.model.Deployment` it returns
says ``simulated: true`` and says so in plain words. What it does for real is everything around the apply:

- **credential first** — no valid credential for this stack and commit (``verify_credential``), no apply;
- **one deploy per stack at a time** — an ``fcntl`` lock on ``stacks/<project>/<stack>/.lock``; a second
  deploy waits up to ``lock_timeout`` seconds, then is refused with :class:`StackBusy`;
- **crash safety** — ``inflight.json`` is written before the state is touched and removed after; the
  previous generation is kept as ``state.prev.json``. A run that finds ``inflight.json`` reports it and
  **rolls back** to ``state.prev.json`` before doing its own apply. Rolling back rather than resuming is
  deliberate: the crashed run never reached post-apply verification and its credential is spent, so its
  target is not a verified deployment; the last verified state is, and the current run then applies its
  own target under its own valid credential;
- **post-apply verification** — the state read back must hold exactly the planned resources with the
  planned inputs; a mismatch makes the deployment ``failed`` with every difference listed.

:class:`PulumiAutomationApplier` does the real thing through ``pulumi.automation`` (select the stack, set
config from the stack file, ``up`` with the credential and the stack's cloud environment, capture outputs).
It needs the ``pulumi`` CLI on PATH and says so when it is missing.

**Which one runs is configured, never guessed.** :func:`select_applier` builds the applier of an explicit
:class:`ApplierKind`; :func:`resolve_applier_kind` turns ``--applier`` / ``$GLASSBOX_APPLIER`` into one, and
without either it is ``pulumi``. A machine without the CLI therefore fails the deploy with a message naming the
fix instead of quietly simulating it; the simulation runs only when asked for (``local``: the demo and the
tests), and never in GitHub Actions, where a simulated production deploy would be a lie.

Resources are plain dicts in the plan resource shape of ``docs/contracts.md`` (``urn``, ``project``,
``stack``, ``type``, ``name``, ``inputs``, ...), so deploy does not depend on the plan package.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import ValidationError

from bot.deploy.broker import DEFAULT_MAX_TTL, ReplayStore, credential_token, verify_credential
from bot.deploy.events import EventSink
from bot.deploy.model import (
    Credential,
    Deployment,
    InflightRecord,
    IssuedCredential,
    Recovery,
    ResourceAction,
    StackState,
    Verification,
)
from bot.deploy.state import StackRef, read_json, stack_dir, write_json_atomic
from bot.documents import load_document
from bot.errors import Denied, EngineError, IntegrityError, UserError
from bot.records import canonical_json, digest, new_correlation_id

Hook = Callable[[str], None]
"""Called at each stage of an apply: ``locked``, ``inflight-written``, ``state-written``. Tests use it to
simulate a crash (raise) or a slow apply (sleep); production passes none."""

StackEnv = Callable[[str], Mapping[str, str]]
"""Environment variables for applying one stack (``project/stack``), e.g. that stack's cloud role: asked for
each stack just before its apply, so every stack gets its own (and a fresh) cloud identity."""

APPLIER_ENV = "GLASSBOX_APPLIER"
IN_GITHUB_ACTIONS_ENV = "GITHUB_ACTIONS"  # "true" on every GitHub Actions runner


class ApplierKind(StrEnum):
    LOCAL = "local"
    PULUMI = "pulumi"


MISSING_CLI_MESSAGE = (
    "the pulumi CLI is not on PATH, so nothing was applied: install it on the runner (the deploy workflow's "
    f"pulumi/actions step); the simulated local applier runs only when asked for ({APPLIER_ENV}=local or "
    "--applier local, outside GitHub Actions)"
)

SIMULATED_MESSAGE = (
    "simulated: the local applier called no cloud API; it recorded the stack's resulting state in {path}"
)
_META_FIELDS = ("type", "name", "parent", "provider", "protect", "dependencies")


class StackBusy(Denied):
    """Another deploy of the same stack holds its lock and did not release it in time."""


class ApplyRefused(Denied):
    """The resource set cannot be applied as given (wrong stack, protected delete)."""


class Applier(Protocol):
    name: Literal["local", "pulumi"]

    def apply(
        self,
        resources: Sequence[Mapping[str, Any]],
        *,
        stack: str,
        commit: str,
        credential: IssuedCredential | Mapping[str, Any],
        now: datetime | None = None,
    ) -> Deployment: ...


# --------------------------------------------------------------------------------------------------
# pure helpers: normalise, diff, digest, verify


def normalize_resources(resources: Sequence[Mapping[str, Any]], ref: StackRef) -> dict[str, dict[str, Any]]:
    """URN → resource (JSON-only values), refusing resources of another stack or a repeated URN."""
    out: dict[str, dict[str, Any]] = {}
    for i, res in enumerate(resources):
        where = f"resources[{i}]"
        if not isinstance(res, Mapping):
            raise UserError(f"{where}: a resource is an object in the plan resource shape (docs/contracts.md)")
        for key in ("urn", "type", "name"):
            if not isinstance(res.get(key), str) or not res.get(key):
                raise UserError(f"{where}.{key}: required, a non-empty string")
        inputs = res.get("inputs", {})
        if not isinstance(inputs, Mapping):
            raise UserError(f"{where}.inputs: must be an object")
        if (res.get("project"), res.get("stack")) != (ref.project, ref.stack):
            raise ApplyRefused(
                f"{where} ({res['urn']}) belongs to {res.get('project')}/{res.get('stack')}, not {ref}; "
                "one apply covers exactly one stack (I10)"
            )
        urn = str(res["urn"])
        if urn in out:
            raise UserError(f"{where}: URN {urn} appears twice")
        out[urn] = json.loads(canonical_json(dict(res)))
    return out


def resources_digest(resources: Mapping[str, Mapping[str, Any]]) -> str:
    """Digest of a stack's resources by URN: equal resource sets give equal digests, whatever the commit."""
    return digest(dict(resources))


def _changed(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    changed = [k for k in sorted(set(before) | set(after)) if k != "inputs" and before.get(k) != after.get(k)]
    bi, ai = before.get("inputs") or {}, after.get("inputs") or {}
    changed += [f"inputs.{k}" for k in sorted(set(bi) | set(ai)) if bi.get(k) != ai.get(k)]
    return changed


def diff_resources(
    before: Mapping[str, Mapping[str, Any]], after: Mapping[str, Mapping[str, Any]]
) -> list[ResourceAction]:
    """Creates and updates in target order, then deletes in reverse of the previous order (dependents first)."""
    actions: list[ResourceAction] = []
    for urn, res in after.items():
        old = before.get(urn)
        if old is None:
            actions.append(ResourceAction(urn=urn, type=res["type"], name=res["name"], action="create"))
        else:
            changed = _changed(old, res)
            if changed:
                actions.append(
                    ResourceAction(urn=urn, type=res["type"], name=res["name"], action="update", changed=changed)
                )
    for urn in reversed(list(before)):
        if urn not in after:
            old = before[urn]
            actions.append(ResourceAction(urn=urn, type=old["type"], name=old["name"], action="delete"))
    return actions


def simulated_outputs(resources: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """What a cloud would hand back: the inputs plus a stable fake id (so outputs are reproducible)."""
    return {
        urn: {**(res.get("inputs") or {}), "id": "sim-" + digest(urn).removeprefix("sha256:")[:16]}
        for urn, res in resources.items()
    }


def verify_applied(
    applied: Mapping[str, Mapping[str, Any]],
    planned: Mapping[str, Mapping[str, Any]],
    *,
    compare_inputs: bool = True,
) -> Verification:
    """Compare the state as applied with the plan: same URNs, same types and (optionally) same inputs."""
    mismatches: list[str] = []
    for urn, want in planned.items():
        got = applied.get(urn)
        if got is None:
            mismatches.append(f"{urn}: planned but missing from the applied state")
            continue
        if got.get("type") != want.get("type"):
            mismatches.append(f"{urn}: type is {got.get('type')}, planned {want.get('type')}")
        if compare_inputs:
            fields = _changed(want, got)
            if fields:
                mismatches.append(f"{urn}: applied state differs from the plan in {', '.join(fields)}")
    mismatches += [f"{urn}: in the applied state but not in the plan" for urn in applied if urn not in planned]
    return Verification(ok=not mismatches, checked=len(planned), mismatches=mismatches)


# --------------------------------------------------------------------------------------------------
# the per-stack lock


@contextmanager
def stack_lock(path: Path, *, timeout: float, stack: str, poll: float = 0.02) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path``; wait at most ``timeout`` seconds, then refuse.

    Each call opens its own descriptor, so threads of one process exclude each other as processes do.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise StackBusy(
                        f"another deploy of {stack} holds {path}; waited {timeout:g}s and gave up",
                        reasons=["deploys of one stack run one at a time; retry when the other finishes"],
                    ) from None
                time.sleep(poll)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------------------------------
# the local applier


def _admit(
    applier: LocalApplier | PulumiAutomationApplier,
    resources: Sequence[Mapping[str, Any]],
    stack: str,
    commit: str,
    credential: IssuedCredential | Mapping[str, Any],
    now: datetime | None,
) -> tuple[datetime, Credential, StackRef, dict[str, dict[str, Any]]]:
    """What every applier does first: verify the credential for this stack and commit (I10), then
    normalise the planned resources of that stack. Returns (start time, claims, stack, resources)."""
    started = (now or datetime.now(UTC)).astimezone(UTC)
    claims = verify_credential(
        credential,
        stack=stack,
        commit=commit,
        trusted=applier.trusted,
        now=started,
        replay_store=applier.replay_store,
        sink=applier.sink,
        max_ttl=applier.max_ttl,
    )
    ref = StackRef.parse(stack)
    return started, claims, ref, normalize_resources(resources, ref)


class LocalApplier:
    """Applies a stack's resources to a local state file. Simulated: no cloud API is called."""

    name: Literal["local", "pulumi"] = "local"

    def __init__(
        self,
        state_dir: Path,
        *,
        trusted: Mapping[str, bytes],
        replay_store: ReplayStore | None = None,
        sink: EventSink | None = None,
        lock_timeout: float = 30.0,
        max_ttl: timedelta = DEFAULT_MAX_TTL,
        hook: Hook | None = None,
    ) -> None:
        self.state_dir = state_dir
        self.trusted = trusted
        self.replay_store = replay_store or ReplayStore.under(state_dir)
        self.sink = sink
        self.lock_timeout = lock_timeout
        self.max_ttl = max_ttl
        self.hook = hook

    # paths -------------------------------------------------------------------------------------------

    def paths(self, ref: StackRef) -> dict[str, Path]:
        base = stack_dir(self.state_dir, ref)
        return {
            "state": base / "state.json",
            "prev": base / "state.prev.json",
            "inflight": base / "inflight.json",
            "lock": base / ".lock",
        }

    def state(self, stack: str) -> StackState | None:
        """The stack's state as last applied, or None when it was never deployed."""
        ref = StackRef.parse(stack)
        return self._load_state(self.paths(ref)["state"])

    @staticmethod
    def _load_state(path: Path) -> StackState | None:
        raw = read_json(path)
        if raw is None:
            return None
        try:
            return StackState.model_validate(raw)
        except ValidationError as exc:
            raise IntegrityError(f"{path}: not a stack state record ({exc.error_count()} problem(s))") from None

    def _stage(self, name: str) -> None:
        if self.hook is not None:
            self.hook(name)

    # recovery ----------------------------------------------------------------------------------------

    def _recover(self, ref: StackRef, paths: Mapping[str, Path]) -> Recovery | None:
        """Roll back an apply that crashed (``inflight.json`` present) to the state before it."""
        raw = read_json(paths["inflight"])
        if raw is None:
            return None
        try:
            inflight = InflightRecord.model_validate(raw)
        except ValidationError as exc:
            raise IntegrityError(
                f"{paths['inflight']}: unreadable in-flight record ({exc.error_count()} problem(s)); "
                f"inspect {paths['state']} and {paths['prev']} by hand before deploying {ref} again"
            ) from None
        if inflight.previous_state_digest is None:
            paths["state"].unlink(missing_ok=True)  # the crashed apply was the stack's first
            restored = None
        else:
            prev = self._load_state(paths["prev"])
            if prev is None or resources_digest(prev.resources) != inflight.previous_state_digest:
                raise IntegrityError(
                    f"cannot roll back the crashed deployment {inflight.deployment_id} of {ref}: {paths['prev']} "
                    f"is missing or is not the state it replaced ({inflight.previous_state_digest}); "
                    "restore the stack state by hand"
                )
            write_json_atomic(paths["state"], prev.model_dump(mode="json"))
            restored = inflight.previous_state_digest
        paths["inflight"].unlink()
        return Recovery(
            found_deployment_id=inflight.deployment_id,
            found_commit=inflight.commit,
            found_started_at=inflight.started_at,
            action="rolled-back",
            restored_state_digest=restored,
            message=(
                f"deployment {inflight.deployment_id} of {ref} at {inflight.commit[:12]} (started "
                f"{inflight.started_at.isoformat()}) did not finish; rolled back to "
                + (f"the previous state {restored}" if restored else "no state (it was the first deploy)")
            ),
        )

    # apply -------------------------------------------------------------------------------------------

    def apply(
        self,
        resources: Sequence[Mapping[str, Any]],
        *,
        stack: str,
        commit: str,
        credential: IssuedCredential | Mapping[str, Any],
        now: datetime | None = None,
    ) -> Deployment:
        """Verify the credential, then apply ``resources`` as the whole desired state of ``stack``."""
        started, claims, ref, target = _admit(self, resources, stack, commit, credential, now)
        paths = self.paths(ref)
        with stack_lock(paths["lock"], timeout=self.lock_timeout, stack=str(ref)):
            self._stage("locked")
            recovery = self._recover(ref, paths)
            previous = self._load_state(paths["state"])
            before = previous.resources if previous else {}
            actions = diff_resources(before, target)
            protected = [a.urn for a in actions if a.action == "delete" and before[a.urn].get("protect")]
            if protected:
                raise ApplyRefused(
                    f"refusing to delete {len(protected)} protected resource(s) of {ref}",
                    reasons=[f"{urn} has protect: true; unprotect it in a reviewed change first" for urn in protected],
                )
            deployment_id = new_correlation_id()
            target_state = StackState(
                project=ref.project,
                stack=ref.stack,
                commit=commit,
                deployment_id=deployment_id,
                resources=target,
                outputs=simulated_outputs(target),
                updated_at=started,
            )
            # keep the generation we replace: it is what a rollback after a crash restores
            if previous is not None:
                write_json_atomic(paths["prev"], previous.model_dump(mode="json"))
            else:
                paths["prev"].unlink(missing_ok=True)
            inflight = InflightRecord(
                deployment_id=deployment_id,
                stack=str(ref),
                commit=commit,
                run_id=claims.run_id,
                credential_id=claims.credential_id,
                started_at=started,
                pid=os.getpid(),
                previous_state_digest=resources_digest(before) if previous is not None else None,
                target_state_digest=resources_digest(target),
            )
            write_json_atomic(paths["inflight"], inflight.model_dump(mode="json"))
            self._stage("inflight-written")
            write_json_atomic(paths["state"], target_state.model_dump(mode="json"))
            self._stage("state-written")
            applied = self._load_state(paths["state"])
            applied_resources = applied.resources if applied else {}
            verification = verify_applied(applied_resources, target)
            paths["inflight"].unlink()
        ok = verification.ok
        message = SIMULATED_MESSAGE.format(path=paths["state"]) + (
            f"; {len(actions)} change(s) applied and verified against the plan"
            if ok
            else f"; post-apply verification FAILED with {len(verification.mismatches)} mismatch(es)"
        )
        return Deployment(
            deployment_id=deployment_id,
            stack=str(ref),
            commit=commit,
            run_id=claims.run_id,
            credential_id=claims.credential_id,
            applier="local",
            simulated=True,
            message=message,
            result="succeeded" if ok else "failed",
            actions=actions,
            state_digest=resources_digest(applied_resources),
            outputs_digest=digest(applied.outputs if applied else {}),
            verification=verification,
            recovery=recovery,
            started_at=started,
            finished_at=max(started, datetime.now(UTC)),
        )


# --------------------------------------------------------------------------------------------------
# the Pulumi Automation API applier


def stack_file_config(project_dir: Path, stack: str) -> dict[str, str]:
    """Scalar config values of ``Pulumi.<stack>.yaml`` as Pulumi config strings.

    Secure values stay encrypted and structured values (lists, objects) stay as they are in the file, which
    the workspace reads itself; re-setting them as strings would rewrite their type.
    """
    path = project_dir / f"Pulumi.{stack}.yaml"
    if not path.exists():
        return {}
    data = load_document(path)
    config = data.get("config") if isinstance(data, Mapping) else None
    out: dict[str, str] = {}
    for key, value in (config or {}).items():
        if isinstance(value, Mapping | list):
            continue
        # YAML scalars as Pulumi writes them: true, 200, eu-west-1
        out[str(key)] = value if isinstance(value, str) else json.dumps(value)
    return out


_PULUMI_INTERNAL = ("pulumi:pulumi:Stack", "pulumi:providers:")


def _exported_resources(stack: Any) -> dict[str, dict[str, Any]]:
    exported = stack.export_stack().deployment or {}
    out: dict[str, dict[str, Any]] = {}
    for res in exported.get("resources", []) or []:
        rtype = str(res.get("type", ""))
        if rtype.startswith(_PULUMI_INTERNAL):
            continue
        urn = str(res["urn"])
        out[urn] = {"urn": urn, "type": rtype, "name": urn.rsplit("::", 1)[-1], "inputs": res.get("inputs") or {}}
    return out


class PulumiAutomationApplier:
    """Applies a stack for real with the Pulumi Automation API. Needs the ``pulumi`` CLI on PATH."""

    name: Literal["local", "pulumi"] = "pulumi"
    CREDENTIAL_ENV = "GLASSBOX_DEPLOY_CREDENTIAL"

    def __init__(
        self,
        infra_dir: Path,
        state_dir: Path,
        *,
        trusted: Mapping[str, bytes],
        replay_store: ReplayStore | None = None,
        sink: EventSink | None = None,
        lock_timeout: float = 30.0,
        max_ttl: timedelta = DEFAULT_MAX_TTL,
        env: Mapping[str, str] | None = None,
        stack_env: StackEnv | None = None,
    ) -> None:
        self.infra_dir = infra_dir
        self.state_dir = state_dir
        self.trusted = trusted
        self.replay_store = replay_store or ReplayStore.under(state_dir)
        self.sink = sink
        self.lock_timeout = lock_timeout
        self.max_ttl = max_ttl
        self.env = dict(env or {})
        self.stack_env = stack_env

    @staticmethod
    def available() -> bool:
        return shutil.which("pulumi") is not None

    def apply(
        self,
        resources: Sequence[Mapping[str, Any]],
        *,
        stack: str,
        commit: str,
        credential: IssuedCredential | Mapping[str, Any],
        now: datetime | None = None,
    ) -> Deployment:
        if not self.available():
            raise EngineError(MISSING_CLI_MESSAGE, engine="pulumi")
        started, claims, ref, planned = _admit(self, resources, stack, commit, credential, now)
        project_dir = self.infra_dir / ref.project
        token = credential_token(credential)
        with stack_lock(stack_dir(self.state_dir, ref) / ".lock", timeout=self.lock_timeout, stack=str(ref)):
            from pulumi import automation as auto

            cloud = dict(self.stack_env(str(ref))) if self.stack_env is not None else {}
            opts = auto.LocalWorkspaceOptions(env_vars={**self.env, **cloud, self.CREDENTIAL_ENV: token})
            try:
                pstack = auto.select_stack(stack_name=ref.stack, work_dir=str(project_dir), opts=opts)
                config = stack_file_config(project_dir, ref.stack)
                if config:
                    pstack.set_all_config({k: auto.ConfigValue(value=v) for k, v in config.items()})
                before = _exported_resources(pstack)
                result = pstack.up(color="never", message=f"glassbox deploy {commit[:12]} run {claims.run_id}")
                after = _exported_resources(pstack)
            except auto.CommandError as exc:
                raise EngineError(f"pulumi up of {ref} failed: {exc}", engine="pulumi") from None
        # secrets never leave as values (I9): a secret output is kept as its digest
        outputs = {k: (digest(v.value) if v.secret else v.value) for k, v in result.outputs.items()}
        # real inputs carry provider defaults and real secrets, so only URNs and types are compared here
        verification = verify_applied(after, planned, compare_inputs=False)
        actions = diff_resources(before, after)
        ok = verification.ok and result.summary.result == "succeeded"
        return Deployment(
            deployment_id=new_correlation_id(),
            stack=str(ref),
            commit=commit,
            run_id=claims.run_id,
            credential_id=claims.credential_id,
            applier="pulumi",
            simulated=False,
            message=f"pulumi up of {ref}: {result.summary.result}; {len(actions)} resource change(s)",
            result="succeeded" if ok else "failed",
            actions=actions,
            state_digest=resources_digest(after),
            outputs_digest=digest(outputs),
            verification=verification,
            started_at=started,
            finished_at=datetime.now(UTC),
        )


def resolve_applier_kind(option: str | None, environ: Mapping[str, str] | None = None) -> ApplierKind:
    """The applier a deploy runs: ``option`` (``--applier``), else ``$GLASSBOX_APPLIER``, else ``pulumi``.

    ``local`` (the simulation) is refused on a GitHub Actions runner: a deploy there applies for real or not at all.
    """
    env = os.environ if environ is None else environ
    raw = option or env.get(APPLIER_ENV) or ApplierKind.PULUMI.value
    try:
        kind = ApplierKind(raw.strip().lower())
    except ValueError:
        raise UserError(
            f"applier {raw!r}: choose pulumi (the real apply) or local (the simulation), "
            f"with --applier or {APPLIER_ENV}"
        ) from None
    if kind is ApplierKind.LOCAL and env.get(IN_GITHUB_ACTIONS_ENV) == "true":
        raise UserError(
            f"the simulated local applier is refused in GitHub Actions ({IN_GITHUB_ACTIONS_ENV}=true): remove "
            f"{APPLIER_ENV}=local / --applier local and install the pulumi CLI on the runner"
        )
    return kind


def select_applier(
    state_dir: Path,
    *,
    trusted: Mapping[str, bytes],
    kind: ApplierKind = ApplierKind.PULUMI,
    infra_dir: Path = Path("infra"),
    sink: EventSink | None = None,
    stack_env: StackEnv | None = None,
) -> Applier:
    """The applier of ``kind``. There is no fallback: a Pulumi applier without the CLI refuses to apply."""
    if kind is ApplierKind.LOCAL:
        return LocalApplier(state_dir, trusted=trusted, sink=sink)
    return PulumiAutomationApplier(infra_dir, state_dir, trusted=trusted, sink=sink, stack_env=stack_env)
