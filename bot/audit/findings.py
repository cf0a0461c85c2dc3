"""What `audit verify` reports: every finding kind, what it means, whether it fails, and what an auditor does.

:data:`FINDINGS` is the one table. The CLI prints a finding as one line ending in its "to do", the HTML
report shows the same words at the top of the page, and the README's table "What `audit verify` reports" is
:func:`markdown_table` (a test keeps the two equal; ``python -m bot.audit.findings`` prints it).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ViolationKind(StrEnum):
    DIRECT_PUSH = "direct-push"
    OUT_OF_BAND_MERGE = "out-of-band-merge"
    UNSIGNED_COMMIT = "unsigned-commit"
    FAILED_VERDICT = "failed-verdict"
    MISSING_ATTESTATION = "missing-attestation"
    UNAPPROVED = "unapproved"
    ORPHAN_DEPLOY = "orphan-deploy"
    BREAK_GLASS_DEPLOY = "break-glass-deploy"
    BREAKGLASS_REVIEW_OVERDUE = "breakglass-review-overdue"
    CHAIN_BREAK = "chain-break"
    HISTORY_REWRITTEN = "history-rewritten"
    TRAIL_TAMPERED = "trail-tampered"


@dataclass(frozen=True)
class FindingKind:
    kind: ViolationKind
    meaning: str
    to_do: str
    fails: bool = True  # False: expected and reported, `audit verify` still exits 0


FINDINGS: dict[ViolationKind, FindingKind] = {
    f.kind: f
    for f in (
        FindingKind(
            ViolationKind.DIRECT_PUSH,
            "A commit on the protected branch changes governed paths, and no glassbox merge produced it: someone "
            "pushed it to the branch directly.",
            "find who pushed it (the forge's audit log, the commit's author), review the change, then revert it or "
            "bring it in again through a pull request",
        ),
        FindingKind(
            ViolationKind.OUT_OF_BAND_MERGE,
            "A pull request glassbox checked was merged outside glassbox's merge gate (for instance by an "
            "administrator with branch protection lifted): its tree is the checked head's, but no merge event "
            "produced it.",
            "confirm who merged it and why (the forge's audit log, the incident ticket), review the merged diff, "
            "and revert it or record the missing approval",
        ),
        FindingKind(
            ViolationKind.UNSIGNED_COMMIT,
            "A commit whose trailers say an agent made it has no valid SSH signature by that agent's trusted key "
            "(or its git object does not hash to its id).",
            "treat the commit as forged: find where it came from, rotate the agent's key if it leaked, revert it",
        ),
        FindingKind(
            ViolationKind.FAILED_VERDICT,
            "The merged head's signed verdict says it did not pass the policy check.",
            "find out why the merge went ahead (the merge event's actor), review the findings, revert or fix forward",
        ),
        FindingKind(
            ViolationKind.MISSING_ATTESTATION,
            "The merged head has no verdict attestation that verifies with the registry's verdict-signer keys and "
            "names the merged head and tree.",
            "look for the attestation in the store; if none exists, re-run the check on that head and review why "
            "it merged unchecked",
        ),
        FindingKind(
            ViolationKind.UNAPPROVED,
            "A governed merge had no satisfied approvals on its head and no break-glass use names it.",
            "ask the code owners to review the merged change now, and find out why the merge gate let it through",
        ),
        FindingKind(
            ViolationKind.ORPHAN_DEPLOY,
            "A deploy event names a commit the branch never pointed at, a commit that failed the checks above, or "
            "a deploy record that does not match the ledger, and no valid break-glass grant explains it.",
            "check what runs in that stack now; roll it back to the last verified deploy, and find who deployed it",
        ),
        FindingKind(
            ViolationKind.BREAK_GLASS_DEPLOY,
            "A deploy made under a valid break-glass grant: approvals (and the merge gate) were skipped for an "
            "incident, on the word of a break-glass team member.",
            "have a reviewer who did not open the grant confirm the ticket, review the deployed change, keep or revert "
            "it, and close the post-incident review with `glassbox breakglass close <grant id> --by <reviewer> "
            "--outcome <kept, reverted or fixed-forward> --summary ...` (on GitHub: with --envelope-out, then hand the "
            "envelope to the audit workflow's `review` input)",
            fails=False,
        ),
        FindingKind(
            ViolationKind.BREAKGLASS_REVIEW_OVERDUE,
            "A break-glass use's post-incident review is past its due date and no permitted reviewer (a person in a "
            "reviews_break_glass team who did not open the grant) has closed it with a signed closure.",
            "hold the review now: a reviewer confirms the ticket and the deployed change, then closes it with "
            "`glassbox breakglass close <grant id> ...` (on GitHub: the closure envelope to the audit workflow's "
            "`review` input); find out why it went past due",
        ),
        FindingKind(
            ViolationKind.CHAIN_BREAK,
            "A ledger line is out of sequence, breaks the hash chain, has a wrong digest, or is not signed by a "
            "trusted ledger-signer key (archive segments included).",
            "treat the ledger as tampered from that line on: restore it from the SIEM copy or a backup and compare",
        ),
        FindingKind(
            ViolationKind.HISTORY_REWRITTEN,
            "A merge or deploy event names a commit that is no longer on the branch: the branch was force-pushed.",
            "restore the branch from the recorded commit, find who force-pushed, and turn force-push protection on",
        ),
        FindingKind(
            ViolationKind.TRAIL_TAMPERED,
            "A commit on the audit trail branch (glassbox-trail) is not signed by a glassbox service identity's "
            "ledger-signer key, has more than one parent, or changes or deletes what an earlier commit added, or a "
            "break-glass object on it does not verify (a grant, a use claim, a review closure not signed by a "
            "permitted reviewer or closing a use the trail holds no claim for): the trail is append-only and only "
            "the service identities advance it.",
            "compare the trail with a copy kept elsewhere (a SIEM export's high-water mark, another clone), find "
            "who pushed the commit (the forge's audit log), restore the trail and protect the branch "
            "(`glassbox forge init` does; on GitHub: push restrictions, no force pushes, no deletions)",
        ),
    )
}


def markdown_table() -> str:
    """The README's table "What `audit verify` reports"."""
    rows = ["| finding | fails verify | what it means | what to do |", "|---|---|---|---|"]
    for f in FINDINGS.values():
        fails = "yes" if f.fails else "no (reported)"
        rows.append(f"| `{f.kind.value}` | {fails} | {f.meaning} | {f.to_do[0].upper()}{f.to_do[1:]}. |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")
