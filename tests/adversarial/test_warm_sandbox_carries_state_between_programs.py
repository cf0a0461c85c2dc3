"""A PR's program tries to leave something behind in its warm sandbox for the next PR's program.

The pool (bot.plan.pool) hands each batch a jail started ahead of time. The first PR's program leaves what it
can: a file in /tmp and in HOME, a daemon, an environment variable, a patched module in ``sys.modules`` and a
new one, a write into its tree, a file beside its tree. The next PR's program, planned through the same pool
(its jail started after the first was consumed), reports what it sees as tags of a bucket: none of it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from bot.errors import EngineError
from bot.plan import Plan, Sandbox, SandboxPool, plan_change
from bot.plan.jail import Limits
from tests.plan_helpers import commit_all, infra_repo, write

pytestmark = pytest.mark.slow

SMALL = Limits(cpu_seconds=20, processes=48, open_files=128, output_bytes=1 << 20)

LEAVE = """
import subprocess, types
import pulumi_aws
for path in ("/tmp/left-behind", os.path.expanduser("~/.left-behind")):
    open(path, "w").write("from the first PR")
try:
    open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "left-behind"), "w").write("x")
except OSError:
    pass
try:
    open(os.path.join(os.path.dirname(os.path.dirname(os.getcwd())), "left-behind"), "w").write("x")
except OSError:
    pass
os.environ["LEFT_BEHIND"] = "from the first PR"
pulumi_aws.LEFT_BEHIND = "from the first PR"
aws.s3.Bucket.__init__.__globals__["LEFT_BEHIND"] = "from the first PR"
sys.modules["left_behind"] = types.ModuleType("left_behind")
import json
json.dumps = lambda *a, **k: "{}"
subprocess.Popen(["/usr/bin/sleep", "31339"], start_new_session=True, stdout=subprocess.DEVNULL)
aws.s3.Bucket("decoy")
"""

LOOK = """
import json, pulumi_aws
seen = {
    "tmp": [n for n in os.listdir("/tmp") if "left" in n],
    "home": os.path.exists(os.path.expanduser("~/.left-behind")),
    "tree": os.path.exists(os.path.join(os.path.dirname(os.path.abspath(__file__)), "left-behind")),
    "env": os.environ.get("LEFT_BEHIND"),
    "module": getattr(pulumi_aws, "LEFT_BEHIND", None),
    "globals": aws.s3.Bucket.__init__.__globals__.get("LEFT_BEHIND"),
    "sys.modules": "left_behind" in sys.modules,
    "json": json.dumps([1]),
    "processes": sorted(p for p in os.listdir("/proc") if p.isdigit()),
}
aws.s3.Bucket("report", tags={k: str(v) for k, v in seen.items()})
"""


def _alive(marker: bytes) -> list[int]:
    pids = []
    for pid in os.listdir("/proc"):
        try:
            if marker in Path(f"/proc/{pid}/cmdline").read_bytes():
                pids.append(int(pid))
        except OSError:
            continue
    return pids


def _plan(root: Path, program: str, pool: SandboxPool) -> Plan:
    repo = infra_repo(root, projects=())
    before = repo.head.commit.hexsha
    write(repo, "infra/probe/Pulumi.yaml", "name: probe\nruntime: python\n")
    write(repo, "infra/probe/Pulumi.dev.yaml", "config:\n  glassbox:environment: dev\n")
    write(repo, "infra/probe/__main__.py", "import os, sys\nimport pulumi_aws as aws\n" + program)
    after = commit_all(repo, "probe")
    return plan_change(root, before, after, timeout=60, sandbox=pool.sandbox, pool=pool).plan


def test_the_next_prs_program_sees_nothing_the_previous_one_left(tmp_path: Path) -> None:
    with SandboxPool(Sandbox(limits=SMALL), size=1) as pool:
        # Its patched json.dumps breaks its own reports (a protocol error) and its daemon fails the plan too.
        with pytest.raises(EngineError, match="project 'probe' stack 'dev' at head"):
            _plan(tmp_path / "pr-1", LEAVE, pool)
        assert pool.taken == 1
        time.sleep(0.5)
        assert _alive(b"31339") == []
        (report,) = _plan(tmp_path / "pr-2", LOOK, pool).resources
        assert pool.taken == 2  # the second PR ran warm too, in the replacement
    tags = report.inputs["tags"]
    assert tags == {
        "tmp": "[]",
        "home": "False",
        "tree": "False",
        "env": "None",
        "module": "None",
        "globals": "None",
        "sys.modules": "False",
        "json": "[1]",
        "processes": "['1', '2']",  # its reaper and itself: no daemon from before
    }
