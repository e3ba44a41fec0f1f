"""Seeded mode mechanics: seeds, reconstruction, the unpack check of the verified reconstruction."""
from __future__ import annotations

import hashlib
import shutil

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import codeseed
from codeseed import archive, assess, seeded, select, spans
from codeseed.errors import VerificationError
from codeseed.walk import SourceFile
from tests.test_archive import FIXTURE


def seed_for(model, data: bytes, budget: float) -> seeded.Seed:
    pieces = assess.assess(model, spans.load("python"), data)
    total = sum(p.bits for p in pieces)
    kept = select.greedy(select.Problem([p.value for p in pieces], [p.bits for p in pieces], budget * total)).kept
    return seeded.build_seed(model, data, pieces, kept)


def test_seed_keeps_text_in_order_and_round_trips(tiny_model):
    data = (FIXTURE / "inventory" / "store.py").read_bytes()
    seed = seed_for(tiny_model, data, 0.5)
    assert 0 < len(seed.hints) and len(seed.kept) == len(seed.hints) + 1
    assert len(seed.text()) < len(data)
    it = 0
    for run in seed.kept:  # every kept run appears in the original, in order
        it = data.index(run, it) + len(run)
    assert seeded.Seed.parse(seed.text(), seed.hints) == seed
    with pytest.raises(ValueError):
        seeded.Seed.parse(seed.text(), seed.hints[:-1])


def test_assess_prefers_names_used_elsewhere(tiny_model):
    data = (FIXTURE / "inventory" / "store.py").read_bytes()
    alone = assess.assess(tiny_model, spans.load("python"), data)
    shared = assess.assess(tiny_model, spans.load("python"), data, {b"Store"})
    i = next(k for k, p in enumerate(alone) if p.kind == "name" and data[p.start:p.end] == b"Store")
    assert shared[i].value == pytest.approx(2 * alone[i].value)
    assert sum(p.end - p.start for p in alone) == len(data)


def test_reconstruction_is_deterministic_and_keeps_seed_runs(tiny_model):
    files = [(FIXTURE / "inventory" / n).read_bytes() for n in ("store.py", "models.py")]
    seeds = [seed_for(tiny_model, d, 0.6) for d in files]
    first = seeded.reconstruct(tiny_model, seeds)
    assert first == seeded.reconstruct(tiny_model, seeds)
    assert first[0] == seeded.reconstruct(tiny_model, seeds[:1])[0]  # other files do not change a file
    assert first[1] == seeded.reconstruct(tiny_model, seeds[1:])[0]
    for seed, recon in zip(seeds, first):
        it = 0
        for run in seed.kept:
            it = recon.index(run, it) + len(run)


def test_batched_fills_equal_fills_one_at_a_time(tiny_model):
    """reconstruct() fills hole j of every seed in one batch; the exact engine makes that equal to
    filling each hole alone, left to right (fill_seed), which is what pack verified."""
    files = [(FIXTURE / "inventory" / n).read_bytes() for n in ("store.py", "models.py")]
    seeds = [seed_for(tiny_model, d, b) for d in files for b in (0.3, 0.6)]
    assert sum(len(s.hints) for s in seeds) > 8

    def one(prefix, suffix, hint, rule):
        return seeded.cut_fill(seeded.raw_fill(tiny_model, prefix, suffix, hint, seeded.NO_REPEAT), rule,
                               prefix).encode("utf-8")
    assert seeded.reconstruct(tiny_model, seeds) == [seeded.fill_seed(s, one) for s in seeds]


def crafted_seeded_archive(tmp_path, model, recon_sha: str | None = None, no_repeat: int | None = seeded.NO_REPEAT):
    """A seeded archive as pack writes it; no_repeat None: as codeseed wrote it before it recorded
    its fill settings (holes filled by plain greedy)."""
    data = (FIXTURE / "inventory" / "store.py").read_bytes()
    seed = seed_for(model, data, 0.5)
    recon = seeded.reconstruct(model, [seed], no_repeat=no_repeat or 0)[0]
    meta = {"holes": seed.hints, "budget": 0.5, "similarity": 0.0} | ({"stops": seed.stops} if seed.stops else {})
    e = archive.Entry("store.py", len(data), bytes.fromhex(recon_sha or hashlib.sha256(recon).hexdigest()), "stored",
                      "seeded", meta=meta)
    dst = tmp_path / "s.cseed"
    settings = {} if no_repeat is None else {"fill": {"no_repeat": no_repeat}}
    archive.write(dst, archive.Header(model=model.id.to_dict(), settings=settings), [e], [seed.text()])
    return dst, recon


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 3), max_size=30), st.integers(2, 6))
def test_repeats_banned_is_the_fill_rule(ids, n):
    """repeats_banned(ids, n) is True exactly when CodeModel._ban_repeats, stepped over ids as
    fill() steps, bans one of them (the oracle is fill's own rule)."""
    import torch
    from codeseed.model import CodeModel
    seen: dict = {}
    hit = False
    for k in range(len(ids)):
        if k >= n - 1:
            logits = CodeModel._ban_repeats(torch.zeros(1, 4), [ids[:k]], [seen], [True], n)
            hit = hit or bool(logits[0, ids[k]] == float("-inf"))
    assert seeded.repeats_banned(ids, n) == hit


def test_a_reproducing_hole_is_filled_with_its_middle_unless_the_no_repeat_rule_steers_it(tiny_model):
    """Planner.reproduces puts a hole's own middle in the fill cache when the model reproduces it and
    repeats_banned() says fill's no-repeat rule cannot steer it: so fill() must give exactly that
    middle then, and something else when repeats_banned() says it would steer. Plain greedy fills
    (no_repeat 0) are middles that reproduce; the tiny model loops, so some repeat n-grams."""
    src = (FIXTURE / "inventory" / "store.py").read_text()
    stops = tiny_model._fim_ids[3]
    seen = {True: 0, False: 0}
    for a, size in [(a, size) for a in range(60, 900, 70) for size in (5, 24)]:
        pre, suf = src[:a], src[a + 30:]
        tiny_model.fill([pre], [suf], size, no_repeat=0)
        ids = list(tiny_model.last_fill_ids[0])
        if not ids or any(t in stops for t in ids):
            continue
        assert tiny_model.reproduces(pre, suf, ids)
        for n in (2, 3, 6):
            banned = seeded.repeats_banned(ids, n)
            steered = tiny_model.fill([pre], [suf], len(ids), no_repeat=n)[0] != tiny_model.decode(ids)
            assert banned == steered, (a, n, ids)
            seen[banned] += 1
    assert seen[True] and seen[False]  # both sides of the rule were checked


def test_unpack_reproduces_the_verified_reconstruction(tmp_path, tiny_model):
    dst, recon = crafted_seeded_archive(tmp_path, tiny_model)
    codeseed.unpack(dst, tmp_path / "out", model=tiny_model)
    assert (tmp_path / "out" / "store.py").read_bytes() == recon


def test_unpack_fills_as_the_archive_says(tmp_path, tiny_model):
    """Archives from before codeseed recorded its fill settings were filled by plain greedy."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    old, recon_old = crafted_seeded_archive(tmp_path / "a", tiny_model, no_repeat=None)
    new, recon_new = crafted_seeded_archive(tmp_path / "b", tiny_model)
    assert recon_old != recon_new  # the tiny model loops, so the repeat ban changes its fills here
    codeseed.unpack(old, tmp_path / "old", model=tiny_model)
    codeseed.unpack(new, tmp_path / "new", model=tiny_model)
    assert (tmp_path / "old" / "store.py").read_bytes() == recon_old
    assert (tmp_path / "new" / "store.py").read_bytes() == recon_new


def test_unpack_refuses_a_reconstruction_that_differs(tmp_path, tiny_model):
    dst, _ = crafted_seeded_archive(tmp_path, tiny_model, recon_sha="0" * 64)
    with pytest.raises(VerificationError, match="store.py"):
        codeseed.unpack(dst, tmp_path / "out", model=tiny_model)
    assert not (tmp_path / "out").exists()


def test_ast_similarity_ignores_comments_and_sees_changes():
    lang = spans.load("python")
    a = b"def f(x):\n    return x + 1\n"
    assert seeded.ast_similarity(lang, a, b"# note\ndef f(x):\n    return x + 1  # same\n") == 1.0
    assert seeded.ast_similarity(lang, a, b"def f(x):\n    if x:\n        return 2\n    return x\n") < 0.9


def test_repair_keeps_breaking_holes_and_matches_unpack(tiny_model):
    """A tiny model's fills break parsing; repair must keep those holes, and what it returns is what
    reconstruct (unpack) computes from the final seed: a parse-clean file."""
    data = (FIXTURE / "inventory" / "store.py").read_bytes()
    f = SourceFile("store.py", data, False)
    planner = seeded.Planner([f], tiny_model)
    kept = planner.select(0, 0.5)
    before = sum(kept)
    raw = seeded.reconstruct(tiny_model, [seeded.build_seed(tiny_model, data, planner.pieces[0], tuple(kept))])[0]
    seed, recon = planner.repair(0, kept)
    assert recon == seeded.reconstruct(tiny_model, [seed])[0]
    assert not spans.has_errors(planner.langs[0], recon)
    assert spans.has_errors(planner.langs[0], raw)  # so the repair did something real
    assert sum(kept) > before
    assert len(seed.hints) == len(seeded.hole_ranges(kept))


def test_close_cheap_holes():
    h = seeded.HOLE_BITS
    kept = [True, False, True, False, False, True, False]
    bits = [5.0, h / 4, 5.0, h - 1, 2.0, 5.0, 2.0]
    # hole 1 has fewer bits of text than a hole costs: kept; hole 3-4 has more: stays; the last: kept
    assert seeded.close_cheap_holes(kept, bits) == [True, True, True, False, False, True, True]


def test_selection_leaves_no_hole_that_costs_more_than_its_text(tiny_model):
    data = (FIXTURE / "inventory" / "store.py").read_bytes()
    planner = seeded.Planner([SourceFile("store.py", data, False)], tiny_model)
    for budget in (0.3, 0.6, 0.9):
        kept = planner.select(0, budget)
        assert seeded.hole_ranges(kept)
        for a, b in seeded.hole_ranges(kept):
            assert sum(p.bits for p in planner.pieces[0][a:b]) >= seeded.HOLE_BITS


def test_hole_ranges():
    assert seeded.hole_ranges([True, False, False, True, False]) == [(1, 3), (4, 5)]
    assert seeded.hole_ranges([True, True]) == []
    assert seeded.hole_ranges([False]) == [(0, 1)]


def test_free_text_holes_always_parse_even_with_a_poor_model(tiny_model):
    """Drop every comment text and docstring text: whatever the (tiny, poor) model writes, the stop
    rules keep the file parsing; after pack's repair (which keeps a docstring whose fill comes back
    blank: an empty string has no string_content node) its AST, comments aside, is unchanged."""
    data = (FIXTURE / "inventory" / "store.py").read_bytes()
    lang = spans.load("python")
    planner = seeded.Planner([SourceFile("store.py", data, False)], tiny_model)
    pieces = planner.pieces[0]
    kept = [p.kind not in spans.FREE_TEXT for p in pieces]
    seed = seeded.build_seed(tiny_model, data, pieces, tuple(kept))
    assert seed.hints and set(seed.stops) <= {"N", "D", "S"} and len(seed.stops) == len(seed.hints)
    recon = seeded.reconstruct(tiny_model, [seed])[0]
    assert not spans.has_errors(lang, recon)
    assert seeded.Seed.parse(seed.text(), seed.hints, seed.stops) == seed
    repaired_seed, repaired = planner.repair(0, kept, strict=True)
    assert repaired_seed.hints and not spans.has_errors(lang, repaired)
    assert seeded.ast_similarity(lang, data, repaired) == 1.0


@pytest.mark.parametrize("rule,fill,want", [
    ("n", "a note\nx = 1", "a note"),
    ("n", "a note\r\n", "a note"),
    ("d", 'Text """ then code', "Text "),
    ("d", 'ends in a quote"', "ends in a quote"),
    ("d", "escapes \\N and \\", "escapes N and "),
    ("s", "one ''' two", "one "),
    ("q", "line\nnext", "line"),
    (".", "anything\n", "anything\n"),
])
def test_cut_fill(rule, fill, want):
    assert seeded.cut_fill(fill, rule) == want


def _code_only(src: bytes) -> str:
    """Python's AST with docstrings blanked: what strict seeds must leave unchanged (comments are
    not in the AST at all)."""
    import ast
    tree = ast.parse(src)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            body[0].value.value = ""
    return ast.dump(tree)


def test_strict_repair_leaves_the_code_as_it_was(tiny_model):
    data = (FIXTURE / "inventory" / "store.py").read_bytes()
    planner = seeded.Planner([SourceFile("store.py", data, False)], tiny_model)
    seed, recon = planner.repair(0, planner.select(0, 0.3), strict=True)
    assert seed.hints and recon != data                      # something was regenerated ...
    assert _code_only(recon) == _code_only(data)             # ... but not the code
    assert recon == seeded.reconstruct(tiny_model, [seed])[0]


def test_doctests_are_never_free_text(tiny_model):
    data = b'def f(x):\n    """Double.\n\n    >>> f(2)\n    4\n    """\n    return 2 * x\n\n\ndef g():\n    """Plain."""\n'
    pieces = assess.assess(tiny_model, spans.load("python"), data)
    kinds = {data[p.start:p.end]: p.kind for p in pieces}
    assert kinds[b"Plain."] == "docstring_text"
    assert not any(k in spans.FREE_TEXT for t, k in kinds.items() if b">>>" in t)


def test_a_docstring_is_never_left_blank(tiny_model, monkeypatch):
    """A fill that ends the docstring at once would leave `__doc__` empty, which code can test for:
    repair keeps such a docstring's text instead."""
    data = b'def area(w, h):\n    """Area of a w by h rectangle."""\n    return w * h\n'
    planner = seeded.Planner([SourceFile("geo.py", data, False)], tiny_model)
    free = [k for k, p in enumerate(planner.pieces[0]) if p.kind == "docstring_text"]
    kept = [k not in free for k in range(len(planner.pieces[0]))]
    monkeypatch.setattr(seeded, "raw_fill", lambda model, prefix, suffix, hint, no_repeat: '"""')  # cut to ""
    seed, recon = planner.repair(0, list(kept), strict=True)
    assert recon == data and not seed.hints
    monkeypatch.setattr(seeded, "raw_fill", lambda model, prefix, suffix, hint, no_repeat: "Some text.")
    planner._fills.clear()  # fills are cached by their inputs
    seed, recon = planner.repair(0, list(kept), strict=True)
    assert recon == data.replace(b"Area of a w by h rectangle.", b"Some text.") and seed.stops == "D"


def test_a_seeded_pack_that_seeds_nothing_writes_the_exact_archive(tiny_model, tmp_path):
    """Files no judge can seed (text, data) stay exact: the archive names no fill rule, and is byte
    for byte the one --exact writes (it carried the rule, 30 bytes, for no hole at all)."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "notes.txt").write_text("Plain notes, not a language a judge reads.\n" * 20)
    (src / "data.csv").write_text("".join(f"{i},{i * i}\n" for i in range(200)))
    rep = codeseed.pack(src, tmp_path / "s.cseed", mode="seeded", model=tiny_model)
    codeseed.pack(src, tmp_path / "e.cseed", mode="exact", model=tiny_model)
    assert all(f.fidelity == "exact" for f in rep.files)
    with archive.Archive(tmp_path / "s.cseed") as arc:
        assert "fill" not in arc.header.settings
    assert (tmp_path / "s.cseed").read_bytes() == (tmp_path / "e.cseed").read_bytes()


def test_a_file_is_seeded_only_where_its_seed_codes_smaller(tiny_model, prose_fills, monkeypatch):
    """plan() keeps a seed only where the model's bits of the seed (hole markers and the context
    they break included) and the holes' hints save SEED_OVERHEAD_BITS over the file itself: the
    selector's estimate left that context out, and a seeded table.py coded larger than exact. With
    a model that finds each hole marker costly, the same file stays exact."""
    from tests.test_verify import CONSTANT
    files = [SourceFile("pricing.py", (CONSTANT / "pricing.py").read_bytes(), False)]
    plan = seeded.Planner(files, tiny_model, min_text_similarity=0.0).plan({0: 0.3}, strict=True)
    assert 0 in plan  # seeded: the premise
    planner = seeded.Planner(files, tiny_model)
    assert plan[0].saved_bits == pytest.approx(planner.measured_saving(0, plan[0].seed))
    assert plan[0].saved_bits >= seeded.SEED_OVERHEAD_BITS
    real = assess.byte_bits

    def costly_holes(model, text):
        bits = real(model, text).copy()
        bits[[k for k in range(len(text)) if text[k:k + 1] == seeded.HOLE]] += 10_000.0
        return bits

    monkeypatch.setattr(assess, "byte_bits", costly_holes)
    assert seeded.Planner(files, tiny_model, min_text_similarity=0.0).plan({0: 0.3}, strict=True) == {}


def test_a_seeded_archive_is_never_larger_than_the_exact_one(tiny_model, tmp_path, monkeypatch):
    """Seeds are chosen by the model's bits alone, but the archive mixes in n-gram and match models,
    which code a near-copy of a file almost free, and a seed's holes break that match. Pack builds
    both archives when it has seeds and keeps the smaller: here (a file and its near-copy, both
    seeded) the exact one, byte for byte what --exact writes."""
    from codeseed import packing
    from tests.test_verify import CONSTANT
    src = tmp_path / "src"
    shutil.copytree(CONSTANT, src)
    data = (src / "pricing.py").read_bytes()
    (src / "copy").mkdir()
    (src / "copy" / "pricing_copy.py").write_bytes(data.replace(b"0.0725", b"0.0726"))
    sizes = []
    real = packing._archive_size

    def spy(dst, files, header, coded, fid, dig):
        sizes.append((real(dst, files, header, coded, fid, dig), sum(f != "exact" for f in fid)))
        return sizes[-1][0]

    monkeypatch.setattr(packing, "_archive_size", spy)
    kw = {"budget": 0.3, "min_similarity": 0.0, "min_text_similarity": 0.0}
    rep = codeseed.pack(src, tmp_path / "s.cseed", mode="seeded", model=tiny_model, **kw)
    codeseed.pack(src, tmp_path / "e.cseed", mode="exact", model=tiny_model)
    exact_size = (tmp_path / "e.cseed").stat().st_size
    (seeded_size, n_seeded), (exact_built, n_none) = sorted(sizes, key=lambda x: -x[1])
    assert len(sizes) == 2 and n_seeded > 0 and n_none == 0  # the premise: pack had seeds, and weighed both archives
    assert exact_built == exact_size
    assert (tmp_path / "s.cseed").stat().st_size == min(seeded_size, exact_size)
    if seeded_size >= exact_size:  # the seeds did not pay: the exact archive, and the report says why
        assert (tmp_path / "s.cseed").read_bytes() == (tmp_path / "e.cseed").read_bytes()
        assert all(f.fidelity == "exact" for f in rep.files)
        assert any("no smaller" in f.note for f in rep.files)
