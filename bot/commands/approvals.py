"""`glassbox owners|approvals|merge|protect`: code owners, the approvals gate, merging, branch protection.

Each command parses, builds the forge adapter from settings, calls one function of :mod:`bot.approvals`
and renders its record (rich for people, ``--output json`` for machines). ``approvals`` and ``merge`` exit 1
when the gate says no.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from bot.approvals import codeowners as co
from bot.approvals import protection
from bot.approvals.gate import Members
from bot.approvals.model import ApprovalState, MergeOutcome
from bot.approvals.service import VerdictLoader, evaluate_pr, merge_pr
from bot.commands._common import (
    KeysOption,
    LedgerOption,
    OutputFormat,
    OutputOption,
    RegistryOption,
    emit,
    err_console,
    keys_dir,
    ledger_path,
    styled,
)
from bot.errors import ForgeError, IntegrityError, UserError
from bot.forge.github import GitHubForge, connect
from bot.forge.model import MergeMethod
from bot.forge.settings import ForgeUrlOption, RepoOption, TokenOption, resolve_settings
from bot.records import Verdict
from bot.registry import Registry, load_registry
from bot.trust.attestations import read_attestation
from bot.trust.conventions import TRAIL_BRANCH
from bot.trust.keys import load_signer
from bot.trust.ledger import Ledger


class Membership(StrEnum):
    REGISTRY = "registry"
    FORGE = "forge"
    BOTH = "both"


PrOption = Annotated[int, typer.Option("--pr", min=1, help="Pull request number.")]
VerdictOption = Annotated[
    Path | None,
    typer.Option(
        "--verdict",
        help="verdict.json for the head commit (unsigned; prefer --attestation).",
        dir_okay=False,
    ),
]
AttestationOption = Annotated[
    Path | None,
    typer.Option(
        "--attestation",
        help="attestation.dsse.json for the head commit, verified with the registry's verdict-signer keys.",
        dir_okay=False,
    ),
]
AsOption = Annotated[str, typer.Option("--as", help="Identity that signs ledger events (the bot).")]
MembershipOption = Annotated[
    Membership,
    typer.Option(
        "--membership",
        help="Team membership from the registry, the forge, or both (a reviewer must be in both).",
        case_sensitive=False,
    ),
]


def register(app: typer.Typer) -> None:
    app.command("owners")(owners)
    app.command("approvals")(approvals)
    app.command("merge")(merge)
    app.command("protect")(protect)


# --------------------------------------------------------------------------------------------------
# adapters from options


def _verdict_loader(verdict: Path | None, attestation: Path | None, registry: Registry) -> VerdictLoader:
    if verdict is not None and attestation is not None:
        raise UserError("give --verdict or --attestation, not both")

    def load(head_sha: str) -> Verdict | None:
        # the gate compares the verdict's head commit with the PR's; a file for another commit is stale
        if attestation is not None:
            filed = read_attestation(attestation, registry)
            if filed.found and filed.verdict is None:
                raise IntegrityError(f"--attestation {attestation}: {filed.problem}")
            return filed.verdict
        if verdict is not None and verdict.exists():
            return Verdict.model_validate_json(verdict.read_bytes())
        return None

    return load


def _members(membership: Membership, registry: Registry, forge: GitHubForge) -> Members:
    def from_forge(team: str) -> list[str]:
        return forge.list_team_members(team)

    def both(team: str) -> list[str]:
        live = {m.lower() for m in forge.list_team_members(team)}
        return [m for m in registry.members(team) if m.lower() in live]

    return {Membership.REGISTRY: registry.members, Membership.FORGE: from_forge, Membership.BOTH: both}[membership]


# --------------------------------------------------------------------------------------------------
# owners


def _load_codeowners(path: Path | None) -> co.CodeOwners:
    if path is not None:
        if not path.is_file():
            raise UserError(f"--codeowners {path}: no such file")
        return co.parse(path.read_text(encoding="utf-8"), source=str(path))

    def read(location: str) -> bytes | None:
        candidate = Path(location)
        return candidate.read_bytes() if candidate.is_file() else None

    found = co.find(read)
    if found is None:
        raise UserError("no CODEOWNERS in .github/, the root or docs/ of the current directory: pass --codeowners FILE")
    return found


def owners(
    paths: Annotated[list[str], typer.Argument(help="Repository-relative paths.")],
    codeowners: Annotated[
        Path | None,
        typer.Option("--codeowners", help="CODEOWNERS file. Default: .github/CODEOWNERS, CODEOWNERS, docs/CODEOWNERS."),
    ] = None,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Print each path's code owners (last matching rule wins; an empty list means unowned)."""
    parsed = _load_codeowners(codeowners)
    for problem in parsed.problems:
        err_console.print(f"warning: {parsed.source}:{problem.line}: {problem.message}")
    found = [parsed.ownership(p) for p in paths]
    data = {o.path: o.owners for o in found}

    def render(console: Console) -> None:
        table = Table("path", "owners", "rule", title=f"code owners ({parsed.source})")
        for o in found:
            rule = f"line {o.rule.line}: {o.rule.text}" if o.rule else "(no rule)"
            table.add_row(o.path, " ".join(o.owners) or "(unowned)", rule)
        console.print(table)

    emit(data, output, render)


# --------------------------------------------------------------------------------------------------
# approvals and merge


def render_state(state: ApprovalState, console: Console) -> None:
    verdict = "satisfied" if state.satisfied else "NOT satisfied"
    colour = "green" if state.satisfied else "red"
    console.print(
        styled(
            "[bold " + colour + "]approvals {}[/] {} PR #{} at {} (risk {}, author {})",
            verdict,
            state.repo or "",
            state.pr,
            (state.head_sha or "?")[:12],
            state.risk.value if state.risk else "unknown",
            state.author or "?",
        )
    )
    if state.required:
        table = Table("requirement", "needs", "owners", "approved by", "ok", "why", title="required")
        for r in state.required:
            table.add_row(
                r.id,
                str(r.count),
                ", ".join(r.owners),
                ", ".join(r.approvers) or "-",
                "yes" if r.satisfied else "no",
                r.reason + (f"\npaths: {', '.join(r.paths)}" if r.paths else ""),
            )
        console.print(table)
    for c in state.counted:
        console.print(styled("[green]counted[/] review #{} by {} → {}", c.review_id, c.user, ", ".join(c.requirements)))
    if state.discarded_with_reason:
        table = Table("review", "by", "state", "reason", "detail", title="not counted")
        for d in state.discarded_with_reason:
            table.add_row(str(d.review_id), d.user, d.state, d.reason.value, d.detail)
        console.print(table)
    for b in state.blocking:
        console.print(styled("[red]blocked[/] ({}): {}", b.kind.value, b.detail))
    for p in state.codeowners_problems:
        console.print(styled("[yellow]CODEOWNERS[/] {}", p))
    console.print(f"auto-merge eligible: {'yes' if state.auto_merge_eligible else 'no'}")


def _forge_and_registry(
    forge_url: str | None, repo: str | None, token: str | None, registry: Path
) -> tuple[GitHubForge, Registry]:
    return connect(resolve_settings(forge_url, repo, token)), load_registry(registry)


def approvals(
    pr: PrOption,
    verdict: VerdictOption = None,
    attestation: AttestationOption = None,
    registry: RegistryOption = Path("registry"),
    forge_url: ForgeUrlOption = None,
    repo: RepoOption = None,
    token: TokenOption = None,
    ledger: LedgerOption = None,
    keys: KeysOption = None,
    identity: AsOption = "glassbox-bot",
    membership: MembershipOption = Membership.REGISTRY,
    publish: Annotated[bool, typer.Option("--publish/--no-publish", help="Set the glassbox/approvals status.")] = True,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Evaluate the approvals gate for a PR at its head commit, publish the status, record the decision."""
    path = ledger_path(ledger)
    assert path is not None
    forge, reg = _forge_and_registry(forge_url, repo, token, registry)
    state = evaluate_pr(
        forge,
        reg,
        pr,
        _verdict_loader(verdict, attestation, reg),
        Ledger(path),
        load_signer(keys_dir(keys), identity),
        members=_members(membership, reg, forge),
        publish=publish,
    )
    emit(state, output, lambda c: render_state(state, c))
    if not state.satisfied:
        raise typer.Exit(1)


def render_merge(outcome: MergeOutcome, console: Console) -> None:
    render_state(outcome.approvals, console)
    if outcome.merged:
        how = "auto-merged" if outcome.auto_merge else "merged"
        console.print(styled("[bold green]{}[/] PR #{} as {} ({})", how, outcome.pr, outcome.merge_sha, outcome.method))
    else:
        console.print(styled("[bold red]not merged[/] PR #{}", outcome.pr))
        for reason in outcome.reasons:
            console.print(f"  - {reason}")


def merge(
    pr: PrOption,
    verdict: VerdictOption = None,
    attestation: AttestationOption = None,
    method: Annotated[MergeMethod, typer.Option("--method", case_sensitive=False)] = MergeMethod.SQUASH,
    registry: RegistryOption = Path("registry"),
    forge_url: ForgeUrlOption = None,
    repo: RepoOption = None,
    token: TokenOption = None,
    ledger: LedgerOption = None,
    keys: KeysOption = None,
    identity: AsOption = "glassbox-bot",
    membership: MembershipOption = Membership.REGISTRY,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Merge a PR as the bot: only when glassbox/check and glassbox/approvals are green on its head."""
    path = ledger_path(ledger)
    assert path is not None
    forge, reg = _forge_and_registry(forge_url, repo, token, registry)
    outcome = merge_pr(
        forge,
        reg,
        pr,
        _verdict_loader(verdict, attestation, reg),
        Ledger(path),
        load_signer(keys_dir(keys), identity),
        method=method,
        members=_members(membership, reg, forge),
    )
    emit(outcome, output, lambda c: render_merge(outcome, c))
    if not outcome.merged:
        raise typer.Exit(1)


# --------------------------------------------------------------------------------------------------
# protect


def _render_diff(
    found: protection.ProtectionDiff,
    applied: bool,
    body: dict[str, Any],
    console: Console,
    after: protection.ProtectionDiff | None = None,
) -> None:
    if found.in_sync:
        console.print(styled("[green]branch {} protection is as desired[/]", found.branch))
        return
    state = "protected" if found.protected else "NOT protected"
    console.print(f"branch {found.branch} ({state}): {len(found.changes)} setting(s) differ")
    table = Table("setting", "live", "desired")
    for change in found.changes:
        table.add_row(change.setting, json.dumps(change.live), json.dumps(change.desired))
    console.print(table)
    if applied:
        console.print(
            styled("[bold green]applied[/]{}", ", and read back as desired" if after and after.in_sync else "")
        )
    else:
        console.print("not applied; the PUT .../protection body would be:")
        console.print_json(json.dumps(body))


def protect(
    branch: Annotated[str, typer.Option("--branch", help="The protected branch.")] = "main",
    trail: Annotated[
        bool,
        typer.Option("--trail/--no-trail", help=f"Also protect the audit trail branch ({TRAIL_BRANCH})."),
    ] = True,
    live: Annotated[
        Path | None,
        typer.Option("--live", help="Live protection JSON (GET .../branches/BRANCH/protection) to diff against."),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the diff; change nothing.")] = False,
    trail_ruleset: Annotated[
        bool,
        typer.Option(
            "--trail-ruleset",
            help=f"Print the repository ruleset that guards {TRAIL_BRANCH} before it exists (the body of POST "
            "/repos/ORG/NAME/rulesets) and exit; talks to no forge.",
        ),
    ] = False,
    registry: RegistryOption = Path("registry"),
    forge_url: ForgeUrlOption = None,
    repo: RepoOption = None,
    token: TokenOption = None,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Read the live branch protection of --branch and of the audit trail branch, print each diff against the
    desired settings, then apply and verify them.

    The token must be allowed to administer the repository. ``--dry-run`` reads and diffs only; ``--live FILE``
    diffs a saved ``GET .../protection`` answer for --branch without talking to the forge (the trail is left
    out). Exits 1 when the forge did not keep what was written, or the trail branch does not exist yet (the
    first glassbox job's publish creates it; protect it then, or pass --no-trail).
    """
    reg = load_registry(registry)
    if trail_ruleset:
        unnamed = protection.trail_ruleset_unnamed(reg)
        if unnamed:
            err_console.print(
                f"warning: {', '.join(unnamed)} {'has' if len(unnamed) == 1 else 'have'} no github_app_id in the "
                f"registry, so the ruleset cannot let {'it' if len(unnamed) == 1 else 'them'} write {TRAIL_BRANCH}"
            )
        typer.echo(json.dumps(protection.trail_ruleset(reg), indent=2))  # plain JSON: for `gh api --input`
        return
    want = protection.desired(reg, branch)
    if live is not None:
        data = json.loads(live.read_text(encoding="utf-8"))
        found = protection.diff(protection.from_github(branch, data or None), want)
        result = _protection_result(found, False, protection.request_body(want), None)
        emit(result, output, lambda c: _render_diff(found, False, result["body"], c))
        return
    forge = connect(resolve_settings(forge_url, repo, token))
    if not isinstance(forge, protection.ProtectionPort):
        raise UserError(
            "the forge adapter cannot read or write branch protection; pass --live FILE (the JSON of "
            "GET /repos/ORG/NAME/branches/BRANCH/protection) to print the diff and the request body"
        )
    port: protection.ProtectionPort = forge
    wants = [want, protection.desired_trail(reg)] if trail else [want]
    results: list[dict[str, Any]] = []
    shown: list[Callable[[Console], None]] = []
    failures: list[str] = []
    for target in wants:
        try:
            found, applied, after = _protect_one(port, target, dry_run)
        except ForgeError as exc:
            if target.branch != TRAIL_BRANCH or exc.status != 404:
                raise
            missing = (
                f"{TRAIL_BRANCH} does not exist yet, so branch protection cannot hold it: the first glassbox job "
                f"that publishes (the first PR's check) creates it; run glassbox protect again then. Until then "
                f"guard its ref with the ruleset `glassbox protect --trail-ruleset` prints (docs/github-setup.md)"
            )
            results.append({"branch": TRAIL_BRANCH, "exists": False, "in_sync": False, "applied": False})
            shown.append(functools.partial(_say_missing, missing))
            failures.append(missing)
            continue
        body = protection.request_body(target)
        results.append(_protection_result(found, applied, body, after))
        shown.append(functools.partial(_render_found, found, applied, body, after))
        if after is not None and not after.in_sync:
            kept_out = ", ".join(ch.setting for ch in after.changes)
            failures.append(f"the forge did not keep these settings on {target.branch}: {kept_out}")
    result = dict(results[0])
    if trail:
        result["trail"] = results[1]

    def show_all(c: Console) -> None:
        for show in shown:
            show(c)

    emit(result, output, show_all)
    for failure in failures:
        err_console.print(f"error: {failure}")
    if failures:
        raise typer.Exit(1)


def _say_missing(message: str, c: Console) -> None:
    c.print(f"[yellow]{message}[/]")


def _render_found(
    found: protection.ProtectionDiff,
    applied: bool,
    body: dict[str, Any],
    after: protection.ProtectionDiff | None,
    c: Console,
) -> None:
    _render_diff(found, applied, body, c, after)


def _protect_one(
    port: protection.ProtectionPort, want: protection.BranchProtection, dry_run: bool
) -> tuple[protection.ProtectionDiff, bool, protection.ProtectionDiff | None]:
    """(the diff found, whether it was applied, the diff read back after applying)."""
    if dry_run:
        return protection.verify(port, want), False, None
    found = protection.apply(port, want)
    applied = not found.in_sync
    return found, applied, protection.verify(port, want) if applied else None


def _protection_result(
    found: protection.ProtectionDiff, applied: bool, body: dict[str, Any], after: protection.ProtectionDiff | None
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "branch": found.branch,
        "diff": found.model_dump(mode="json"),
        "in_sync": found.in_sync,
        "applied": applied,
        "body": body,
    }
    if after is not None:
        result["after"] = after.model_dump(mode="json")
    return result
