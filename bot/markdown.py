"""Markdown that glassbox writes for people (PR bodies, check summaries), rendered from ``bot/templates/``.

Markdown is not HTML, so there is no HTML autoescape; instead everything that comes from data goes through one of
two filters: ``text`` (free text: it may never open an HTML comment, which is where glassbox keeps its markers)
and ``cell`` (a table cell: one line, no column breaks).
"""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape


def text(value: object) -> str:
    return str(value).replace("<!--", "&lt;!--")


def cell(value: object) -> str:
    return text(value).replace("|", "\\|").replace("\n", " ")


_ENV = Environment(
    loader=PackageLoader("bot", "templates"),
    autoescape=select_autoescape(["html", "html.j2"]),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
    trim_blocks=True,
)
_ENV.filters.update(text=text, cell=cell)


def render(template: str, **context: Any) -> str:
    return _ENV.get_template(template).render(**context)
