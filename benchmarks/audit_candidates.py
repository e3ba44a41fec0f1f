"""Every candidate `codeseed audit PATHS` considered, with the model's bits/char and the decision.

Flags show what passed; this shows what the model turned down (names, URLs, identifiers), the
margin under each threshold. Values are shown as their length and character classes (`--show`: their text, for public trees).

    python benchmarks/audit_candidates.py /tmp/audit-eval/tinydb-4.9.0 /tmp/audit-eval/semver-3.1.2 ...
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from codeseed.audit import AuditConfig, LazyModel, _decide, _needs_bits, _prepare, _score, path_files


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("paths", nargs="+", type=Path)
    ap.add_argument("--model", type=Path)
    ap.add_argument("--show", action="store_true", help="print each candidate's text (public trees only)")
    args = ap.parse_args()
    cfg = AuditConfig()
    lm = LazyModel(args.model)
    rows = []
    for p in args.paths:
        for path, data, old in path_files([p], p.parent):
            w = _prepare(path, data, old, False, cfg)
            if any(_needs_bits(c) for c in w.cands):
                _score(w, lm.get(), cfg, whole=False, info=False)
            for c in w.cands:
                v = w.lines[c.line][c.start:c.end]
                classes = "".join(k for k, f in (("a", str.islower), ("A", str.isupper), ("9", str.isdigit))
                                  if any(f(ch) for ch in v))
                rows.append((c.kind, path, c.line + 1, len(v), classes, c.bits, _decide(c, cfg), v))
    for kind, path, line, n, classes, bits, flagged, v in sorted(rows, key=lambda r: (r[0], -(r[5] or 0))):
        b = "-" if bits is None else f"{bits:.2f}"
        print(f"{kind:18s} {'FLAG' if flagged else 'pass'} {b:>5s} bits/char  {n:3d} chars [{classes}]  {path}:{line}"
              + (f"  {v[:60]!r}" if args.show else ""))
    print(f"{len(rows)} candidates, {sum(r[6] for r in rows)} flagged", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
