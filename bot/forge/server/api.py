"""The embedded forge's request, response and error types, shared by the application core and its routes.

They live apart from :mod:`bot.forge.server.app` so that the route modules (:mod:`bot.forge.server.routes`)
can use them while the core imports the routes to assemble its table.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bot.forge.server import shapes
from bot.forge.server.store import User


class ApiError(Exception):
    def __init__(self, status: int, message: str, doc: str = "", errors: list[Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.doc = doc
        self.errors = errors

    def body(self) -> dict[str, Any]:
        data = shapes.error(self.message, self.doc)
        if self.errors:
            data["errors"] = self.errors
        return data


def not_found() -> ApiError:
    return ApiError(404, "Not Found")


def invalid(resource: str, field: str, message: str, code: str = "invalid") -> ApiError:
    """GitHub's 422 for one bad field of a request body: ``errors`` names the field and says what is wrong."""
    return ApiError(
        422,
        "Validation Failed",
        errors=[{"resource": resource, "field": field, "code": code, "message": f"{field}: {message}"}],
    )


def timestamp(value: str, resource: str, field: str) -> datetime:
    """An ISO 8601 time given in a request (UTC when it names no zone); a 422 naming ``field`` otherwise."""
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError):
        raise invalid(resource, field, "must be an ISO 8601 timestamp, e.g. 2026-01-31T12:00:00Z") from None


def not_implemented(method: str, path: str) -> ApiError:
    """A GitHub endpoint this forge does not serve: a 501, never a 404 that reads as "no such thing"."""
    return ApiError(501, f"Not Implemented: this forge does not serve {method} {path}")


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    user: User | None
    params: dict[str, str] = field(default_factory=dict)


@dataclass
class Response:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False

    def encoded(self) -> bytes:
        if self.body is None:
            return b""
        return json.dumps(self.body, separators=(",", ":")).encode("utf-8")
