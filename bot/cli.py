"""The `glassbox` command line: parse, call one service function, render. No logic lives here.

Each command group is a module under ``bot/commands/`` exposing ``register(app)``. This module owns the
single error handler that maps the error tree (``bot/errors.py``) to exit codes.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import typer
from typer.exceptions import TyperException

from bot.commands import (
    approvals,
    audit,
    audit_report,
    breakglass,
    check,
    ci,
    demo,
    deploy,
    forge,
    keys,
    ledger,
    mcp,
    plan,
    propose,
    registry,
    schema,
    trail,
)
from bot.errors import EXIT_BAD_INPUT, EXIT_UNEXPECTED, GlassboxError

app = typer.Typer(
    name="glassbox",
    help="Governed infrastructure change for AI agents: proposals become PRs, PRs get verdicts, "
    "merges get deployed by a distinct identity, and every decision is signed evidence.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for module in (
    registry,
    schema,
    keys,
    ledger,
    forge,
    propose,
    plan,
    check,
    approvals,
    deploy,
    breakglass,
    audit,
    audit_report,
    trail,
    ci,
    mcp,
    demo,
):
    module.register(app)


def _log_path() -> Path:
    env = os.environ.get("GLASSBOX_LOG")
    if env:
        return Path(env)
    from platformdirs import user_log_dir

    return Path(user_log_dir("glassbox")) / "glassbox.log"


def _log_unexpected(exc: BaseException) -> Path | None:
    path = _log_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as fh:
            fh.write(f"--- {datetime.now(UTC).isoformat()} glassbox {' '.join(sys.argv[1:])}\n")
            fh.write("".join(traceback.format_exception(exc)))
    except OSError:
        return None
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code (0 ok, 1 denied, 2 bad input, 3 unexpected)."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        result = app(args=args, prog_name="glassbox", standalone_mode=False)
    except GlassboxError as exc:
        head, *rest = exc.lines()
        print(f"glassbox: {head}", file=sys.stderr)
        for line in rest:
            print(line, file=sys.stderr)
        return exc.exit_code
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.Abort:
        print("glassbox: aborted", file=sys.stderr)
        return EXIT_BAD_INPUT
    except TyperException as exc:  # usage errors: unknown option, missing argument, bad value
        show = getattr(exc, "show", None)
        if callable(show):
            show(file=sys.stderr)
        else:
            print(f"glassbox: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("glassbox: interrupted", file=sys.stderr)
        return EXIT_UNEXPECTED
    except Exception as exc:
        where = _log_unexpected(exc)
        tail = f"; traceback in {where}" if where else ""
        print(f"glassbox: an unexpected error occurred: {type(exc).__name__}: {exc}{tail}", file=sys.stderr)
        return EXIT_UNEXPECTED
    return int(result) if isinstance(result, int) else 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
