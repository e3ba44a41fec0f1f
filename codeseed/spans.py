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

KINDS = ("import", "signature", "control", "body", "comment", "comment_text", "docstring", "docstring_text",
         "string", "name", "code")
WHOLE = {"import": "import", "name": "name", "comment": "comment", "docstring": "docstring", "string": "string",
         "signature": "signature", "exit": "control", "body": "body", "docstring_text": "docstring_text"}
HEADERS = {"definition": "signature", "control": "control"}
SPECIFICITY = ("docstring_text", "docstring", "comment", "string", "name", "import", "control", "signature", "body",
               "code")
FREE_TEXT = ("comment_text", "docstring_text")  # text whose fill can be cut to always parse
HEAD_LINES = 2  # comments on the first lines stay whole: shebangs and encoding declarations live there


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
    line_comment: str | None = None


def grammar_text(name: str) -> str:
    """Installed wheels carry the files as `codeseed.grammars`; a source checkout has `grammars/`."""
    try:
        return resources.files("codeseed.grammars").joinpath(name).read_text("utf-8")
    except ModuleNotFoundError:
        return (Path(__file__).resolve().parent.parent / "grammars" / name).read_text("utf-8")


@lru_cache(maxsize=1)
def _table() -> dict[str, dict]:
    return tomllib.loads(grammar_text("languages.toml"))


@lru_cache(maxsize=None)
def load(name: str) -> Language:
    spec = _table()[name]
    lang = ts.Language(getattr(importlib.import_module(spec["module"]), spec["function"])())
    return Language(name, lang, ts.Query(lang, grammar_text(spec.get("query", name) + ".scm")),
                    spec.get("line_comment"))


def grammar_module(name: str) -> str:
    """The Python module of a language's grammar wheel (tree_sitter_python, ...)."""
    return _table()[name]["module"]


def query_name(name: str) -> str:
    """The query file a language uses (tsx uses typescript's)."""
    return _table()[name].get("query", name)


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


def segments(data: bytes, spans: list[Span], line_comment: str | None = None) -> list[Span]:
    """A partition of `data` into pieces labelled by the innermost covering span ('code' if none);
    neighbouring pieces of the same kind are merged. With `line_comment`, a one-line comment is
    cut into its marker (kind code: it is syntax) and its text (kind comment_text)."""
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
    return _split_comments(data, pieces, line_comment.encode()) if line_comment else pieces


def _split_comments(data: bytes, pieces: list[Span], marker: bytes) -> list[Span]:
    head_end = 0
    for _ in range(HEAD_LINES):
        head_end = data.find(b"\n", head_end) + 1 or len(data)
    out = []
    for p in pieces:
        text = data[p.start:p.end]
        if p.kind == "comment" and p.start >= head_end and text.startswith(marker) and b"\n" not in text:
            cut = p.start + len(marker)
            while cut < p.end and data[cut] in b" \t":
                cut += 1
            end = p.end - 1 if text.endswith(b"\r") else p.end  # a CRLF line's \r stays out of the text
            if cut < end:
                out += [Span("code", p.start, cut), Span("comment_text", cut, end)]  # the marker is syntax
                if end < p.end:
                    out.append(Span("code", end, p.end))
                continue
        out.append(p)
    return out
