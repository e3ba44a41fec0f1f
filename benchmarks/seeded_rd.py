"""Rate-distortion of seeded mode over budgets, and how well estimated MP predicts realised gain.

    python benchmarks/seeded_rd.py ../shared/eval-public/sdist --budgets 0.3,0.5,0.7 [--workers 2] [--plots DIR] [--json OUT]
        [--max-files N] [--no-repeat N]

For each .py file of each sdist and each budget (no budget escalation), three seeds: the one the
selector picks, the one pack's repair makes of it (holes whose fill breaks parsing kept), and the
strict repair (every code hole whose fill is not the original kept: only free text differs):
  rate       = seed bits under the model (kept pieces + 12 bits a hole) / the file's bits under the
               model, i.e. a fraction of the exact LM size before mixing (1.0 = exact);
  distortion = does the reconstruction parse (tree-sitter, no ERROR/MISSING), and its AST similarity;
  and what the savings are made of: the share of the dropped bits that are free text (comments'
  and docstrings' text) rather than code.
MP check: for up to --probes pieces per file, drop that piece alone, fill it, and take the realised
gain of keeping it as 1 - AST similarity of that reconstruction; report Spearman's rank correlation
between MP and realised gain.
"""
from __future__ import annotations

import argparse
import functools
import json
import multiprocessing
import random
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from codeseed import seeded, spans  # noqa: E402
from codeseed.model import CodeModel  # noqa: E402
from codeseed.walk import SourceFile  # noqa: E402

VARIANTS = ("selected", "repaired", "strict")


def load_files(sdists: Path) -> list[SourceFile]:
    out = []
    for sdist in sorted(sdists.glob("*.tar.gz")):
        with tarfile.open(sdist) as tf:
            for m in sorted(tf.getmembers(), key=lambda m: m.name):
                if m.isfile() and m.name.endswith(".py"):
                    out.append(SourceFile(m.name, tf.extractfile(m).read(), False))
    return out


def spearman(a: list[float], b: list[float]) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1]) if len(a) > 2 else float("nan")


_planner = None  # one per worker process: the model and every file's assessment


def _init_worker(files: list[SourceFile], model_path: Path | None, no_repeat: int) -> None:
    global _planner
    torch.set_num_threads(1)
    _planner = seeded.Planner(files, CodeModel(model_path), no_repeat=no_repeat)


def measure_file(i: int, budgets: list[float], probes: int) -> dict:
    """Every budget and seed variant of file i, and its MP probes: one unit of work."""
    planner, model = _planner, _planner.model
    data, lang, pieces = planner.files[i].data, planner.langs[i], planner.pieces[i]
    out = {"i": i, "total_bits": sum(p.bits for p in pieces), "cells": {}, "mp": [], "gain": []}
    for b in budgets:
        for variant in VARIANTS:
            kept = planner.select(i, b)
            if variant != "selected":
                seed, recon = planner.repair(i, kept, strict=variant == "strict")
            else:
                seed = seeded.build_seed(model, data, pieces, tuple(kept))
                recon = planner.reconstruct(seed)
            bits = sum(p.bits for p, k in zip(pieces, kept) if k) + seeded.HOLE_BITS * len(seed.hints)
            free = sum(p.bits for p, k in zip(pieces, kept) if not k and p.kind in spans.FREE_TEXT)
            dropped = sum(p.bits for p, k in zip(pieces, kept) if not k)
            out["cells"][f"{b}/{variant}"] = (bits, not spans.has_errors(lang, recon),
                                              seeded.ast_similarity(lang, data, recon), free, dropped)
    rng = random.Random(i)  # per file, so results do not depend on which worker ran what
    candidates = [p for p in pieces if p.bits > 0 and p.kind != "code" and p.end - p.start > 2]
    for p in rng.sample(candidates, min(probes, len(candidates))):
        hint = len(model.encode(data[p.start:p.end].decode("utf-8")))
        rec = planner.reconstruct(seeded.Seed([data[:p.start], data[p.end:]], [hint]))
        out["mp"].append(p.value)
        out["gain"].append(1.0 - seeded.ast_similarity(lang, data, rec))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sdists", type=Path)
    ap.add_argument("--budgets", default="0.3,0.5,0.7")
    ap.add_argument("--model", type=Path)
    ap.add_argument("--probes", type=int, default=3)
    ap.add_argument("--max-files", type=int, default=0, help="a fixed random sample of this many files (0: all)")
    ap.add_argument("--workers", type=int, default=1, help="processes, one thread each, files spread over them")
    ap.add_argument("--no-repeat", type=int, default=seeded.NO_REPEAT,
                    help=f"fill rule (default codeseed's, {seeded.NO_REPEAT}; 0: plain greedy)")
    ap.add_argument("--plots", type=Path)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    files = load_files(args.sdists)
    if args.max_files and len(files) > args.max_files:
        files = sorted(random.Random(0).sample(files, args.max_files), key=lambda f: f.path)
    budgets = [float(x) for x in args.budgets.split(",")]
    idx = [i for i, f in enumerate(files) if seeded.seedable(f)]
    print(f"{len(files)} files, {sum(len(f.data) for f in files):,} bytes; {len(idx)} seedable; "
          f"{args.workers} worker(s)", flush=True)
    t0 = time.perf_counter()
    done: dict[int, dict] = {}
    order = sorted(idx, key=lambda i: -len(files[i].data))  # longest first: the workers finish together
    with multiprocessing.get_context("fork").Pool(args.workers, _init_worker, (files, args.model, args.no_repeat)) as pool:
        for r in pool.imap_unordered(functools.partial(measure_file, budgets=budgets, probes=args.probes), order):
            done[r["i"]] = r
            print(f"[{len(done)}/{len(idx)}] {files[r['i']].path} ({time.perf_counter() - t0:.0f} s)", flush=True)
    results = [done[i] for i in idx]
    total = sum(r["total_bits"] for r in results)
    rows = []
    for b in budgets:
        for variant in VARIANTS:
            cells = [r["cells"][f"{b}/{variant}"] for r in results]
            seed_bits, parsed = sum(c[0] for c in cells), sum(c[1] for c in cells)
            sim = float(np.mean([c[2] for c in cells]))
            free_share = sum(c[3] for c in cells) / max(1e-9, sum(c[4] for c in cells))
            rows.append({"budget": b, "seed": variant, "rate": seed_bits / total, "parse_share": parsed / len(idx),
                         "ast_similarity": sim, "free_text_share": free_share, "seed_kb_est": seed_bits / 8000,
                         "exact_lm_kb_est": total / 8000})
            print(f"budget {b:.2f} {variant}: rate {seed_bits / total:.3f} of exact, parses "
                  f"{parsed}/{len(idx)}, mean AST similarity {sim:.3f}, free text {100 * free_share:.0f}% of "
                  f"the dropped bits")
    mp = [x for r in results for x in r["mp"]]
    gain = [x for r in results for x in r["gain"]]
    rho = spearman(mp, gain)
    print(f"MP vs realised gain: Spearman {rho:.3f} over {len(mp)} pieces ({time.perf_counter() - t0:.0f} s total, "
          f"{args.workers} worker(s))")
    print("\n| budget | seed | rate (fraction of exact LM bits) | files that parse | mean AST similarity "
          "| dropped bits that are free text |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['budget']:.2f} | {r['seed']} | {r['rate']:.3f} | "
              f"{100 * r['parse_share']:.0f}% | {r['ast_similarity']:.3f} | {100 * r['free_text_share']:.0f}% |")
    if args.plots:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        args.plots.mkdir(parents=True, exist_ok=True)
        for key, label, name in (("ast_similarity", "mean AST similarity", "rd_similarity.png"),
                                 ("parse_share", "share of files that parse", "rd_parse.png")):
            fig, ax = plt.subplots(figsize=(5, 3.5))
            for variant, style in (("selected", "o-"), ("repaired", "s-"), ("strict", "^-")):
                sel = [r for r in rows if r["seed"] == variant]
                ax.plot([r["rate"] for r in sel], [r[key] for r in sel], style, label=f"{variant} seed")
            ax.axvline(1.0, color="gray", linestyle="--", label="exact (LM alone)")
            ax.set_xlabel("rate (fraction of exact bits)")
            ax.set_ylabel(label)
            ax.set_ylim(0, 1.05)
            ax.legend()
            fig.tight_layout()
            fig.savefig(args.plots / name, dpi=120)
    if args.json:
        args.json.write_text(json.dumps({"files": len(idx), "rows": rows, "mp_gain_spearman": rho, "probes": len(mp),
                                         "seconds": time.perf_counter() - t0, "workers": args.workers,
                                         "no_repeat": args.no_repeat}, indent=2))


if __name__ == "__main__":
    main()
