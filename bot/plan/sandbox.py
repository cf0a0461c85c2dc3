"""The plan sandbox: runs Pulumi programs under the SDK's mock runtime and prints what they register as JSON.

Run as ``python -m bot.plan.sandbox`` by :mod:`bot.plan.runner`, in a clean environment, with a batch of
jobs on stdin (one per project and stack, all at one git ref)::

    {"jobs": [{"project": "data", "stack": "prod", "directory": "/tmp/.../infra/data",
               "main": "__main__.py", "config": {"data:x": "1"}, "secret_keys": [], "region": "eu-west-1"}]}

and one JSON document on stdout: ``{"results": [{"project", "stack", "ok", "error", "resources": [...]}]}``.

The mock runtime is the documented stand-in for the cloud (``pulumi.runtime.set_mocks``): no provider
plugin, no engine, no credentials. glassbox plays the provider (:mod:`bot.plan.mockcloud`). Secrets are
reduced to digests *here*, so a secret value never leaves this process. Jobs share one interpreter so that
``pulumi_aws`` is imported once per batch; each job runs in a fresh ``contextvars.Context`` (the SDK keeps
its settings, config and root stack in context variables) with its own event loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import os
import runpy
import sys
import threading
import traceback
from pathlib import Path
from typing import Any

from bot.plan.mockcloud import UNKNOWN_MARK, call_result, mock_id, mock_outputs, urn_type
from bot.plan.runner import START_MARK
from bot.records import canonical_json, sha256_hex

# Special signatures of Pulumi's property serialisation (sdk/proto "special sig key" values).
_SIG_KEY = "4dabf18193072939515e22adb298388d"
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"  # noqa: S105 - a protocol constant, not a secret
_RESOURCE_SIG = "5cf8f73096256a8f31e491e813e4eb8e"
_ASSET_SIG = "c44067f5952c0a294b673a41bacd8c17"
_ARCHIVE_SIG = "0def7320c3a5731c473e5ecbe6d01bc7"
_OUTPUT_SIG = "d0e6a833031e9bbcd3f4e8bde6ca49a4"
_UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
_STACK_TYPE = "pulumi:pulumi:Stack"


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


def _last_line(exc: BaseException) -> str:
    lines = [line for line in traceback.format_exception_only(exc) if line.strip()]
    return lines[-1].strip() if lines else type(exc).__name__


def _run_job(job: dict[str, Any]) -> dict[str, Any]:
    # Imported here, after stdout was redirected: the SDK may print while loading.
    from google.protobuf import json_format  # type: ignore[import-untyped]
    from pulumi.runtime import config as pulumi_config
    from pulumi.runtime import mocks, rpc
    from pulumi.runtime.proto import resource_pb2
    from pulumi.runtime.stack import run_pulumi_func
    from pulumi.runtime.sync_await import _ensure_event_loop, _sync_await

    project: str = job["project"]
    stack: str = job["stack"]
    region: str = job.get("region") or "us-east-1"
    captured: list[dict[str, Any]] = []
    lock = threading.Lock()

    class Cloud(mocks.Mocks):
        """Provider functions; resources are answered by the monitor below, which knows each URN."""

        def new_resource(self, args: Any) -> tuple[str, dict[str, Any]]:
            # Only reached for reads (Resource.get): give back what was asked for, deterministically.
            urn = f"urn:pulumi:{stack}::{project}::{args.typ}::{args.name}"
            return args.resource_id or mock_id(urn, args.typ, args.inputs), dict(args.inputs)

        def call(self, args: Any) -> tuple[dict[str, Any], list[tuple[str, str]]]:
            return call_result(args.token, normalize(dict(args.args)), region), []

    class Monitor(mocks.MockMonitor):
        def make_urn(self, parent: str, type_: str, name: str) -> str:
            # The engine does not qualify a type by the root stack's type; match real URNs.
            if parent and urn_type(parent) == _STACK_TYPE:
                parent = ""
            return str(super().make_urn(parent, type_, name))

        def RegisterResource(self, request: Any) -> Any:  # the gRPC method name
            urn = self.make_urn(request.parent, request.type, request.name)
            if request.type == _STACK_TYPE:
                return resource_pb2.RegisterResourceResponse(urn=urn)
            if urn in self.resources:
                # The engine refuses this too; a plan with two resources under one URN could not be diffed.
                raise ValueError(f"duplicate resource URN {urn}")
            _ensure_event_loop()  # type: ignore[no-untyped-call]
            raw = json_format.MessageToDict(request.object)
            rid = mock_id(urn, request.type, raw)
            state = mock_outputs(request.type, urn, raw, region)
            provider = request.provider.rsplit("::", 1)[0] if request.provider else None
            parent = request.parent if request.parent and urn_type(request.parent) != _STACK_TYPE else None
            record = {
                "urn": urn,
                "type": request.type,
                "name": request.name,
                "parent": parent,
                "provider": provider,
                "protect": bool(request.protect),
                "dependencies": sorted({d for d in request.dependencies if urn_type(d) != _STACK_TYPE}),
                "inputs": normalize(raw),
            }
            with lock:
                captured.append(record)
            proto = _sync_await(rpc.serialize_properties(state, {}))
            self.resources[urn] = mocks.MockMonitor.ResourceRegistration(urn, rid, state)
            return resource_pb2.RegisterResourceResponse(urn=urn, id=rid, object=proto)

    directory = Path(job["directory"])
    main = directory / job.get("main", "__main__.py")
    if main.is_dir():
        main = main / "__main__.py"
    config: dict[str, str] = job.get("config", {})
    secret_keys: list[str] = job.get("secret_keys", [])
    os.environ["PULUMI_CONFIG"] = json.dumps(config)
    os.environ["PULUMI_CONFIG_SECRET_KEYS"] = json.dumps(secret_keys)
    pulumi_config.set_all_config(dict(config), list(secret_keys))

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    cwd = os.getcwd()
    saved_path = list(sys.path)
    saved_argv = list(sys.argv)
    before_modules = set(sys.modules)
    error: str | None = None
    try:
        cloud = Cloud()
        mocks.set_mocks(cloud, project=project, stack=stack, preview=True, monitor=Monitor(cloud))
        os.chdir(directory)
        sys.path.insert(0, str(directory))
        sys.argv = [str(main)]
        if not main.is_file():
            raise FileNotFoundError(f"program entry point {main.name} not found in the project")

        def program() -> None:
            runpy.run_path(str(main), run_name="__main__")

        _sync_await(run_pulumi_func(program))
    except BaseException as exc:  # a program may raise anything, even SystemExit
        traceback.print_exception(exc, file=sys.stderr)
        error = _last_line(exc)
    finally:
        os.chdir(cwd)
        sys.path[:] = saved_path
        sys.argv = saved_argv
        # Program-local modules of one project must not leak into the next job.
        for name in set(sys.modules) - before_modules:
            origin = getattr(sys.modules[name], "__file__", None) or ""
            if origin.startswith(str(directory)):
                del sys.modules[name]
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.close()
        asyncio.set_event_loop(None)

    if error is not None:
        return {"project": project, "stack": stack, "ok": False, "error": error, "resources": []}
    captured.sort(key=lambda r: str(r["urn"]))
    return {"project": project, "stack": stack, "ok": True, "error": None, "resources": captured}


def run_batch(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    results = []
    for job in jobs:
        print(f"{START_MARK}{job['project']}/{job['stack']}", file=sys.stderr, flush=True)
        results.append(contextvars.Context().run(_run_job, job))
    return results


def main() -> int:
    request = json.loads(sys.stdin.read())
    # Keep the real stdout for the result; anything a program prints goes to stderr instead.
    result_fd = os.dup(1)
    os.dup2(2, 1)
    results = run_batch(list(request.get("jobs", [])))
    with os.fdopen(result_fd, "w", encoding="utf-8") as out:
        json.dump({"results": results}, out, sort_keys=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
