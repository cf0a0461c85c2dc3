"""Branch protection as code: desired settings, reading GitHub's JSON, the diff, the PUT body, applying."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.approvals import protection
from tests.unit.approvals._builders import registry

LIVE_GITHUB: dict[str, Any] = {
    "required_status_checks": {"strict": False, "contexts": ["glassbox/check", "glassbox/approvals"]},
    "enforce_admins": {"enabled": False},
    "required_pull_request_reviews": {
        "dismiss_stale_reviews": False,
        "require_code_owner_reviews": False,
        "required_approving_review_count": 1,
        "require_last_push_approval": False,
    },
    "required_signatures": {"enabled": False},
    "allow_force_pushes": {"enabled": False},
    "allow_deletions": {"enabled": False},
}


def test_desired_settings() -> None:
    want = protection.desired(registry(), "main")
    assert want.required_status_checks == ["glassbox/check", "glassbox/approvals"]
    assert want.require_code_owner_reviews and want.dismiss_stale_reviews and want.require_last_push_approval
    assert want.restrict_pushes and want.push_users == ["glassbox-bot"] and want.required_signatures
    assert want.required_approving_review_count == 0  # the count is the glassbox/approvals status's job
    assert want.review_bypass_users == ["glassbox-bot"]  # its merges answer to glassbox/approvals instead


def test_diff_against_live_lists_each_differing_setting() -> None:
    want = protection.desired(registry())
    found = protection.diff(protection.from_github("main", LIVE_GITHUB), want)
    assert found.protected and not found.in_sync
    assert {c.setting: (c.live, c.desired) for c in found.changes} == {
        "strict_status_checks": (False, True),
        "enforce_admins": (False, True),
        "require_code_owner_reviews": (False, True),
        "dismiss_stale_reviews": (False, True),
        "require_last_push_approval": (False, True),
        "required_approving_review_count": (1, 0),
        "restrict_pushes": (False, True),
        "push_users": ([], ["glassbox-bot"]),
        "review_bypass_users": ([], ["glassbox-bot"]),
        "required_signatures": (False, True),
    }


def test_unprotected_branch_diff_lists_everything() -> None:
    found = protection.diff(protection.from_github("main", None), protection.desired(registry()))
    assert not found.protected and not found.in_sync and len(found.changes) == 17


def test_in_sync_when_live_equals_desired_whatever_the_list_order() -> None:
    want = protection.desired(registry())
    live = want.model_copy(update={"required_status_checks": list(reversed(want.required_status_checks))})
    assert protection.diff(live, want).in_sync


def test_request_body_round_trips_through_from_github() -> None:
    want = protection.desired(registry())
    body = protection.request_body(want)
    assert body["restrictions"] == {"users": ["glassbox-bot"], "teams": [], "apps": []}
    # GitHub answers restrictions and toggles as objects; shape the body like that and read it back
    answer = {
        **body,
        "enforce_admins": {"enabled": body["enforce_admins"]},
        "restrictions": {"users": [{"login": "glassbox-bot"}], "teams": []},
        "required_pull_request_reviews": _answered_reviews(body),
        "required_signatures": {"enabled": True},
        "allow_force_pushes": {"enabled": False},
        "allow_deletions": {"enabled": False},
    }
    assert protection.diff(protection.from_github("main", answer), want).in_sync


def _answered_reviews(body: Mapping[str, Any]) -> dict[str, Any]:
    """The reviews part of a PUT body as GitHub answers it: bypass actors as user objects."""
    reviews = dict(body["required_pull_request_reviews"])
    users = reviews["bypass_pull_request_allowances"]["users"]
    reviews["bypass_pull_request_allowances"] = {"users": [{"login": u} for u in users], "teams": [], "apps": []}
    return reviews


class FakePort:
    def __init__(self, live: dict[str, Any] | None) -> None:
        self.live = live
        self.writes: list[tuple[str, Mapping[str, Any], bool]] = []

    def get_branch_protection(self, branch: str) -> dict[str, Any] | None:
        return self.live

    def set_branch_protection(self, branch: str, body: Mapping[str, Any], *, required_signatures: bool) -> None:
        self.writes.append((branch, body, required_signatures))


def test_apply_writes_only_when_settings_differ() -> None:
    port = FakePort(LIVE_GITHUB)
    assert isinstance(port, protection.ProtectionPort)
    want = protection.desired(registry())
    found = protection.apply(port, want)
    assert not found.in_sync and port.writes == [("main", protection.request_body(want), True)]
    in_sync = FakePort(
        {
            **protection.request_body(want),
            "enforce_admins": {"enabled": True},
            "restrictions": {"users": [{"login": "glassbox-bot"}], "teams": []},
            "required_pull_request_reviews": _answered_reviews(protection.request_body(want)),
            "required_signatures": {"enabled": True},
        }
    )
    assert protection.apply(in_sync, want).in_sync and in_sync.writes == []
