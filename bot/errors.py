"""The one error tree of glassbox, and the exit code each kind of error maps to.

GlassboxError
├── UserError            bad input: a file, a field, a flag. Exit 2, one line naming the field and the fix.
│   └── ValidationFailed carries several problems (one line each), e.g. registry validation.
├── Denied               a policy or scope decision said no. Exit 1, with every reason / rule id.
├── ForgeError           the code host failed; ``retryable`` says whether trying again may help.
├── IntegrityError       a digest, signature or chain did not verify. Exit 1 (a deny, never a pass).
└── EngineError          the plan runner, Rego or checkov failed. Exit 1: recorded, then denied (I5).

Anything else that escapes is unexpected: the CLI maps it to exit 3, writes the traceback to a log file
and prints one line. Nothing below ``bot/cli.py`` calls ``sys.exit``.
"""

from __future__ import annotations

from collections.abc import Sequence

EXIT_OK = 0
EXIT_DENIED = 1
EXIT_BAD_INPUT = 2
EXIT_UNEXPECTED = 3


class GlassboxError(Exception):
    """Base of every error glassbox raises on purpose."""

    exit_code = EXIT_UNEXPECTED

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def lines(self) -> list[str]:
        """What the user reads: one line per problem."""
        return [self.message]


class UserError(GlassboxError):
    """Bad input: the message names the file or field and what to do about it."""

    exit_code = EXIT_BAD_INPUT


class ValidationFailed(UserError):
    """Several input problems found at once; each is one line naming file, field path and problem."""

    def __init__(self, problems: Sequence[str], summary: str = "validation failed") -> None:
        super().__init__(f"{summary}: {len(problems)} problem(s)")
        self.problems = list(problems)

    def lines(self) -> list[str]:
        return [self.message, *self.problems]


class Denied(GlassboxError):
    """A decision said no. ``reasons`` lists every reason, not only the first."""

    exit_code = EXIT_DENIED

    def __init__(self, message: str, reasons: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.reasons = list(reasons)

    def lines(self) -> list[str]:
        return [self.message, *(f"  - {r}" for r in self.reasons)]


class ForgeError(GlassboxError):
    """The code host answered with an error or could not be reached."""

    exit_code = EXIT_UNEXPECTED

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable


class IntegrityError(GlassboxError):
    """Something signed or hash-chained does not verify."""

    exit_code = EXIT_DENIED


class EngineError(GlassboxError):
    """An evaluation engine (plan runner, Rego, checkov) failed. Callers record it and deny (I5)."""

    exit_code = EXIT_DENIED

    def __init__(self, message: str, *, engine: str) -> None:
        super().__init__(f"{engine}: {message}")
        self.engine = engine
