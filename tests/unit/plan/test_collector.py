"""The collector's protocol (pure, no subprocess) and the launcher's diagnosis of a missing namespace setting."""

from __future__ import annotations

import errno

import pytest

from bot.plan.collector import Collector, ProtocolError, frame
from bot.plan.jail import explain_unshare_failure


def _register(job: int, name: str, **inputs: object) -> bytes:
    return frame("register", job=job, type="aws:s3/bucket:Bucket", name=name, parent="", object=dict(inputs))


def test_the_record_is_built_from_frames_split_anywhere() -> None:
    collector = Collector([("app", "dev")])
    stream = frame("start", job=0) + _register(0, "logs", acl="private", size=3.0) + frame("end", job=0, error=None)
    for i in range(0, len(stream), 7):
        collector.feed(stream[i : i + 7])
    collector.feed(frame("exit", status=0, leftovers=0))
    collector.close()
    (record,) = collector.jobs[0].resources.values()
    assert record["urn"] == "urn:pulumi:dev::app::aws:s3/bucket:Bucket::logs"
    assert record["inputs"] == {"acl": "private", "size": 3}


@pytest.mark.parametrize(
    ("frames", "cause"),
    [
        ([_register(0, "x")], "not running"),
        ([frame("start", job=1)], "out of order"),
        ([frame("start", job=0), _register(0, "x"), _register(0, "x")], "duplicate resource URN"),
        ([frame("start", job=0), frame("forget", job=0)], "unknown frame op"),
        ([frame("exit", status=0, leftovers=0), frame("start", job=0)], "after the sandbox's exit report"),
        ([b"not json\n"], "not JSON"),
    ],
)
def test_a_frame_out_of_protocol_is_refused(frames: list[bytes], cause: str) -> None:
    collector = Collector([("app", "dev")])
    with pytest.raises(ProtocolError, match=cause):
        for item in frames:
            collector.feed(item)


def test_a_missing_namespace_setting_is_named_with_its_fix() -> None:
    ubuntu = explain_unshare_failure(errno.EPERM, {"kernel.apparmor_restrict_unprivileged_userns": "1"})
    assert "sysctl -w kernel.apparmor_restrict_unprivileged_userns=0" in ubuntu
    debian = explain_unshare_failure(errno.EPERM, {"kernel.unprivileged_userns_clone": "0"})
    assert "sysctl -w kernel.unprivileged_userns_clone=1" in debian
    assert "user.max_user_namespaces" in explain_unshare_failure(errno.ENOSPC, {})
    assert "seccomp" in explain_unshare_failure(errno.EPERM, {})
