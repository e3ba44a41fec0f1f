"""Predictive potential (MP) and bit cost of each piece of a file, for seed selection.

    bits(e) = the model's surprisal of e's tokens in their real context (full forward pass): what
              keeping e costs in the LM codec, and how badly the model would guess e if dropped.
    MP(e)   = bits(e) * weight(kind) * (2 if e is a name used in another file of the repository)

Why surprisal: a piece the model predicts well (low bits) is regenerated well when dropped, so
keeping it gains little; a surprising piece is what the model cannot regenerate. Why weights: the
same surprise matters more where programs break: imports, signatures and names that other files
(tests, callers) depend on, control flow; comments and docstrings matter least, except docstrings
holding doctests, which are tests. Whitespace-only pieces (line breaks, indentation) get a high
weight: they cost almost nothing to keep, and the model's fills of them broke the layout.

Some pieces are pinned: the selector always keeps them (`pin` says why). Directive and legal
comments, and free text linters already report on (fidelity.protected); free text the language's
own parser reads as code ('parser', fidelity.disagreements), which also becomes kind 'code'.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from codeseed import fidelity, spans

KIND_WEIGHT = {"import": 3.0, "signature": 2.5, "name": 3.0, "control": 1.5, "string": 1.2, "code": 1.0,
               "body": 1.0, "comment": 0.2, "comment_text": 0.2, "docstring": 0.3, "docstring_text": 0.3}
DOCTEST_WEIGHT = 1.5
LAYOUT_WEIGHT = 20.0  # whitespace-only pieces: nearly free to keep, and fills of them broke layout (measured)
IDENT = re.compile(rb"[A-Za-z_][A-Za-z0-9_]{2,}")
SCORE_CHUNK = 2048  # tokens a row when a long file is scored: on schedule's two largest files (29,000 tokens)
                    # 6.4 s instead of 11.4 on one thread, total bits within 0.04%, 0.05 bits a token apart


@dataclass(frozen=True)
class Piece:
    kind: str
    start: int
    end: int
    bits: float
    value: float
    pin: str = ""  # why the selector must keep it ("" when it need not)


def byte_bits(model, data: bytes) -> np.ndarray:
    """Bits per byte position: each character's bits spread over its UTF-8 bytes. A file longer than
    SCORE_CHUNK tokens is scored in rows of that many side by side (model.token_bits_many)."""
    text = data.decode("utf-8")
    widths = np.array([len(c.encode("utf-8")) for c in text], dtype=np.int64)
    return np.repeat(model.char_bits(text, chunk=SCORE_CHUNK) / np.maximum(widths, 1), widths)


def names_elsewhere(files: dict[str, bytes]) -> dict[str, set[bytes]]:
    """For each file, the identifiers that also appear in some other file of the repository."""
    per_file = {p: set(IDENT.findall(d)) for p, d in files.items()}
    seen_in: dict[bytes, int] = {}
    for names in per_file.values():
        for n in names:
            seen_in[n] = seen_in.get(n, 0) + 1
    return {p: {n for n in names if seen_in[n] > 1} for p, names in per_file.items()}


def assess(model, lang: spans.Language, data: bytes, shared_names: set[bytes] = frozenset()) -> list[Piece]:
    """The file's pieces (spans.segments) with their bits, MP and pins; data must parse cleanly."""
    found = spans.extract(lang, data)
    pieces = spans.segments(data, found, lang.line_comment)
    pins = fidelity.protected(lang, data, found, pieces)
    for k in fidelity.disagreements(fidelity.judge_for(lang), data, pieces):
        pins[k] = "parser"
    bits = byte_bits(model, data)
    out = []
    for k, p in enumerate(pieces):
        b = float(bits[p.start:p.end].sum())
        kind = "code" if pins.get(k) == "parser" else p.kind
        w = KIND_WEIGHT[kind]
        text = data[p.start:p.end]
        if kind in ("docstring", "docstring_text") and b">>>" in text:
            w = DOCTEST_WEIGHT
            kind = "docstring"  # doctests are tests: never free text that a fill may rewrite
        if p.kind == "name" and text in shared_names:
            w *= 2
        if not text.strip():
            w = LAYOUT_WEIGHT
        out.append(Piece(kind, p.start, p.end, b, b * w, pins.get(k, "")))
    return out
