"""The program side of the plan sandbox: runs Pulumi programs under the SDK's mock runtime, reporting each
registration to the trusted collector.

Run as ``python -m bot.plan.sandbox`` inside the sandbox (:mod:`bot.plan.jail`) by :mod:`bot.plan.runner`, in a
clean environment, with a batch of jobs on stdin (one per project and stack, all at one git ref)::

    {"jobs": [{"project": "data", "stack": "prod", "directory": "/tmp/.../infra/data",
               "main": "__main__.py", "config": {"data:x": "1"}, "secret_keys": [], "region": "eu-west-1"}]}

Everything here runs beside PR code and is as untrusted as it: it only *reports* (``start``, ``register``,
``end`` frames on the pipe named by ``GLASSBOX_COLLECTOR_FD``, see :mod:`bot.plan.collector`); the record is
built by the collector in the parent. Its stdout and stderr are the program's log, capped and never parsed.

The mock runtime is the documented stand-in for the cloud (``pulumi.runtime.set_mocks``): no provider
plugin, no engine, no credentials. glassbox plays the provider (:mod:`bot.plan.mockcloud`). Jobs share one
interpreter so that ``pulumi_aws`` is imported once per batch; each job runs in a fresh ``contextvars.Context``
(the SDK keeps its settings, config and root stack in context variables) with its own event loop.

Warm (``python -m bot.plan.sandbox --warm IDLE_SECONDS``, started by :mod:`bot.plan.pool` before any job exists):
the interpreter first imports what every batch imports (:func:`preload`: the SDK, its mock runtime and the
``pulumi_aws`` modules programs commonly use; no program, no PR data, nothing that depends on a job), sends one
``ready`` frame, then waits for its batch on stdin exactly as a cold run reads it. No batch within
``IDLE_SECONDS``, or stdin closed without one (its parent is gone), and it exits without running anything. The
``ready`` frame is read by the pool, not the collector, and only tells it the imports are done: nothing is
trusted on its word.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import gc
import json
import os
import runpy
import select
import sys
import threading
import traceback
from pathlib import Path
from typing import Any

from bot.plan.collector import STACK_TYPE, frame, normalize
from bot.plan.mockcloud import call_result, mock_id, mock_outputs, urn_type

COLLECTOR_FD_VARIABLE = "GLASSBOX_COLLECTOR_FD"
WARM_FLAG = "--warm"
# pulumi_aws loads each submodule on first use (≈10–400 ms each): a warm sandbox loads those programs commonly use.
PRELOADED_AWS_MODULES = (
    "s3",
    "ec2",
    "iam",
    "kms",
    "rds",
    "cloudwatch",
    "lambda_",
    "dynamodb",
    "sns",
    "sqs",
    "ecs",
    "eks",
    "lb",
    "route53",
    "secretsmanager",
    "ssm",
    "acm",
    "ecr",
    "efs",
    "cloudtrail",
)
_write_lock = threading.Lock()


def report(data: bytes) -> None:
    """Write one frame to the collector, whole."""
    fd = int(os.environ[COLLECTOR_FD_VARIABLE])
    with _write_lock:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]


def _last_line(exc: BaseException) -> str:
    lines = [line for line in traceback.format_exception_only(exc) if line.strip()]
    return lines[-1].strip() if lines else type(exc).__name__


def outputs_struct(state: dict[str, Any]) -> Any:
    """The mock cloud's outputs as the engine returns them: a protobuf ``Struct``, top-level ``None`` dropped.

    What ``pulumi.runtime.rpc.serialize_properties`` makes of plain JSON values (the state is built from the
    registration's own JSON object and the mock cloud's strings), without the SDK's coroutine and a pass of the
    event loop for each registration."""
    from google.protobuf import struct_pb2  # type: ignore[import-untyped]

    proto = struct_pb2.Struct()
    proto.update({k: v for k, v in state.items() if v is not None})
    return proto


def skip_source_positions() -> None:
    """Register resources without the SDK's source positions: it walks the whole Python stack for every resource
    (≈10% of a large program's run) to tell the engine where it was declared, and the collector keeps none of it."""
    from pulumi.runtime import resource
    from pulumi.runtime.proto import source_pb2

    resource._get_stack_trace = source_pb2.StackTrace


def _memoized(unwrap: Any) -> Any:
    """``unwrap`` (a pure function of a type annotation) answered once per annotation."""
    answers: dict[Any, Any] = {}

    def memoized(annotation: Any) -> Any:
        try:
            return answers[annotation]
        except KeyError:
            answer = answers[annotation] = unwrap(annotation)
            return answer
        except TypeError:  # an unhashable annotation: asked afresh, as before
            return unwrap(annotation)

    return memoized


class SdkCallsInline(concurrent.futures.ThreadPoolExecutor):
    """A job loop's default executor: the SDK's calls to the monitor run on the loop's own thread.

    The SDK hands every monitor call (register, read, invoke, outputs, features) to ``run_in_executor`` wrapped by
    its ``wrap_with_context``, because a real monitor is a gRPC server that blocks. The monitor here is this
    process's own mock: each call returns at once, and the thread hop per registration (the work queued, the GIL
    handed over and back) is all it would cost. Those calls, and only those, run in line, so
    their order is the order the SDK issued them. Anything else a program sends to the default executor runs on
    a worker thread as before: a program whose own work waits on the loop still finishes. A call that raises gives
    its future the exception, as a worker would.
    """

    def __init__(self) -> None:
        super().__init__()
        self._sdk_call = _sdk_call_name()

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        if (getattr(fn, "__qualname__", None), getattr(fn, "__module__", None)) != self._sdk_call:
            return super().submit(fn, *args, **kwargs)
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:  # as the pool's worker does: the awaiting coroutine receives it
            future.set_exception(exc)
        else:
            future.set_result(result)
        return future


def _sdk_call_name() -> tuple[str, str]:
    """How the SDK's ``wrap_with_context`` names what it returns (asked of the SDK, not written down here)."""
    from pulumi.runtime import _context

    wrapped = _context.wrap_with_context(lambda: None)  # type: ignore[no-untyped-call]
    return wrapped.__qualname__, wrapped.__module__


_LIGHTENED: set[str] = set()


def lighten_sdk() -> None:
    """Two costs the SDK pays per property and per settings read, removed without changing what it computes.

    ``unwrap_type`` and ``unwrap_optional_type`` take ``Optional[Input[T]]`` and the like apart by reflection for
    every property of every registration and every output it resolves (≈8% of a large program's run); an
    annotation's answer never changes, so each is worked out once. The SDK's context-variable settings read
    their variable twice per access (≈7%); once gives the same value."""
    from pulumi import _types, _utils

    for name in ("unwrap_type", "unwrap_optional_type"):
        if name not in _LIGHTENED:  # once per interpreter, whatever the number of jobs
            _LIGHTENED.add(name)
            setattr(_types, name, _memoized(getattr(_types, name)))

    def get(self: Any, obj: Any, _: Any) -> Any:
        value = self.fget()
        if obj is None or isinstance(value, dict):
            return self
        return value

    setattr(_utils.ContextProperty, "__get__", get)  # noqa: B010  (a class attribute the SDK defines)


def _run_job(index: int, job: dict[str, Any]) -> None:
    # Imported per job (cached after the first): a module-level import would load Pulumi in the parent too.
    from google.protobuf import json_format
    from pulumi.runtime import config as pulumi_config
    from pulumi.runtime import mocks
    from pulumi.runtime.proto import resource_pb2
    from pulumi.runtime.stack import run_pulumi_func
    from pulumi.runtime.sync_await import _sync_await

    skip_source_positions()
    lighten_sdk()

    project: str = job["project"]
    stack: str = job["stack"]
    region: str = job.get("region") or "us-east-1"

    class Cloud(mocks.Mocks):
        """Provider functions; resources are answered by the monitor below, which knows each URN."""

        def new_resource(self, args: Any) -> tuple[str, dict[str, Any]]:
            # Only reached for reads (Resource.get): give back what was asked for, deterministically.
            urn = f"urn:pulumi:{stack}::{project}::{args.typ}::{args.name}"
            return args.resource_id or mock_id(urn, args.typ, args.inputs), dict(args.inputs)

        def call(self, args: Any) -> tuple[dict[str, Any], list[tuple[str, str]]]:
            return call_result(args.token, normalize(dict(args.args)), region), []

    claim_lock = threading.Lock()
    claimed: set[str] = set()

    class Monitor(mocks.MockMonitor):
        def make_urn(self, parent: str, type_: str, name: str) -> str:
            # The engine does not qualify a type by the root stack's type; match real URNs.
            if parent and urn_type(parent) == STACK_TYPE:
                parent = ""
            return str(super().make_urn(parent, type_, name))

        def RegisterResource(self, request: Any) -> Any:  # the gRPC method name
            urn = self.make_urn(request.parent, request.type, request.name)
            if request.type == STACK_TYPE:
                return resource_pb2.RegisterResourceResponse(urn=urn)
            with claim_lock:
                # The SDK's registrations run on the loop's thread (SdkCallsInline), a program's own threads may
                # register too: claim the URN atomically, so the second of two resources under one URN is always
                # the one refused, here, before anything is reported.
                if urn in claimed:
                    # The engine refuses this too; a plan with two resources under one URN could not be diffed.
                    raise ValueError(f"duplicate resource URN {urn}")
                claimed.add(urn)
            raw = json_format.MessageToDict(request.object)
            rid = mock_id(urn, request.type, raw)
            state = mock_outputs(request.type, urn, raw, region)
            report(
                frame(
                    "register",
                    job=index,
                    type=request.type,
                    name=request.name,
                    parent=request.parent,
                    provider=request.provider,
                    protect=bool(request.protect),
                    dependencies=list(request.dependencies),
                    object=raw,
                )
            )
            proto = outputs_struct(state)
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
    loop.set_default_executor(SdkCallsInline())
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

    report(frame("end", job=index, error=error))


def preload() -> None:
    """Import what every batch imports, before the batch exists: the same modules, from the same read-only
    site-packages, that the first job would import; nothing here reads a job, the tree or the environment."""
    import pulumi  # noqa: F401
    import pulumi_aws
    from google.protobuf import json_format  # noqa: F401
    from pulumi.runtime import config, mocks, rpc, stack, sync_await  # noqa: F401
    from pulumi.runtime.proto import resource_pb2  # noqa: F401

    for name in PRELOADED_AWS_MODULES:
        # Any attribute access other than the introspection ones (``__dict__``, ``__spec__``...) runs the module.
        getattr(getattr(pulumi_aws, name), "__all__", None)


# A program allocates tens of thousands of objects per hundred resources (outputs, futures, tasks), nearly all
# alive until it ends: at the default threshold (700) the collector scans them again and again, about 40% of a
# 1,000-resource run (and a third of importing the SDK). Collected 70 times less often, memory stays bounded by
# RLIMIT_AS as before.
GC_THRESHOLD = (50_000, 20, 100)


def run_batch(text: str) -> int:
    request = json.loads(text)
    gc.freeze()  # what is imported by now (the SDK, in a warm sandbox) is never garbage: stop scanning it
    gc.set_threshold(*GC_THRESHOLD)
    for index, job in enumerate(request.get("jobs", [])):
        report(frame("start", job=index))
        contextvars.Context().run(_run_job, index, job)
    return 0


def warm(idle_seconds: float) -> int:
    """Preload, say so, then wait at most ``idle_seconds`` for the one batch this interpreter will run."""
    preload()
    report(frame("ready"))
    readable, _, _ = select.select([sys.stdin], [], [], idle_seconds)
    if not readable:
        return 0  # idle for too long: the pool never hands out a sandbox this old
    text = sys.stdin.read()
    if not text:
        return 0  # stdin closed without a batch: the parent is gone
    return run_batch(text)


def main(argv: list[str] | None = None) -> int:
    gc.set_threshold(*GC_THRESHOLD)  # from the first import on: loading pulumi_aws is a third faster
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == [WARM_FLAG]:
        return warm(float(args[1]))
    return run_batch(sys.stdin.read())


if __name__ == "__main__":
    status = main()
    # Every job has ended and said so; tearing down an interpreter holding pulumi_aws takes ≈0.5 s of module
    # finalisation that nobody waits for: flush the log and leave. PID 1 still reports the exit and leftovers.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
