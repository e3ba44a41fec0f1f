"""Cost of one stepwise decoder step of the exact engine, by rows, and whether threads help.

    python benchmarks/decode_step.py [--rows 1,8,16,32,64,128] [--steps 40]

Each row is fed one token a step against a sliding-window KV cache already holding 255 positions,
as the LM stream's decoder (lmcodec.decode) and fills (model.fill) run it: milliseconds a step
with one intra-op thread, then the same rows cut into two groups stepped side by side in two
threads (what lmcodec._Rows does with --jobs 2). The entropy model and range coder are not in
these figures. Benchmarks are not tests: they print, they do not assert; state the machine's load.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from codeseed import engine  # noqa: E402
from codeseed.engine import pinned_threads  # noqa: E402
from codeseed.model import bundled_path  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default="1,8,16,32,64,128")
    ap.add_argument("--steps", type=int, default=40)
    args = ap.parse_args()
    m = engine.ExactLM(bundled_path())
    window = 256

    def rows_of(n: int):
        cache, x = m.new_cache(n, window), torch.randint(0, m.vocab, (n, window + args.steps))
        for i in range(window - 1):  # fill the window
            step(cache, x, i)
        return cache, x

    def step(cache, x, i: int) -> None:
        n = x.shape[0]
        m.forward(x[:, i:i + 1], torch.full((n, 1), i), torch.zeros(n, 1, dtype=torch.long), cache)

    print(f"load average {os.getloadavg()[0]:.2f}; cores {len(os.sched_getaffinity(0))}; {args.steps} steps each")
    print("| rows | 1 thread: ms a step | us a token | 2 threads, 2 groups: ms a step |")
    print("|---|---|---|---|")
    with pinned_threads(1), ThreadPoolExecutor(2) as pool:
        for n in (int(r) for r in args.rows.split(",")):
            cache, x = rows_of(n)
            t = time.perf_counter()
            for i in range(window - 1, window - 1 + args.steps):
                step(cache, x, i)
            one = (time.perf_counter() - t) / args.steps
            two = float("nan")
            if n >= 2:
                groups = [rows_of(n // 2), rows_of(n - n // 2)]
                t = time.perf_counter()
                for i in range(window - 1, window - 1 + args.steps):
                    for f in [pool.submit(step, c, x, i) for c, x in groups]:
                        f.result()
                two = (time.perf_counter() - t) / args.steps
            print(f"| {n} | {one * 1e3:.2f} | {one / n * 1e6:.0f} | {two * 1e3:.2f} |", flush=True)


if __name__ == "__main__":
    main()
