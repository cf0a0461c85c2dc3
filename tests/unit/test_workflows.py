"""The GitHub Actions workflows under ``.github/workflows/``: a workflow linter, then our own rules.

The linter is jactionlint (a maintained fork of actionlint with zizmor-style security rules), which PyPI
ships as a wheel with the binary inside (``jactionlint==2.3.0``, pinned in requirements.lock).

Our own rules are the ones the project cannot trade away: every job declares its ``permissions``, the
workflow grants nothing by default, every action is pinned by a full commit SHA, no
``pull_request_target``, and no ``${{ github.event.* }}`` is expanded inside a ``run:`` script.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

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
                assert job["permissions"] == {"id-token": "write", "contents": "read"}
            elif path.name == "glassbox-check.yml" and name == "check":
                continue  # actions/attest signs with sigstore keyless: it needs the token too
            else:
                assert not wants, f"{path.name}/{name} asks for id-token: write"
