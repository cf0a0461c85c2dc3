"""Shared builders for forge tests: a small source tree, an initialised embedded forge, clients per identity."""

from __future__ import annotations

import io
import json
import shutil
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from github import Auth, Github

from bot.forge.github import GitHubForge, RetryPolicy
from bot.forge.server import ADMIN, init_forge, load_tokens, start_forge
from bot.forge.settings import ForgeSettings
from bot.records import FileChange

REPO = "acme/infra"
ROOT = Path(__file__).resolve().parents[1]


class LockedLog(io.StringIO):
    """A log stream safe to write from server threads."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()

    def write(self, s: str) -> int:
        with self._lock:
            return super().write(s)


def make_source(root: Path) -> Path:
    """A tiny infrastructure repository: the real registry plus a couple of files."""
    src = root / "src"
    shutil.copytree(ROOT / "registry", src / "registry")
    (src / "infra" / "network").mkdir(parents=True)
    (src / "infra" / "network" / "Pulumi.dev.yaml").write_text("config:\n  network:cidr: 10.0.0.0/16\n")
    (src / "infra" / "network" / "__main__.py").write_text("print('network')\n")
    (src / "README.md").write_text("# infra\n")
    (src / ".venv").mkdir()
    (src / ".venv" / "junk").write_text("never imported\n")
    return src


def _open(url: str, token: str, method: str, body: Any) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - 127.0.0.1 only
    req.add_header("Authorization", f"token {token}")
    req.add_header("Content-Type", "application/json")
    return urllib.request.urlopen(req, timeout=10)  # noqa: S310 - 127.0.0.1 only


@dataclass
class ForgeEnv:
    data: Path
    url: str
    tokens: dict[str, str]
    stop: Callable[[], None]
    log: LockedLog
    sleeps: list[float] = field(default_factory=list)

    def client(self, identity: str, **kwargs: Any) -> GitHubForge:
        kwargs.setdefault("sleep", self.sleeps.append)
        kwargs.setdefault("policy", RetryPolicy(attempts=6, base_delay=0.01, max_delay=5.0))
        return GitHubForge(ForgeSettings(url=self.url, repo=REPO, token=self.tokens[identity]), **kwargs)

    def github(self, identity: str) -> Github:
        """Raw PyGithub as ``identity``: for what people do in GitHub's UI (review, push), not the port."""
        return Github(
            base_url=self.url,
            auth=Auth.Token(self.tokens[identity]),
            retry=None,
            seconds_between_requests=None,
            seconds_between_writes=None,
        )

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        """Call the API or the admin endpoints as the forge admin, bypassing PyGithub (an error status raises)."""
        with _open(self.url.removesuffix("/api/v3") + path, self.tokens[ADMIN], method, body) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def request(self, identity: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """Call the API (``path`` below the API root) as ``identity`` over plain HTTP: (status, JSON or None);
        an error status is an answer, not an exception."""
        try:
            with _open(self.url + path, self.tokens[identity], method, body) as resp:
                raw, status = resp.read(), resp.status
        except urllib.error.HTTPError as err:
            raw, status = err.read(), err.code
        return status, json.loads(raw) if raw else None

    def ok(self, identity: str, method: str, path: str, body: Any = None) -> Any:
        """:meth:`request`, asserting a 2xx answer; its JSON."""
        status, data = self.request(identity, method, path, body)
        assert 200 <= status < 300, (status, data)
        return data

    def faults(self, *rules: dict[str, Any], seed: int = 0) -> None:
        self.admin("POST", "/_glassbox/faults", {"rules": list(rules), "seed": seed})

    def stats(self) -> dict[str, int]:
        return dict(self.admin("GET", "/_glassbox/stats"))


def forge_env(tmp: Path, **init_kwargs: Any) -> Iterator[ForgeEnv]:
    src = make_source(tmp)
    data = tmp / "forge"
    init_forge(data, REPO, src, **init_kwargs)
    log = LockedLog()
    url, stop = start_forge(data, log=log)
    env = ForgeEnv(data=data, url=url, tokens=load_tokens(data), stop=stop, log=log)
    try:
        yield env
    finally:
        stop()


def changes(n: int, prefix: str = "infra/network/gen") -> list[FileChange]:
    return [FileChange(path=f"{prefix}/file{i:04d}.yaml", content=f"index: {i}\n") for i in range(n)]
