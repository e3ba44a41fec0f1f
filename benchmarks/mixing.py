"""What each part of the exact codec's mixing is worth: ideal code length (bits/byte) per setting.

    python benchmarks/mixing.py FILES... [--model DIR] [--only "LM alone,default"]

Codes the files in archive order with the LM alone, the default mixing, and variants, and prints
bits/byte of the range coder's ideal length (the real payload is within 0.01% of it) and time.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import constriction  # noqa: E402

from codeseed import lmcodec  # noqa: E402
from codeseed.model import CodeModel  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--model", type=Path)
    ap.add_argument("--only", help="comma list of substrings: run just the variants whose name has one")
    args = ap.parse_args()
    m = CodeModel(args.model)
    toks = [m.encode(p.read_text()) for p in args.files]
    nbytes = sum(len(p.read_bytes()) for p in args.files)
    print(f"{len(args.files)} files, {nbytes:,} bytes, {sum(map(len, toks)):,} tokens, model {m.id.sha256[:12]}")
    w = m.context
    variants = [("LM alone", lmcodec.MixSettings(window=w, ngram_orders=(), ngram_alpha=(), match=False)),
                ("default mixing", lmcodec.MixSettings(window=w)),
                ("n-gram alpha 3, 1.5", lmcodec.MixSettings(window=w, ngram_alpha=(3.0, 1.5))),
                ("n-gram alpha 12, 6", lmcodec.MixSettings(window=w, ngram_alpha=(12.0, 6.0))),
                ("n-gram orders 2, 3, 4", lmcodec.MixSettings(window=w, ngram_orders=(2, 3, 4), ngram_alpha=(6.0, 3.0, 2.0))),
                ("no match model", lmcodec.MixSettings(window=w, match=False)),
                ("batches of 4 rows", lmcodec.MixSettings(window=w, batch_rows=4)),
                ("batches of 32 rows", lmcodec.MixSettings(window=w, batch_rows=32)),
                ("chunks of 4096 tokens", lmcodec.MixSettings(window=w, chunk_tokens=4096)),
                ("whole files (no chunks)", lmcodec.MixSettings(window=w, chunk_tokens=1 << 30))]
    if args.only:
        variants = [(n, s) for n, s in variants if any(k in n for k in args.only.split(","))]
    print("| setting | bits/byte | seconds |\n|---|---|---|")
    for name, s in variants:
        state, bits, t = lmcodec.ArchiveState(s), 0.0, time.perf_counter()
        chunks = [toks[f][a:e] for f, a, e in lmcodec.plan_chunks([len(x) for x in toks], s.chunk_tokens)]
        for batch in lmcodec.plan_batches(len(chunks), s.batch_rows):
            rows = [lmcodec.Row(len(chunks[i]), known=chunks[i], encoder=constriction.stream.queue.RangeEncoder())
                    for i in batch]
            lmcodec.run_batch(m, state, rows)
            state.absorb([chunks[i] for i in batch])
            bits += sum(r.bits for r in rows)
        print(f"| {name} | {bits / nbytes:.4f} | {time.perf_counter() - t:.0f} |", flush=True)


if __name__ == "__main__":
    main()
