"""The pre-flight an agent calls in a loop, and the CI check of the same change: first call, later calls, and
where a later call's time goes (issue "a check that costs what the change costs", items 1 and 4).

The sample estate (this checkout's registry, infra and policy pack) on the embedded forge; the agent
``cost-optimizer`` asks for a one-line stack-config change (``infra/network/Pulumi.dev.yaml``: the flow-log
retention). The pre-flight is driven as ``glassbox mcp`` runs it: one long-lived process holding one
:class:`bot.mcp_server.AgentTools` (its warm checkov worker, loaded pack, plan cache and two warm sandboxes,
:mod:`bot.plan.pool`), calling its
``preflight_change`` tool function once per request. Series, each ``--calls`` calls:

- ``same change``: the same change asked again (a new request and would-be commit each time): base and head
  plans come from the plan cache after the first call;
- ``new value``: a different retention each call: the base comes from the cache, the head runs in its sandbox;
  back to back, and ``paced``: each call made once the sandbox pool has finished warming (untimed; an agent
  reading one answer and writing the next request gives it that time);
- ``no plan cache``: the same change with ``--no-plan-cache`` (checkov and the pack still warm): every call plans
  both sides in their sandboxes, as every call did before.

Then ``touched-N`` (``--touched``, N = 1000 by default, 0 skips it): the same server on another forge whose main adds
``bench/bench_check.py``'s generated estate of N resources as project ``bench`` (stack ``prod``, registered in
``estate.yaml``) and an agent ``estate-agent`` scoped to its stack config. Each call is another five-resource change
(the app log group's retention, a rule's description, the bucket's and the role's tags, a permission of the role's
policy, of one unit: ``bench:touched`` in ``infra/bench/Pulumi.prod.yaml``), made once the warm sandboxes are warm
(paced, as above); the first call also plans the base, the figure is the median of the later calls.

Then the CI check of the same change, ``glassbox check --no-attest`` in a fresh process each time (as a CI job
runs it): with an empty plan cache, with the cache the first run filled, and with ``--no-plan-cache``.

Run: ``.venv/bin/python bench/bench_preflight.py [--calls 7] [--ci-repeat 3] [--touched 1000]``. A bench, not a
test: it prints and asserts nothing; the exit code is 0 unless a step fails outright.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import git
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from bench_check import PREFLIGHT_UNITS, PROGRAM, _config  # noqa: E402

import bot.check.evaluate as evaluate  # noqa: E402
import bot.check.preflight as preflight  # noqa: E402
import bot.mcp_server as mcp_server  # noqa: E402
from bot.entry import describe_go_gc, start_with_go_gc  # noqa: E402
from bot.forge.server import init_forge, load_tokens, start_forge  # noqa: E402
from bot.forge.server.app import repo_path  # noqa: E402
from bot.forge.settings import ForgeSettings  # noqa: E402
from bot.mcp_server import AgentTools, ServerConfig  # noqa: E402
from bot.plan.cache import DIR_ENV  # noqa: E402
from tests.flow_helpers import REPO, _dev_network_config, governed_source, request  # noqa: E402

AGENT = "cost-optimizer"
CONFIG = "infra/network/Pulumi.dev.yaml"
GLASSBOX = Path(sys.executable).parent / "glassbox"

# Where a call's time goes: each of these is timed (cumulative per call) while the series run.
PHASES: dict[str, tuple[Any, str]] = {
    "scope": (mcp_server, "proposal_context"),  # the base's registry, the forge's branch head
    "preflight": (mcp_server, "preflight_verdict"),
    "check": (preflight, "run_check"),
    "anchors": (evaluate, "load_anchors"),
    "plan": (evaluate, "plan_change"),
    "rego": (evaluate, "rego_findings"),
    "checkov": (evaluate, "_checkov_findings"),  # in a thread, beside rego
}
spent: dict[str, float] = {}


def _timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[name] = spent.get(name, 0.0) + time.perf_counter() - start

    return call


def _timed_context(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @contextmanager
    def call(*args: Any, **kwargs: Any) -> Iterator[Any]:
        start = time.perf_counter()
        with fn(*args, **kwargs) as value:
            spent[name] = spent.get(name, 0.0) + time.perf_counter() - start
            yield value

    return call


def instrument() -> None:
    for name, (module, attr) in PHASES.items():
        wrap = _timed_context if attr == "proposal_context" else _timed
        setattr(module, attr, wrap(name, getattr(module, attr)))


def change(days: int) -> dict[str, Any]:
    return request(changes=[{"path": CONFIG, "content": _dev_network_config(days)}]).model_dump(mode="json")


def series(
    tools: AgentTools, requests: list[dict[str, Any]], *, paced: bool = False
) -> tuple[list[float], list[dict[str, float]], Any]:
    """Seconds per call, the phases of each call, and the last answer. ``paced``: before each call (untimed), wait
    until the server's warm sandboxes have finished warming, as they do while an agent reads an answer and writes
    its next request; otherwise calls follow each other at once and a call may wait for a jail still importing."""
    seconds, phases, answer = [], [], None
    for req in requests:
        pool = tools.services.sandbox_pool
        if paced and pool is not None:
            pool.wait_warm(30.0)
        spent.clear()
        start = time.perf_counter()
        answer = tools.preflight_change(req)
        seconds.append(time.perf_counter() - start)
        if answer.get("outcome") not in ("would_pass", "would_fail"):
            raise SystemExit(f"pre-flight did not judge: {answer}")
        if not answer.get("plan_sources"):
            raise SystemExit(f"pre-flight planned nothing: {answer.get('reasons')}")
        split = dict(spent)
        split["clone + commit"] = split.pop("preflight", 0.0) - split.get("check", 0.0)
        split["rest"] = seconds[-1] - split["clone + commit"] - split.get("check", 0.0) - split.get("scope", 0.0)
        phases.append(split)
    return seconds, phases, answer


def sources(answer: dict[str, Any]) -> str:
    return ", ".join(f"{s['side']} {s['cache']}" for s in answer.get("plan_sources", []))


def report(name: str, seconds: list[float], phases: list[dict[str, float]], answer: dict[str, Any]) -> float:
    """Print a series; its later calls' median."""
    later = seconds[1:]
    median = statistics.median(later) if later else float("nan")
    print(
        f"{name:>14}: first {seconds[0]:.2f} s, later calls median {median:.2f} s "
        f"(min {min(later, default=float('nan')):.2f}, max {max(later, default=float('nan')):.2f}, n={len(later)}); "
        f"outcome {answer['outcome']}, risk {answer['risk']}; last call's plans: {sources(answer)}"
    )
    if later:

        def ms(name: str) -> str:
            return f"{statistics.median(p.get(name, 0.0) for p in phases[1:]) * 1000:.0f} ms"

        print(
            f"{'':>16}later calls, medians: scope {ms('scope')}, clone + commit {ms('clone + commit')}, "
            f"check {ms('check')} (anchors {ms('anchors')}, plan {ms('plan')}, rego {ms('rego')} beside checkov "
            f"{ms('checkov')}), rest {ms('rest')}"
        )
    return median


TOUCHED_AGENT = "estate-agent"
TOUCHED_CONFIG = "infra/bench/Pulumi.prod.yaml"


def touched_source(tmp: Path, count: int) -> Path:
    """The sample estate plus the generated ``count``-resource project ``bench`` (stack ``prod``) and an agent whose
    scope is that stack's config."""
    src = governed_source(tmp)
    project = src / "infra" / "bench"
    project.mkdir(parents=True)
    (project / "Pulumi.yaml").write_text("name: bench\nruntime:\n  name: python\n", encoding="utf-8")
    (project / "__main__.py").write_text(PROGRAM, encoding="utf-8")
    (src / TOUCHED_CONFIG).write_text(_config(count, 0, 30, "cc-1001"), encoding="utf-8")
    estate_file = src / "registry" / "estate.yaml"
    estate = yaml.safe_load(estate_file.read_text(encoding="utf-8"))
    estate["projects"].append(
        {
            "name": "bench",
            "directory": "infra/bench",
            "owners": ["team:platform"],
            "stacks": [{"name": "prod", "environment": "prod"}],
        }
    )
    estate_file.write_text(yaml.safe_dump(estate, sort_keys=False), encoding="utf-8")
    agents_file = src / "registry" / "agents.yaml"
    agents = yaml.safe_load(agents_file.read_text(encoding="utf-8"))
    template = next(a for a in agents["agents"] if a["id"] == AGENT)
    agents["agents"].append(
        template
        | {
            "id": TOUCHED_AGENT,
            "display_name": "Estate agent (bench)",
            "scope": {
                "paths": [TOUCHED_CONFIG],
                "projects": ["bench"],
                "stacks": ["prod"],
                "resource_types": ["aws:*"],
                "max_risk": "critical",
            },
            "budgets": {"changes_per_day": 1000, "open_prs": 5},
        }
    )
    agents_file.write_text(yaml.safe_dump(agents, sort_keys=False), encoding="utf-8")
    return src


def touched_change(count: int, unit: int) -> dict[str, Any]:
    """Five resources of unit ``unit`` change, as the request declares."""
    t = f"t{unit}"
    changed = [
        ("aws:cloudwatch/logGroup:LogGroup", f"app-{t}"),
        ("aws:ec2/securityGroupRule:SecurityGroupRule", f"db-from-app-{t}"),
        ("aws:s3/bucket:Bucket", f"data-{t}"),
        ("aws:iam/role:Role", f"app-{t}"),
        ("aws:iam/policy:Policy", f"app-{t}"),
    ]
    return request(
        agent_id=TOUCHED_AGENT,
        intent=f"Revise unit {unit} of the bench estate",
        changes=[{"path": TOUCHED_CONFIG, "content": _config(count, 0, 30, "cc-1001", unit)}],
        expected_changes=[
            {"project": "bench", "stack": "prod", "type": kind, "name": name, "action": "update"}
            for kind, name in changed
        ],
    ).model_dump(mode="json")


def touched_series(tmp: Path, count: int, calls: int) -> float:
    """``calls`` pre-flights of five-resource changes in a ``count``-resource estate, through AgentTools."""
    data = tmp / "forge-touched"
    init_forge(data, REPO, touched_source(tmp / "touched", count))
    url, stop = start_forge(data, log=io.StringIO())
    try:
        config = ServerConfig(
            agent_id=TOUCHED_AGENT,
            keys=data / "keys",
            ledger=tmp / "ledger-touched.jsonl",
            base_repo=repo_path(data, REPO),
            forge=ForgeSettings(url=url, repo=REPO, token=load_tokens(data)[TOUCHED_AGENT]),
        )
        units = [2, *PREFLIGHT_UNITS][:calls]
        print(f"\ntouched-{count}: MCP pre-flight of five-resource changes ({TOUCHED_CONFIG}), units {units}")
        tools = AgentTools(config)
        try:
            return report(f"touched-{count}", *series(tools, [touched_change(count, u) for u in units], paced=True))
        finally:
            tools.close()
    finally:
        stop()


def ci_clone(bare: Path, into: Path) -> Path:
    """A CI checkout: main, and a head commit on it (HEAD~1 is the base) applying the same one-line change."""
    repo = git.Repo.clone_from(str(bare), str(into), branch="main")
    (into / CONFIG).write_text(_dev_network_config(14), encoding="utf-8")
    repo.git.add("-A")
    env = {"GIT_AUTHOR_NAME": "carol", "GIT_AUTHOR_EMAIL": "carol@example.com"}
    env |= {"GIT_COMMITTER_NAME": "carol", "GIT_COMMITTER_EMAIL": "carol@example.com"}
    repo.git.commit("--no-gpg-sign", "--no-verify", "-m", "network/dev: two weeks of flow logs", env=env)
    repo.close()
    return into


def ci_check(clone: Path, out: Path, cache: Path, *extra: str) -> tuple[float, str]:
    """Seconds of one ``glassbox check`` run, and where its plans came from (from its verdict.json)."""
    cmd = [str(GLASSBOX), "check", "--repo", str(clone), "--base", "HEAD~1", "--head", "HEAD", "--no-attest"]
    cmd += ["--out", str(out), "--output", "json", *extra]
    env = {**os.environ, DIR_ENV: str(cache)}
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        raise SystemExit(f"glassbox check failed ({proc.returncode}): {proc.stderr[-2000:]}")
    verdict = json.loads((out / "verdict.json").read_text(encoding="utf-8"))
    return elapsed, sources(verdict)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--calls", type=int, default=7, help="pre-flight calls per series (the first is 'first')")
    parser.add_argument("--ci-repeat", type=int, default=3, help="CI checks per cache state (median)")
    parser.add_argument("--touched", type=int, default=1000, help="resources in the touched-N estate (0: skip it)")
    args = parser.parse_args(argv)
    print(
        f"command: .venv/bin/python bench/bench_preflight.py --calls {args.calls} --ci-repeat {args.ci_repeat} "
        f"--touched {args.touched}"
    )
    print(f"cpus {os.cpu_count()}, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(describe_go_gc())
    instrument()
    medians: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="glassbox-bench-preflight-") as scratch:
        tmp = Path(scratch)
        src = governed_source(tmp)
        data = tmp / "forge"
        init_forge(data, REPO, src)
        url, stop = start_forge(data, log=io.StringIO())
        os.environ[DIR_ENV] = str(tmp / "plan-cache")
        try:
            token = load_tokens(data)[AGENT]
            config = ServerConfig(
                agent_id=AGENT,
                keys=data / "keys",
                ledger=tmp / "ledger.jsonl",
                base_repo=repo_path(data, REPO),
                forge=ForgeSettings(url=url, repo=REPO, token=token),
            )
            print(f"\nMCP pre-flight (AgentTools.preflight_change in one process), {CONFIG} flow-log retention")
            tools = AgentTools(config)
            try:
                medians["same change"] = report("same change", *series(tools, [change(14) for _ in range(args.calls)]))
                medians["new value"] = report(
                    "new value", *series(tools, [change(30 + i) for i in range(1, args.calls + 1)])
                )
                paced = [change(60 + i) for i in range(1, args.calls + 1)]
                medians["new value, paced"] = report("new value, paced", *series(tools, paced, paced=True))
            finally:
                tools.close()
            cold = AgentTools(dataclasses.replace(config, plan_cache=False))
            try:
                report("no plan cache", *series(cold, [change(14) for _ in range(args.calls)]))
            finally:
                cold.close()

            print("\nCI check of the same change (`glassbox check --no-attest`, a fresh process each run)")
            clone = ci_clone(repo_path(data, REPO), tmp / "ci")
            runs: dict[str, list[tuple[float, str]]] = {"empty cache": [], "warm cache": [], "no plan cache": []}
            for i in range(args.ci_repeat):
                cache = tmp / f"ci-cache-{i}"
                runs["empty cache"].append(ci_check(clone, tmp / "out", cache))
                runs["warm cache"].append(ci_check(clone, tmp / "out", cache))
                runs["no plan cache"].append(ci_check(clone, tmp / "out", cache, "--no-plan-cache"))
            for name, values in runs.items():
                seconds = [v for v, _ in values]
                print(
                    f"{name:>14}: median {statistics.median(seconds):.2f} s ({', '.join(f'{v:.2f}' for v in seconds)})"
                    f"; plans: {values[-1][1]}"
                )
        finally:
            stop()
        if args.touched:
            os.environ[DIR_ENV] = str(tmp / "plan-cache-touched")
            medians[f"touched-{args.touched}"] = touched_series(tmp, args.touched, args.calls)
    print("\ntargets (MCP pre-flight, second and later calls, median)")
    for name in ("same change", "new value, paced"):
        print(
            f"  one-line config change on the sample estate ({name}) within 0.5 s: {medians[name]:.2f} s  "
            f"{'PASS' if medians[name] <= 0.5 else 'MISS'}"
        )
    print(
        f"  (figure) new values back to back, a call may find a warm sandbox still importing: "
        f"{medians['new value']:.2f} s"
    )
    if args.touched:
        value = medians[f"touched-{args.touched}"]
        print(
            f"  five-resource change in touched-{args.touched} within 1.5 s: {value:.2f} s  "
            f"{'PASS' if value <= 1.5 else 'MISS'}"
        )
    return 0


if __name__ == "__main__":
    start_with_go_gc()  # as the glassbox command starts: the embedded OPA's Go collector target (bot/entry.py)
    raise SystemExit(main())
