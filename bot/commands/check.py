"""`glassbox check`: plan → Rego → checkov → risk → signed verdict. Exit 0 PASSED, 1 FAILED, 2 bad input."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import git
import typer
from rich.console import Console

from bot.check.ci import attest_and_record, pr_check_request
from bot.check.ci import publish as publish_verdict
from bot.check.evaluate import CheckRequest, deny_reasons, run_check
from bot.check.services import CheckServices
from bot.commands._common import (
    KeysOption,
    LedgerOption,
    OutputFormat,
    OutputOption,
    PlanCacheOption,
    SandboxMode,
    SandboxOption,
    emit,
    keys_dir,
    ledger_path,
)
from bot.errors import Denied, UserError
from bot.forge.github import GitHubForge
from bot.forge.settings import ForgeUrlOption, TokenOption, resolve_settings
from bot.plan import Sandbox
from bot.plan.cache import configured_cache
from bot.records import VerdictResult
from bot.registry import load_registry
from bot.trust.anchors import export_tree
from bot.trust.attestations import store_attestation
from bot.trust.conventions import REGISTRY_DIR
from bot.trust.keys import load_signer
from bot.trust.ledger import Ledger


def register(app: typer.Typer) -> None:
    app.command("check")(check)


def check(
    repo: Annotated[Path, typer.Option("--repo", help="Path of a git clone holding both commits.")] = Path("."),
    base: Annotated[str, typer.Option("--base", help="Base ref or SHA (trust anchors are read from it).")] = "main",
    head: Annotated[str, typer.Option("--head", help="Head ref or SHA to judge.")] = "HEAD",
    out: Annotated[
        Path, typer.Option("--out", help="Directory for verdict.json, .sarif, summary.md, attestation.")
    ] = Path("glassbox-check"),
    repo_name: Annotated[
        str,
        typer.Option("--repo-name", help="ORG/NAME: recorded in the verdict, and the forge repository for --publish."),
    ] = "local/repo",
    pr: Annotated[
        int | None,
        typer.Option(
            "--pr",
            help="The PR being judged: who wrote it (author, every pusher), its draft state and its base are read "
            "from the forge (needs --forge-url/--token or GLASSBOX_FORGE_URL/GLASSBOX_TOKEN), never from a flag.",
        ),
    ] = None,
    keys: KeysOption = None,
    ledger: LedgerOption = None,
    attest: Annotated[bool, typer.Option(help="Sign the verdict as the CI identity (needs its key).")] = True,
    store: Annotated[
        Path | None, typer.Option("--store", help="Also file the attestation in this store, by head commit.")
    ] = None,
    publish: Annotated[
        bool,
        typer.Option(
            help="Set the glassbox/check status and check run on the head commit and comment the summary on --pr."
        ),
    ] = False,
    forge_url: ForgeUrlOption = None,
    token: TokenOption = None,
    sandbox: SandboxOption = SandboxMode.NAMESPACES,
    plan_cache: PlanCacheOption = True,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Judge HEAD against BASE and write the verdict, SARIF, summary and signed attestation."""
    ci = None
    if attest:
        try:
            base_commit = git.Repo(repo).commit(base)
        except (git.exc.GitError, ValueError, git.BadName) as exc:
            raise UserError(f"--repo {repo} / --base {base}: {exc}") from None
        with tempfile.TemporaryDirectory(prefix="glassbox-ci-") as scratch:
            registry = load_registry(export_tree(base_commit, REGISTRY_DIR, Path(scratch)))
        ci = registry.service_identity("ci")
        if ci is None:
            raise UserError("the base registry declares no CI identity (teams.yaml service_identities, kind ci)")
    ledger_file = ledger_path(ledger, required=False)
    forge = GitHubForge(resolve_settings(forge_url, repo_name, token)) if pr is not None or publish else None
    if pr is not None:
        assert forge is not None
        pull = forge.get_pull_request(pr)
        try:
            head_sha = git.Repo(repo).commit(head).hexsha
        except (git.exc.GitError, ValueError, git.BadName) as exc:
            raise UserError(f"--repo {repo} / --head {head}: {exc}") from None
        if pull.head_sha != head_sha:
            raise UserError(f"--head {head} is not PR #{pr}'s head {pull.head_sha[:12]} on the forge")
        request = pr_check_request(forge, pull, repo, sandbox=Sandbox(sandbox.value))
        request.base = base  # the clone's base commit, as given (the forge's base_sha may have moved on)
    else:
        request = CheckRequest(repo_path=repo, base=base, head=head, repo=repo_name, sandbox=Sandbox(sandbox.value))
    with CheckServices(plan_cache=configured_cache(enabled=plan_cache)) as services:
        request.services = services
        result = run_check(request)
    # The key is read only now, after every sandbox of this check has exited.
    signer = load_signer(keys_dir(keys), ci) if ci is not None else None
    attest_and_record(result, signer=signer, ledger=Ledger(ledger_file) if ledger_file else None)
    written = result.write(out)
    verdict = result.verdict
    if store is not None and result.attestation is not None:
        written.append(store_attestation(store, verdict.change.head_commit, result.attestation))
    if publish:
        assert forge is not None
        publish_verdict(forge, result, pr)

    def render(console: Console) -> None:
        console.print(result.summary)
        console.print(f"wrote {', '.join(str(p) for p in written)}")

    emit({"verdict": verdict, "files": [str(p) for p in written]}, output, render)
    if verdict.result is VerdictResult.FAILED:
        raise Denied(f"check FAILED at risk {verdict.risk.value}", deny_reasons(verdict))
