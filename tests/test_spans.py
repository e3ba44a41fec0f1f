"""Span extraction from the per-language query files, for each of the seven languages."""
from __future__ import annotations

from pathlib import Path

import pytest

from codeseed import spans

ROOT = Path(__file__).resolve().parent.parent / "fixtures"
SAMPLES = {
    "python": ROOT / "sample-py" / "inventory" / "store.py",
    "javascript": ROOT / "sample-py" / "web" / "app.js",
    "typescript": ROOT / "languages" / "shapes.ts",
    "go": ROOT / "sample-py" / "cmd" / "inventory" / "main.go",
    "rust": ROOT / "languages" / "stack.rs",
    "java": ROOT / "languages" / "Counter.java",
    "c": ROOT / "sample-py" / "native" / "checksum.c",
}
EXPECTED = {  # kinds each sample must yield, and one text per kind that must be captured as that kind
    "python": {"import": b"import json", "signature": b"def add_item(self, item: Item, on_hand: int = 0) -> StockLevel:",
               "name": b"to_reorder", "docstring": b'"""Reserve `quantity` units and return the price in cents."""',
               "control": b"return level", "body": None, "string": None},
    "javascript": {"import": b'import { fetchStore } from "./api.js";', "comment": b"// Render the reorder list in the browser.",
                   "name": b"formatCents", "control": b"return (cents / 100).toFixed(2);", "body": None, "signature": None},
    "typescript": {"import": None, "comment": b"// A shape with an area.", "name": b"Rect", "signature": None,
                   "control": b'throw new Error("negative width");', "body": None},
    "go": {"import": None, "name": b"main", "control": None, "signature": None, "body": None, "string": None},
    "rust": {"import": b"use std::fmt;", "name": b"push", "comment": b"// Push, refusing when full.", "control": None,
             "signature": None, "body": None},
    "java": {"import": b"import java.util.Map;", "name": b"total", "comment": b"// nothing to set up",
             "control": b"return sum;", "signature": None, "body": None},
    "c": {"import": b"#include <stdint.h>\n", "comment": b"/* Adler-32 of a buffer, used to check saved store files. */",
          "control": b"return (b << 16) | a;", "signature": None, "body": None},
}


@pytest.mark.parametrize("language", sorted(SAMPLES))
def test_spans_for_each_language(language):
    path = SAMPLES[language]
    assert spans.language_for(path.name) == language
    lang = spans.load(language)
    data = path.read_bytes()
    assert not spans.has_errors(lang, data)
    found = spans.extract(lang, data)
    by_kind: dict[str, set[bytes]] = {}
    for s in found:
        by_kind.setdefault(s.kind, set()).add(data[s.start:s.end])
    for kind, text in EXPECTED[language].items():
        assert kind in by_kind, f"{language}: no {kind} span"
        if text is not None:
            assert text in by_kind[kind], f"{language}: {text!r} not captured as {kind}"
    pieces = spans.segments(data, found, lang.line_comment)
    assert b"".join(data[p.start:p.end] for p in pieces) == data      # an exact partition
    assert all(a.end == b.start for a, b in zip(pieces, pieces[1:]))
    assert {p.kind for p in pieces} <= set(spans.KINDS)


def test_docstring_beats_body_and_its_text_is_a_piece_of_its_own():
    data = b'class A:\n    """Only a docstring."""\n'
    pieces = spans.segments(data, spans.extract(spans.load("python"), data))
    got = [(p.kind, data[p.start:p.end]) for p in pieces]
    assert ("docstring_text", b"Only a docstring.") in got
    assert ("docstring", b'"""') in got  # the quotes: the docstring beat the body that covers it too


def test_one_line_comments_are_cut_after_their_marker():
    data = b"#!/usr/bin/env python\n# -*- coding: utf-8 -*-\nx = 1  #  note here\r\n// not python\n"
    lang = spans.load("python")
    pieces = spans.segments(data, spans.extract(lang, data), lang.line_comment)
    got = [(p.kind, data[p.start:p.end]) for p in pieces]
    assert ("comment_text", b"note here") in got and ("code", b"#  ") in got
    assert ("comment", b"#!/usr/bin/env python") in got          # the first lines stay whole
    assert not any(k == "comment_text" and b"\r" in t for k, t in got)


def test_broken_file_reports_errors_and_unknown_extension():
    assert spans.has_errors(spans.load("python"), b"def f(:\n  return\n")
    assert spans.language_for("notes.txt") is None
