"""The plan sandbox's job loop runs the SDK's monitor calls on its own thread, and nothing else there.

The SDK sends each call to its monitor through the loop's default executor (``wrap_with_context``); in the
sandbox the monitor is the process's own mock, so those calls run in line (:class:`SdkCallsInline`). A program's
own work sent to that executor still runs on a worker thread: work that waits on the loop must still finish.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from pulumi.runtime._context import wrap_with_context

from bot.plan import build_plan
from bot.plan.sandbox import SdkCallsInline
from tests.plan_helpers import one_program


def test_an_sdk_monitor_call_runs_on_the_callers_thread() -> None:
    with SdkCallsInline() as executor:
        future = executor.submit(wrap_with_context(threading.get_ident))  # type: ignore[no-untyped-call]
        assert future.done()
        assert future.result() == threading.get_ident()


def test_a_programs_own_work_runs_on_a_worker_thread() -> None:
    with SdkCallsInline() as executor:
        assert executor.submit(threading.get_ident).result(timeout=10) != threading.get_ident()


def test_an_sdk_call_that_raises_hands_its_exception_to_the_awaiting_side() -> None:
    def refuse() -> None:
        raise ValueError("duplicate resource URN urn:x")

    with SdkCallsInline() as executor:
        future = executor.submit(wrap_with_context(refuse))  # type: ignore[no-untyped-call]
        with pytest.raises(ValueError, match="duplicate resource URN"):
            future.result()


WAITS_ON_THE_LOOP = """import asyncio

import pulumi
import pulumi_aws as aws


async def name_from_the_loop():
    await asyncio.sleep(0)
    return "acme-from-the-loop"


def blocking(loop):
    # a program's own blocking work, waiting on the event loop from a worker thread
    return asyncio.run_coroutine_threadsafe(name_from_the_loop(), loop).result(timeout=20)


async def bucket_name():
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, blocking, loop)


aws.s3.Bucket("logs", bucket=pulumi.Output.from_input(asyncio.ensure_future(bucket_name())))
"""


def test_a_program_whose_own_executor_work_waits_on_the_loop_still_plans(tmp_path: Path) -> None:
    before, after = one_program(tmp_path, WAITS_ON_THE_LOOP)

    plan = build_plan(tmp_path, before, after, timeout=60)

    (bucket,) = plan.resources
    assert bucket.inputs["bucket"] == "acme-from-the-loop"
