"""Rate against text fidelity of strict seeds, over --min-text-similarity floors.

    python benchmarks/text_rd.py ../shared/eval-public/sdist --floors 0,0.1,0.2,0.3,0.4 [--budget 0.6]
        [--workers 2] [--json OUT] [--plot OUT.png] [--code DIR] [--label NAME] [--points A.json,B.json]

Every .py file of the sdists, seeded as pack seeds it by default (strict: only comments' and
docstrings' text regenerated) at one budget, for each floor:
  rate       = seed bits under the model (kept pieces + 12 bits a hole) / the file's bits, summed over
               files; a file whose repaired seed saves under seeded.SEED_OVERHEAD_BITS counts as exact
               (rate 1), as pack stores it;
  text chrF  = corpus chrF (sacrebleu, 0-100) of every regenerated comment and docstring text against
               the original;
  junk share = regenerated pieces that are empty, quote runs or code fragments where the original
               was prose (fidelity.junk_kind), over all regenerated pieces.
Also a curve estimated from the first floor's run alone (cheap: one pass): keeping each regenerated
piece whose sentence chrF is under a floor, with the fills after it taken as unchanged.
--code DIR runs another checkout's codeseed (say, the commit before this change: one point, its
Planner has no floor). --points adds such runs' JSON to the plot; --replot JSON draws the plot of an
earlier run without computing anything.
Also the chrF of *unrelated* text, for scale: each original comment or docstring text scored against
another piece of the same kind picked at random from the same project.
"""
from __future__ import annotations

import argparse
import functools
import json
import multiprocessing
import sys
import time
from pathlib import Path

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("sdists", type=Path)
ap.add_argument("--floors", default="0,0.1,0.2,0.3,0.4")
ap.add_argument("--budget", type=float, default=0.6)
ap.add_argument("--model", type=Path)
ap.add_argument("--workers", type=int, default=1)
ap.add_argument("--code", type=Path, help="a codeseed checkout to measure instead of this one")
ap.add_argument("--label", default="this change")
ap.add_argument("--json", type=Path)
ap.add_argument("--plot", type=Path)
ap.add_argument("--points", help="comma list of JSON outputs of other runs to plot as points")
ap.add_argument("--replot", type=Path, help="plot this earlier run's JSON instead of measuring")
args = ap.parse_args()
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(args.code.resolve() if args.code else HERE.parent))
import torch  # noqa: E402

from codeseed import seeded, spans  # noqa: E402
from codeseed.model import CodeModel  # noqa: E402

sys.path.insert(0, str(HERE))
from seeded_rd import load_files  # noqa: E402
from text_fidelity import aligned_holes  # noqa: E402
from text_fidelity import fidelity as metrics  # noqa: E402  (this checkout's, whichever codeseed is measured)

_planner = None


def _init_worker(files, model_path) -> None:
    global _planner
    torch.set_num_threads(1)
    _planner = seeded.Planner(files, CodeModel(model_path))


def measure_file(i: int, floors: list[float], budget: float) -> dict:
    planner = _planner
    data, pieces = planner.files[i].data, planner.pieces[i]
    lang = spans.load("python")
    total = sum(p.bits for p in pieces)
    out = {"i": i, "total_bits": total, "cells": {}}
    for floor in floors:
        if hasattr(planner, "min_text_similarity"):
            planner.min_text_similarity = floor
        kept = planner.select(i, budget)
        seed, recon = planner.repair(i, kept, strict=True)
        saved = sum(p.bits for p, k in zip(pieces, kept) if not k) - seeded.HOLE_BITS * len(seed.hints)
        if saved < seeded.SEED_OVERHEAD_BITS or not seed.hints:
            out["cells"][floor] = {"bits": total, "pairs": [], "junk": 0, "seeded": False}
            continue
        holes = aligned_holes(seed, data, recon, planner.model)
        ranges = seeded.hole_ranges(kept)
        pairs, regen = [], []  # regen: per regenerated piece, its bits, sentence chrF and junk flag
        for (rule, o, r), (a, _) in zip(holes, ranges):
            if rule == ".":
                continue
            o, r = o.decode("utf-8"), r.decode("utf-8")
            junk = bool(metrics.junk_kind(lang, r)) and metrics.junk_kind(lang, r) != metrics.junk_kind(lang, o)
            pairs.append((o, r))
            regen.append((pieces[a].bits, metrics.text_similarity(r, o), junk))
        out["cells"][floor] = {"bits": total - saved, "pairs": pairs, "junk": sum(j for _, _, j in regen),
                               "regen": regen, "seeded": True,
                               "kept_text": dict(getattr(planner, "kept_text", {}).get(i, {}))}
    return out


def unrelated_level(files) -> dict:
    """Sentence chrF of each original free-text piece against a random other piece of the same kind
    from the same project (seeded by file order): what text with no relation to the original scores."""
    import random

    import numpy as np
    rng = random.Random(0)
    lang = spans.load("python")
    texts: dict[str, list[tuple[str, str]]] = {k: [] for k in spans.FREE_TEXT}
    for f in files:
        if seeded.seedable(f):
            for p in spans.segments(f.data, spans.extract(lang, f.data), lang.line_comment):
                if p.kind in spans.FREE_TEXT:
                    texts[p.kind].append((f.path.split("/")[0], f.data[p.start:p.end].decode("utf-8")))
    out = {}
    for kind, items in texts.items():
        sims = np.array([metrics.text_similarity(rng.choice([o for pj, o in items if pj == proj and o != t]), t)
                         for proj, t in items])
        out[kind] = {"pieces": len(sims), "mean": float(sims.mean()),
                     **{f"p{q}": float(np.percentile(sims, q)) for q in (50, 75, 90)}}
    return out


def print_unrelated(unrelated: dict) -> None:
    for kind, lvl in unrelated.items():
        print(f"unrelated {kind}: chrF of a random other piece of the same project: mean {100 * lvl['mean']:.1f}, "
              f"median {100 * lvl['p50']:.1f}, p75 {100 * lvl['p75']:.1f}, p90 {100 * lvl['p90']:.1f} "
              f"({lvl['pieces']} pieces)")


def plot(result: dict, path: Path, points: list[dict]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows, estimated = result["rows"], result["estimated"]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.plot([r["rate"] for r in estimated], [r["chrf"] for r in estimated], ":", color="gray",
            label="estimated from floor 0 (fills after a kept piece unchanged)")
    ax.plot([r["rate"] for r in rows], [r["chrf"] for r in rows], "o-", label=f"{result['label']}: floors")
    seen = set()
    for r in rows:
        if (r["rate"], r["chrf"]) in seen:
            continue
        seen.add((r["rate"], r["chrf"]))
        same = [f"{x['floor']:.2f}" for x in rows if (x["rate"], x["chrf"]) == (r["rate"], r["chrf"])]
        note = ", ".join(same) + ("" if r["regenerated"] else " (nothing regenerated)")
        ax.annotate(note, (r["rate"], r["chrf"]), textcoords="offset points", xytext=(4, -10), fontsize=8)
    for k, other in enumerate(points):
        for r in other["rows"]:
            junk = 100 * r["junk"] / max(1, r["regenerated"])
            ax.plot([r["rate"]], [r["chrf"]], "s", color=f"C{k + 1}",
                    label=f"{other['label']} (junk {junk:.0f}% of regenerated)")
        est = [e for e in other.get("estimated", []) if e["regenerated"]]
        ax.plot([e["rate"] for e in est], [e["chrf"] for e in est], ":", color=f"C{k + 1}",
                label=f"{other['label']}, a floor applied to its fills (estimated)")
    for kind, lvl in result.get("unrelated", {}).items():
        ax.axhline(100 * lvl["p50"], linestyle="--", linewidth=0.8, color="C3" if kind == "comment_text" else "C4",
                   label=f"unrelated {kind.split('_')[0]}s of the same project (median)")
    ax.set_xlabel(f"rate (fraction of exact LM bits), budget {result['budget']}, strict seeds")
    ax.set_ylabel("chrF of regenerated comments and docstrings")
    ax.set_ylim(0, 105)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    points = [json.loads(Path(p).read_text()) for p in (args.points.split(",") if args.points else [])]
    if args.replot:  # the unrelated-text level is cheap: computed here if the run did not record it
        result = json.loads(args.replot.read_text())
        result.setdefault("unrelated", unrelated_level(load_files(args.sdists)))
        print_unrelated(result["unrelated"])
        plot(result, args.plot, points)
        return
    files = load_files(args.sdists)
    floors = [float(x) for x in args.floors.split(",")]
    idx = [i for i, f in enumerate(files) if seeded.seedable(f)]
    print(f"{len(files)} files, {len(idx)} seedable, budget {args.budget}, floors {floors}, code "
          f"{args.code or 'this checkout'}, {args.workers} worker(s)", flush=True)
    t0 = time.perf_counter()
    done = {}
    order = sorted(idx, key=lambda i: -len(files[i].data))
    with multiprocessing.get_context("fork").Pool(args.workers, _init_worker, (files, args.model)) as pool:
        for r in pool.imap_unordered(functools.partial(measure_file, floors=floors, budget=args.budget), order):
            done[r["i"]] = r
            print(f"[{len(done)}/{len(idx)}] {files[r['i']].path} ({time.perf_counter() - t0:.0f} s)", flush=True)
    total = sum(r["total_bits"] for r in done.values())
    # the curve estimated from the first floor alone: keeping a regenerated piece whose sentence chrF
    # is under f adds its bits and saves its hole's; the fills after it are taken as unchanged
    # (really, each kept piece changes the context of the fills that follow)
    rows = []
    for floor in floors:
        cells = [r["cells"][floor] for r in done.values()]
        pairs = [p for c in cells for p in c["pairs"]]
        kept = {}
        for c in cells:
            for why in c.get("kept_text", {}).values():
                kept[why] = kept.get(why, 0) + 1
        rows.append({"floor": floor, "rate": sum(c["bits"] for c in cells) / total,
                     "chrf": metrics.chrf([r for _, r in pairs], [o for o, _ in pairs]), "regenerated": len(pairs),
                     "junk": sum(c["junk"] for c in cells), "seeded_files": sum(c["seeded"] for c in cells),
                     "kept_text": kept, "pairs": pairs,
                     "piece_chrf": sorted(metrics.text_similarity(r, o) for o, r in pairs)})
    estimated = []
    for f in (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6):
        bits, keep_pairs, junk = 0.0, [], 0
        for r in done.values():
            c = r["cells"][floors[0]]
            stays = [(b, p, j) for (b, sim, j), p in zip(c.get("regen", []), c["pairs"]) if sim >= f]
            extra = sum(b - seeded.HOLE_BITS for (b, sim, j) in c.get("regen", []) if sim < f)
            if c["seeded"] and r["total_bits"] - (c["bits"] + extra) >= seeded.SEED_OVERHEAD_BITS:
                bits += c["bits"] + extra
                keep_pairs += [p for _, p, _ in stays]
                junk += sum(j for _, _, j in stays)
            else:
                bits += r["total_bits"]  # exact, as pack stores a file that saves too little
        estimated.append({"floor": f, "rate": bits / total, "regenerated": len(keep_pairs), "junk": junk,
                          "chrf": metrics.chrf([r for _, r in keep_pairs], [o for o, _ in keep_pairs])})
    print(f"\n{len(idx)} files, {time.perf_counter() - t0:.0f} s\n")
    print("| floor | rate (fraction of exact LM bits) | text chrF | regenerated pieces | junk | seeded files | "
          "free text kept, by why |\n|---|---|---|---|---|---|---|")
    for r in rows:
        kept = ", ".join(f"{k} {v}" for k, v in sorted(r["kept_text"].items()))
        print(f"| {r['floor']:.2f} | {r['rate']:.4f} | {r['chrf']:.1f} | {r['regenerated']} | "
              f"{r['junk']} ({100 * r['junk'] / max(1, r['regenerated']):.1f}%) | {r['seeded_files']} | {kept} |")
    print(f"\nestimated from floor {floors[0]} alone (fills after a kept piece taken as unchanged):\n"
          "| floor | rate | text chrF | regenerated pieces | junk |\n|---|---|---|---|---|")
    for r in estimated:
        print(f"| {r['floor']:.2f} | {r['rate']:.4f} | {r['chrf']:.1f} | {r['regenerated']} | {r['junk']} |")
    result = {"label": args.label, "budget": args.budget, "files": len(idx), "rows": rows, "estimated": estimated,
              "seconds": time.perf_counter() - t0, "code": str(args.code or ""), "unrelated": unrelated_level(files)}
    print_unrelated(result["unrelated"])
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    if args.plot:
        plot(result, args.plot, points)


if __name__ == "__main__":
    main()
