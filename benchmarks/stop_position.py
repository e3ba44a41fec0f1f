"""Does a model know where a FIM middle ends, or only where its training rows ended?

    python benchmarks/stop_position.py ../shared/eval-public/sdist [--model DIR] [--holes 12]

For held-out function bodies and docstrings (model_eval.py's draw), the true middle is fed after a
PSM prompt whose length is chosen so that the middle ends at the last position of the model's
context, or 1 or 20 positions before it, and the median probability of the stop token there is
printed. Rows filled to the brim in training put every stop label at the last position; a model
that learned that gives ~1 at the last position and ~0 one position earlier.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from codeseed.model import CodeModel  # noqa: E402
from model_eval import holes, py_files  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sdists", type=Path)
    ap.add_argument("--model", type=Path)
    ap.add_argument("--holes", type=int, default=12)
    args = ap.parse_args()
    m = CodeModel(args.model)
    files = py_files(args.sdists)
    print(f"model {m.id.sha256[:12]}, context {m.context}\n\n| hole | middle ends at position | median P(stop) |\n|---|---|---|")
    for kind, items in holes(files, args.holes).items():
        mids = [m.encode(files[n][a:b]) for n, a, b in items]
        for early in (0, 1, 20):
            ps = []
            for (n, a, b), mid in zip(items, mids):
                # the prompt is room + 3 sentinel tokens long, so the middle's last token sits at
                # position room + 2 + len(mid) (counting from 0), and the stop is predicted there
                room = m.context - len(mid) - 3 - early
                ps.append(m.stop_probability(files[n][:a], files[n][b:], mid, room))
            print(f"| {kind} ({len(items)}) | {m.context - 1 - early} | {np.median(ps):.3f} |")


if __name__ == "__main__":
    main()
