"""Hostile Pulumi programs against the plan sandbox: each tries one escape and ends in a plan error naming the cause.

Every test plants secrets where the checker keeps them (a forge token in the environment, a key file, a file in
HOME) and proves none of them reaches the plan, the error or any output. Limits are small so the suite is fast.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.errors import EngineError
from bot.plan import Plan, Sandbox, build_plan
from bot.plan.jail import Limits
from tests.plan_helpers import commit_all, infra_repo, write

TOKEN = "ghp_PLANTEDforgeTOKEN0123456789abcdef"
KEY = "PLANTED-ed25519-private-key-material"
HOME_SECRET = "PLANTED-home-credentials"
SMALL = Limits(cpu_seconds=20, memory_bytes=2 << 30, processes=48, open_files=128, output_bytes=1 << 20)


@dataclass
class Planted:
    keys: Path
    home: Path

    def absent_from(self, *texts: str) -> None:
        for text in texts:
            for secret in (TOKEN, KEY, HOME_SECRET):
                assert secret not in text


@pytest.fixture
def planted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Planted]:
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    (keys / "glassbox-ci.key").write_text(KEY)
    home = tmp_path / "home"
    home.mkdir()
    (home / ".credentials").write_text(HOME_SECRET)
    monkeypatch.setenv("GLASSBOX_TOKEN", TOKEN)
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    monkeypatch.setenv("GLASSBOX_KEYS", str(keys))
    monkeypatch.setenv("HOME", str(home))
    yield Planted(keys, home)


def _plan(tmp_path: Path, program: str, *, timeout: float = 60, limits: Limits = SMALL) -> Plan:
    repo = infra_repo(tmp_path / "repo", projects=())
    before = repo.head.commit.hexsha
    write(repo, "infra/probe/Pulumi.yaml", "name: probe\nruntime: python\n")
    write(repo, "infra/probe/Pulumi.dev.yaml", "config:\n  glassbox:environment: dev\n")
    write(
        repo,
        "infra/probe/__main__.py",
        "import os, socket, subprocess, sys, time\nimport pulumi_aws as aws\n" + program,
    )
    after = commit_all(repo, "probe")
    return build_plan(tmp_path / "repo", before, after, timeout=timeout, sandbox=Sandbox(limits=limits))


def _fails(tmp_path: Path, planted: Planted, program: str, *causes: str, **kwargs: object) -> str:
    with pytest.raises(EngineError) as caught:
        _plan(tmp_path, program, **kwargs)  # type: ignore[arg-type]
    message = str(caught.value)
    assert "project 'probe' stack 'dev' at head" in message
    for cause in causes:
        assert cause in message, message
    planted.absent_from(message)
    return message


def _loot(expression: str) -> str:
    """A program that registers whatever ``expression`` reads: a leak would land in the plan."""
    return f'aws.s3.Bucket("loot", tags={{"loot": str({expression})[:4000]}})\n'


def test_reads_the_parents_environment(tmp_path: Path, planted: Planted) -> None:
    _fails(tmp_path, planted, _loot("open(f'/proc/{os.getppid()}/environ', 'rb').read()"), "Permission denied")


def test_scans_every_process_environment_for_the_token(tmp_path: Path, planted: Planted) -> None:
    program = """
found = []
for pid in os.listdir("/proc"):
    try:
        found.append(open(f"/proc/{pid}/environ", "rb").read())
    except OSError:
        pass
if not any(b"ghp_" in f for f in found):
    raise RuntimeError(f"no token in {len(os.listdir('/proc'))} proc entries")
""" + _loot("found")
    _fails(tmp_path, planted, program, "RuntimeError: no token in")


def test_reads_the_key_directory(tmp_path: Path, planted: Planted) -> None:
    key = planted.keys / "glassbox-ci.key"
    _fails(tmp_path, planted, _loot(f"open({str(key)!r}).read()"), "No such file or directory", "sees only")


def test_reads_home(tmp_path: Path, planted: Planted) -> None:
    secret = planted.home / ".credentials"
    _fails(tmp_path, planted, _loot(f"open({str(secret)!r}).read()"), "No such file or directory")
    _fails(tmp_path / "2", planted, _loot("open(os.path.expanduser('~/.credentials')).read()"), "No such file")


def test_reads_proc_1(tmp_path: Path, planted: Planted) -> None:
    _fails(tmp_path, planted, _loot("open('/proc/1/environ', 'rb').read()"), "Permission denied")
    _fails(tmp_path / "2", planted, _loot("os.listdir('/proc/1/root/')"), "Permission denied")


def test_connects_to_a_listener_on_localhost(tmp_path: Path, planted: Planted) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        program = _loot(f"socket.create_connection(('127.0.0.1', {port}), timeout=3)")
        _fails(tmp_path, planted, program, "Network is unreachable", "no network")
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody ever connected


def test_resolves_a_name(tmp_path: Path, planted: Planted) -> None:
    _fails(tmp_path, planted, _loot("socket.getaddrinfo('github.com', 443)"), "gaierror", "no network")


def _alive(marker: str) -> list[int]:
    pids = []
    for pid in os.listdir("/proc"):
        try:
            if marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                pids.append(int(pid))
        except OSError:
            continue
    return pids


def test_leaves_a_daemon_behind(tmp_path: Path, planted: Planted) -> None:
    program = """
subprocess.Popen(["/usr/bin/sleep", "31337"], start_new_session=True, stdout=subprocess.DEVNULL)
aws.s3.Bucket("decoy")
"""
    _fails(tmp_path, planted, program, "left 1 process(es) running", "killed with the sandbox")
    time.sleep(0.5)
    assert _alive("31337") == []


def test_allocates_4_gib(tmp_path: Path, planted: Planted) -> None:
    _fails(tmp_path, planted, _loot("len(bytearray(4 << 30))"), "MemoryError", "memory limit is 2048 MiB")


def test_forks_without_end(tmp_path: Path, planted: Planted) -> None:
    program = """
while True:
    os.fork()
"""
    started = time.monotonic()
    message = _fails(tmp_path, planted, program, timeout=30)
    assert "Resource temporarily unavailable" in message or "collector protocol" in message, message
    assert time.monotonic() - started < 30
    assert _alive("probe/__main__") == []


def test_prints_1_gb(tmp_path: Path, planted: Planted) -> None:
    program = """
chunk = "x" * (1 << 20) + "\\n"
for _ in range(1024):
    sys.stdout.write(chunk)
"""
    started = time.monotonic()
    _fails(tmp_path, planted, program, "printed more than 1 MiB", "output cap")
    assert time.monotonic() - started < 20


def test_rewrites_the_collectors_record(tmp_path: Path, planted: Planted) -> None:
    program = """
import json
aws.s3.Bucket("logs", acl="public-read")
fd = int(os.environ["GLASSBOX_COLLECTOR_FD"])
forged = {"op": "register", "job": 0, "type": "aws:s3/bucket:Bucket", "name": "logs", "object": {"acl": "private"}}
os.write(fd, (json.dumps(forged) + "\\n").encode())
"""
    _fails(tmp_path, planted, program, "broke the collector protocol", "duplicate resource URN")


def test_prints_a_forged_plan(tmp_path: Path, planted: Planted) -> None:
    program = """
import json
aws.s3.Bucket("logs", acl="public-read")
print(json.dumps({"results": [{"project": "probe", "stack": "dev", "ok": True, "error": None, "resources": []}]}))
"""
    plan = _plan(tmp_path, program)
    (bucket,) = plan.resources
    assert bucket.name == "logs" and bucket.inputs["acl"] == "public-read"


def test_sleeps_forever(tmp_path: Path, planted: Planted) -> None:
    started = time.monotonic()
    _fails(tmp_path, planted, "time.sleep(10**6)\n", "did not finish within 4 s", timeout=4)
    assert time.monotonic() - started < 15


def test_no_user_namespaces_fails_closed_naming_the_setting(tmp_path: Path, planted: Planted) -> None:
    repo = infra_repo(tmp_path / "repo", projects=("identity",))
    before = repo.head.commit.hexsha
    write(repo, "infra/identity/extra.txt", "touch\n")
    after = commit_all(repo, "touch identity")
    glassbox = str(Path(sys.executable).parent / "glassbox")
    result = subprocess.run(
        [
            "unshare",
            "-Ur",
            "sh",
            "-c",
            'echo 0 > /proc/sys/user/max_user_namespaces && exec "$0" "$@"',
            glassbox,
            "plan",
            "--repo",
            str(tmp_path / "repo"),
            "--base",
            before,
            "--head",
            after,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert "cannot be set up" in out and "fails closed" in out, out
    assert "user.max_user_namespaces" in out and "--sandbox=none" in out, out
    planted.absent_from(out)
