"""The checkov runner: checkov in its own environment, served by a warm worker process.

Current checkov (3.3.x) pins ``packaging<24`` while current pulumi-aws needs ``packaging>=24``, so checkov
lives in a tool environment (``.tools/checkov``, built by ``make .tools/checkov/.installed`` from
``requirements-checkov.lock``) and is never imported here. :class:`CheckovWorker` starts
``checkov_worker.py`` under that environment's python once, keeps it warm across scans (checkov's import
costs about a second; a warm plan scan costs tens of milliseconds) and speaks JSON lines with it.

This module owns:
- locating the tool python (``GLASSBOX_CHECKOV_PYTHON``, else ``<repo>/.tools/checkov/bin/python``);
- the worker's environment: an allowlist (no cloud credentials or tokens reach it) plus checkov's offline
  switches; the worker also refuses sockets in-process;
- per-request timeouts, restart after a crash, clean shutdown (use it as a context manager);
- glassbox's checkov policy (``policy-pack/checkov/``): the severity map (offline checkov has none) and the
  skipped checks with their justifications;
- the result records, :class:`CheckovFinding` and :class:`CheckovReport`.

Every failure (no tool python, a crash, a timeout, a malformed answer, a plan checkov cannot read) raises
:class:`bot.errors.EngineError` with ``engine="checkov"``: callers record it and deny (I5).
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import json
import logging
import os
import queue
import re
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal

import yaml
from pydantic import Field, ValidationError

from bot.errors import EngineError
from bot.records import Record, RiskTier

ENGINE = "checkov"
REPO_ROOT = Path(__file__).resolve().parents[2]
WORKER_SCRIPT = Path(__file__).with_name("checkov_worker.py")
DEFAULT_POLICY_DIR = REPO_ROOT / "policy-pack" / "checkov"
PYTHON_ENV_VAR = "GLASSBOX_CHECKOV_PYTHON"
INSTALL_HINT = "create it with `make .tools/checkov/.installed`, or point GLASSBOX_CHECKOV_PYTHON at one"

# Only these variables of ours reach the worker: never cloud credentials, tokens or proxies.
_PASSED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "TZ", "SYSTEMROOT")
# checkov 3.3.30's own switches for an offline, single-process run.
_OFFLINE_ENV = {
    "BC_SKIP_MAPPING": "TRUE",  # no download of guideline/id mappings from the platform
    "CKV_SKIP_PACKAGE_UPDATE_CHECK": "true",  # no PyPI version check when checkov's banner is imported
    "CKV_VALIDATE_SECRETS": "false",  # never validate found secrets against live services
    "CHECKOV_PARALLELIZATION_TYPE": "none",  # no forked children sharing the protocol pipes
    "LOG_LEVEL": "WARNING",
    "NO_PROXY": "*",
}
_CHECK_ID = re.compile(r"^CKV2?_[A-Z0-9]+_[0-9]+$")
_STDERR_TAIL = 40

log = logging.getLogger(__name__)

# Finding severities share the risk scale (as bot.records.Finding does), so verdicts need no mapping.
Severity = RiskTier


# --------------------------------------------------------------------------------------------------
# records


class CheckovFinding(Record):
    """One check on one resource: failed or passed."""

    check_id: str = Field(min_length=1, description="checkov check id, e.g. CKV_AWS_20")
    name: str
    severity: Severity = Field(description="From policy-pack/checkov/severities.yaml, not from checkov.")
    status: Literal["failed", "passed"]
    resource_address: str = Field(description="Terraform address for plans; checkov's resource id for files.")
    file: str = Field(description="Path relative to the scanned root; plan.json for a plan scan.")
    guideline: str | None = None


class CheckovReport(Record):
    schema_version: Literal[1] = 1
    version: str = Field(description="checkov's version")
    findings: list[CheckovFinding]
    passed_count: int = Field(ge=0)
    failed_count: int = Field(ge=0)
    resource_count: int = Field(default=0, ge=0)
    skipped_checks: list[str] = Field(default_factory=list, description="Check ids the policy skipped.")

    @property
    def failed(self) -> list[CheckovFinding]:
        return [f for f in self.findings if f.status == "failed"]


class SkippedCheck(Record):
    id: str = Field(pattern=_CHECK_ID.pattern)
    justification: str = Field(min_length=10)


class CheckovPolicy(Record):
    """glassbox's checkov policy: severities for check ids, and the checks it skips (with why)."""

    default_severity: Severity = RiskTier.MEDIUM
    severities: dict[str, Severity] = Field(default_factory=dict)
    skip_checks: list[SkippedCheck] = Field(default_factory=list)

    def severity(self, check_id: str) -> Severity:
        return self.severities.get(check_id, self.default_severity)

    @property
    def skipped_ids(self) -> list[str]:
        return sorted(s.id for s in self.skip_checks)


class _SeveritiesFile(Record):
    schema_version: Literal[1]
    default: Severity
    checks: dict[str, Severity]


class _ConfigFile(Record):
    schema_version: Literal[1]
    skip_checks: list[SkippedCheck] = Field(default_factory=list)


def _load_yaml(path: Path) -> Any:
    try:
        with path.open(encoding="utf-8") as fh:
            return yaml.safe_load(fh)
    except (OSError, yaml.YAMLError) as exc:
        raise EngineError(f"cannot read {path}: {exc}", engine=ENGINE) from exc


def load_policy(policy_dir: Path = DEFAULT_POLICY_DIR) -> CheckovPolicy:
    """Read ``severities.yaml`` and ``config.yaml`` from a policy-pack checkov directory."""
    try:
        sev = _SeveritiesFile.model_validate(_load_yaml(policy_dir / "severities.yaml"))
        cfg = _ConfigFile.model_validate(_load_yaml(policy_dir / "config.yaml"))
    except ValidationError as exc:
        raise EngineError(f"invalid checkov policy in {policy_dir}: {exc}", engine=ENGINE) from exc
    bad = sorted(k for k in sev.checks if not _CHECK_ID.match(k))
    if bad:
        raise EngineError(f"{policy_dir / 'severities.yaml'}: not checkov ids: {', '.join(bad)}", engine=ENGINE)
    return CheckovPolicy(default_severity=sev.default, severities=sev.checks, skip_checks=cfg.skip_checks)


# --------------------------------------------------------------------------------------------------
# the worker process


def checkov_python() -> Path:
    """The tool environment's python, or an EngineError saying how to create it."""
    configured = os.environ.get(PYTHON_ENV_VAR)
    path = Path(configured) if configured else REPO_ROOT / ".tools" / "checkov" / "bin" / "python"
    if not (path.is_file() and os.access(path, os.X_OK)):
        source = f"{PYTHON_ENV_VAR}={configured}" if configured else "the checkov tool environment"
        raise EngineError(f"no checkov python at {path} ({source}); {INSTALL_HINT}", engine=ENGINE)
    return path


def worker_environment() -> dict[str, str]:
    """The worker's whole environment: an allowlist of ours plus checkov's offline switches."""
    env = {k: os.environ[k] for k in _PASSED_ENV if k in os.environ}
    env.update(_OFFLINE_ENV)
    return env


_EOF = object()


class CheckovWorker:
    """A warm checkov worker: started on first use, reused across scans, restarted after a crash.

    Safe to share between threads: a lock serialises requests (the worker answers one at a time anyway).
    The policy defaults to this checkout's ``policy-pack/checkov``; a check should pass the base commit's.
    """

    def __init__(
        self,
        *,
        policy: CheckovPolicy | None = None,
        python: Path | None = None,
        timeout: float = 120.0,
        start_timeout: float = 60.0,
        iam_memo: bool = True,
    ) -> None:
        self._policy = policy
        self._python = python
        self.timeout = timeout
        self.start_timeout = start_timeout
        self.iam_memo = iam_memo
        self.starts = 0
        self.checkov_version: str | None = None
        self._proc: subprocess.Popen[str] | None = None
        self._responses: queue.Queue[object] = queue.Queue()
        self._stderr: collections.deque[str] = collections.deque(maxlen=_STDERR_TAIL)
        self._threads: list[threading.Thread] = []
        self._ids = itertools.count(1)
        self._lock = threading.RLock()

    # ---- lifecycle

    def __enter__(self) -> CheckovWorker:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def policy(self) -> CheckovPolicy:
        if self._policy is None:
            self._policy = load_policy()
        return self._policy

    @property
    def pid(self) -> int | None:
        """The running worker's pid, or None when none runs."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def start(self) -> None:
        """Start the worker if it is not running (a dead one is reaped and replaced)."""
        with self._lock:
            if self._proc is not None and self._proc.poll() is None:
                return
            self._reap()
            python = self._python or checkov_python()
            if not WORKER_SCRIPT.is_file():
                raise EngineError(f"worker script missing: {WORKER_SCRIPT}", engine=ENGINE)
            # -I: isolated mode. Above all it keeps the script's own directory off sys.path, where
            # bot/policy/checkov.py would shadow the real checkov package.
            cmd = [str(python), "-I", str(WORKER_SCRIPT)]
            if not self.iam_memo:
                cmd.append("--no-iam-memo")
            try:
                proc = subprocess.Popen(
                    cmd,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    env=worker_environment(),
                    cwd=tempfile.gettempdir(),
                    text=True,
                    encoding="utf-8",
                    bufsize=1,
                )
            except OSError as exc:
                raise EngineError(f"cannot start the checkov worker with {python}: {exc}", engine=ENGINE) from exc
            self._proc = proc
            self._responses = queue.Queue()
            self._stderr.clear()
            assert proc.stdout is not None and proc.stderr is not None
            self._threads = [
                threading.Thread(target=self._pump_stdout, args=(proc.stdout, self._responses), daemon=True),
                threading.Thread(target=self._pump_stderr, args=(proc.stderr,), daemon=True),
            ]
            for thread in self._threads:
                thread.start()
            self.starts += 1
            answer = self._exchange({"op": "version"}, self.start_timeout)
            self.checkov_version = str(answer.get("checkov_version"))
            log.debug("checkov worker %s started (checkov %s)", proc.pid, self.checkov_version)

    def close(self) -> None:
        """Ask the worker to exit, then make sure it has; safe to call twice."""
        with self._lock:
            proc = self._proc
            if proc is None:
                return
            if proc.poll() is None:
                try:
                    assert proc.stdin is not None
                    proc.stdin.write(json.dumps({"op": "shutdown", "id": 0}) + "\n")
                    proc.stdin.flush()
                    proc.stdin.close()
                    proc.wait(timeout=5)
                except (OSError, ValueError, subprocess.TimeoutExpired):
                    pass
            self._reap()

    def _reap(self) -> None:
        """Kill (if needed) and wait for the current process, close its pipes and join the pumps."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads = []

    @staticmethod
    def _pump_stdout(stream: IO[str], responses: queue.Queue[object]) -> None:
        try:
            for line in stream:
                responses.put(line)
        except (OSError, ValueError):
            pass
        responses.put(_EOF)

    def _pump_stderr(self, stream: IO[str]) -> None:
        # Always drained, so a chatty checkov can never block on a full pipe.
        try:
            for line in stream:
                line = line.rstrip()
                self._stderr.append(line)
                log.debug("checkov worker: %s", line)
        except (OSError, ValueError):
            pass

    # ---- requests

    def request(self, op: str, timeout: float | None = None, **fields: Any) -> dict[str, Any]:
        """Send one request and return the worker's answer; any failure is an EngineError."""
        with self._lock:
            self.start()
            return self._exchange({"op": op, **fields}, self.timeout if timeout is None else timeout)

    def _exchange(self, message: dict[str, Any], timeout: float) -> dict[str, Any]:
        proc = self._proc
        assert proc is not None and proc.stdin is not None
        request_id = next(self._ids)
        try:
            line = json.dumps({**message, "id": request_id}, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise EngineError(f"request is not JSON-serialisable: {exc}", engine=ENGINE) from exc
        try:
            proc.stdin.write(line + "\n")
            proc.stdin.flush()
        except (OSError, ValueError) as exc:
            raise self._died(f"could not send {message['op']!r}") from exc
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    raise queue.Empty
                item = self._responses.get(timeout=remaining)
            except queue.Empty:
                # Its state is unknown now: kill it, the next request starts a fresh one.
                self._reap()
                raise EngineError(
                    f"{message['op']} timed out after {timeout:g}s; the worker was stopped", engine=ENGINE
                ) from None
            if item is _EOF:
                raise self._died(f"exited during {message['op']!r}")
            try:
                answer = json.loads(str(item))
            except json.JSONDecodeError:
                self._reap()
                raise EngineError(f"worker wrote a non-JSON line: {str(item)[:200]!r}", engine=ENGINE) from None
            if not isinstance(answer, dict):
                self._reap()
                raise EngineError("worker answered with a non-object", engine=ENGINE)
            if answer.get("id") != request_id:
                log.debug("dropping stale checkov worker answer %r", answer.get("id"))
                continue
            if "error" in answer:
                raise EngineError(f"{message['op']} failed: {answer['error']}", engine=ENGINE)
            return answer

    def _died(self, what: str) -> EngineError:
        proc = self._proc
        code: int | None = None
        if proc is not None:
            # stdout closed but still running: _reap kills it
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = proc.wait(timeout=5)
        self._reap()  # joins the stderr pump, so the tail below is complete
        tail = " | ".join(list(self._stderr)[-5:])
        return EngineError(f"checkov worker {what} (exit code {code}): {tail or 'no stderr'}", engine=ENGINE)

    # ---- operations

    @property
    def stderr_tail(self) -> list[str]:
        """The worker's last lines of stderr (checkov's warnings), for diagnostics."""
        return list(self._stderr)

    def checks(self) -> list[dict[str, Any]]:
        """Every Terraform check the worker's checkov knows, with the resource types it applies to."""
        return list(self.request("checks")["checks"])

    def ping(self) -> int:
        """The worker's pid (starting it if needed)."""
        return int(self.request("ping")["pid"])

    def version(self) -> str:
        return str(self.request("version")["checkov_version"])

    def stats(self) -> dict[str, Any]:
        """The worker's IAM memo statistics (None inside when memoization is off)."""
        return dict(self.request("stats"))

    def scan_plan(self, plan: Mapping[str, Any]) -> CheckovReport:
        """Scan a Terraform plan JSON document (``terraform show -json`` shape)."""
        answer = self.request("scan_plan", plan=plan, skip_checks=self.policy.skipped_ids)
        return self._report(answer)

    def scan_files(self, root: Path, files: Sequence[str | Path]) -> CheckovReport:
        """Scan raw IaC files (Terraform, CloudFormation, Kubernetes, Dockerfiles) under ``root``."""
        root = Path(root).resolve()
        names = [str(f) for f in files]
        if not names:
            return CheckovReport(
                version=self.checkov_version or self.version(), findings=[], passed_count=0, failed_count=0
            )
        answer = self.request("scan_files", root=str(root), files=names, skip_checks=self.policy.skipped_ids)
        return self._report(answer)

    def _report(self, answer: Mapping[str, Any]) -> CheckovReport:
        result = answer.get("result")
        if not isinstance(result, dict):
            raise EngineError("worker answer has no result", engine=ENGINE)
        return to_report(result, self.policy)


def to_report(result: Mapping[str, Any], policy: CheckovPolicy) -> CheckovReport:
    """Turn a worker's raw result into a report, severities taken from ``policy``."""
    try:
        findings = [
            CheckovFinding(
                check_id=f["check_id"],
                name=f["name"],
                severity=policy.severity(f["check_id"]),
                status=f["status"],
                resource_address=f["resource_address"],
                file=f["file"],
                guideline=f.get("guideline"),
            )
            for f in result["findings"]
        ]
        report = CheckovReport(
            version=result["version"],
            findings=findings,
            passed_count=result["passed_count"],
            failed_count=result["failed_count"],
            resource_count=result.get("resource_count", 0),
            skipped_checks=result.get("skipped_checks", []),
        )
    except (KeyError, TypeError, ValidationError) as exc:
        raise EngineError(f"malformed worker result: {exc}", engine=ENGINE) from exc
    if report.failed_count != len(report.failed) or report.passed_count + report.failed_count != len(findings):
        raise EngineError("worker result counts do not match its findings", engine=ENGINE)
    return report


def scan_plan(plan: Mapping[str, Any], *, policy: CheckovPolicy | None = None) -> CheckovReport:
    """One-shot convenience: a worker for a single plan. Prefer a long-lived :class:`CheckovWorker`."""
    with CheckovWorker(policy=policy) as worker:
        return worker.scan_plan(plan)


__all__ = [
    "CheckovFinding",
    "CheckovPolicy",
    "CheckovReport",
    "CheckovWorker",
    "Severity",
    "checkov_python",
    "load_policy",
    "scan_plan",
    "to_report",
    "worker_environment",
]
