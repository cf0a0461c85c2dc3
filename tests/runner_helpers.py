"""A GitHub Actions job as `glassbox ci` sees it: the runner's variables, an event file, the output files, the log.

``Job`` lays out what a runner gives a step (``GITHUB_EVENT_PATH`` holding a webhook payload from
``tests/fixtures/webhooks/``, ``GITHUB_OUTPUT``, ``GITHUB_STEP_SUMMARY``, ...) and reads back what the step left, with
the runner's own rules: :func:`runner_outputs` parses ``GITHUB_OUTPUT`` as the runner does (``name=value`` lines and
``name<<DELIMITER`` heredocs), :func:`obeyed_commands` lists the ``::command::`` lines of a log the runner would act
on (honouring ``::stop-commands::``).

:class:`FakeTokenService` stands in for the runner's OIDC token endpoint (``ACTIONS_ID_TOKEN_REQUEST_URL``): a real
HTTP server on 127.0.0.1 that checks the bearer request token and answers ``{"value": <JWT>}`` for the audience
asked for. Its JWTs are unsigned look-alikes: only the cloud's STS verifies a real one, and nothing here does.
"""

from __future__ import annotations

import base64
import copy
import json
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from bot.cli import main

WEBHOOKS = Path(__file__).resolve().parent / "fixtures" / "webhooks"

# the host's own runner or glassbox settings must never leak into a test job
_CLEARED = (
    "GITHUB_ACTIONS",
    "GITHUB_TOKEN",
    "GLASSBOX_APPLIER",
    "GLASSBOX_ATTESTATIONS",
    "GLASSBOX_DEPLOY_ROLE_ARN",
    "GLASSBOX_DEPLOY_STATE",
    "GLASSBOX_FORGE_URL",
    "GLASSBOX_PLAN_CACHE",
    "GLASSBOX_PLAN_CACHE_DIR",
    "GLASSBOX_PLAN_CACHE_KEY",
    "GLASSBOX_REPO",
    "RUNNER_TEMP",
    "ACTIONS_ID_TOKEN_REQUEST_URL",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
)


def webhook(name: str, **fields: Any) -> dict[str, Any]:
    """The payload fixture ``name`` with ``fields`` set, each named by its path, parts joined by ``__``."""
    data: dict[str, Any] = json.loads((WEBHOOKS / f"{name}.json").read_text(encoding="utf-8"))
    for path, value in fields.items():
        *parents, leaf = path.split("__")
        node = data
        for key in parents:
            node = node[key]
        node[leaf] = copy.deepcopy(value)
    return data


def pull_request_payload(name: str, repo: str, number: int, head: str, base: str, **more: Any) -> dict[str, Any]:
    """A ``pull_request``/``pull_request_review`` fixture pointed at a PR of the embedded forge."""
    fields: dict[str, Any] = {
        "repository__full_name": repo,
        "pull_request__number": number,
        "pull_request__head__sha": head,
        "pull_request__base__sha": base,
        "pull_request__head__repo__full_name": repo,
        "pull_request__base__repo__full_name": repo,
    }
    data = webhook(name, **fields, **more)
    if "number" in data:
        data["number"] = number
    if "review" in data:
        data["review"]["commit_id"] = head
    return data


@dataclass
class Result:
    code: int
    out: str
    err: str
    outputs: dict[str, str]
    output_names: list[str]
    summary: str


@dataclass
class Job:
    """One step of a GitHub Actions job: the runner's files under ``root`` and its variables, set by monkeypatch."""

    root: Path
    monkeypatch: pytest.MonkeyPatch
    capsys: pytest.CaptureFixture[str]
    repository: str
    api_url: str
    run_id: str = "4242"
    env: dict[str, str] = field(default_factory=dict)

    @property
    def output_file(self) -> Path:
        return self.root / "github_output"

    @property
    def summary_file(self) -> Path:
        return self.root / "step_summary.md"

    @property
    def event_file(self) -> Path:
        return self.root / "event.json"

    def run(
        self,
        event: str,
        payload: Mapping[str, Any] | bytes,
        *args: str,
        sha: str,
        ref: str,
        env: Mapping[str, str] | None = None,
        unset: tuple[str, ...] = (),
    ) -> Result:
        """Run ``glassbox ARGS`` as the step of a job for ``event``; what it printed and left behind."""
        self.root.mkdir(parents=True, exist_ok=True)
        # the step runs in the job's own workspace, as on a runner: defaults such as --out land there, never in
        # the directory the tests were started from
        workspace = self.root / "workspace"
        workspace.mkdir(exist_ok=True)
        self.monkeypatch.chdir(workspace)
        for path in (self.output_file, self.summary_file):
            path.write_text("", encoding="utf-8")
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode("utf-8")
        self.event_file.write_bytes(raw)
        for name in _CLEARED:
            self.monkeypatch.delenv(name, raising=False)
        variables = {
            "GITHUB_EVENT_NAME": event,
            "GITHUB_EVENT_PATH": str(self.event_file),
            "GITHUB_REPOSITORY": self.repository,
            "GITHUB_SHA": sha,
            "GITHUB_REF": ref,
            "GITHUB_RUN_ID": self.run_id,
            "GITHUB_STEP_SUMMARY": str(self.summary_file),
            "GITHUB_OUTPUT": str(self.output_file),
            "GITHUB_API_URL": self.api_url,
            **self.env,
            **(env or {}),
        }
        for name, value in variables.items():
            self.monkeypatch.setenv(name, value)
        for name in unset:
            self.monkeypatch.delenv(name, raising=False)
        self.capsys.readouterr()
        code = main(list(args))
        out, err = self.capsys.readouterr()
        names = output_names(self.output_file.read_text(encoding="utf-8"))
        return Result(
            code,
            out,
            err,
            runner_outputs(self.output_file.read_text(encoding="utf-8")),
            names,
            self.summary_file.read_text(encoding="utf-8"),
        )


def _parse_outputs(text: str) -> list[tuple[str, str]]:
    """``GITHUB_OUTPUT`` as the runner reads it: ``name=value``, or ``name<<DELIM`` up to a line equal to DELIM."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    found: list[tuple[str, str]] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if line == "":
            continue
        eq, heredoc = line.find("="), line.find("<<")
        if eq >= 0 and (heredoc < 0 or eq < heredoc):
            name, value = line[:eq], line[eq + 1 :]
        elif heredoc >= 0:
            name, delimiter = line[:heredoc], line[heredoc + 2 :]
            body: list[str] = []
            while True:
                if i >= len(lines):
                    raise AssertionError(f"GITHUB_OUTPUT: heredoc {name!r} never ends with {delimiter!r}")
                if lines[i] == delimiter:
                    i += 1
                    break
                body.append(lines[i])
                i += 1
            value = "\n".join(body)
        else:
            raise AssertionError(f"GITHUB_OUTPUT: the runner fails on the line {line!r}")
        assert name, f"GITHUB_OUTPUT: empty name on {line!r}"
        found.append((name, value))
    return found


def runner_outputs(text: str) -> dict[str, str]:
    return dict(_parse_outputs(text))


def output_names(text: str) -> list[str]:
    return [name for name, _ in _parse_outputs(text)]


def obeyed_commands(log: str) -> list[str]:
    """Workflow-command lines (``::name ...::``) the runner would act on in ``log``, stop-commands honoured."""
    obeyed: list[str] = []
    resume: str | None = None
    for line in log.splitlines():
        if resume is not None:
            if line.strip() == f"::{resume}::":
                resume = None
            continue
        if line.startswith("::stop-commands::"):
            resume = line.removeprefix("::stop-commands::").strip()
            continue
        if line.startswith("::"):
            obeyed.append(line)
    assert resume is None, "the log pauses workflow commands and never resumes them"
    return obeyed


# --------------------------------------------------------------------------------------------------
# the runner's OIDC token endpoint


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


class FakeTokenService:
    """Stands in for the runner's token endpoint (``ACTIONS_ID_TOKEN_REQUEST_URL``) on 127.0.0.1."""

    REQUEST_TOKEN = "runner-request-token-0001"

    def __init__(self, claims: Mapping[str, Any], *, request_token: str | None = None) -> None:
        self.claims = dict(claims)
        self.request_token = request_token or self.REQUEST_TOKEN
        self.requests: list[dict[str, Any]] = []
        self.status = 200
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                service.requests.append(
                    {"path": urlsplit(self.path).path, "query": query, "auth": self.headers.get("Authorization")}
                )
                if self.headers.get("Authorization") != f"Bearer {service.request_token}":
                    self._answer(401, {"message": "bad request token"})
                elif service.status != 200:
                    self._answer(service.status, {"message": "unavailable"})
                else:
                    audience = query.get("audience", ["https://github.com/acme"])[0]
                    body = {**service.claims, "aud": audience}
                    token = ".".join(
                        [_b64(b'{"alg":"RS256","typ":"JWT"}'), _b64(json.dumps(body).encode()), _b64(b"unsigned")]
                    )
                    self._answer(200, {"count": 1, "value": token})

            def _answer(self, status: int, body: Mapping[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        # like the runner's: a query string already on it, to which the audience is added
        return f"http://{host!s}:{port}/_apis/distributedtask/hubs/Actions/idtoken?api-version=2.0"

    def variables(self) -> dict[str, str]:
        return {"ACTIONS_ID_TOKEN_REQUEST_URL": self.url, "ACTIONS_ID_TOKEN_REQUEST_TOKEN": self.request_token}

    def __enter__(self) -> FakeTokenService:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def token_service(repository: str) -> Iterator[FakeTokenService]:
    claims = {
        "iss": "https://token.actions.githubusercontent.com",
        "sub": f"repo:{repository}:environment:production",
        "repository": repository,
        "ref": "refs/heads/main",
        "environment": "production",
        "job_workflow_ref": f"{repository}/.github/workflows/glassbox-deploy.yml@refs/heads/main",
    }
    with FakeTokenService(claims) as service:
        yield service
