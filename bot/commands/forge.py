"""`glassbox forge init|serve`: create and run the embedded forge (GitHub REST subset on 127.0.0.1)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from bot.commands._common import OutputFormat, OutputOption, emit, styled
from bot.forge.server import init_forge, serve
from bot.forge.server.setup import DEFAULT_CONTEXTS

group = typer.Typer(
    help="The embedded forge: a GitHub REST subset over bare git repos, for tests and the offline demo.",
    no_args_is_help=True,
)

DataOption = Annotated[Path, typer.Option("--data", help="Forge data directory (state, repos, tokens, keys).")]


def register(app: typer.Typer) -> None:
    app.add_typer(group, name="forge")


@group.command("init")
def init(
    data: DataOption,
    repo: Annotated[str, typer.Option("--repo", help="Repository to create, as ORG/NAME.")],
    source: Annotated[Path, typer.Option("--from", help="Working tree imported as the first commit.")],
    registry: Annotated[
        Path | None,
        typer.Option("--registry", help="Registry directory. Default: <--from>/registry.", show_default=False),
    ] = None,
    branch: Annotated[str, typer.Option("--branch", help="Default (protected) branch.")] = "main",
    require_status: Annotated[
        list[str] | None,
        typer.Option("--require-status", help="Required status context on the protected branch (repeatable)."),
    ] = None,
    required_approvals: Annotated[
        int, typer.Option("--required-approvals", min=0, max=6, help="Approvals on the head commit needed to merge.")
    ] = 1,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Create a forge: identities, tokens (DIR/tokens.json, 0600), keys (DIR/keys/), repo, teams, protection."""
    contexts = tuple(require_status) if require_status else DEFAULT_CONTEXTS
    result = init_forge(
        data, repo, source, registry, branch=branch, required_contexts=contexts, required_approvals=required_approvals
    )

    def render(console: Console) -> None:
        console.print(styled("[bold green]forge ready[/] {} at {}", result.repo, result.data_dir))
        console.print(
            f"  {result.branch} @ {result.head} (protected: {', '.join(result.required_contexts)}; "
            f"{result.required_approvals} approval(s) on the head)"
        )
        console.print(f"  clone from {result.repo_path}")
        console.print(
            f"  {len(result.identities)} identities; tokens in {result.tokens_file} (0600), keys in {result.keys_dir}"
        )
        console.print(f"  serve with: glassbox forge serve --data {result.data_dir} --port 0")

    emit(result, output, render)


@group.command("serve")
def serve_command(
    data: DataOption,
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="TCP port on 127.0.0.1; 0 picks a free one.")
    ] = 0,
) -> None:
    """Serve the forge on 127.0.0.1 until interrupted; prints the API base URL first."""
    if not (data / "forge.sqlite3").exists():
        from bot.errors import UserError

        raise UserError(f"--data {data}: no forge here; create one with `glassbox forge init --data {data} ...`")

    def announce(url: str) -> None:
        print(f"forge listening on {url}", flush=True)

    try:
        serve(data, port, announce)
    except OSError as exc:
        from bot.errors import UserError

        raise UserError(f"--port {port}: cannot listen on 127.0.0.1 ({exc.strerror}); pick another port or 0") from None
    except KeyboardInterrupt:
        print("forge stopped", file=sys.stderr)
