"""Rate-distortion of seeded mode over budgets, and how well estimated MP predicts realised gain.

    python benchmarks/seeded_rd.py ../shared/eval-public/sdist --budgets 0.3,0.5,0.7 [--plots DIR] [--json OUT]

For each .py file of each sdist and each budget (no budget escalation), three seeds: the one the
selector picks, the one pack's repair makes of it (holes whose fill breaks parsing kept), and the
strict repair (every code hole whose fill is not the original kept: only free text differs):
  rate       = seed bits under the model (kept pieces + 12 bits a hole) / the file's bits under the
               model, i.e. a fraction of the exact LM size before mixing (1.0 = exact);
  distortion = does the reconstruction parse (tree-sitter, no ERROR/MISSING), and its AST similarity.
MP check: for up to --probes pieces per file, drop that piece alone, fill it, and take the realised
gain of keeping it as 1 - AST similarity of that reconstruction; report Spearman's rank correlation
between MP and realised gain.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import tarfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from codeseed import seeded, spans  # noqa: E402
from codeseed.model import CodeModel  # noqa: E402
from codeseed.walk import SourceFile  # noqa: E402


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sdists", type=Path)
    ap.add_argument("--budgets", default="0.3,0.5,0.7")
    ap.add_argument("--model", type=Path)
    ap.add_argument("--probes", type=int, default=3)
    ap.add_argument("--max-files", type=int, default=0, help="a fixed random sample of this many files (0: all)")
    ap.add_argument("--plots", type=Path)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    model = CodeModel(args.model)
    files = load_files(args.sdists)
    if args.max_files and len(files) > args.max_files:
        files = sorted(random.Random(0).sample(files, args.max_files), key=lambda f: f.path)
    print(f"{len(files)} files, {sum(len(f.data) for f in files):,} bytes", flush=True)
    t0 = time.perf_counter()
    planner = seeded.Planner(files, model)
    idx = sorted(planner.langs)
    total_bits = {i: sum(p.bits for p in planner.pieces[i]) for i in idx}
    rows = []
    for b in [float(x) for x in args.budgets.split(",")]:
        for variant in ("selected", "repaired", "strict"):
            seed_bits = parsed = 0.0
            sims = []
            for i in idx:
                kept = planner.select(i, b)
                if variant != "selected":
                    seed, recon = planner.repair(i, kept, strict=variant == "strict")
                else:
                    seed = seeded.build_seed(model, files[i].data, planner.pieces[i], tuple(kept))
                    recon = planner.reconstruct(seed)
                seed_bits += sum(p.bits for p, k in zip(planner.pieces[i], kept) if k)
                seed_bits += seeded.HOLE_BITS * len(seed.hints)
                lang = planner.langs[i]
                parsed += not spans.has_errors(lang, recon)
                sims.append(seeded.ast_similarity(lang, files[i].data, recon))
            rate = seed_bits / sum(total_bits.values())
            rows.append({"budget": b, "seed": variant, "rate": rate, "parse_share": parsed / len(idx),
                         "ast_similarity": float(np.mean(sims)), "seed_kb_est": seed_bits / 8000,
                         "exact_lm_kb_est": sum(total_bits.values()) / 8000})
            print(f"budget {b:.2f} {variant}: rate {rate:.3f} of exact, parses "
                  f"{parsed:.0f}/{len(idx)}, mean AST similarity {np.mean(sims):.3f} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
    rng = random.Random(0)
    mp, gain = [], []
    for i in idx:
        pieces = [p for p in planner.pieces[i] if p.bits > 0 and p.kind != "code" and p.end - p.start > 2]
        for p in rng.sample(pieces, min(args.probes, len(pieces))):
            data = files[i].data
            hint = len(model.encode(data[p.start:p.end].decode("utf-8")))
            seed = seeded.Seed([data[:p.start], data[p.end:]], [hint])
            rec = planner.reconstruct(seed)
            mp.append(p.value)
            gain.append(1.0 - seeded.ast_similarity(planner.langs[i], data, rec))
    rho = spearman(mp, gain)
    print(f"MP vs realised gain: Spearman {rho:.3f} over {len(mp)} pieces ({time.perf_counter() - t0:.0f} s total)")
    print("\n| budget | seed | rate (fraction of exact LM bits) | files that parse | mean AST similarity |\n"
          "|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['budget']:.2f} | {r['seed']} | {r['rate']:.3f} | "
              f"{100 * r['parse_share']:.0f}% | {r['ast_similarity']:.3f} |")
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
        args.json.write_text(json.dumps({"rows": rows, "mp_gain_spearman": rho, "probes": len(mp)}, indent=2))


if __name__ == "__main__":
    main()
