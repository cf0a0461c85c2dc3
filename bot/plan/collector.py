"""The trusted collector: the record of what a sandboxed program registered, kept in the parent process.

The program side (:mod:`bot.plan.sandbox`) reports each ``RegisterResource`` call of the Pulumi SDK's monitor
as one newline-delimited JSON frame on a pipe; the sandbox's PID 1 (:mod:`bot.plan.jail`) adds the final
``exit`` frame. The collector computes each resource's URN, parent, provider, dependencies and normalised
inputs itself, from its own job list: the plan is what the collector received, never what the program printed,
and nothing the program does after registering a resource can change the record, which lives in another
process in another PID namespace. Frames::

    {"op": "start", "job": 0}
    {"op": "register", "job": 0, "type": ..., "name": ..., "parent": ..., "provider": ..., "protect": ...,
     "dependencies": [...], "object": {...}}        # the request's fields, ``object`` as protobuf JSON
    {"op": "end", "job": 0, "error": null}         # or the last line of the program's exception
    {"op": "exit", "status": 0, "leftovers": 0}    # from PID 1: the program's exit, processes it left
    {"op": "setup-error", "message": ...}          # from the launcher: the sandbox could not be built

Anything out of order (a frame for a job not running, a second ``exit``, a frame after it, an unknown op, a
duplicate URN) is a protocol violation: the plan fails, naming it. This module imports nothing from Pulumi.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from bot.plan.mockcloud import UNKNOWN_MARK, urn_type
from bot.records import canonical_json, sha256_hex

# Special signatures of Pulumi's property serialisation (sdk/proto "special sig key" values).
_SIG_KEY = "4dabf18193072939515e22adb298388d"
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"  # noqa: S105 - a protocol constant, not a secret
_RESOURCE_SIG = "5cf8f73096256a8f31e491e813e4eb8e"
_ASSET_SIG = "c44067f5952c0a294b673a41bacd8c17"
_ARCHIVE_SIG = "0def7320c3a5731c473e5ecbe6d01bc7"
_OUTPUT_SIG = "d0e6a833031e9bbcd3f4e8bde6ca49a4"
_UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
STACK_TYPE = "pulumi:pulumi:Stack"

MAX_FRAME_BYTES = 8 << 20
MAX_RECORD_BYTES = 64 << 20


def normalize(value: Any) -> Any:
    """Plain JSON for the plan: whole floats → ints, secrets → their digest, references → URNs."""
    if isinstance(value, dict):
        sig = value.get(_SIG_KEY)
        if sig == _SECRET_SIG:
            inner = normalize(value.get("value"))
            return f"[secret sha256:{sha256_hex(canonical_json(inner))}]"
        if sig == _RESOURCE_SIG:
            return str(value.get("urn", ""))
        if sig in (_ASSET_SIG, _ARCHIVE_SIG):
            body = {k: normalize(v) for k, v in value.items() if k != _SIG_KEY}
            kind = "asset" if sig == _ASSET_SIG else "archive"
            return f"[{kind} sha256:{sha256_hex(canonical_json(body))}]"
        if sig == _OUTPUT_SIG:
            if value.get("secret"):
                return f"[secret sha256:{sha256_hex(canonical_json(normalize(value.get('value'))))}]"
            return normalize(value["value"]) if "value" in value else UNKNOWN_MARK
        return {str(k): normalize(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [normalize(v) for v in value]
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return str(value)
        return int(value) if value.is_integer() else value
    if value == _UNKNOWN:
        return UNKNOWN_MARK
    return value


def make_urn(project: str, stack: str, parent: str, type_: str, name: str) -> str:
    """The engine's URN: a child's type is qualified by its parent's, except under the root stack."""
    if parent and urn_type(parent) != STACK_TYPE:
        type_ = f"{urn_type(parent)}${type_}"
    return "urn:pulumi:" + "::".join([stack, project, type_, name])


class ProtocolError(Exception):
    """The sandbox sent something the protocol does not allow: the plan cannot be trusted."""


@dataclass
class JobRecord:
    project: str
    stack: str
    started: bool = False
    ended: bool = False
    error: str | None = None
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)


class Collector:
    """Receives the frames of one sandbox run of ``jobs`` ((project, stack) pairs, run in that order)."""

    def __init__(self, jobs: list[tuple[str, str]]) -> None:
        self.jobs = [JobRecord(project, stack) for project, stack in jobs]
        self.running: int | None = None
        self.next = 0
        self.exit: dict[str, Any] | None = None
        self.setup_error: str | None = None
        self.received = 0
        self._partial = b""

    def feed(self, chunk: bytes) -> None:
        """Bytes from the pipe, in any split; complete lines are handled as frames."""
        self.received += len(chunk)
        if self.received > MAX_RECORD_BYTES:
            raise ProtocolError(f"the sandbox sent more than {MAX_RECORD_BYTES >> 20} MiB of registrations")
        data = self._partial + chunk
        *lines, self._partial = data.split(b"\n")
        if len(self._partial) > MAX_FRAME_BYTES:
            raise ProtocolError(f"a registration frame longer than {MAX_FRAME_BYTES >> 20} MiB")
        for line in lines:
            if line.strip():
                self._frame(line)

    def close(self) -> None:
        if self._partial.strip():
            raise ProtocolError("the last registration frame was cut off")

    @property
    def current(self) -> JobRecord | None:
        return self.jobs[self.running] if self.running is not None else None

    def _frame(self, line: bytes) -> None:
        try:
            frame = json.loads(line)
        except ValueError:
            raise ProtocolError("a registration frame is not JSON") from None
        if not isinstance(frame, dict):
            raise ProtocolError("a registration frame is not an object")
        op = frame.get("op")
        if self.exit is not None:
            raise ProtocolError(f"a {op!r} frame arrived after the sandbox's exit report")
        if op == "setup-error":
            self.setup_error = str(frame.get("message"))
        elif op == "exit":
            self.exit = frame
        elif op == "start":
            if self.running is not None or frame.get("job") != self.next or self.next >= len(self.jobs):
                raise ProtocolError(f"job {frame.get('job')!r} started out of order")
            self.running = self.next
            self.jobs[self.next].started = True
            self.next += 1
        elif op == "end":
            job = self._running(frame)
            job.ended = True
            error = frame.get("error")
            job.error = None if error is None else str(error)
            self.running = None
        elif op == "register":
            self._register(self._running(frame), frame)
        else:
            raise ProtocolError(f"unknown frame op {op!r}")

    def _running(self, frame: dict[str, Any]) -> JobRecord:
        job = self.current
        if job is None or frame.get("job") != self.running:
            raise ProtocolError(f"a {frame.get('op')!r} frame for job {frame.get('job')!r}, which is not running")
        return job

    def _register(self, job: JobRecord, frame: dict[str, Any]) -> None:
        try:
            type_, name = str(frame["type"]), str(frame["name"])
            parent_in = str(frame.get("parent") or "")
            provider_ref = str(frame.get("provider") or "")
            deps = [str(d) for d in frame.get("dependencies") or []]
            raw = frame.get("object") or {}
            if not isinstance(raw, dict):
                raise TypeError("object is not a mapping")
        except (KeyError, TypeError) as exc:
            raise ProtocolError(f"a malformed register frame ({exc})") from None
        if type_ == STACK_TYPE:
            return
        try:
            record = self._record(job, type_, name, parent_in, provider_ref, deps, raw, bool(frame.get("protect")))
        except IndexError:
            raise ProtocolError(f"a register frame for {name!r} names a malformed parent or dependency URN") from None
        if record["urn"] in job.resources:
            # The engine refuses this too; a plan with two resources under one URN could not be diffed.
            raise ProtocolError(f"duplicate resource URN {record['urn']}")
        job.resources[record["urn"]] = record

    @staticmethod
    def _record(
        job: JobRecord,
        type_: str,
        name: str,
        parent_in: str,
        provider_ref: str,
        deps: list[str],
        raw: dict[str, Any],
        protect: bool,
    ) -> dict[str, Any]:
        urn = make_urn(job.project, job.stack, parent_in, type_, name)
        return {
            "urn": urn,
            "type": type_,
            "name": name,
            "parent": parent_in if parent_in and urn_type(parent_in) != STACK_TYPE else None,
            "provider": provider_ref.rsplit("::", 1)[0] if provider_ref else None,
            "protect": protect,
            "dependencies": sorted({d for d in deps if urn_type(d) != STACK_TYPE}),
            "inputs": normalize(raw),
        }


def frame(op: str, **fields: Any) -> bytes:
    """One frame as the program side writes it."""
    return (json.dumps({"op": op, **fields}, sort_keys=True, allow_nan=True) + "\n").encode("utf-8")
