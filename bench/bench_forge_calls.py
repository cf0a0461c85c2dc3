"""API calls (and wall time) to open one PR against the embedded forge, for 1, 10 and 200 changed files.

Run: .venv/bin/python bench/bench_forge_calls.py   (binds 127.0.0.1 only; everything lives in a temp dir)
"""

from __future__ import annotations

import io
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.forge.github import GitHubForge  # noqa: E402
from bot.forge.server import init_forge, load_tokens, start_forge  # noqa: E402
from bot.forge.settings import ForgeSettings  # noqa: E402
from bot.records import FileChange  # noqa: E402

AGENT = "patch-agent"


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="gbx-bench-") as tmp:
        src = Path(tmp) / "src"
        shutil.copytree(ROOT / "registry", src / "registry")
        (src / "README.md").write_text("# bench\n")
        data = Path(tmp) / "forge"
        init_forge(data, "acme/infra", src)
        url, stop = start_forge(data, log=io.StringIO())
        try:
            forge = GitHubForge(ForgeSettings(url=url, repo="acme/infra", token=load_tokens(data)[AGENT]))
            print(f"{'files':>6} {'api calls':>10} {'seconds':>8}")
            for n in (1, 10, 200):
                files = [FileChange(path=f"infra/b{n}/f{i:04d}.yaml", content=f"i: {i}\n") for i in range(n)]
                before, start = forge.calls, time.perf_counter()
                forge.open_pull_request(
                    base="main",
                    branch=f"glassbox/{AGENT}/bench-{n}",
                    title=f"bench {n}",
                    body="",
                    changes=files,
                    labels=["glassbox"],
                )
                print(f"{n:>6} {forge.calls - before:>10} {time.perf_counter() - start:>8.3f}")
        finally:
            stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
