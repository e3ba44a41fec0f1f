"""Bits/byte by kind of file (Python, Markdown/reST/prose, JSON/YAML/TOML, other), before and after.

    python benchmarks/bits_by_kind.py SDIST_OR_DIR... [--max-bytes 1000000] [--mix default,main] [--json OUT]

For each project (sdist .tar.gz, npm .tgz, or folder), every text file the LM could take (UTF-8,
tokens give it back, not minified; up to --max-bytes, so files over the 128 KB candidate limit are
measured too) is scored in one LM stream as exact mode scores it (lmcodec.Scorer), with each
mixing setting named in --mix. Per file, the measured sizes: its LM stream bits, its best classical
payload alone with the codecs of main before issue 18 (zstd, xz, hex) and with "cm", and its cost
inside one "cm" solid block of the tree's small text files (packing.block_costs).

Printed by kind: the LM's bits/byte alone (the model and mixer's own quality on that kind), and
what exact mode spends on that kind, before (main's rule: the smaller of the LM stream and zstd/xz
alone, for files up to 128 KB; larger ones zstd/xz alone) and after (the smaller of the LM stream,
the file alone and its cost in the solid block, for candidates under the new rule). Sizes are
ideal code lengths (the payloads are within a few bytes of them); files that are not text are left
out. Benchmarks are not tests: they print, they do not assert.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.speed import KINDS, kind_of, tree_of  # noqa: E402
from codeseed import candidates, codecs, lmcodec, packing  # noqa: E402
from codeseed.cm import MixSettings  # noqa: E402
from codeseed.model import CodeModel  # noqa: E402
from codeseed.walk import scan  # noqa: E402

MIXES = {"main": MixSettings(ngram_orders=(2, 3), ngram_alpha=(6, 3), match=True, adaptive=False),  # before issue 18
         "default": MixSettings(),
         "adaptive": MixSettings(adaptive=True),
         "adaptive 1-4": MixSettings(ngram_orders=(1, 2, 3, 4), ngram_alpha=(24, 6, 3, 2), adaptive=True)}


def measure(src: Path, model: CodeModel, mixes: list[str], max_bytes: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        root = tree_of(src, Path(tmp))
        files = scan(root, True, False).files
        block = packing.block_costs(files)
        rows, toks, seen = [], [], set()
        for i, f in enumerate(files):
            if f.is_symlink or not f.data or f.data in seen or len(f.data) > max_bytes \
                    or candidates.looks_minified(f.data):
                continue
            ids = model.tokenize_exact(f.data)
            if not ids:
                continue
            seen.add(f.data)
            old = codecs.best_classical(f.data, ("zstd", "xz") + (("hex",) if codecs.hex_eligible(f.data) else ()))
            new = codecs.best_classical(f.data)
            rows.append({"path": f.path, "kind": kind_of(f.path), "bytes": len(f.data), "tokens": len(ids),
                         "candidate_before": len(f.data) <= candidates.MODEL_MAX_BYTES,
                         "candidate_after": candidates.model_candidate(f, exact=True),
                         "alone_before": len(old[1]), "alone_after": len(new[1]), "alone_after_codec": new[0],
                         "block": block.get(i), "lm": {}})
            toks.append(ids)
        times = {}
        for name in mixes:
            s = lmcodec.choose_settings([len(t) for t in toks], model.context, mix=MIXES[name])
            t = time.perf_counter()
            sc = lmcodec.Scorer(model.engine, model.bos, toks, s, jobs=2)
            times[name] = time.perf_counter() - t
            for r, bits in zip(rows, sc.file_bits):
                r["lm"][name] = float(bits / 8)
        out = {"project": root.name, "files": rows, "lm_seconds": times}
        print(json.dumps({"project": root.name, "files": len(rows), "lm_seconds": times}), file=sys.stderr, flush=True)
        return out


def spend(r: dict, mix: str, rule: str) -> float:
    if rule == "before":
        return min(r["lm"][mix], r["alone_before"]) if r["candidate_before"] else r["alone_before"]
    alt = min(r["alone_after"], r["block"]) if r["block"] is not None else r["alone_after"]
    return min(r["lm"][mix], alt) if r["candidate_after"] else alt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sources", type=Path, nargs="+")
    ap.add_argument("--model", type=Path)
    ap.add_argument("--mix", default="main", help=f"comma list of mixing settings to score: {', '.join(MIXES)}")
    ap.add_argument("--max-bytes", type=int, default=1_000_000)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    model = CodeModel(args.model)
    mixes = args.mix.split(",")
    rows = [measure(s, model, mixes, args.max_bytes) for s in args.sources]
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    kinds = [*KINDS, "other"]
    print(f"model {model.id.sha256[:8]}; mixing settings: {', '.join(mixes)}\n")
    print("| project | kind | files | bytes | LM alone b/B (" + ", ".join(mixes) + ") | zstd/xz alone b/B | cm alone b/B "
          "| cm block b/B | exact mode before b/B | exact mode after b/B |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for p in [*rows, {"project": "**all**", "files": [f for r in rows for f in r["files"]]}]:
        for k in kinds:
            fs = [f for f in p["files"] if f["kind"] == k]
            if not fs:
                continue
            n = sum(f["bytes"] for f in fs)

            def bpb(x: float) -> str:
                return f"{8 * x / n:.3f}"
            lm = ", ".join(bpb(sum(f["lm"][m] for f in fs)) for m in mixes)
            blk = sum(f["block"] if f["block"] is not None else f["alone_after"] for f in fs)
            print(f"| {p['project']} | {k} | {len(fs)} | {n:,} | {lm} | {bpb(sum(f['alone_before'] for f in fs))} "
                  f"| {bpb(sum(f['alone_after'] for f in fs))} | {bpb(blk)} "
                  f"| {bpb(sum(spend(f, mixes[0], 'before') for f in fs))} "
                  f"| {bpb(sum(spend(f, mixes[-1], 'after') for f in fs))} |")
    print("\nLarge files (over 128 KB):")
    for p in rows:
        for f in p["files"]:
            if f["bytes"] > candidates.MODEL_MAX_BYTES:
                def n(x) -> str:
                    return "-" if x is None else f"{round(x):,}"
                print(f"- {p['project']}/{f['path']}: {f['bytes']:,} bytes, LM "
                      + ", ".join(n(f['lm'][m]) for m in mixes)
                      + f", zstd/xz {n(f['alone_before'])}, cm {n(f['alone_after'])}, cm block {n(f['block'])}")


if __name__ == "__main__":
    main()
