"""Time of the CPU attention kernel (codeseed/engine_cpu.attend) as a prompt fills the cache.

    python benchmarks/attend_kernel.py [--queries 16] [--against 70d4fca]

Random int8 queries and keys and int32 values in the shipped model's shapes (6 heads of 32, a
256-slot cache), 32 rows; each row sees the first FILL cache slots and its new keys causally.
With --against REV, the same inputs through engine_cpu.py as it was at git revision REV (its
outputs must be equal: the kernel's arithmetic is exact). Prints the best of 5 x 40 calls.
"""
from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from codeseed import engine, engine_cpu  # noqa: E402


def kernel_at(rev: str):
    src = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:codeseed/engine_cpu.py"], check=True,
                         capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / f"engine_cpu_{rev}.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--queries", type=int, default=16, help="new tokens a row (16: a prefill block; 1: a decoder step)")
    ap.add_argument("--against", help="a git revision whose kernel to time beside this one")
    args = ap.parse_args()
    R, S, H, KV, DH, N = 32, args.queries, 6, 6, 32, 256
    rng = np.random.default_rng(0)
    qq = rng.integers(-127, 128, (R, S, H, DH)).astype(np.int8)
    qs = (rng.random((R, S, H)) * 0.01).astype(np.float32)
    nk = rng.integers(-127, 128, (R, KV, S, DH)).astype(np.int8)
    nks = rng.random((R, KV, S)).astype(np.float32)
    nv = rng.integers(-2**20, 2**20, (R, KV, S, DH)).astype(np.int32)
    ck = rng.integers(-127, 128, (R, KV, DH, N)).astype(np.int8)
    cks = rng.random((R, KV, N)).astype(np.float32)
    cv = rng.integers(-2**20, 2**20, (R, KV, DH, N)).astype(np.int32)
    table = np.ascontiguousarray(engine.decay_table(engine.ATT_STEPS, engine.ATT_SCALE_BITS, 0), dtype=np.int64)
    last = np.float32(len(table) - 1)
    kernels = [("this tree", engine_cpu)] + ([(args.against, kernel_at(args.against))] if args.against else [])
    print(f"| cache slots seen (of {N}) | " + " | ".join(f"{name}: ms a call" for name, _ in kernels) + " | equal |")
    print("|---|" + "---|" * len(kernels) + "---|")
    for fill in (256, 128, 48):
        blocked = np.zeros((R, S, N + S), dtype=np.bool_)
        blocked[:, :, fill:N] = True
        for q in range(S):
            blocked[:, q, N + q + 1:] = True
        times, outs = [], []
        for _, mod in kernels:
            out = np.zeros((R, S, H, DH))
            mod.attend(qq, qs, nk, nks, nv, ck, cks, cv, blocked, table, last, out)  # compiles
            best = float("inf")
            for _ in range(5):
                t = time.perf_counter()
                for _ in range(40):
                    mod.attend(qq, qs, nk, nks, nv, ck, cks, cv, blocked, table, last, out)
                best = min(best, (time.perf_counter() - t) / 40 * 1e3)
            times.append(best)
            outs.append(out.copy())
        same = all(np.array_equal(outs[0], o) for o in outs[1:])
        print(f"| {fill} | " + " | ".join(f"{t:.2f}" for t in times) + f" | {'yes' if same else 'NO'} |")


if __name__ == "__main__":
    main()
