"""Where a seeded pack's time goes: `codeseed pack` run in this process with its phases timed.

    python benchmarks/seeded_phases.py TREE -o OUT.cseed --test-cmd true [other pack options]

Arguments are `codeseed pack`'s. Prints, on stderr, seconds and calls of: assess (Planner set-up:
scoring and pieces), plan (repair passes), reproduces_many (code-hole checks, summed over threads),
raw_fills (fill batches), exact.encode (the LM stream), and the total. Threads overlap: the parts
add up to more than the total.
"""
from __future__ import annotations

import collections
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from codeseed import cli, exact, seeded  # noqa: E402

SECONDS: collections.Counter = collections.Counter()
CALLS: collections.Counter = collections.Counter()


def timed(obj, name: str, label: str) -> None:
    fn = getattr(obj, name)

    def wrapper(*args, **kwargs):
        t = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            SECONDS[label] += time.perf_counter() - t
            CALLS[label] += 1
    setattr(obj, name, wrapper)


def main() -> None:
    timed(seeded.Planner, "__init__", "assess")
    timed(seeded.Planner, "plan", "plan")
    timed(seeded.Planner, "reproduces_many", "reproduces_many")
    timed(seeded, "raw_fills", "raw_fills")
    timed(exact, "encode", "exact.encode")
    t = time.perf_counter()
    try:
        cli.main(["pack"] + sys.argv[1:])
    except SystemExit:
        pass
    parts = ", ".join(f"{k} {SECONDS[k]:.1f} s ({CALLS[k]})" for k in SECONDS)
    print(f"{parts}; total {time.perf_counter() - t:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
