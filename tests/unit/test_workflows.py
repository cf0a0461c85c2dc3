"""The GitHub Actions workflows under ``.github/workflows/``: a workflow linter, then our own rules.

The linter is jactionlint (a maintained fork of actionlint with zizmor-style security rules), which PyPI
ships as a wheel with the binary inside (``jactionlint==2.3.0``, pinned in requirements.lock).

Our own rules are the ones the project cannot trade away: every job declares its ``permissions``, the
workflow grants nothing by default, every action is pinned by a full commit SHA, no
``pull_request_target``, and no ``${{ github.event.* }}`` is expanded inside a ``run:`` script.

The contract with the CLI: every ``glassbox ...`` a ``run:`` step invokes parses with the CLI's own parser
(required options included), each glassbox job is one ``glassbox ci`` step whose subcommand handles exactly the
events and actions the workflow triggers on, and the deploy job installs the real applier's CLI.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.exceptions import TyperException

from bot.cli import app
from bot.commands.ci import EVENTS

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
FILES = sorted(WORKFLOWS.glob("*.yml")) + sorted(WORKFLOWS.glob("*.yaml"))
LINTER = "jactionlint"
LINTER_PIN = "jactionlint==2.3.0"
PINNED = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+@[0-9a-f]{40}$")
EVENT_IN_SCRIPT = re.compile(r"\$\{\{[^}]*\bgithub\.event\b")
EXPECTED = {"ci.yml", "glassbox-check.yml", "glassbox-approvals.yml", "glassbox-deploy.yml", "glassbox-audit.yml"}


@cache
def linter() -> Path:
    """The locked dev dependency's binary, installed beside this interpreter."""
    found = shutil.which(LINTER, path=str(Path(sys.executable).parent))
    assert found, f"{LINTER_PIN} is missing from the environment: run `make test` (it installs requirements.lock)"
    return Path(found)


@cache
def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path.name}: not a mapping"
    if True in data:  # YAML 1.1 reads the bare key `on` as a boolean
        data["on"] = data.pop(True)
    return data


def jobs(path: Path) -> dict[str, dict[str, Any]]:
    found = load(path).get("jobs")
    assert isinstance(found, dict) and found, f"{path.name}: no jobs"
    return found


def steps(path: Path) -> list[tuple[str, dict[str, Any]]]:
    return [(name, step) for name, job in jobs(path).items() for step in job.get("steps", [])]


def test_the_workflows_are_there() -> None:
    assert {p.name for p in FILES} >= EXPECTED


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_linter_is_clean(path: Path) -> None:
    binary = linter()
    # no network, and no shellcheck/pyflakes from PATH: the same findings on every machine
    proc = subprocess.run(
        [str(binary), "--no-online", "--shellcheck=", "--pyflakes=", "--strict-exit", "--no-color", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )
    assert proc.returncode == 0, f"{LINTER} found problems in {path.name}:\n{proc.stdout}{proc.stderr}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_nothing_is_granted_by_default(path: Path) -> None:
    assert load(path).get("permissions") == {}, f"{path.name}: set top-level `permissions: {{}}`"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_job_declares_its_permissions(path: Path) -> None:
    missing = [name for name, job in jobs(path).items() if not isinstance(job.get("permissions"), dict)]
    assert not missing, f"{path.name}: jobs without their own `permissions:` mapping: {missing}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_action_is_pinned_by_commit_sha(path: Path) -> None:
    uses = [step["uses"] for _, step in steps(path) if "uses" in step]
    uses += [job["uses"] for job in jobs(path).values() if "uses" in job]  # reusable workflows
    loose = [u for u in uses if not u.startswith("./") and not PINNED.match(u)]
    assert not loose, f"{path.name}: pin these by full commit SHA: {loose}"
    text = path.read_text(encoding="utf-8")
    for use in uses:
        if not use.startswith("./"):
            line = next(line for line in text.splitlines() if use in line)
            assert re.search(r"#\s*v\d+\.\d+\.\d+\s*$", line), f"{path.name}: `{use}` needs a `# vX.Y.Z` comment"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_checkout_never_persists_credentials(path: Path) -> None:
    for job, step in steps(path):
        if str(step.get("uses", "")).startswith("actions/checkout@"):
            assert step.get("with", {}).get("persist-credentials") is False, f"{path.name}/{job}: checkout"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_no_pull_request_target(path: Path) -> None:
    on = load(path)["on"]
    events = [on] if isinstance(on, str) else list(on)
    assert "pull_request_target" not in events, f"{path.name}: pull_request_target runs untrusted code with secrets"
    assert "pull_request_target" not in path.read_text(encoding="utf-8")


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_no_event_data_expanded_inside_run(path: Path) -> None:
    bad = [
        f"{job}: {step.get('name', '?')}"
        for job, step in steps(path)
        if "run" in step and EVENT_IN_SCRIPT.search(str(step["run"]))
    ]
    assert not bad, f"{path.name}: pass github.event.* through `env:`, not into the script: {bad}"


def test_the_deploy_job_alone_may_ask_for_an_oidc_token() -> None:
    for path in FILES:
        for name, job in jobs(path).items():
            wants = job.get("permissions", {}).get("id-token") == "write"
            if path.name == "glassbox-deploy.yml":
                assert wants and job.get("environment") == "production", f"deploy job {name}"
                # the token; the checkout (main and the audit trail, which holds the merged head's verdict)
                assert job["permissions"] == {"id-token": "write", "contents": "read"}
            elif path.name == "glassbox-check.yml" and name == "check":
                continue  # actions/attest signs with sigstore keyless: it needs the token too
            else:
                assert not wants, f"{path.name}/{name} asks for id-token: write"


# --------------------------------------------------------------------------------------------------
# the contract between the workflows and the CLI

CLI = typer.main.get_command(app)
SHELL_OPERATORS = set("();<>|&")
EXPANSION = re.compile(r"\$\{\{[^}]*\}\}|\$\{[A-Za-z_][A-Za-z0-9_]*\}|\$[A-Za-z_][A-Za-z0-9_]*")
# what GitHub runs a `pull_request` workflow for when it names no `types:`
DEFAULT_TYPES = {"pull_request": {"opened", "synchronize", "reopened"}}


def glassbox_calls(script: str) -> list[list[str]]:
    """The argument lists of every `glassbox` command in a shell script (variables stand in as "1")."""
    calls = []
    for line in EXPANSION.sub("1", script.replace("\\\n", " ")).splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        segment: list[str] = []
        for token in [*lexer, ";"]:
            if set(token) <= SHELL_OPERATORS:
                if segment and Path(segment[0]).name == "glassbox":
                    calls.append(segment[1:])
                segment = []
            else:
                segment.append(token)
    return calls


def invocations() -> list[tuple[str, str, list[str]]]:
    return [
        (path.name, job, argv)
        for path in FILES
        for job, step in steps(path)
        if "run" in step
        for argv in glassbox_calls(str(step["run"]))
    ]


class NotACommand(Exception):
    """The words after `glassbox` name no command."""


# typer ships its own click: its commands, contexts and usage errors are typer's (UsageError is a TyperException)
RefusedByCli = (TyperException, NotACommand)


def parse_only(argv: list[str]) -> typer.Context:
    """Parse ``glassbox ARGV`` as the CLI would, without running anything: the leaf command's context.

    Groups are walked by name (glassbox's groups take no options of their own); the leaf's ``make_context`` parses
    its options and arguments, converts their types and raises for a missing required one, and invokes nothing."""
    command: Any = CLI
    ctx: typer.Context | None = None
    name = "glassbox"
    while hasattr(command, "get_command"):
        ctx = typer.Context(command, info_name=name, parent=ctx)
        if not argv or argv[0].startswith("-"):
            raise NotACommand(f"`{name}` needs a subcommand")
        sub = command.get_command(ctx, argv[0])
        if sub is None:
            raise NotACommand(f"`{name}` has no subcommand {argv[0]!r}")
        name, command, argv = argv[0], sub, argv[1:]
    parsed: typer.Context = command.make_context(name, list(argv), parent=ctx)
    return parsed


def test_the_workflows_invoke_glassbox() -> None:
    found = {workflow for workflow, _, _ in invocations()}
    assert found >= {f for f in EXPECTED if f.startswith("glassbox-")}, found


@pytest.mark.parametrize(
    ("workflow", "job", "argv"), invocations(), ids=lambda v: v if isinstance(v, str) else " ".join(v)
)
def test_each_glassbox_invocation_parses_with_the_cli(workflow: str, job: str, argv: list[str]) -> None:
    try:
        ctx = parse_only(argv)
    except RefusedByCli as exc:
        pytest.fail(f"{workflow}/{job}: `glassbox {' '.join(argv)}` does not parse: {exc}")
    assert ctx.command.callback is not None  # a leaf command, with its options bound (and nothing run)


@pytest.mark.parametrize(
    "line",
    [
        "glassbox audit verify",  # what glassbox-audit.yml used to run: --repo and --attestations are required
        'glassbox ci push --no-such-flag "$X"',
        "glassbox ci deploy",
        "cd x && glassbox approvals --pr not-a-number",
    ],
)
def test_the_contract_refuses_what_the_cli_would(line: str) -> None:
    (argv,) = glassbox_calls(line)
    with pytest.raises(RefusedByCli):
        parse_only(argv)


def test_only_glassbox_commands_are_taken_for_invocations() -> None:
    script = 'echo "no run yet; glassbox ci push refuses it"\nmake x && .venv/bin/glassbox ci schedule \\\n  --out o\n'
    assert glassbox_calls(script) == [["ci", "schedule", "--out", "o"]]


def triggers(path: Path) -> dict[str, set[str] | None]:
    """event → the activity types the workflow runs for (None: the event has none)."""
    on = load(path)["on"]
    events = {on: None} if isinstance(on, str) else dict.fromkeys(on) if isinstance(on, list) else dict(on)
    out: dict[str, set[str] | None] = {}
    for event, config in events.items():
        types = (config or {}).get("types") if isinstance(config, dict) else None
        out[event] = set(types) if types else DEFAULT_TYPES.get(event)
    return out


GLASSBOX_WORKFLOWS = [p for p in FILES if p.name.startswith("glassbox-")]


@pytest.mark.parametrize("path", GLASSBOX_WORKFLOWS, ids=lambda p: p.name)
def test_each_glassbox_job_is_one_ci_step_that_handles_its_triggers(path: Path) -> None:
    for name, job in jobs(path).items():
        calls = [argv for step in job.get("steps", []) if "run" in step for argv in glassbox_calls(str(step["run"]))]
        assert len(calls) == 1 and calls[0][:1] == ["ci"], f"{path.name}/{name}: one `glassbox ci` step, not {calls}"
        handled = EVENTS[calls[0][1]]
        for event, types in triggers(path).items():
            assert event in handled, f"{path.name}/{name}: glassbox ci {calls[0][1]} does not handle {event}"
            accepted = handled[event]
            if accepted is not None:
                assert types is not None and types <= accepted, (
                    f"{path.name}/{name}: {event} types {sorted(types or [])} go beyond {sorted(accepted)}"
                )


def test_the_deploy_job_installs_the_pulumi_cli_at_the_locked_sdk_version() -> None:
    locked = re.search(r"^pulumi==(\S+)$", (ROOT / "requirements.lock").read_text(encoding="utf-8"), re.MULTILINE)
    assert locked, "requirements.lock pins no pulumi"
    (job,) = jobs(WORKFLOWS / "glassbox-deploy.yml").values()
    installs = [s for s in job["steps"] if str(s.get("uses", "")).startswith("pulumi/actions@")]
    assert len(installs) == 1 and "command" not in installs[0].get("with", {}), "install the CLI only"
    assert str(installs[0]["with"]["pulumi-version"]) == locked.group(1)
    names = [s.get("name", "") for s in job["steps"]]
    assert names.index(installs[0]["name"]) < next(i for i, n in enumerate(names) if "glassbox ci" in n)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_no_workflow_asks_for_the_simulated_applier(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert "GLASSBOX_APPLIER" not in text and "--applier" not in text, f"{path.name}: deploys in Actions are real"


def test_the_pack_is_checked_by_the_opa_cli_at_the_embedded_engines_version() -> None:
    # `opa check --strict --schema` and `opa test` with OPA's own CLI, the same OPA the in-process engine embeds,
    # over the schema the rules name (the library reaches neither strict mode nor METADATA schemas)
    from bot.policy.engines.opa_embedded import opa_version
    from bot.policy.pack import INPUT_SCHEMA_FILE

    job = jobs(WORKFLOWS / "ci.yml")["policy-pack"]
    setup = [s for s in job["steps"] if str(s.get("uses", "")).startswith("open-policy-agent/setup-opa@")]
    assert len(setup) == 1 and f"opa-{setup[0]['with']['version']}" == opa_version()
    runs = [shlex.split(str(s["run"])) for s in job["steps"] if "run" in s]
    check = next(argv for argv in runs if argv[:2] == ["opa", "check"])
    assert "--strict" in check and check[check.index("--schema") + 1] == f"policy-pack/{Path(INPUT_SCHEMA_FILE).parent}"
    assert any(argv[:2] == ["opa", "test"] and argv[-1] == "policy-pack" for argv in runs)
