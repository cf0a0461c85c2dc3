"""Redaction recall, false positives and throughput over the corpus in ``tests/redaction_corpus.py``.

Prints:

- **recall**: how many ``SECRETS`` samples ``find_secrets`` finds *and* ``redact_text`` fully removes (the
  token, its encoded form or every fragment of its split form), overall and per form (plain, encoded,
  split), and the formats it misses;
- **false positives**: how many ``LOOKALIKES`` (digests, ids, ARNs, URNs, paths, placeholders...) get a
  finding from ``find_secrets`` or a redaction from ``redact_tree`` (as a secret-named-looking
  ``token_count`` field, a ``commit`` field and a list of two);
- **throughput**: ``find_secrets`` over ``--size`` bytes (default 1 MB) of mixed text: the repository's stack
  configs, Pulumi programs, example requests and docs, with every corpus sample and look-alike mixed in,
  as MB/s (best and median of ``--repeat`` runs).

Every line ends with the command that reproduces it. Targets: recall >= 98 %, no false positive.

Run: ``.venv/bin/python bench/bench_redaction.py [--size 1000000] [--repeat 5]``. A bench, not a test: it
asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from bot.redaction import find_secrets, redact_text, redact_tree  # noqa: E402
from tests.redaction_corpus import LOOKALIKES, SECRETS, Secret  # noqa: E402

COMMAND = ".venv/bin/python bench/bench_redaction.py"
FILLER_GLOBS = ("infra/*/Pulumi*.yaml", "infra/*/__main__.py", "examples/requests/*.yaml", "registry/*.yaml", "*.md")


def caught(sample: Secret) -> bool:
    if not find_secrets(sample.text):
        return False
    clean, _ = redact_text(sample.text, "bench")
    return not any(piece in clean for piece in (*sample.pieces, sample.token))


def form(sample: Secret) -> str:
    if sample.name.startswith("split-"):
        return "split"
    if sample.name.startswith(("base64-", "percent-", "hex-")):
        return "encoded"
    return "plain"


def flagged(text: str) -> bool:
    if find_secrets(text):
        return True
    _, redactions = redact_tree({"token_count": text, "commit": text, "items": [text, text]})
    return bool(redactions)


def mixed_text(size: int) -> str:
    """Repository text with the corpus mixed in, repeated up to ``size`` characters."""
    filler = [p.read_text(encoding="utf-8") for g in FILLER_GLOBS for p in sorted(REPO_ROOT.glob(g))]
    samples = [s.text for s in SECRETS] + [t for _, t in LOOKALIKES]
    parts: list[str] = []
    total, i = 0, 0
    while total < size:
        chunk = filler[i % len(filler)] + "\n" + samples[i % len(samples)] + "\n"
        parts.append(chunk)
        total += len(chunk)
        i += 1
    return "".join(parts)[:size]


def throughput(text: str, repeat: int) -> tuple[float, float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        find_secrets(text)
        samples.append(time.perf_counter() - start)
    mb = len(text.encode("utf-8")) / 1e6
    return mb / min(samples), mb / statistics.median(samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--size", type=int, default=1_000_000, help="characters of mixed text to time")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)

    results = {s.name: caught(s) for s in SECRETS}
    found = sum(results.values())
    print(f"recall: {found}/{len(SECRETS)} formats ({100 * found / len(SECRETS):.1f} %)  $ {COMMAND}")
    for kind in ("plain", "encoded", "split"):
        of_kind = [s for s in SECRETS if form(s) == kind]
        hits = sum(results[s.name] for s in of_kind)
        print(f"  {kind}: {hits}/{len(of_kind)}  $ {COMMAND}")
    missed = [name for name, ok in results.items() if not ok]
    print(f"missed formats: {', '.join(missed) if missed else 'none'}  $ {COMMAND}")

    false = [name for name, text in LOOKALIKES if flagged(text)]
    share = 100 * len(false) / len(LOOKALIKES)
    print(f"false positives: {len(false)}/{len(LOOKALIKES)} look-alikes ({share:.1f} %)  $ {COMMAND}")
    if false:
        print(f"  flagged look-alikes: {', '.join(false)}  $ {COMMAND}")

    text = mixed_text(args.size)
    best, median = throughput(text, args.repeat)
    size_mb = len(text.encode("utf-8")) / 1e6
    print(
        f"throughput: find_secrets over {size_mb:.2f} MB of mixed text: {best:.2f} MB/s best, {median:.2f} MB/s "
        f"median of {args.repeat}  $ {COMMAND} --size {args.size} --repeat {args.repeat}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
