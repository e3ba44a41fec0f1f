"""What seeding must keep, who judges a reconstruction, and how close regenerated text comes.

**Judges.** tree-sitter proposes the spans (spans.py); it is not the judge of what a file means.
- Python: CPython itself. `ast.parse` of the file's bytes reads them as the interpreter does (PEP 263
  declarations, a BOM, universal newlines: a lone CR ends a line). The *code view* of a file is
  `ast.dump` without attributes, docstrings' text blanked (comments are not in the AST). A strict
  seed's reconstruction must have the original's code view.
- Other languages: tree-sitter, the only parser of theirs installable offline from the grammar
  wheels. The code view: a clean parse (no ERROR/MISSING), preorder node types with the text of
  every token outside comments.

**Free text the judge agrees with.** A piece tree-sitter calls free text (a comment's or a
docstring's text) is free text only if removing its text leaves the judge's code view unchanged;
otherwise the parsers disagree about it (a lone CR ends a Python comment that tree-sitter reads on)
and it is code that stays in the seed.

**Protected text** (grammars/directives.toml): directive comments (noqa, type: ignore, fmt: off,
//go:build, eslint-disable, ...), license and copyright headers, and free text that linters already
report on (trailing whitespace, lines over the language's lint width) stay in the seed.

**Regenerated text** is scored against the original with chrF (character n-gram F-score, beta 2;
sacrebleu's implementation, the reference one in machine translation), 0-100, and classed as junk
when it is empty, a run of quotes, or a code fragment where the original was prose.
"""
from __future__ import annotations

import ast
import builtins
import io
import keyword
import re
import sys
import tokenize
import tomllib
import warnings
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata

from rapidfuzz.distance import Levenshtein

from codeseed import spans


# ---------------------------------------------------------------------------------------------- judges

class Judge:
    """The parser that decides whether a reconstruction means what the original meant."""

    name = "?"

    def code_view(self, data: bytes):
        """A comparable form of the file's code (comments and docstring text left out), or None when
        it does not parse."""
        raise NotImplementedError

    def parses(self, data: bytes) -> bool:
        return self.code_view(data) is not None

    def similarity(self, a: bytes, b: bytes) -> float:
        """1 - normalized Levenshtein distance between preorder node-type sequences (0..1)."""
        raise NotImplementedError


class CPythonJudge(Judge):
    name = f"cpython {sys.version_info.major}.{sys.version_info.minor}"

    @staticmethod
    def tree(data: bytes) -> ast.Module | None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # SyntaxWarnings of the file's code are not ours to print
                return ast.parse(data)
        except (SyntaxError, ValueError, MemoryError, RecursionError):  # ValueError: NUL bytes (3.11)
            return None

    def code_view(self, data: bytes) -> str | None:
        tree = self.tree(data)
        if tree is None:
            return None
        for node in docstring_owners(tree):
            node.body[0].value.value = ""
        return ast.dump(tree)

    def similarity(self, a: bytes, b: bytes) -> float:
        ta, tb = self.tree(a), self.tree(b)
        if ta is None or tb is None:
            return 0.0
        return Levenshtein.normalized_similarity(_ast_types(ta), _ast_types(tb))


def docstring_owners(tree: ast.AST) -> list[ast.AST]:
    """Nodes whose first statement is a docstring, as CPython assigns `__doc__`."""
    return [n for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and n.body
            and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)
            and isinstance(n.body[0].value.value, str)]


def _ast_types(tree: ast.AST) -> list[str]:
    out, stack = [], [tree]
    while stack:
        n = stack.pop()
        out.append(type(n).__name__)
        stack.extend(reversed(list(ast.iter_child_nodes(n))))
    return out


class TreeSitterJudge(Judge):
    def __init__(self, lang: spans.Language):
        self.lang = lang
        module = spans.grammar_module(lang.name)
        try:
            version = metadata.version(module.replace("_", "-"))
        except metadata.PackageNotFoundError:
            version = "?"
        self.name = f"{module.replace('_', '-')} {version}"

    def code_view(self, data: bytes) -> list | None:
        root = spans.parse(self.lang, data).root_node
        if root.has_error:
            return None
        out, stack = [], [(root, False)]
        while stack:
            n, in_comment = stack.pop()
            in_comment = in_comment or "comment" in n.type
            if n.child_count == 0:
                out.append(n.type if in_comment else (n.type, n.text))
            elif n.is_named:
                out.append(n.type)
            stack.extend((c, in_comment) for c in reversed(n.children))
        return out

    def similarity(self, a: bytes, b: bytes) -> float:
        return Levenshtein.normalized_similarity(ts_node_types(self.lang, a), ts_node_types(self.lang, b))


def ts_node_types(lang: spans.Language, data: bytes) -> list[str]:
    """Preorder named node types, comments left out: the normalized tree the similarity compares."""
    out, stack = [], [spans.parse(lang, data).root_node]
    while stack:
        n = stack.pop()
        if n.is_named and "comment" not in n.type:
            out.append(n.type)
        stack.extend(reversed(n.children))
    return out


@lru_cache(maxsize=None)
def judge_for(lang: spans.Language) -> Judge:
    return CPythonJudge() if lang.name == "python" else TreeSitterJudge(lang)


def unseedable_reason(lang: spans.Language, data: bytes) -> str | None:
    """Why a file of a known language must be stored exact, or None. Python: CPython must parse it,
    and it must be UTF-8 (a declared encoding other than UTF-8 makes the model's text another
    text to the interpreter)."""
    if lang.name == "python":
        try:
            encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        except SyntaxError as e:
            return f"bad encoding declaration ({e})"
        if encoding not in ("utf-8", "utf-8-sig"):
            return f"declares encoding {encoding}; regenerated text would be UTF-8"
    if not judge_for(lang).parses(data):
        return f"{judge_for(lang).name} does not parse it"
    return None


def disagreements(judge: Judge, data: bytes, pieces: list) -> set[int]:
    """Indices of free-text pieces the judge does not read as free text: removing the text changes
    its code view. Tested in groups (one parse when all agree), bisected on a change."""
    from codeseed.verify import culprits  # verify imports seeded, which imports this module

    free = [k for k, p in enumerate(pieces) if p.kind in spans.FREE_TEXT]
    if not free:
        return set()
    base = judge.code_view(data)

    def changes(subset: list[int]) -> bool:
        gone = {pieces[k].start: pieces[k].end for k in subset}
        out, pos = [], 0
        for start in sorted(gone):
            out.append(data[pos:start])
            pos = gone[start]
        out.append(data[pos:])
        return judge.code_view(b"".join(out)) != base

    return set(culprits(free, changes)) if changes(free) else set()


# -------------------------------------------------------------------------------------- protected text

@dataclass(frozen=True)
class Rules:
    comment: re.Pattern | None   # directives and legal lines, anywhere
    header: re.Pattern | None    # legal text of the leading comment block / module docstring
    lint_width: int | None


def _union(patterns: list[str]) -> re.Pattern | None:
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE | re.MULTILINE) if patterns else None


@lru_cache(maxsize=None)
def rules_for(name: str) -> Rules:
    table = tomllib.loads(spans.grammar_text("directives.toml"))
    own = table.get(name) or table.get(spans.query_name(name), {})
    common = table.get("all", {})
    return Rules(_union(common.get("comment", []) + own.get("comment", [])),
                 _union(common.get("header", []) + own.get("header", [])), own.get("lint_width"))


def is_directive(lang: spans.Language, text: str) -> bool:
    """True when the text (a whole comment, a docstring, or a regenerated one) holds a directive or
    legal line of the language (grammars/directives.toml)."""
    r = rules_for(lang.name).comment
    return bool(r and r.search(text))


def protected(lang: spans.Language, data: bytes, found: list[spans.Span], pieces: list) -> dict[int, str]:
    """Pieces that stay in the seed whatever the selector says: {piece index: reason}.
    `found` are the spans extract() captured; reasons: 'directive' (a comment or docstring that holds
    a directive or legal line), 'header' (the leading comment block or module docstring, when it
    holds license or copyright text), 'lint' (free text with trailing whitespace, or on a line
    longer than the language's lint width), 'escape' (a docstring's text with a backslash: the
    tokenizer reads escapes, linters report bad ones, and regenerated strings hold none)."""
    rules = rules_for(lang.name)
    out: dict[int, str] = {}
    blocks = [s for s in found if s.kind in ("comment", "docstring")]

    def pin(span: spans.Span, why: str) -> None:
        for k, p in enumerate(pieces):
            if span.start <= p.start and p.end <= span.end:
                out.setdefault(k, why)

    for s in blocks:
        if rules.comment and rules.comment.search(data[s.start:s.end].decode("utf-8")):
            pin(s, "directive")
    if rules.header:
        pos, lead = (3 if data.startswith(b"\xef\xbb\xbf") else 0), []
        for s in sorted(blocks, key=lambda s: s.start):
            if s.start < pos:
                continue  # nested capture (a docstring's text inside its docstring)
            if data[pos:s.start].strip():
                break
            lead.append(s)
            pos = s.end
        if any(rules.header.search(data[s.start:s.end].decode("utf-8")) for s in lead):
            for s in lead:
                pin(s, "header")
    for k, p in enumerate(pieces):
        if p.kind in spans.FREE_TEXT and k not in out:
            if _lint_visible(data, p.start, p.end, rules.lint_width):
                out[k] = "lint"
            elif p.kind == "docstring_text" and b"\\" in data[p.start:p.end]:
                out[k] = "escape"  # regenerated strings hold no backslash: the escapes would be lost
    return out


def _line_bounds(data: bytes, a: int, b: int) -> tuple[int, int]:
    """Byte range of the whole lines that hold data[a:b], line breaks excluded."""
    start = max(data.rfind(b"\n", 0, a), data.rfind(b"\r", 0, a)) + 1
    ends = [i for i in (data.find(b"\n", b), data.find(b"\r", b)) if i >= 0]
    return start, min(ends) if ends else len(data)


def line_widths(data: bytes, a: int, b: int) -> list[int]:
    """Widths in characters of the lines that hold data[a:b]."""
    start, end = _line_bounds(data, a, b)
    return [len(line) for line in re.split(r"\r\n|\r|\n", data[start:end].decode("utf-8", "replace"))]


def _lint_visible(data: bytes, a: int, b: int, width: int | None) -> bool:
    start, end = _line_bounds(data, a, b)
    lines = re.split(r"\r\n|\r|\n", data[start:end].decode("utf-8", "replace"))
    return any(line != line.rstrip() for line in lines) or bool(width and max(map(len, lines)) > width)


# ----------------------------------------------------------------------------------- regenerated text

@lru_cache(maxsize=1)
def _chrf():
    from sacrebleu.metrics import CHRF
    return CHRF()  # chrF: character n-grams up to 6, no word n-grams, beta 2, whitespace ignored


def chrf(hypotheses: list[str], references: list[str]) -> float:
    """Corpus chrF (0-100) of regenerated texts against the originals, one pair per piece; 100.0
    when there is nothing to score."""
    if not hypotheses:
        return 100.0
    return float(_chrf().corpus_score(hypotheses, [references]).score)


def text_similarity(regenerated: str, original: str) -> float:
    """Sentence chrF of one regenerated piece against its original, as a fraction (0..1)."""
    return float(_chrf().sentence_score(regenerated, [original]).score) / 100.0


JUNK_KINDS = ("empty", "quotes", "code")
_QUOTES = re.compile(r"""["']{2,}|^["'](?:[\s:,;)\]}]|$)""")
_CODE_CHARS = re.compile(r"[()\[\]{}=;]|\w\.\w")
_PY_NAMES = frozenset(keyword.kwlist) | frozenset(dir(builtins)) | {"self", "cls"}
_STATEMENT = re.compile(r"^(import|from|def|class|return|raise|if|elif|else|for|while|with|try|except|finally|"
                        r"lambda|yield|assert|async|await|del|global|nonlocal|pass|break|continue)\b")
# Python lines that only parse inside a block: a header needs a body (and may lack its colon),
# elif/else/except an opener
_PY_WRAPS = ("{}", "{}\n    pass", "{}:\n    pass", "if 1:\n    pass\n{}\n    pass", "try:\n    pass\n{}\n    pass")
_NUMBER = re.compile(r"^[-+]?(\d[\d_]*\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def junk_kind(lang: spans.Language, text: str) -> str | None:
    """What a piece of free text is if it is not text: 'empty' (no letter or digit), 'quotes' (a run
    of quotes, a leading quote that is not quoting, one left open, or a lone quoted string), 'code'
    (a comment marker, or its first line or half of its lines read as code: reads_as_code), else
    None."""
    t = text.strip()
    if not any(c.isalnum() for c in t):
        return "empty"
    if _QUOTES.search(t) or (t[0] in "\"'" and (t.count(t[0]) % 2 or t[-1] == t[0])):
        return "quotes"  # a run of quotes, a quote left open, or one quoted string and nothing else
    if lang.line_comment and t.startswith(lang.line_comment):
        return "code"  # a comment's marker inside a comment's text
    lines = [x.strip() for x in t.splitlines() if x.strip()]
    code = [reads_as_code(lang, x) for x in lines]
    return "code" if code[0] or 2 * sum(code) >= len(code) else None


def reads_as_code(lang: spans.Language, line: str) -> bool:
    """One line of regenerated text reads as code: a lone identifier that is not a capitalised word
    (`key`, `self`, `isinstance`; but `TODO`, `Deprecated` are words), a lone number, or a line with brackets,
    '=', ';', a dotted name, a statement keyword or a keyword or builtin alone that the language's
    judge parses, as it is or (Python) as the head of a block (`def f(x):`, `elif x:`)."""
    if (line.isidentifier() and not line[:1].isupper()) or _NUMBER.match(line):
        return True
    if not (_CODE_CHARS.search(line) or _STATEMENT.match(line) or (lang.name == "python" and line in _PY_NAMES)):
        return False
    wraps = _PY_WRAPS if lang.name == "python" else ("{}",)
    return any(judge_for(lang).parses(w.format(line).encode("utf-8")) for w in wraps)
