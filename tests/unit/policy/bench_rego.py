"""Timing the Rego pack: prepared (bundle / reused interpreter) vs fresh, at 10 / 100 / 1000 resources.

Run: ``.venv/bin/python -m tests.unit.policy.bench_rego [sizes...]``. Not collected by pytest.
Inputs are agent PRs over ``mixed_resources(n)`` (mostly compliant, a few violations, every change
declared in the intent manifest), the shape a real plan has.
"""

from __future__ import annotations

import statistics
import sys
import time

from bot.policy.engines.regopy import RegopyEngine
from bot.policy.pack import load_pack
from tests.unit.policy.rego_inputs import mixed_resources, policy_input


def _ms(fn: object, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    sizes = [int(a) for a in (argv if argv is not None else sys.argv[1:])] or [10, 100, 1000]
    pack = load_pack()
    start = time.perf_counter()
    bundle = RegopyEngine(pack, mode="bundle")
    prepare_ms = (time.perf_counter() - start) * 1000
    interpreter = RegopyEngine(pack, mode="interpreter")
    print(f"pack: {len(pack.rules)} rules, digest {pack.digest}; bundle prepared in {prepare_ms:.0f} ms")
    print(f"{'resources':>9} {'bundle ms':>10} {'interp ms':>10} {'fresh ms':>10} {'denies':>7} {'warns':>6} tier")
    for n in sizes:
        doc = policy_input(mixed_resources(n), agent=True)
        repeat = 5 if n <= 100 else 3
        evaluation = bundle.evaluate(doc)
        b = _ms(lambda: bundle.evaluate(doc), repeat)  # noqa: B023 - evaluated within the iteration
        i = _ms(lambda: interpreter.evaluate(doc), repeat)  # noqa: B023
        f = _ms(lambda: RegopyEngine(pack, mode="interpreter").evaluate(doc), 1 if n > 100 else 3)  # noqa: B023
        print(
            f"{n:>9} {b:>10.1f} {i:>10.1f} {f:>10.1f} {len(evaluation.denies):>7} {len(evaluation.warns):>6}"
            f" {evaluation.tier.value}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
