"""Branch protection as code: the settings glassbox needs on the protected branch, and a diff against live.

The desired settings: the ``glassbox/check`` and ``glassbox/approvals`` statuses required on an up-to-date
head; code-owner reviews required; stale approvals dismissed on push; the most recent push approved by
someone other than its pusher; admins included; pushes (and so merges) restricted to the bot identity;
signed commits required; no force pushes, no deletions.

``required_approving_review_count`` is 0 on purpose: how many approvals a change needs depends on its risk
tier, which only glassbox knows, so that count is enforced by the required ``glassbox/approvals`` status.
Last-push approval would still make the auto-merge path (an ``auto`` agent's low-risk change with no code
owner) impossible, so the bot alone is a review-bypass actor (``bypass_pull_request_allowances``): its merges
answer to the required ``glassbox/approvals`` status, which counts approvals only at the head and never from
the last pusher, while everyone else still meets last-push approval and code-owner reviews. The required
status checks hold for the bot too.

The required statuses are pinned, on GitHub, to the app that must set them when the registry names it
(``github_app_id`` of the ``ci`` identity for ``glassbox/check``, of the ``bot`` for ``glassbox/approvals``):
without a pin, GitHub counts the status from whoever sets it, an agent's token included (the merge step still
checks the creator, but the forge's own rule should hold on its own).

The audit trail's branch has its own protection (:func:`desired_trail`): the settings the embedded forge is
initialised with (:func:`bot.forge.server.setup.trail_protection`, read here through :func:`from_github`, the
parser of GitHub's answer): pushes restricted to the service identities, no reviews or checks (those would stop
the appends), linear history, signed commits, no force pushes, no deletions, admins included.

Before the trail branch exists (classic protection needs the branch) a repository ruleset guards its ref
(:func:`trail_ruleset`): only the service identities' GitHub Apps may create or move it.

Everything here is pure: ``from_github`` reads GitHub's ``GET .../branches/{branch}/protection`` JSON,
``request_body`` builds the ``PUT`` body, ``diff`` compares. Talking to the forge goes through
:class:`~bot.forge.port.ProtectionPort` (re-exported here), which the GitHub adapter implements; ``apply``
writes when live differs and ``verify`` reads back what the forge kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from bot.forge.port import ProtectionPort as ProtectionPort  # re-exported: the port lives with the forge
from bot.forge.server.setup import trail_protection
from bot.records import Record
from bot.registry import Registry
from bot.trust.conventions import APPROVALS_CONTEXT, CHECK_CONTEXT, TRAIL_BRANCH


class BranchProtection(Record):
    branch: str = "main"
    required_status_checks: list[str] = Field(default_factory=lambda: [CHECK_CONTEXT, APPROVALS_CONTEXT])
    strict_status_checks: bool = Field(default=True, description="The head must be up to date with the base.")
    check_apps: dict[str, int] = Field(
        default_factory=dict,
        description="Required status check → the GitHub App id that must set it (GitHub's checks[].app_id);"
        " a check not listed may be set by anyone with write access.",
    )
    require_pull_request: bool = Field(default=True, description="Changes arrive through pull requests only.")
    required_linear_history: bool = False
    enforce_admins: bool = True
    require_code_owner_reviews: bool = True
    dismiss_stale_reviews: bool = True
    require_last_push_approval: bool = True
    required_approving_review_count: int = Field(default=0, ge=0, le=6)
    review_bypass_users: list[str] = Field(
        default_factory=list,
        description="Who may merge without the forge's own review rules (GitHub's bypass_pull_request_allowances):"
        " the bot, whose required glassbox/approvals status enforces them at the head, so an auto agent's"
        " low-risk change can merge while last-push approval holds for everyone else.",
    )
    restrict_pushes: bool = True
    push_users: list[str] = Field(default_factory=list, description="Who may push (and merge): the bot only.")
    push_teams: list[str] = Field(default_factory=list)
    required_signatures: bool = True
    allow_force_pushes: bool = False
    allow_deletions: bool = False


class SettingChange(Record):
    setting: str
    live: Any
    desired: Any


class ProtectionDiff(Record):
    branch: str
    protected: bool = Field(description="Whether the branch has any protection today.")
    changes: list[SettingChange] = Field(default_factory=list)

    @property
    def in_sync(self) -> bool:
        return self.protected and not self.changes


def desired(registry: Registry, branch: str = "main") -> BranchProtection:
    bot = registry.service_identity("bot")
    return BranchProtection(
        branch=branch,
        push_users=[bot] if bot else [],
        review_bypass_users=[bot] if bot else [],
        check_apps=pinned_checks(registry),
    )


def pinned_checks(registry: Registry) -> dict[str, int]:
    """Each required status whose setter is a GitHub App in the registry → that app's id."""
    setters = {"ci": CHECK_CONTEXT, "bot": APPROVALS_CONTEXT}
    return {
        setters[s.kind]: s.github_app_id
        for s in registry.teams.service_identities
        if s.kind in setters and s.github_app_id is not None
    }


def desired_trail(registry: Registry) -> BranchProtection:
    """The audit trail branch's protection: the embedded forge's, as GitHub would report it."""
    want = from_github(TRAIL_BRANCH, trail_protection(registry))
    assert want is not None
    return want


TRAIL_RULESET_NAME = "glassbox-trail"


def trail_ruleset(registry: Registry) -> dict[str, Any]:
    """The repository ruleset (``POST /repos/{owner}/{repo}/rulesets``) that guards the audit trail's ref before
    the branch exists. Classic branch protection (:func:`desired_trail`) needs the branch, which the first
    publishing job creates; until then anyone with write access could create ``glassbox-trail`` first, with
    commits of their own. The ruleset names the ref, so it holds from the start: nobody creates, updates or
    deletes it, nobody force-pushes, every commit is signed and history linear, except the bypass actors, the
    GitHub App of each service identity the registry gives a ``github_app_id``. A service identity without one
    (a machine user's token) cannot be named and so cannot write the trail under this ruleset; see
    :func:`trail_ruleset_unnamed`."""
    apps = sorted({s.github_app_id for s in registry.teams.service_identities if s.github_app_id is not None})
    return {
        "name": TRAIL_RULESET_NAME,
        "target": "branch",
        "enforcement": "active",
        "conditions": {"ref_name": {"include": [f"refs/heads/{TRAIL_BRANCH}"], "exclude": []}},
        "rules": [
            {"type": "creation"},
            {"type": "update", "parameters": {"update_allows_fetch_and_merge": False}},
            {"type": "deletion"},
            {"type": "non_fast_forward"},
            {"type": "required_linear_history"},
            {"type": "required_signatures"},
        ],
        "bypass_actors": [{"actor_id": app, "actor_type": "Integration", "bypass_mode": "always"} for app in apps],
    }


def trail_ruleset_unnamed(registry: Registry) -> list[str]:
    """The service identities :func:`trail_ruleset` cannot let through (the registry gives them no GitHub App)."""
    return sorted(s.id for s in registry.teams.service_identities if s.github_app_id is None)


def _enabled(data: Mapping[str, Any], key: str) -> bool:
    value = data.get(key)
    if isinstance(value, Mapping):
        return bool(value.get("enabled"))
    return bool(value)


def from_github(branch: str, data: Mapping[str, Any] | None) -> BranchProtection | None:
    """The live settings from GitHub's protection JSON; None for an unprotected branch."""
    if data is None:
        return None
    checks = data.get("required_status_checks") or {}
    reviews = data.get("required_pull_request_reviews")
    restrictions = data.get("restrictions")
    listed = [c for c in checks.get("checks") or [] if isinstance(c, Mapping)]
    contexts = list(checks.get("contexts") or [c.get("context") for c in listed])
    # GitHub answers app_id null (any setter) or -1 (explicitly any); only a real id pins
    apps = {
        str(c.get("context")): int(c["app_id"]) for c in listed if isinstance(c.get("app_id"), int) and c["app_id"] > 0
    }
    return BranchProtection(
        branch=branch,
        required_status_checks=sorted(str(c) for c in contexts if c),
        strict_status_checks=bool(checks.get("strict")),
        check_apps=apps,
        require_pull_request=reviews is not None,
        required_linear_history=_enabled(data, "required_linear_history"),
        enforce_admins=_enabled(data, "enforce_admins"),
        require_code_owner_reviews=bool(reviews and reviews.get("require_code_owner_reviews")),
        dismiss_stale_reviews=bool(reviews and reviews.get("dismiss_stale_reviews")),
        require_last_push_approval=bool(reviews and reviews.get("require_last_push_approval")),
        required_approving_review_count=int(reviews.get("required_approving_review_count", 0)) if reviews else 0,
        review_bypass_users=sorted(
            _name(u, "login") for u in ((reviews or {}).get("bypass_pull_request_allowances") or {}).get("users") or []
        ),
        restrict_pushes=restrictions is not None,
        push_users=sorted(_name(u, "login") for u in (restrictions or {}).get("users") or []),
        push_teams=sorted(_name(t, "slug") for t in (restrictions or {}).get("teams") or []),
        required_signatures=_enabled(data, "required_signatures"),
        allow_force_pushes=_enabled(data, "allow_force_pushes"),
        allow_deletions=_enabled(data, "allow_deletions"),
    )


def _name(entry: Any, key: str) -> str:
    """A user or team as GitHub answers it (an object with ``login`` or ``slug``) or as a request names it."""
    return str(entry.get(key)) if isinstance(entry, Mapping) else str(entry)


def diff(live: BranchProtection | None, want: BranchProtection) -> ProtectionDiff:
    """Every setting whose live value differs from the desired one (lists compared as sets)."""
    if live is None:
        changes = [
            SettingChange(setting=name, live=None, desired=value)
            for name, value in want.model_dump(mode="json").items()
            if name != "branch"
        ]
        return ProtectionDiff(branch=want.branch, protected=False, changes=changes)
    have = live.model_dump(mode="json")
    changes = []
    for name, value in want.model_dump(mode="json").items():
        if name == "branch":
            continue
        current = have[name]
        same = sorted(current) == sorted(value) if isinstance(value, list) else current == value
        if name == "strict_status_checks" and not want.required_status_checks and not live.required_status_checks:
            same = True  # no required checks: there is nothing to be strict about
        if not same:
            changes.append(SettingChange(setting=name, live=current, desired=value))
    return ProtectionDiff(branch=want.branch, protected=True, changes=changes)


def request_body(want: BranchProtection) -> dict[str, Any]:
    """GitHub's ``PUT .../branches/{branch}/protection`` body for ``want`` (signatures go separately)."""
    checks = [
        {"context": c, **({"app_id": want.check_apps[c]} if c in want.check_apps else {})}
        for c in want.required_status_checks
    ]
    return {
        "required_status_checks": {"strict": want.strict_status_checks, "checks": checks} if checks else None,
        "enforce_admins": want.enforce_admins,
        "required_pull_request_reviews": {
            "dismiss_stale_reviews": want.dismiss_stale_reviews,
            "require_code_owner_reviews": want.require_code_owner_reviews,
            "required_approving_review_count": want.required_approving_review_count,
            "require_last_push_approval": want.require_last_push_approval,
            "bypass_pull_request_allowances": {"users": list(want.review_bypass_users), "teams": [], "apps": []},
        }
        if want.require_pull_request
        else None,
        "restrictions": {"users": list(want.push_users), "teams": list(want.push_teams), "apps": []}
        if want.restrict_pushes
        else None,
        "required_linear_history": want.required_linear_history,
        "allow_force_pushes": want.allow_force_pushes,
        "allow_deletions": want.allow_deletions,
    }


def apply(port: ProtectionPort, want: BranchProtection) -> ProtectionDiff:
    """Diff live against ``want`` and, when they differ, write ``want``. Returns the diff found before writing."""
    found = diff(from_github(want.branch, port.get_branch_protection(want.branch)), want)
    if not found.in_sync:
        port.set_branch_protection(want.branch, request_body(want), required_signatures=want.required_signatures)
    return found


def verify(port: ProtectionPort, want: BranchProtection) -> ProtectionDiff:
    """Read the live settings back and diff them against ``want``: after :func:`apply`, anything still listed
    is a setting the forge did not keep (an unknown user in the restrictions, a plan without the feature)."""
    return diff(from_github(want.branch, port.get_branch_protection(want.branch)), want)
