"""`glassbox keys init`: make an identity's ed25519 key pair and print its trust.yaml entry."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from bot.commands._common import KeysOption, OutputFormat, OutputOption, emit, keys_dir
from bot.trust.keys import generate_key

group = typer.Typer(
    help="Identity keys (ed25519) for signing commits, verdicts, deploys and ledger events.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(group, name="keys")


@group.command("init")
def init(
    identity: Annotated[str, typer.Option("--identity", help="Identity the key speaks for (registry id).")],
    keys: KeysOption = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing key.")] = False,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Create a key pair (private key 0600, never inside a repository) and print the public key line."""
    directory = keys_dir(keys)
    signer = generate_key(directory, identity, overwrite=force)
    entry = {
        "identity": identity,
        "keyid": signer.keyid,
        "public_key": signer.public_line,
        "roles": ["commit-signer", "ledger-signer"],
    }
    data = {"private_key": str(signer.path), "trust_entry": entry}

    def render(console: Console) -> None:
        console.print(f"created {signer.path} (mode 0600)")
        console.print("add to registry/trust.yaml under keys (adjust roles):")
        console.print(
            f"  - identity: {identity}\n    keyid: {signer.keyid}\n    public_key: {signer.public_line}\n"
            "    roles: [commit-signer, ledger-signer]"
        )

    emit(data, output, render)
