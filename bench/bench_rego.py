"""Rego evaluation time with a prepared engine, and where it goes, for each in-process engine.

For agent PRs over ``mixed_resources(n)`` (n = 10, 100, 1000; mostly compliant, a few violations, every
change declared), for an IAM-heavy human PR (``--iam-policies``, 250 policy documents), and for any policy
inputs given with ``--inputs`` (JSON files, e.g. written by
``bench/bench_check.py --dump-inputs DIR``), prints per engine:

- ``evaluate``: ``engine.evaluate`` (compiled once, before timing) — the figure the target "Rego over
  1,000 resources within 100 ms" is about; it includes preparing the input in Python;
- regopy's parts: ``prepare`` (normalise + derived index, Python), ``convert`` (the input handed to
  rego-cpp node by node), ``set_input`` (rego-cpp ingesting it) and the queries, one per batch of areas;
- regorus's parts: ``prepare``, ``set_input`` (JSON text handed over and parsed) and its one ``query``;
- OPA's parts (the default engine, in process): ``prepare`` and its one prepared ``query``;
- whether every engine gives results identical to the first one's;
- with ``--baseline REF``: regopy over the pack at a git commit (e.g. the one before the derived index),
  and whether both packs give identical results.

Run: ``.venv/bin/python bench/bench_rego.py [--sizes 10,100,1000] [--iam-policies 250] [--repeat 5]
[--engines opa,regopy,regorus] [--inputs DIR] [--baseline 7ef044e05155febdafe7c9b66f8e78327c318b87]``.
Figures are min / median of ``--repeat`` runs. The bench starts itself as the ``glassbox`` command does, with
the embedded OPA's Go collector at ``GOGC=200`` unless ``GOGC`` is set (``bot/entry.py``), and prints the
setting and its own peak memory. A bench, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from resource import RUSAGE_SELF, getrusage
from typing import Any

import git

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from bot.entry import describe_go_gc, start_with_go_gc  # noqa: E402
from bot.policy.engines.input import prepare_input  # noqa: E402
from bot.policy.engines.opa_embedded import EmbeddedOpaEngine  # noqa: E402
from bot.policy.engines.regopy import RegopyEngine, rego_input  # noqa: E402
from bot.policy.engines.regorus import RegorusEngine, regorus_available  # noqa: E402
from bot.policy.pack import load_pack  # noqa: E402
from bot.trust.anchors import export_tree  # noqa: E402
from tests.unit.policy.rego_inputs import mixed_resources, policy_input, resource  # noqa: E402

# IAM-heavy: policies whose documents the identity rules parse one by one (a dozen shapes, every document
# distinct by its resource ARN), about a third with a wildcard the pack denies.
_IAM_SHAPES: list[list[dict[str, Any]]] = [
    [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
    [{"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": "arn:aws:s3:::b/*"}],
    [{"Effect": "Allow", "Action": ["iam:*", "sts:AssumeRole"], "Resource": "*"}],
    [{"Effect": "Allow", "Action": "logs:CreateLogStream", "Resource": "*"}],
    [{"Effect": "Allow", "Action": "*", "Resource": "*"}, {"Effect": "Deny", "Action": "iam:*", "Resource": "*"}],
    [{"Effect": "Allow", "Action": ["dynamodb:GetItem", "dynamodb:Query"], "Resource": "arn:aws:dynamodb:::t"}],
    [{"Effect": "Allow", "NotAction": ["iam:*", "organizations:*"], "Resource": "*"}],
    [{"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "arn:aws:kms:::key/k"}],
    [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
    [{"Effect": "Allow", "Action": ["ec2:Describe*"], "Resource": "*"}],
    [{"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "arn:aws:sqs:::q"}],
    [{"Effect": "Allow", "Action": ["sns:Publish"], "Resource": "arn:aws:sns:::t"}],
]


def iam_heavy(count: int) -> list[dict[str, Any]]:
    out = []
    for i in range(count):
        statements = [dict(s, Sid=f"s{i}") for s in _IAM_SHAPES[i % len(_IAM_SHAPES)]]
        document = json.dumps({"Version": "2012-10-17", "Statement": statements})
        out.append(resource("aws:iam/policy:Policy", f"wild-{i}", {"policy": document, "tags": {"Owner": "app"}}))
    return out


TARGET_MS = 100.0  # the default engine on 1,000 resources


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return min(samples), statistics.median(samples)


def breakdown(engine: RegopyEngine, doc: dict[str, Any], repeat: int) -> dict[str, tuple[float, float]]:
    import regopy

    interp = engine._interp  # a bench looks inside on purpose
    bundle = engine._bundle
    prepared = prepare_input(doc)
    parts = {
        "evaluate": timed(lambda: engine.evaluate(doc), repeat),
        "prepare": timed(lambda: prepare_input(doc), repeat),
        "convert": timed(lambda: rego_input(regopy, prepared), repeat),
    }
    convert = parts["convert"]
    both = timed(lambda: interp.set_input(rego_input(regopy, prepared)), repeat)
    parts["set_input"] = (max(both[0] - convert[0], 0.0), max(both[1] - convert[1], 0.0))
    interp.set_input(rego_input(regopy, prepared))
    for i, batch in enumerate(engine.batches):
        entry = engine._batch_entrypoint(i)
        label = "+".join(a.split(".", 1)[1] for a in batch)
        parts[label] = timed(lambda e=entry: interp.query_bundle_entrypoint(bundle, e), repeat)
    return parts


def regorus_breakdown(engine: RegorusEngine, doc: dict[str, Any], repeat: int) -> dict[str, tuple[float, float]]:
    native = engine._engine()  # a bench looks inside on purpose
    prepared = prepare_input(doc)
    parts = {
        "evaluate": timed(lambda: engine.evaluate(doc), repeat),
        "prepare": timed(lambda: prepare_input(doc), repeat),
        "set_input": timed(lambda: engine._set_input(native, prepared), repeat),
    }
    engine._set_input(native, prepared)
    parts["query"] = timed(lambda: engine._answer(native, engine._query), repeat)
    return parts


def opa_breakdown(engine: EmbeddedOpaEngine, doc: dict[str, Any], repeat: int) -> dict[str, tuple[float, float]]:
    prepared = prepare_input(doc)
    return {
        "evaluate": timed(lambda: engine.evaluate(doc), repeat),
        "prepare": timed(lambda: prepare_input(doc), repeat),
        "query": timed(lambda: engine._ask(engine._query, prepared), repeat),  # a bench looks inside on purpose
    }


def baseline_pack(ref: str, scratch: Path) -> Path:
    repo = git.Repo(REPO_ROOT)
    try:
        return export_tree(repo.commit(ref), "policy-pack", scratch)
    finally:
        repo.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--iam-policies", type=int, default=250, help="size of the IAM-heavy input (0: none)")
    parser.add_argument("--inputs", type=Path, help="a directory of policy-input JSON files to time as well")
    parser.add_argument("--engines", default="opa,regopy,regorus", help="in-process engines to time")
    parser.add_argument("--baseline", help="a git commit whose policy pack to time and compare (regopy)")
    args = parser.parse_args(argv)

    docs: list[tuple[str, dict[str, Any], int]] = []
    for n in [int(s) for s in args.sizes.split(",") if s]:
        docs.append((f"agent-{n}", policy_input(mixed_resources(n), agent=True), n))
    if args.iam_policies:
        docs.append((f"iam-{args.iam_policies}", policy_input(iam_heavy(args.iam_policies)), args.iam_policies))
    if args.inputs:
        for file in sorted(args.inputs.glob("*.json")):
            doc = json.loads(file.read_text(encoding="utf-8"))
            docs.append((file.stem, doc, len(doc["plan"]["resources"])))

    print(describe_go_gc())
    with tempfile.TemporaryDirectory(prefix="glassbox-bench-rego-") as tmp:
        pack = load_pack(REPO_ROOT / "policy-pack")
        wanted = [e for e in args.engines.split(",") if e]
        engines: list[tuple[str, RegopyEngine | RegorusEngine | EmbeddedOpaEngine]] = []
        for kind in wanted:
            if kind == "regorus" and not regorus_available():
                print("regorus: not installed, skipped")
                continue
            start = time.perf_counter()
            engine: RegopyEngine | RegorusEngine | EmbeddedOpaEngine
            if kind == "opa":
                engine = EmbeddedOpaEngine(pack)
            else:
                engine = RegopyEngine(pack, mode="bundle") if kind == "regopy" else RegorusEngine(pack)
            prepared_ms = (time.perf_counter() - start) * 1000
            engines.append((engine.name, engine))
            print(f"{engine.name}: {len(pack.rules)} rules, {pack.digest}; compiled in {prepared_ms:.0f} ms")
        if args.baseline:
            old = RegopyEngine(load_pack(baseline_pack(args.baseline, Path(tmp))), mode="bundle")
            engines.append((f"regopy, pack@{args.baseline[:12]}", old))

        for name, doc, n in docs:
            print(f"\n== {name}: {n} resources, {len(doc['changes'])} changes (ms, min / median of {args.repeat})")
            evaluations = []
            for label, engine in engines:
                evaluation = engine.evaluate(doc)
                evaluations.append((label, evaluation))
                if isinstance(engine, EmbeddedOpaEngine):
                    parts = opa_breakdown(engine, doc, args.repeat)
                elif isinstance(engine, RegorusEngine):
                    parts = regorus_breakdown(engine, doc, args.repeat)
                else:
                    parts = breakdown(engine, doc, args.repeat)
                line = "  ".join(f"{k} {v[0]:.1f}/{v[1]:.1f}" for k, v in parts.items())
                print(f"  {label}: {line}")
                print(
                    f"    {len(evaluation.denies)} denies, {len(evaluation.warns)} warns, tier {evaluation.tier.value}"
                )
                if n >= 1000 and "pack@" not in label:
                    best = parts["evaluate"][0]
                    verdict = "PASS" if best <= TARGET_MS else "MISS"
                    print(f"    target: Rego over 1,000 resources within {TARGET_MS:.0f} ms: {best:.1f} ms  {verdict}")
            if len(evaluations) > 1:
                neutral = {"engine": "-", "pack_digest": "-"}
                first_label, first = evaluations[0]
                for label, other in evaluations[1:]:
                    same = first.model_copy(update=neutral) == other.model_copy(update=neutral)
                    print(f"    {label} identical to {first_label}: {'yes' if same else 'NO'}")
    print(f"\nmax RSS of this process: {getrusage(RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    return 0


if __name__ == "__main__":
    start_with_go_gc()  # as the glassbox command starts: the embedded OPA's Go collector target (bot/entry.py)
    raise SystemExit(main())
