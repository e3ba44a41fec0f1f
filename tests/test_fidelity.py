"""Seeded mode keeps meaning: the language's own parser judges, directives stay, regenerated text is
measured and tidy. Each parser-disagreement kind found (benchmarks/parser_disagreements.py) is a
test named for its kind."""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys

import pytest

import codeseed
from codeseed import assess, fidelity, seeded, spans
from codeseed.walk import SourceFile

PY = spans.load("python")
DOC = ('"""Stock limits for the warehouse: how many units of an item may be ordered\n'
       'at once, and what happens when an order asks for more than the limit allows."""\n\n\n')


def pieces_of(tiny_model, data: bytes, path: str = "m.py") -> tuple[seeded.Planner, list[assess.Piece]]:
    planner = seeded.Planner([SourceFile(path, data, False)], tiny_model)
    return planner, planner.pieces.get(0, [])


def text_of(data: bytes, p) -> bytes:
    return data[p.start:p.end]


def run_pick(tree, name: str = "limits.py") -> object:
    """Import the file's pick() as CPython runs it, and call it."""
    ns: dict = {}
    exec(compile((tree / name).read_bytes(), name, "exec"), ns)
    return ns["pick"]()


def pack_unpack(tmp_path, tiny_model, files: dict[str, bytes], **kw):
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    for name, data in files.items():
        (src / name).write_bytes(data)
    kw = {"min_text_similarity": 0.0} | kw  # prose_fills' sentence is far from any original
    report = codeseed.pack(src, tmp_path / "a.cseed", model=tiny_model, budget=0.3, min_similarity=0.0, **kw)
    codeseed.unpack(tmp_path / "a.cseed", out, model=tiny_model)
    return report, out


# ------------------------------------------------------------------ parser disagreements, by kind

LONE_CR = DOC.encode() + (b"def pick():\n"
                          b"    \"\"\"The order limit currently in force for a single item.\"\"\"\n"
                          b"    limit = 3  # old default\r    limit = 7\n"
                          b"    return limit\n")


def test_lone_cr_ends_a_python_comment_so_the_text_after_it_is_code(tiny_model, tmp_path, prose_fills,
                                                                     seeds_kept):
    """The issue's case: tree-sitter reads `old default<CR>    limit = 7` as one comment, CPython
    ends the comment at the CR and runs `limit = 7`. The piece is code, pinned; after pack and
    unpack the function still returns 7."""
    _, pieces = pieces_of(tiny_model, LONE_CR)
    hidden = next(p for p in pieces if b"limit = 7" in text_of(LONE_CR, p))
    assert hidden.kind == "code" and hidden.pin == "parser"
    report, out = pack_unpack(tmp_path, tiny_model, {"limits.py": LONE_CR})
    assert run_pick(tmp_path / "src") == 7 and run_pick(out) == 7
    assert report.files[0].fidelity != "exact"  # seeded: its docstrings and the other comment regenerated
    assert b"limit = 3  # old default\r    limit = 7\n" in (out / "limits.py").read_bytes()


@pytest.mark.parametrize("kind,data", [
    ("form feed in indentation", DOC.encode() + b"class Box:\n   \x0c \"\"\"A box.\"\"\"\n    x = 1\n"),
    ("inconsistent tabs", DOC.encode() + b"if True:\n        x = 1\n\ty = 2\n"),
    ("BOM inside the file", DOC.encode() + b"x = 1  \xef\xbb\xbf# note\n"),
    ("bad escape in a docstring", DOC.encode() + b"def f():\n    \"\"\"Ret\\urn it.\"\"\"\n"),
    ("Python 2 print statement", DOC.encode() + b"print \"hello\"\n"),
    ("backslash ending a comment", DOC.encode() + b"def f(limit):\n    # clamp to the \\\nlimit\n    return limit\n"),
    ("vertical tab in indentation", DOC.encode() + b"def f():\n    x = 1\n  \x0b  return x\n"),
])
def test_tree_sitter_parses_but_cpython_refuses_stored_exact(tiny_model, kind, data):
    assert not spans.has_errors(PY, data), kind  # tree-sitter alone would have seeded it
    planner, _ = pieces_of(tiny_model, data)
    assert 0 not in planner.langs and "cpython" in planner.exact_reasons[0]


@pytest.mark.parametrize("kind,data", [
    ("lone CR inside a code line", DOC.encode() + b"import os\nsep = os.s\rep = 1\n"),   # two statements to CPython
    ("CR-only line breaks", DOC.encode().replace(b"\n", b"\r") + b"limit = 3\r# the limit\rlimit = 7\r"),
])
def test_cpython_parses_but_tree_sitter_refuses_stored_exact(tiny_model, kind, data):
    assert fidelity.judge_for(PY).parses(data) and spans.has_errors(PY, data), kind
    planner, _ = pieces_of(tiny_model, data)
    assert 0 not in planner.langs and "tree-sitter" in planner.exact_reasons[0]


def test_declared_encoding_other_than_utf8_stored_exact(tiny_model):
    """PEP 263: CPython decodes the file as latin-1; the model writes UTF-8. Stored exact."""
    data = b"# -*- coding: latin-1 -*-\n" + DOC.encode() + b"name = 'caf\xc3\xa9'  # a name\n"
    planner, _ = pieces_of(tiny_model, data)
    assert 0 not in planner.langs and "declares encoding iso-8859-1" in planner.exact_reasons[0]


def test_nul_bytes_stored_exact(tiny_model):
    data = DOC.encode() + b"x = 1  # a\x00b\n"
    planner, _ = pieces_of(tiny_model, data)
    assert 0 not in planner.langs and "NUL" in planner.exact_reasons[0]


@pytest.mark.parametrize("kind,code", [
    ("f-string first statement", b'def f(x):\n    f"""Value {x}."""\n    return x\n'),
    ("bytes first statement", b'def f(x):\n    b"""Raw bytes."""\n    return x\n'),
    ("string first in an if block", b'def f(x):\n    if x:\n        """Not a docstring."""\n    return x\n'),
])
def test_strings_cpython_does_not_take_as_docstrings_are_not_free_text(tiny_model, kind, code):
    data = DOC.encode() + code
    _, pieces = pieces_of(tiny_model, data)
    inner = [p for p in pieces if any(w in text_of(data, p) for w in (b"Value", b"Raw bytes", b"Not a docstring"))]
    assert inner and all(p.kind not in spans.FREE_TEXT or p.pin == "parser" for p in inner), kind


def test_the_judge_refuses_a_fill_that_changes_the_code(tiny_model, monkeypatch):
    """Whatever gets past the stop rules and tidying, CPython has the last word: a comment fill
    carrying a CR and a statement changes the AST and is refused. The junk rule, checked first
    (it is cheaper), already refuses it as code; without that rule the judge does."""
    data = DOC.encode() + b"def pick():\n    limit = 3  # the default limit\n    return limit\n"
    planner, pieces = pieces_of(tiny_model, data)
    k = next(k for k, p in enumerate(pieces) if text_of(data, p) == b"the default limit")
    prefix = data[:pieces[k].start]
    assert planner.text_refusal(0, k, prefix, b"a note\r    limit = 9", strict=True) == "code"
    monkeypatch.setattr(fidelity, "junk_kind", lambda lang, text: "")
    assert planner.text_refusal(0, k, prefix, b"a note\r    limit = 9", strict=True) == "parser"
    assert planner.text_refusal(0, k, prefix, b"the usual limit", strict=True) == ""


# ------------------------------------------------------------------ directive and legal comments

DIRECTIVES = (b"#!/usr/bin/env python3\n# -*- coding: utf-8 -*-\n" + DOC.encode() +
              b"import sys  # noqa: F401\n"
              b"import os  # a module we need for paths\n\n"
              b"# fmt: off\nTABLE = [1,2,\n         3]\n# fmt: on\n\n\n"
              b"def f(x):\n    try:\n        return int(x)  # type: ignore[arg-type]\n"
              b"    except:  # noqa: E722\n        return os.sep  # pragma: no cover\n")


def test_directive_comments_are_pinned(tiny_model):
    _, pieces = pieces_of(tiny_model, DIRECTIVES)
    text = {text_of(DIRECTIVES, p): p for p in pieces}
    for directive in (b"noqa: F401", b"fmt: off", b"fmt: on", b"type: ignore[arg-type]", b"noqa: E722",
                      b"pragma: no cover"):
        assert text[directive].pin == "directive", directive
    assert text[b"a module we need for paths"].pin == ""  # prose stays free text


def test_directives_survive_pack_and_unpack_with_every_free_text_piece_dropped(tiny_model, tmp_path, prose_fills):
    report, out = pack_unpack(tmp_path, tiny_model, {"d.py": DIRECTIVES})
    got = (out / "d.py").read_bytes()
    for line in DIRECTIVES.splitlines():
        if any(d in line for d in (b"noqa", b"fmt:", b"type:", b"pragma", b"#!", b"coding")):
            assert line in got.splitlines(), line


def test_license_header_block_is_pinned_whole(tiny_model):
    data = (b"# Copyright 2024 The Authors.\n#\n# Licensed under the Apache License, Version 2.0; you may not\n"
            b"# use this file except in compliance with the License.\n\n" + DOC.encode() +
            b"x = 1  # an ordinary note about x\n")
    _, pieces = pieces_of(tiny_model, data)
    header = [p for p in pieces if p.end <= data.index(b"\n\n")]
    assert header and all(p.pin in ("header", "directive") for p in header if p.kind in ("comment", "comment_text"))
    assert any(p.pin == "header" for p in header)  # the lines that do not name the license too
    note = next(p for p in pieces if text_of(data, p) == b"an ordinary note about x")
    assert note.pin == ""


def test_spdx_line_is_pinned_anywhere_and_in_other_languages(tiny_model):
    js = (b"const a = 1;\n\n// SPDX-License-Identifier: MIT\n// eslint-disable-next-line no-console\n"
          b"console.log(a); // prints a\n")
    planner = seeded.Planner([SourceFile("a.js", js, False)], tiny_model)
    pins = {text_of(js, p): p.pin for p in planner.pieces[0]}
    assert pins[b"SPDX-License-Identifier: MIT"] == "directive"
    assert pins[b"eslint-disable-next-line no-console"] == "directive"
    assert pins[b"prints a"] == ""


@pytest.mark.parametrize("fill", ["noqa: E501", "type: ignore", "fmt: off", "pylint: disable=all"])
def test_a_regenerated_comment_that_is_a_directive_is_refused(tiny_model, fill):
    data = DOC.encode() + b"x = compute()  # the value we start from\n"
    planner, pieces = pieces_of(tiny_model, data)
    k = next(k for k, p in enumerate(pieces) if text_of(data, p) == b"the value we start from")
    assert planner.text_refusal(0, k, data[:pieces[k].start], fill.encode(), strict=True) == "directive"


def test_free_text_linters_already_see_stays(tiny_model):
    """Trailing whitespace (W291/W293) and lines over 79 characters (E501): regenerated text would
    change what flake8 reports, so such free text stays as written."""
    data = DOC.encode() + (b"def f():\n    \"\"\"Summary.\n    \n    More text.\n    \"\"\"\n"
                           b"    return 1  # a comment on a line that is long enough to pass the PEP 8 width here\n"
                           b"    # trailing space here \n")
    _, pieces = pieces_of(tiny_model, data)
    free = {text_of(data, p): p.pin for p in pieces if p.kind in spans.FREE_TEXT}
    assert free[b"Summary.\n    \n    More text.\n    "] == "lint"
    assert free[b"a comment on a line that is long enough to pass the PEP 8 width here"] == "lint"


def test_a_docstring_with_escapes_stays(tiny_model):
    """Regenerated strings hold no backslash; a docstring whose text has escapes (which CPython reads
    and linters check, W605) keeps them."""
    data = DOC.encode() + b'def f():\n    """Match \\d+ digits."""\n    return 1\n'
    _, pieces = pieces_of(tiny_model, data)
    assert next(p for p in pieces if p.kind == "docstring_text" and b"Match" in text_of(data, p)).pin == "escape"


def test_pinned_pieces_are_kept_at_any_budget(tiny_model):
    planner, pieces = pieces_of(tiny_model, DIRECTIVES)
    for budget in (0.0, 0.3, 0.9):
        kept = planner.select(0, budget)
        assert all(k for k, p in zip(kept, pieces) if p.pin)


# ------------------------------------------------------------------ regenerated text

@pytest.mark.parametrize("text,kind", [
    ("", "empty"), ("   ", "empty"), ('"', "empty"), ("---", "empty"),
    ('": \'Undefined\'', "quotes"), ("'' the value", "quotes"), ('"""', "empty"),
    ("e.error(msg)", "code"), ("import sys", "code"), ("str", "code"), ("x = 1", "code"), ("None", "code"),
    ("def __hash__(self):", "code"), ("class Foo(unittest.TestCase):", "code"), ("elif x > 1:", "code"),
    ("key", "code"), ("e", "code"), ("isinstance", "code"), ("0", "code"), ("if cache.lru is None", "code"),
    ("# doc_ids", "code"), ('"test"', "quotes"), ('"b', "quotes"), ('"Foo" is the default', None),
    ("elif self.cache[key] == value:\n        self.cache[key].append(value)\n ", "code"),
    ("\n    An immutable dictionary.\n\n    Used for hashing.\n", None), ("TODO", None), ("Deprecated", None),
    ("Return the value.", None), ("the standard library", None), ("Returns", None), ("e.g. a list", None),
    ("See `foo` (below).", None), ("if the value is missing, raise", None),
])
def test_junk_kinds(text, kind):
    assert fidelity.junk_kind(PY, text) == kind


def test_chrf_scores_regenerated_text():
    assert fidelity.chrf(["Return the value."], ["Return the value."]) == pytest.approx(100.0)
    close = fidelity.text_similarity("Return the stored value.", "Return the value.")
    far = fidelity.text_similarity("e.error(msg)", "Return the value.")
    assert 0.0 <= far < close < 1.0
    assert fidelity.chrf([], []) == 100.0


def test_text_below_the_floor_stays_in_the_seed(tiny_model, monkeypatch):
    data = DOC.encode() + b'def area(w, h):\n    """Area of a w by h rectangle."""\n    return w * h\n'
    monkeypatch.setattr(seeded, "raw_fill", lambda model, prefix, suffix, hint, no_repeat: "Volume of a cube.")
    planner = seeded.Planner([SourceFile("geo.py", data, False)], tiny_model, min_text_similarity=0.9)
    pieces = planner.pieces[0]
    k = next(k for k, p in enumerate(pieces) if text_of(data, p) == b"Area of a w by h rectangle.")
    kept = [j != k for j in range(len(pieces))]
    seed, recon = planner.repair(0, kept, strict=True)
    assert recon == data and not seed.hints and planner.kept_text[0] == {k: "floor"}
    planner.min_text_similarity = 0.0
    planner._fills.clear()
    kept = [j != k for j in range(len(pieces))]
    seed, recon = planner.repair(0, kept, strict=True)
    assert b"Volume of a cube." in recon and planner.texts[0] == [("Area of a w by h rectangle.", "Volume of a cube.")]


def test_an_empty_regeneration_is_refused_even_for_a_rule_comment(tiny_model):
    """A comment of dashes is 'empty' junk itself, but regenerating nothing would leave '# ' with a
    trailing space (W291) where there was text."""
    data = DOC.encode() + b"x = 1\n# ----------\ny = 2\n"
    planner, pieces = pieces_of(tiny_model, data)
    k = next(k for k, p in enumerate(pieces) if text_of(data, p) == b"----------")
    assert planner.text_refusal(0, k, data[:pieces[k].start], b"", strict=True) == "empty"
    assert planner.text_refusal(0, k, data[:pieces[k].start], b"=======", strict=True) == ""


def test_a_wider_regenerated_line_is_refused(tiny_model):
    data = DOC.encode() + b"x = 1  # short note\n"
    planner, pieces = pieces_of(tiny_model, data)
    k = next(k for k, p in enumerate(pieces) if text_of(data, p) == b"short note")
    prefix = data[:pieces[k].start]
    assert planner.text_refusal(0, k, prefix, b"a much longer note than before", strict=True) == "width"
    assert planner.text_refusal(0, k, prefix, b"brief note", strict=True) == ""


@pytest.mark.parametrize("rule,fill,prefix,want", [
    ("N", "a note  \t", b"x = 1  # ", "a note"),
    ("N", "  a note \\", b"x = 1  # ", "a note"),                      # no C line splice
    ("N", "a\x00b\x0cc\u2028d", b"# ", "abcd"),                         # no control characters
    ("D", "Summary.  \n\n        Details here.   \n   ", b'def f():\n    """',
     "Summary.\n\n    Details here.\n    "),                             # the docstring's indentation
    ("D", "Summary.\n\t\tMore.\n", b'def f():\n    """', "Summary.\n    More.\n    "),
    ("D", "Summary.\n    a\n\tb\n", b'def f():\n    """', "Summary.\n    a\n        b\n    "),  # tabs expanded
    ("D", "One line.\nTwo.", b'x = 1\r\ndef f():\r\n    """', "One line.\r\n    Two."),  # CRLF file
    ("D", 'Ends in a quote" ', b'    """', "Ends in a quote"),
    ("D", "Has \\n escapes\\", b'    """', "Has n escapes"),
    ("Q", "text \" more", b'x = "', "text"),
])
def test_tidy_rules_make_regenerated_text_clean(rule, fill, prefix, want):
    assert seeded.cut_fill(fill, rule, prefix) == want


def test_legacy_lowercase_rules_cut_as_before():
    """Archives written before tidying carry lower-case rules; their fills come back as they were."""
    assert seeded.cut_fill("a note  ", "n") == "a note  "
    assert seeded.cut_fill("Summary.  \n   ", "d", b'    """') == "Summary.  \n   "
    assert seeded.Seed.parse(b"a\0b", [3], "n").stops == "n"
    assert seeded.Seed.parse(b"a\0b", [3], "N").stops == "N"
    with pytest.raises(ValueError):
        seeded.Seed.parse(b"a\0b", [3], "x")


# ------------------------------------------------------------------ judges and the archive

def _code(src: bytes) -> str:
    tree = ast.parse(src)
    for n in fidelity.docstring_owners(tree):
        n.body[0].value.value = ""
    return ast.dump(tree)


def test_strict_pack_keeps_cpython_ast_and_records_the_judge(tiny_model, tmp_path, prose_fills, seeds_kept):
    src_files = {"limits.py": LONE_CR, "d.py": DIRECTIVES}
    report, out = pack_unpack(tmp_path, tiny_model, src_files)
    for name, data in src_files.items():
        assert _code((out / name).read_bytes()) == _code(data), name
    seeded_files = [f for f in report.files if f.fidelity != "exact"]
    assert seeded_files and all(f.judge.startswith("cpython 3.") for f in seeded_files)
    with codeseed.archive.Archive(tmp_path / "a.cseed") as arc:
        metas = {e.path: e.meta for e in arc.entries}
    for f in seeded_files:
        assert metas[f.path]["judge"] == f.judge
        if f.text_chrf is not None:
            assert metas[f.path]["chrf"] == round(f.text_chrf, 1)


def test_other_languages_are_judged_by_tree_sitter(tiny_model):
    from tests.test_spans import SAMPLES
    judge = fidelity.judge_for(spans.load("go"))
    assert judge.name.startswith("tree-sitter-go ")
    data = SAMPLES["go"].read_bytes()
    assert judge.code_view(data) == judge.code_view(data.replace(b"// ", b"// x "))  # comment text aside
    assert judge.code_view(data) != judge.code_view(data.replace(b"os.Exit(1)", b"os.Exit(2)", 1))


def test_c_comment_spliced_by_a_backslash_is_not_free_text(tiny_model):
    """C splices a line ending in a backslash: tree-sitter-c reads the next line as comment too, so
    that comment is not a one-line comment whose text could be regenerated (and tidy never ends a
    regenerated comment in a backslash, test_tidy_rules_make_regenerated_text_clean)."""
    data = b"int f(void) {\n    int x = 1;\n    // note \\\n    x = 2;\n    return x;  // the value\n}\n"
    planner = seeded.Planner([SourceFile("f.c", data, False)], tiny_model)
    free = [text_of(data, p) for p in planner.pieces[0] if p.kind in spans.FREE_TEXT]
    assert free == [b"the value"]


def test_linted_demo_project_passes_flake8(tmp_path):
    """make demo runs flake8 in --test-cmd: the sample project must pass it as shipped."""
    pytest.importorskip("flake8")
    from tests.test_archive import FIXTURE
    src = tmp_path / "p"
    shutil.copytree(FIXTURE, src)
    r = subprocess.run([sys.executable, "-m", "flake8"], cwd=src, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout
