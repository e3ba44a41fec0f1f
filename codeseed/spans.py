"""AST spans for seeded mode: tree-sitter parses, per-language query files say what is what.

`grammars/languages.toml` maps languages to grammar packages and file extensions, and
`grammars/<language>.scm` captures span kinds (see python.scm for the capture names). This module
holds no per-language knowledge.

`segments()` cuts a file into a flat list of pieces, each labelled with the innermost span kind that
covers it, so that selection is a plain knapsack over non-overlapping pieces.
"""
from __future__ import annotations

import importlib
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path, PurePosixPath

import tree_sitter as ts

KINDS = ("import", "signature", "control", "body", "comment", "docstring", "string", "name", "code")
WHOLE = {"import": "import", "name": "name", "comment": "comment", "docstring": "docstring", "string": "string",
         "signature": "signature", "exit": "control", "body": "body"}
HEADERS = {"definition": "signature", "control": "control"}
SPECIFICITY = ("docstring", "comment", "string", "name", "import", "control", "signature", "body", "code")


@dataclass(frozen=True)
class Span:
    kind: str
    start: int   # byte offsets into the file
    end: int


@dataclass(frozen=True)
class Language:
    name: str
    language: ts.Language
    query: ts.Query


def _grammar_file(name: str) -> str:
    """Installed wheels carry the files as `codeseed.grammars`; a source checkout has `grammars/`."""
    try:
        return resources.files("codeseed.grammars").joinpath(name).read_text("utf-8")
    except ModuleNotFoundError:
        return (Path(__file__).resolve().parent.parent / "grammars" / name).read_text("utf-8")


@lru_cache(maxsize=1)
def _table() -> dict[str, dict]:
    return tomllib.loads(_grammar_file("languages.toml"))


@lru_cache(maxsize=None)
def load(name: str) -> Language:
    spec = _table()[name]
    lang = ts.Language(getattr(importlib.import_module(spec["module"]), spec["function"])())
    return Language(name, lang, ts.Query(lang, _grammar_file(spec.get("query", name) + ".scm")))


def language_for(path: str) -> str | None:
    suffix = PurePosixPath(path).suffix
    for name, spec in _table().items():
        if suffix in spec["extensions"]:
            return name
    return None


def languages() -> list[str]:
    return list(_table())


def parse(lang: Language, data: bytes) -> ts.Tree:
    return ts.Parser(lang.language).parse(data)


def has_errors(lang: Language, data: bytes) -> bool:
    """True when the tree has ERROR or MISSING nodes (the file does not parse cleanly)."""
    return parse(lang, data).root_node.has_error


def extract(lang: Language, data: bytes) -> list[Span]:
    """Every span the language's query captures, possibly nested, sorted by position."""
    root = parse(lang, data).root_node
    out: set[Span] = set()
    for _, caps in ts.QueryCursor(lang.query).matches(root):
        bodies = caps.get("body", [])
        for cap, kind in HEADERS.items():
            for owner in caps.get(cap, []):
                for body in bodies:
                    end = body.start_byte
                    while end > owner.start_byte and data[end - 1] in b" \t\r\n":
                        end -= 1  # the header ends at its last character, not at the body's indentation
                    if end > owner.start_byte:
                        out.add(Span(kind, owner.start_byte, end))
        for cap, nodes in caps.items():
            if cap in WHOLE:
                for n in nodes:
                    if n.end_byte > n.start_byte:
                        out.add(Span(WHOLE[cap], n.start_byte, n.end_byte))
    return sorted(out, key=lambda s: (s.start, -s.end, s.kind))


def segments(data: bytes, spans: list[Span]) -> list[Span]:
    """A partition of `data` into pieces labelled by the innermost covering span ('code' if none);
    neighbouring pieces of the same kind are merged."""
    cuts = sorted({0, len(data)} | {s.start for s in spans} | {s.end for s in spans})
    pieces: list[Span] = []
    for a, b in zip(cuts, cuts[1:]):
        if b <= a:
            continue
        covering = [s for s in spans if s.start <= a and b <= s.end]
        # innermost wins; on equal extent the more specific kind does (a docstring is also a body)
        kind = min(covering, key=lambda s: (s.end - s.start, SPECIFICITY.index(s.kind))).kind if covering else "code"
        if pieces and pieces[-1].kind == kind and pieces[-1].end == a:
            pieces[-1] = Span(kind, pieces[-1].start, b)
        else:
            pieces.append(Span(kind, a, b))
    return pieces
