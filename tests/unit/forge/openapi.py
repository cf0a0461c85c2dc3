"""GitHub's official OpenAPI description (npm ``@octokit/openapi``), fetched once into a user cache dir,
and validators for the response schemas of single operations.

OpenAPI 3.0 quirks are converted for JSON Schema draft 7: ``nullable: true`` becomes a union with null,
and ``oneOf`` becomes ``anyOf`` (GitHub's own answers match several branches, e.g. private/public user).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

PACKAGE = "@octokit/openapi"
MEMBER = "package/generated/api.github.com.json"


class Unavailable(Exception):
    """Why the description could not be had (npm absent, fetch failed)."""


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "glassbox" / "octokit-openapi"


def fetch() -> Path:
    """The path of ``api.github.com.json``, fetching it with ``npm pack`` into the cache if needed."""
    directory = cache_dir()
    target = directory / "api.github.com.json"
    if target.exists():
        return target
    npm = shutil.which("npm")
    if npm is None:
        raise Unavailable("npm is not installed, so GitHub's OpenAPI description cannot be fetched")
    directory.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [npm, "pack", PACKAGE, "--silent", "--pack-destination", str(directory)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    tarballs = sorted(directory.glob("octokit-openapi-*.tgz"))
    if proc.returncode != 0 or not tarballs:
        raise Unavailable(f"npm pack {PACKAGE} failed: {proc.stderr.strip()[:300]}")
    with tarfile.open(tarballs[-1]) as tar:
        member = tar.extractfile(MEMBER)
        if member is None:
            raise Unavailable(f"{tarballs[-1]} has no {MEMBER}")
        tmp = target.with_suffix(".tmp")
        tmp.write_bytes(member.read())
        tmp.replace(target)
    return target


def _convert(node: Any) -> Any:
    if isinstance(node, list):
        return [_convert(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {
        k: ({name: _convert(sub) for name, sub in v.items()} if k == "properties" else _convert(v))
        for k, v in node.items()
        if k not in ("example", "examples", "discriminator")
    }
    if "oneOf" in out:
        out["anyOf"] = out.pop("oneOf")
    if out.pop("nullable", False):
        kind = out.get("type")
        if isinstance(kind, str):
            out["type"] = [kind, "null"]
            if "enum" in out:
                out["enum"] = [*out["enum"], None]
        else:
            return {"anyOf": [out, {"type": "null"}]}
    return out


@cache
def document() -> dict[str, Any]:
    raw = json.loads(fetch().read_text(encoding="utf-8"))
    return {"paths": raw["paths"], "components": _convert(raw["components"])}


def response_schema(method: str, path: str, status: int) -> dict[str, Any]:
    schema = documented(method, path, status)["content"]["application/json"]["schema"]
    return _convert(schema)  # type: ignore[no-any-return]


def documented(method: str, path: str, status: int) -> dict[str, Any]:
    """The documented response of an operation for ``status`` (KeyError when GitHub documents none)."""
    doc = document()
    response = doc["paths"][path][method.lower()]["responses"][str(status)]
    if "$ref" in response:
        response = doc["components"]["responses"][response["$ref"].rsplit("/", 1)[-1]]
    return response  # type: ignore[no-any-return]


def validate(method: str, path: str, status: int, body: Any) -> None:
    """Raise jsonschema.ValidationError if ``body`` does not match the documented response. Where GitHub documents
    no content, a success has no body and an error has GitHub's error body (what github.com sends)."""
    if "content" not in documented(method, path, status):
        if status >= 400:
            errors = [{"$ref": f"#/components/schemas/{name}"} for name in ("basic-error", "validation-error")]
            jsonschema.Draft7Validator({"anyOf": errors, "components": document()["components"]}).validate(body)
        elif body is not None:
            raise jsonschema.ValidationError(f"{method} {path} {status} has no content, got {body!r}")
        return
    schema = {**response_schema(method, path, status), "components": document()["components"]}
    jsonschema.Draft7Validator(schema).validate(body)


def validate_component(name: str, body: Any) -> None:
    """Raise jsonschema.ValidationError if ``body`` does not match the component schema ``name``."""
    components = document()["components"]
    schema = {**components["schemas"][name], "components": components}
    jsonschema.Draft7Validator(schema).validate(body)


def validate_request(method: str, path: str, body: Any) -> None:
    """Raise jsonschema.ValidationError if ``body`` does not match the documented request body of an operation."""
    doc = document()
    schema = doc["paths"][path][method.lower()]["requestBody"]["content"]["application/json"]["schema"]
    jsonschema.Draft7Validator({**_convert(schema), "components": doc["components"]}).validate(body)
