"""What the embedded forge enforces on branches: who may move a ref, who may merge, and when a merge is allowed.

Agents are confined to ``refs/heads/glassbox/<agent-id>/``; nobody moves a protected branch through the API
(admins only when the protection does not enforce admins). A merge into a protected branch needs the
required status contexts green on the head, enough approvals on the current head (none from the PR's
author, no outstanding change request), and with ``require_last_push_approval`` an approval from someone
other than the last pusher of the head; push restrictions limit who may merge at all.
"""

from __future__ import annotations

from typing import Any

from bot.forge.server.api import ApiError
from bot.forge.server.store import Store, User
from bot.trust.conventions import AGENT_BRANCH_PREFIX

AGENT_REF_PREFIX = "refs/heads/" + AGENT_BRANCH_PREFIX
LAST_PUSH_RULE = "The most recent push must be approved by someone other than the person who pushed it."


def check_ref_write(store: Store, user: User, repo: Any, ref: str) -> None:
    """Agents write only under their own namespace; nobody moves a protected branch through the API."""
    if not ref.startswith("refs/heads/") or ".." in ref or ref.endswith("/") or "//" in ref:
        raise ApiError(422, "Reference name is invalid")
    if user.kind == "agent" and not ref.startswith(f"{AGENT_REF_PREFIX}{user.login}/"):
        raise ApiError(
            403,
            f"Resource not accessible by integration: agent {user.login} may only write "
            f"{AGENT_REF_PREFIX}{user.login}/*",
        )
    branch = ref.removeprefix("refs/heads/")
    protection = store.protection(repo["id"], branch)
    if protection is not None and direct_push_allowed(store, repo, branch, protection, user):
        return  # a listed pusher on a branch that asks for no review or check (the trail); callers refuse force
    if user.kind not in ("agent", "human", "bot", "admin"):
        raise ApiError(403, f"Resource not accessible by integration: {user.kind} identities cannot push")
    if protection is not None and not (user.kind == "admin" and not protection.get("enforce_admins")):
        raise ApiError(422, f"Protected branch update failed for {ref}.")


def direct_push_allowed(store: Store, repo: Any, branch: str, protection: dict[str, Any], user: User) -> bool:
    """GitHub lets a push onto a protected branch through when the branch requires no reviews and no status checks
    and the pusher is among its push restrictions (force pushes and deletions are refused separately)."""
    if protection.get("required_pull_request_reviews") or (protection.get("required_status_checks") or {}).get(
        "contexts"
    ):
        return False
    if protection.get("restrictions") is None:
        return False
    return push_restricted(store, repo, branch, user) is None and user.kind != "agent"


def refuse_rewrite(store: Store, user: User, repo: Any, ref: str, *, delete: bool) -> None:
    """A protected branch is never force-pushed or deleted unless its protection allows it (an admin only where
    the protection is not enforced for admins)."""
    protection = store.protection(repo["id"], ref.removeprefix("refs/heads/"))
    if protection is None or (user.kind == "admin" and not protection.get("enforce_admins")):
        return
    allowed = protection.get("allow_deletions" if delete else "allow_force_pushes")
    if not (isinstance(allowed, dict) and allowed.get("enabled")) and allowed is not True:
        raise ApiError(422, f"Cannot {'delete' if delete else 'force-push to'} this protected branch: {ref}.")


def merge_problems(store: Store, repo: Any, pull: Any, head_sha: str, merger: User | None = None) -> list[str]:
    """Why the base branch's protection refuses merging ``pull`` at ``head_sha`` as ``merger``; empty when it
    allows it. A user listed in ``bypass_pull_request_allowances`` skips the review rules (count, last-push
    approval), as on GitHub; required status checks hold for everyone."""
    config = store.protection(repo["id"], pull["base_ref"])
    if config is None:
        return []
    problems = []
    checks = config.get("required_status_checks") or {}
    latest = store.latest_statuses(repo["id"], head_sha)
    for context in checks.get("contexts") or []:
        row = latest.get(context)
        state = row["state"] if row is not None else None
        if state is None:
            problems.append(f'Required status check "{context}" is expected.')
        elif state != "success":
            problems.append(f'Required status check "{context}" is {state}.')
    reviews = config.get("required_pull_request_reviews")
    if reviews is not None and merger is not None and merger.login in (reviews.get("bypass_users") or []):
        reviews = None
    if reviews is not None:
        required = int(reviews.get("required_approving_review_count", 1))
        latest_by_user: dict[int, Any] = {}
        for row in store.q(
            "SELECT * FROM reviews WHERE pull_id = ? AND state IN ('APPROVED', 'CHANGES_REQUESTED', 'DISMISSED') "
            "ORDER BY id",
            pull["id"],
        ):
            latest_by_user[row["user_id"]] = row
        if any(r["state"] == "CHANGES_REQUESTED" for r in latest_by_user.values()):
            problems.append("Changes have been requested.")
        approvers = [
            uid
            for uid, r in latest_by_user.items()
            if r["state"] == "APPROVED" and r["commit_id"] == head_sha and uid != pull["user_id"]
        ]
        approvals = len(approvers)
        if approvals < required:
            problems.append(
                f"At least {required} approving review{'s are' if required > 1 else ' is'} required by "
                f"reviewers with write access (approvals on the current head {head_sha[:12]}: {approvals})."
            )
        if reviews.get("require_last_push_approval"):
            pusher = last_pusher(store, repo, pull, head_sha)
            if not any(uid != pusher for uid in approvers):
                who = store.user_by_id(pusher)
                problems.append(
                    f"{LAST_PUSH_RULE} The push of {head_sha[:12]} to {pull['head_ref']} was made by "
                    f"{who.login if who else f'user {pusher}'}."
                )
    return problems


def last_pusher(store: Store, repo: Any, pull: Any, head_sha: str) -> int:
    """Who last pushed the head branch to ``head_sha``; the PR author when no such push was recorded."""
    pusher = store.last_pusher(repo["id"], f"refs/heads/{pull['head_ref']}", head_sha)
    return int(pull["user_id"]) if pusher is None else pusher


def push_restricted(store: Store, repo: Any, branch: str, user: User) -> str | None:
    """GitHub's push restrictions: when set, only the listed users and team members may push, so merge."""
    config = store.protection(repo["id"], branch)
    restrictions = (config or {}).get("restrictions")
    if config is None or restrictions is None:
        return None
    if user.kind == "admin" and not config.get("enforce_admins"):
        return None
    if user.login in (restrictions.get("users") or []):
        return None
    for slug in restrictions.get("teams") or []:
        team = store.team(repo["owner"], slug)
        if team is not None and any(m.id == user.id for m in store.team_members(team["id"])):
            return None
    return f"You're not authorized to push to this branch: pushes to {branch} are restricted."
