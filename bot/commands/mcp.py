"""`glassbox mcp --agent ID`: serve the agent's tools (propose, pre-flight, status, scope) over MCP stdio.

The server acts as the one agent named at start, with that agent's key; the forge, ledger and base clone
come from the same options and environment variables as ``glassbox propose``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bot.commands._common import KeysOption, LedgerOption, PlanCacheOption, keys_dir, ledger_path
from bot.commands.propose import BaseRepoOption
from bot.forge.settings import ForgeUrlOption, RepoOption, TokenOption, resolve_settings


def register(app: typer.Typer) -> None:
    app.command("mcp")(mcp)


def mcp(
    agent: Annotated[str, typer.Option("--agent", help="The registered agent this server acts as (fixed).")],
    base_repo: BaseRepoOption = Path("."),
    base_branch: Annotated[str, typer.Option("--base-branch", help="Branch whose registry gives the scope.")] = "main",
    forge_url: ForgeUrlOption = None,
    repo: RepoOption = None,
    token: TokenOption = None,
    keys: KeysOption = None,
    ledger: LedgerOption = None,
    preflight: Annotated[
        bool, typer.Option(help="Run the policy check on the would-be commit before opening a PR.")
    ] = True,
    plan_cache: PlanCacheOption = True,
) -> None:
    """Serve one agent's glassbox tools over MCP (stdio): propose_change, preflight_change,
    get_change_status, list_my_scope."""
    # imported here so that every other command starts without loading the MCP SDK
    from bot.mcp_server import ServerConfig, serve

    ledger_file = ledger_path(ledger)
    assert ledger_file is not None
    serve(
        ServerConfig(
            agent_id=agent,
            keys=keys_dir(keys),
            ledger=ledger_file,
            base_repo=base_repo,
            forge=resolve_settings(forge_url, repo, token),
            base_branch=base_branch,
            preflight=preflight,
            plan_cache=plan_cache,
        )
    )
