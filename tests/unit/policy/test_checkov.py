"""Tests for bot.policy.checkov: the warm checkov worker, glassbox's checkov policy and the IAM memo.

Tests marked ``slow`` start the worker under the checkov tool environment's python; they are skipped (with
the command to create it) when that environment is missing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.errors import EngineError
from bot.policy import checkov as ck
from bot.policy.checkov import CheckovPolicy, CheckovWorker, load_policy, to_report, worker_environment
from bot.policy.checkov_worker import Lru, _memo_by_actions

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "checkov"


def _tool_python() -> Path | None:
    try:
        return ck.checkov_python()
    except EngineError:
        return None


needs_checkov = pytest.mark.skipif(
    _tool_python() is None, reason="no checkov tool environment: run `make .tools/checkov/.installed`"
)


def load_fixture(name: str) -> dict[str, Any]:
    data = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def plan_of(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "format_version": "1.2",
        "terraform_version": "1.9.8",
        "planned_values": {"root_module": {"resources": resources}},
    }


def iam_resource(kind: str, name: str, document: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {"name": name, "policy": json.dumps(document)}
    if kind == "aws_iam_role_policy":
        values["role"] = "app"
    elif kind == "aws_iam_user_policy":
        values["user"] = "ci"
    elif kind == "aws_iam_group_policy":
        values["group"] = "ops"
    return {"address": f"{kind}.{name}", "mode": "managed", "type": kind, "name": name, "values": values}


# Statement shapes that exercise cloudsplaining's paths: wildcards, service wildcards, Deny carve-outs,
# NotAction, conditions, resource constraints, odd case, unknown services, privilege-escalation pairs.
_SHAPES: list[list[dict[str, Any]]] = [
    [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
    [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
    [{"Effect": "Allow", "Action": ["iam:*", "sts:AssumeRole"], "Resource": "*"}],
    [
        {
            "Effect": "Allow",
            "Action": ["ec2:*"],
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:RequestedRegion": "eu-west-1"}},
        }
    ],
    [
        {"Effect": "Allow", "Action": "*", "Resource": "*"},
        {"Effect": "Deny", "Action": ["iam:*", "kms:*"], "Resource": "*"},
    ],
    [{"Effect": "Allow", "NotAction": ["iam:*"], "Resource": "*"}],
    [{"Effect": "Allow", "Action": ["s3:Get*", "s3:List*"], "Resource": "arn:aws:s3:::glassbox-data/*"}],
    [{"Effect": "Allow", "Action": ["S3:getobject", "kms:decrypt"], "Resource": "*"}],
    [{"Effect": "Allow", "Action": ["lambda:*", "logs:*", "dynamodb:*"], "Resource": "*"}],
    [{"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*"}],
    [{"Effect": "Allow", "Action": ["notaservice:DoThing"], "Resource": "*"}],
    [{"Effect": "Allow", "Action": ["iam:PassRole", "ec2:RunInstances"], "Resource": "*"}],
]
_KINDS = ["aws_iam_policy", "aws_iam_role_policy", "aws_iam_user_policy", "aws_iam_group_policy"]


def iam_heavy_plan(count: int = 36) -> dict[str, Any]:
    """IAM policies over the shapes above; half repeat a document exactly, half differ only by Sid."""
    resources = []
    for i in range(count):
        statements = [dict(s) for s in _SHAPES[i % len(_SHAPES)]]
        if i % 2:
            statements[0]["Sid"] = f"Grant{i}"
        document = {"Version": "2012-10-17", "Statement": statements}
        resources.append(iam_resource(_KINDS[i % len(_KINDS)], f"p{i}", document))
    return plan_of(resources)


def failed_ids(report: ck.CheckovReport) -> dict[tuple[str, str], str]:
    return {(f.check_id, f.resource_address): f.severity for f in report.failed}


@pytest.fixture(scope="module")
def worker() -> Iterator[CheckovWorker]:
    with CheckovWorker(timeout=60) as w:
        yield w


# --------------------------------------------------------------------------------------------------
# without a worker


def test_missing_checkov_python_is_a_clear_engine_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(ck.PYTHON_ENV_VAR, str(tmp_path / "no-such-python"))
    with CheckovWorker() as w, pytest.raises(EngineError) as info:
        w.scan_plan(load_fixture("bad_plan.json"))
    assert info.value.engine == "checkov"
    assert "make .tools/checkov/.installed" in info.value.message
    assert str(tmp_path / "no-such-python") in info.value.message
    assert w.pid is None


def test_worker_environment_carries_no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "GITHUB_TOKEN",
        "BC_API_KEY",
        "PULUMI_ACCESS_TOKEN",
        "HTTPS_PROXY",
        "PYTHONPATH",
    ):
        monkeypatch.setenv(name, "secret-value")
    env = worker_environment()
    assert "secret-value" not in env.values()
    assert set(env) <= set(ck._PASSED_ENV) | set(ck._OFFLINE_ENV)
    assert env["BC_SKIP_MAPPING"] == "TRUE"
    assert env["CKV_SKIP_PACKAGE_UPDATE_CHECK"] == "true"


def test_network_guard_refuses_connections_and_lookups() -> None:
    # In a child process: the guard patches the socket module for the whole interpreter.
    code = (
        "import socket\n"
        "from bot.policy.checkov_worker import NetworkBlocked, _forbid_network, network_refusals\n"
        "_forbid_network()\n"
        "for attempt in (lambda: socket.create_connection(('127.0.0.1', 9)),\n"
        "                lambda: socket.getaddrinfo('pypi.org', 443),\n"
        "                lambda: socket.socket().connect(('10.0.0.1', 443))):\n"
        "    try:\n"
        "        attempt()\n"
        "    except NetworkBlocked:\n"
        "        continue\n"
        "    raise SystemExit('not blocked')\n"
        "a, b = socket.socketpair()\n"
        "print(len(network_refusals))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True)
    assert out.stdout.strip() == "3"


def test_memo_wrapper_hands_out_fresh_lists() -> None:
    calls: list[tuple[str, ...]] = []

    def upper(actions: list[str], suffix: str) -> list[str]:
        calls.append(tuple(actions))
        return [a.upper() + suffix for a in actions]

    memo = _memo_by_actions(upper, Lru(16))
    first = memo(["s3:getobject"], "!")
    first.append("mutated")  # callers sort and extend results in place
    assert memo(["s3:getobject"], "!") == ["S3:GETOBJECT!"]
    assert calls == [("s3:getobject",)]
    with pytest.raises(TypeError):  # odd input falls through to the function itself
        memo(None, "!")


def test_policy_from_the_pack_has_severities_and_justified_skips() -> None:
    policy = load_policy()
    assert policy.severity("CKV_AWS_20") == "critical"  # public-read ACL
    assert policy.severity("CKV_AWS_24") == "high"  # ssh from anywhere
    assert policy.severity("CKV_AWS_999999") == policy.default_severity == "medium"
    assert policy.skipped_ids == sorted(s.id for s in policy.skip_checks)
    assert all(len(s.justification) > 40 for s in policy.skip_checks)
    # Skipped checks keep a severity, so un-skipping one never silently falls back to the default.
    assert set(policy.skipped_ids) <= set(policy.severities)


def test_policy_with_an_unknown_severity_is_refused(tmp_path: Path) -> None:
    (tmp_path / "severities.yaml").write_text("schema_version: 1\ndefault: medium\nchecks: {CKV_AWS_20: urgent}\n")
    (tmp_path / "config.yaml").write_text("schema_version: 1\nskip_checks: []\n")
    with pytest.raises(EngineError, match="invalid checkov policy"):
        load_policy(tmp_path)


def test_report_counts_must_match_findings() -> None:
    result = {"version": "3.3.30", "findings": [], "passed_count": 1, "failed_count": 0}
    with pytest.raises(EngineError, match="counts"):
        to_report(result, CheckovPolicy())


# --------------------------------------------------------------------------------------------------
# with the worker


@pytest.mark.slow
@needs_checkov
def test_bad_plan_trips_the_expected_checks(worker: CheckovWorker) -> None:
    report = worker.scan_plan(load_fixture("bad_plan.json"))
    failed = failed_ids(report)
    expected = {
        ("CKV_AWS_20", "aws_s3_bucket.public"): "critical",
        ("CKV2_AWS_6", "aws_s3_bucket.public"): "high",
        ("CKV_AWS_24", "aws_security_group.open_ssh"): "high",
        ("CKV_AWS_62", "aws_iam_policy.admin"): "critical",
        ("CKV_AWS_63", "aws_iam_policy.admin"): "critical",
        ("CKV_AWS_286", "aws_iam_policy.admin"): "critical",
        ("CKV_AWS_290", "aws_iam_policy.admin"): "high",
    }
    assert expected.items() <= failed.items()
    assert report.version == "3.3.30" == worker.checkov_version
    assert report.resource_count == 3
    assert report.failed_count == len(report.failed) and report.passed_count > 0
    assert {f.file for f in report.findings} == {"plan.json"}


@pytest.mark.slow
@needs_checkov
def test_good_plan_trips_nothing(worker: CheckovWorker) -> None:
    report = worker.scan_plan(load_fixture("good_plan.json"))
    assert report.failed == []
    assert report.passed_count >= 30
    assert report.resource_count == 11


@pytest.mark.slow
@needs_checkov
def test_skipped_checks_are_not_run(worker: CheckovWorker) -> None:
    report = worker.scan_plan(load_fixture("bad_plan.json"))
    skipped = set(worker.policy.skipped_ids)
    assert skipped and report.skipped_checks == sorted(skipped)
    assert not skipped & {f.check_id for f in report.findings}


@pytest.mark.slow
@needs_checkov
def test_severities_come_from_our_map(worker: CheckovWorker) -> None:
    answer = worker.request("scan_plan", plan=load_fixture("bad_plan.json"), skip_checks=[])
    policy = CheckovPolicy(default_severity="high", severities={"CKV_AWS_20": "low"})
    report = to_report(answer["result"], policy)
    by_id = {f.check_id: f.severity for f in report.failed}
    assert by_id["CKV_AWS_20"] == "low"
    assert by_id["CKV_AWS_24"] == "high"  # not in this map: the default
    assert by_id["CKV_AWS_144"] == "high"  # not skipped either: no skip list was sent


@pytest.mark.slow
@needs_checkov
def test_worker_stays_warm(worker: CheckovWorker) -> None:
    pid = worker.ping()
    starts = worker.starts
    first = worker.scan_plan(load_fixture("bad_plan.json"))
    assert worker.checks()  # loads registries again: must not duplicate checks in later scans
    second = worker.scan_plan(load_fixture("bad_plan.json"))
    assert worker.pid == pid and worker.starts == starts
    assert first == second


@pytest.mark.slow
@needs_checkov
def test_bad_requests_are_answered_and_the_worker_survives(worker: CheckovWorker) -> None:
    pid = worker.ping()
    with pytest.raises(EngineError, match="unknown op"):
        worker.request("explode")
    with pytest.raises(EngineError, match="terraform_version"):
        worker.scan_plan({"planned_values": {}})
    no_address = plan_of([{"type": "aws_s3_bucket", "name": "x", "mode": "managed", "values": {}}])
    with pytest.raises(EngineError, match="no 'address'"):
        worker.scan_plan(no_address)
    with pytest.raises(EngineError, match="outside root"):
        worker.scan_files(FIXTURES / "iac", ["../bad_plan.json"])
    with pytest.raises(EngineError, match="skip_checks"):
        worker.request("scan_plan", plan=load_fixture("bad_plan.json"), skip_checks=["HIGH"])
    assert worker.ping() == pid
    assert worker.scan_plan(load_fixture("bad_plan.json")).failed_count > 0


@pytest.mark.slow
@needs_checkov
def test_raw_iac_files_let_checkov_pick_frameworks(worker: CheckovWorker) -> None:
    report = worker.scan_files(FIXTURES / "iac", ["main.tf", "template.yaml", "pod.yaml", "Dockerfile"])
    failed = {(f.check_id, f.file): f.severity for f in report.failed}
    assert failed[("CKV_AWS_24", "main.tf")] == "high"
    assert failed[("CKV_AWS_20", "template.yaml")] == "critical"
    assert failed[("CKV_K8S_16", "pod.yaml")] == "critical"
    assert ("CKV_DOCKER_7", "Dockerfile") in failed
    # Repo-relative names only, never the absolute path of the checkout.
    assert not any(str(FIXTURES) in f.resource_address or f.file.startswith("/") for f in report.findings)


@pytest.mark.slow
@needs_checkov
def test_a_changed_policy_at_the_same_address_is_rescanned(worker: CheckovWorker) -> None:
    admin = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    scoped = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::glassbox-data/*"}],
    }
    before = worker.scan_plan(plan_of([iam_resource("aws_iam_policy", "app", admin)]))
    after = worker.scan_plan(plan_of([iam_resource("aws_iam_policy", "app", scoped)]))
    assert ("CKV_AWS_62", "aws_iam_policy.app") in failed_ids(before)
    assert failed_ids(after) == {}


@pytest.mark.slow
@needs_checkov
def test_iam_memo_gives_identical_findings(worker: CheckovWorker) -> None:
    plan = iam_heavy_plan()
    memoized = worker.scan_plan(plan)
    again = worker.scan_plan(plan)  # now served from warm caches
    with CheckovWorker(iam_memo=False, timeout=120) as plain_worker:
        plain = plain_worker.scan_plan(plan)
        assert plain_worker.stats()["iam_memo"] is None
    assert memoized.failed_count > 100
    assert memoized == plain == again
    stats = worker.stats()["iam_memo"]
    assert stats["remove_wildcard_only_actions"]["hits"] > 0
    assert stats["policy_document"]["hits"] > 0


@pytest.mark.slow
@needs_checkov
def test_severity_map_covers_every_check_on_our_aws_types(worker: CheckovWorker) -> None:
    prefixes = (
        "aws_s3_", "aws_db_", "aws_rds_", "aws_security_group", "aws_default_security_group",
        "aws_vpc", "aws_default_vpc", "aws_subnet", "aws_network_acl", "aws_flow_log",
        "aws_iam_", "aws_kms_", "aws_cloudwatch_log_group",
    )  # fmt: skip
    policy = worker.policy
    relevant = [c for c in worker.checks() if any(t.startswith(prefixes) for t in c["resource_types"])]
    assert len(relevant) > 100
    missing = sorted(c["id"] for c in relevant if c["id"] not in policy.severities)
    assert missing == [], f"give these checks a severity in policy-pack/checkov/severities.yaml: {missing}"


@pytest.mark.slow
@needs_checkov
def test_checkov_never_tried_the_network(worker: CheckovWorker) -> None:
    worker.scan_plan(load_fixture("bad_plan.json"))
    worker.scan_files(FIXTURES / "iac", ["main.tf", "template.yaml", "pod.yaml", "Dockerfile"])
    assert worker.stats()["network_refusals"] == []


@pytest.mark.slow
@needs_checkov
def test_a_killed_worker_is_restarted_and_a_stuck_one_times_out() -> None:
    with CheckovWorker(timeout=60) as w:
        first = w.ping()
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while w.pid is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert w.scan_plan(load_fixture("bad_plan.json")).failed_count > 0
        second = w.pid
        assert second is not None and second != first and w.starts == 2

        # Dies while a request is in flight: an EngineError naming the exit, then a fresh worker.
        os.kill(second, signal.SIGSTOP)
        threading.Timer(0.3, os.kill, (second, signal.SIGKILL)).start()
        with pytest.raises(EngineError, match="exited"):
            w.ping()

        third = w.ping()
        os.kill(third, signal.SIGSTOP)  # hangs: the request times out and the worker is stopped
        with pytest.raises(EngineError, match="timed out"):
            w.request("ping", timeout=0.5)
        assert w.pid is None
        assert w.ping() not in (first, second, third) and w.starts == 4


@pytest.mark.slow
@needs_checkov
def test_protocol_stdout_carries_only_json_lines() -> None:
    python = _tool_python()
    assert python is not None
    not_action = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}]}
    bad_policy = iam_resource("aws_iam_policy", "broken", {})
    bad_policy["values"]["policy"] = "{not json"
    plan = plan_of([iam_resource("aws_iam_policy", "nota", not_action), bad_policy])
    lines = [
        json.dumps({"op": "ping", "id": 1}),
        "this is not json",
        json.dumps([1, 2]),
        json.dumps({"op": "nope", "id": 3}),
        json.dumps({"op": "scan_plan", "id": 4, "plan": plan}),
        json.dumps({"op": "scan_plan", "id": 5, "plan": {"terraform_version": "1"}}),
        json.dumps({"op": "ping", "id": 6}),
    ]
    proc = subprocess.run(
        [str(python), "-I", str(ck.WORKER_SCRIPT)],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        env=worker_environment(),
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    answers = [json.loads(line) for line in proc.stdout.splitlines()]  # every line is JSON
    assert [a["id"] for a in answers] == [1, None, None, 3, 4, 5, 6]
    assert [("error" in a) for a in answers] == [False, True, True, True, False, True, False]
    assert answers[4]["result"]["resource_count"] == 2


@pytest.mark.slow
@needs_checkov
def test_child_modules_count_and_data_sources_do_not(worker: CheckovWorker) -> None:
    bad = load_fixture("bad_plan.json")
    bucket = dict(bad["planned_values"]["root_module"]["resources"][0], address="module.site.aws_s3_bucket.public")
    caller = {"address": "data.aws_caller_identity.me", "mode": "data", "type": "aws_caller_identity", "name": "me"}
    bad["planned_values"]["root_module"]["resources"].append(caller)
    bad["planned_values"]["root_module"]["child_modules"] = [{"address": "module.site", "resources": [bucket]}]
    report = worker.scan_plan(bad)
    assert report.resource_count == 4
    assert ("CKV_AWS_20", "module.site.aws_s3_bucket.public") in failed_ids(report)
    bad["planned_values"]["root_module"]["resources"].append(bad["planned_values"]["root_module"]["resources"][0])
    with pytest.raises(EngineError, match="appears twice"):
        worker.scan_plan(bad)


@pytest.mark.slow
@needs_checkov
def test_an_unparseable_file_fails_closed(worker: CheckovWorker, tmp_path: Path) -> None:
    (tmp_path / "broken.tf").write_text('resource "aws_s3_bucket" "b" {\n  bucket = \n')
    with pytest.raises(EngineError, match=r"could not parse: broken\.tf"):
        worker.scan_files(tmp_path, ["broken.tf"])
