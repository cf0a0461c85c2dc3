"""The embedded forge's request, response and error types, shared by the application core and its routes.

They live apart from :mod:`bot.forge.server.app` so that the route modules (:mod:`bot.forge.server.routes`)
can use them while the core imports the routes to assemble its table.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
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
