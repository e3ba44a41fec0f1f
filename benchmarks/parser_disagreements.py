"""Where tree-sitter and CPython disagree about Python source: generated cases, counted by kind.

    python benchmarks/parser_disagreements.py [--cases 3000] [--seed 0] [--examples]

Each case is a small module (comments, inline comments, docstrings, strings, a nested block) with
one odd character sequence inserted at a random position, half of the time inside or at the end of a
piece tree-sitter calls free text (lone CR, form feed, vertical tab, NUL,
a backslash line continuation, Unicode line separators, a BOM, tabs, a PEP 263 declaration, ...).
For each case:
  - both parse: are tree-sitter's free-text pieces (comment and docstring text) free text to CPython?
    (fidelity.disagreements: removing the piece's text must leave CPython's AST unchanged, docstrings
    blanked); a piece that is not is a *free-text disagreement*, which seeded mode keeps as code;
  - tree-sitter parses cleanly but CPython refuses, or the reverse: seeded mode stores such files
    exact (fidelity.unseedable_reason / seeded.seedable).
Prints, per inserted sequence, how many cases fell in each class, and with --examples one case of
each (inserted sequence, class) pair.
"""
from __future__ import annotations

import argparse
import random
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from codeseed import fidelity, spans  # noqa: E402

TEMPLATE = '''"""Module docstring: what this module does."""
import os  # the standard library


class Box:
    """A box that holds a value."""

    def get(self, limit=3):
        """Return the value, at most `limit`."""
        # clamp the value to the limit
        value = min(self.value, limit)  # an inline note
        if value:
            x = "a string # not a comment"
            return value  # early return
        return os.sep


def helper():
    \'\'\'Single-quoted docstring.\'\'\'
    return 1  # one
'''

ODD = {
    "lone CR": "\r", "CRLF": "\r\n", "form feed": "\x0c", "vertical tab": "\x0b", "NUL": "\x00",
    "backslash-newline": "\\\n", "backslash": "\\", "tab": "\t", "NEL U+0085": "\x85",
    "LINE SEPARATOR U+2028": "\u2028", "PARAGRAPH SEPARATOR U+2029": "\u2029", "BOM U+FEFF": "\ufeff",
    "newline": "\n", "hash": "#", "triple quote": '"""', "quote": '"', "CR + code": "\r    limit = 7",
    "form feed + indent": "\x0c    ", "coding latin-1 line": "# -*- coding: latin-1 -*-\n",
}


def classify(data: bytes, lang: spans.Language, judge: fidelity.Judge) -> str:
    ts_ok = not spans.has_errors(lang, data)
    py_ok = judge.parses(data)
    if ts_ok and not py_ok:
        return "tree-sitter parses, CPython refuses"
    if py_ok and not ts_ok:
        return "CPython parses, tree-sitter refuses"
    if not ts_ok:
        return "neither parses"
    if fidelity.unseedable_reason(lang, data):
        return "stored exact: " + fidelity.unseedable_reason(lang, data).split(";")[0]
    pieces = spans.segments(data, spans.extract(lang, data), lang.line_comment)
    bad = fidelity.disagreements(judge, data, pieces)
    if bad:
        kinds = sorted({pieces[k].kind for k in bad})
        return "free text CPython reads as code (" + ", ".join(kinds) + ")"
    return "agree"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--examples", action="store_true", help="print one case of each kind")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    lang = spans.load("python")
    judge = fidelity.judge_for(lang)
    counts: dict[str, Counter] = {name: Counter() for name in ODD}
    examples: dict[tuple[str, str], bytes] = {}
    names = list(ODD)
    base = TEMPLATE.encode("utf-8")
    free = [(p.start, p.end) for p in spans.segments(base, spans.extract(lang, base), lang.line_comment)
            if p.kind in spans.FREE_TEXT]
    for _ in range(args.cases):
        name = rng.choice(names)
        if rng.random() < 0.5:  # the template is ASCII: byte offsets are character offsets
            a, b = rng.choice(free)
            at = rng.choice([b, rng.randrange(a, b + 1)])
        else:
            at = rng.randrange(len(TEMPLATE) + 1)
        data = (TEMPLATE[:at] + ODD[name] + TEMPLATE[at:]).encode("utf-8")
        kind = classify(data, lang, judge)
        counts[name][kind] += 1
        examples.setdefault((name, kind), data)
    kinds = sorted({k for c in counts.values() for k in c})
    print(f"{args.cases} cases (seed {args.seed}), one sequence inserted at a random position of a "
          f"{len(TEMPLATE)}-character module\n")
    print("| inserted | cases | " + " | ".join(kinds) + " |")
    print("|---|---|" + "---|" * len(kinds))
    for name in names:
        c = counts[name]
        print(f"| {name} | {sum(c.values())} | " + " | ".join(str(c.get(k, 0)) for k in kinds) + " |")
    if args.examples:
        for (name, kind), data in sorted(examples.items()):
            if kind not in ("agree", "neither parses"):
                print(f"\n{name} / {kind}:\n{data!r}")


if __name__ == "__main__":
    main()
