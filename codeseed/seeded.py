"""Seeded mode: keep a seed of each source file, let the FIM model regenerate the rest.

Per file: pieces with MP and bits (assess) -> knapsack under budget * exact bits (select) -> a seed:
the kept runs of text, and for each hole between them a length hint (its token count). The seed text
is the kept runs joined by NUL (never in a text file), coded like any file by the exact codecs;
the hints go in the entry's meta. Reconstruction fills the holes left to right with the FIM model,
greedy, each capped at its hint (so it never depends on the model stopping), one file at a time.
A hole that is exactly one free-text piece (a comment's or docstring's text) has a stop rule that
cuts its fill so that it cannot leave the comment or string: such holes always parse.

Pack runs the same reconstruction, so it knows the result: a hole whose fill breaks parsing is
kept instead (Planner.repair), and a file whose reconstruction still does not parse, or falls
below the similarity floor, is selected again with a larger budget (+BUDGET_STEP), up to exact. The
archive records, per file, the budget, the SHA-256 of the reconstruction and its AST similarity.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from rapidfuzz.distance import Levenshtein

from codeseed import assess, select, spans
from codeseed.candidates import model_candidate
from codeseed.engine import pinned_threads
from codeseed.model import NO_REPEAT
from codeseed.walk import SourceFile

HOLE = b"\0"
BUDGET_STEP = 0.15
HOLE_BITS = 12.0  # position + length hint, per hole, as the selector counts it
MAX_REPAIR_PASSES = 6
SEED_OVERHEAD_BITS = 384.0  # a seeded entry's extra index meta (hints, budget, similarity, stops):
                            # ~40 bytes a file on sample-py


# Stop rules of free-text holes (a comment's text, a docstring's text): the fill is cut at the first
# stop string, so it cannot end the comment or the string early and any fill parses.
STOPS = {".": (), "n": ("\n", "\r"), "d": ('"""',), "s": ("'''",), "q": ('"', "\n", "\r"), "a": ("'", "\n", "\r")}
QUOTE_RULES = {'"""': "d", "'''": "s", '"': "q", "'": "a"}  # longest first


def cut_fill(text: str, rule: str) -> str:
    stops = STOPS[rule]
    for s in stops:
        at = text.find(s)
        if at >= 0:
            text = text[:at]
    if rule in ("d", "s", "q", "a"):
        # inside a string: a backslash could escape the closing quote or start a bad escape, and a
        # quote at the end would run into the closing one
        text = text.replace("\\", "").rstrip(stops[0][0])
    return text


@dataclass
class Seed:
    kept: list[bytes]    # len(hints) + 1 runs
    hints: list[int]     # token count of each hole in the original
    stops: str = ""      # one STOPS rule per hole, or "" when no hole has one

    def text(self) -> bytes:
        return HOLE.join(self.kept)

    def rule(self, j: int) -> str:
        return self.stops[j] if self.stops else "."

    @classmethod
    def parse(cls, text: bytes, hints: list[int], stops: str = "") -> Seed:
        kept = text.split(HOLE)
        if len(kept) != len(hints) + 1 or (stops and len(stops) != len(hints)) or set(stops) - set(STOPS):
            raise ValueError("seed does not match its hole hints")
        return cls(kept, hints, stops)


@dataclass
class SeededFile:
    seed: Seed
    reconstruction: bytes
    budget: float
    similarity: float
    saved_bits: float = 0.0  # LM bits of the dropped text less the holes' cost: what seeding saves
    strict: bool = False     # only comments and docstrings may differ from the original

    def meta(self) -> dict:
        # the reconstruction's SHA-256 is the entry's sha256 field (what unpack writes and checks)
        meta = {"holes": self.seed.hints, "budget": round(self.budget, 2), "similarity": round(self.similarity, 3)}
        return meta | ({"stops": self.seed.stops} if self.seed.stops else {})


def node_types(lang: spans.Language, data: bytes) -> list[str]:
    """Preorder named node types, comments left out: the normalized tree the similarity compares."""
    out, stack = [], [spans.parse(lang, data).root_node]
    while stack:
        n = stack.pop()
        if n.is_named and "comment" not in n.type:
            out.append(n.type)
        stack.extend(reversed(n.children))
    return out


def ast_similarity(lang: spans.Language, a: bytes, b: bytes) -> float:
    """1 - normalized Levenshtein distance between preorder node-type sequences (a cheap lower bound
    on tree edit distance; comments and formatting do not count)."""
    return Levenshtein.normalized_similarity(node_types(lang, a), node_types(lang, b))


def build_seed(model, data: bytes, pieces: list[assess.Piece], kept: tuple[bool, ...]) -> Seed:
    runs, hints, stops, pos = [], [], [], 0
    for i, j in hole_ranges(list(kept)):
        a, b = pieces[i].start, pieces[j - 1].end
        runs.append(data[pos:a])
        hints.append(len(model.encode(data[a:b].decode("utf-8"))))
        stops.append(stop_rule(data, pieces[i:j]))
        pos = b
    runs.append(data[pos:])
    stops = "".join(stops)
    return Seed(runs, hints, stops if stops.strip(".") else "")


def empties_docstring(rule: str, original: bytes, fill: bytes) -> bool:
    """A docstring whose text comes back blank: `__doc__` turns falsy, which code can see (semver's
    suite asserts every public function has one), so such a fill is kept like a breaking one."""
    return rule in QUOTE_RULES.values() and bool(original.strip()) and not fill.strip()


def stop_rule(data: bytes, hole: list[assess.Piece]) -> str:
    """The stop rule of a hole: free text alone in its hole gets one, anything else none."""
    if len(hole) != 1 or hole[0].kind not in spans.FREE_TEXT:
        return "."
    if hole[0].kind == "comment_text":
        return "n"
    before = data[max(0, hole[0].start - 4):hole[0].start].rstrip(b"\"'")
    if before[-1:] in (b"f", b"F", b"b", b"B"):
        return "."  # f-strings and bytes: braces and non-ASCII would need more rules
    after = data[hole[0].end:hole[0].end + 3].decode("utf-8", "replace")
    for quote, rule in QUOTE_RULES.items():
        if after.startswith(quote):
            return rule
    return "."


def reconstruct(model, seeds: list[Seed], progress=None, no_repeat: int = NO_REPEAT) -> list[bytes]:
    """Fill every hole, left to right, each file on its own and on one thread. `no_repeat` is the
    archive's (header settings "fill"; archives from before it was recorded used plain greedy, 0).

    Batching files together was measured to change fills (left padding shifts the numerics, and a
    greedy argmax flips), and so does the thread count; pack and unpack batch differently, so each
    file is filled alone, with the thread count pinned, and both sides compute the same.
    """
    task = progress.add_task("reconstruct", total=sum(len(s.hints) for s in seeds)) if progress else None

    def fill(prefix: bytes, suffix: bytes, hint: int, rule: str) -> bytes:
        if progress:
            progress.advance(task)
        return cut_fill(raw_fill(model, prefix, suffix, hint, no_repeat), rule).encode("utf-8")

    return [fill_seed(seed, fill) for seed in seeds]


def raw_fill(model, prefix: bytes, suffix: bytes, hint: int, no_repeat: int) -> str:
    """The model's fill of one hole, before its stop rule: alone in its batch, on one thread."""
    with pinned_threads(1):
        return model.fill([prefix.decode("utf-8")], [suffix.decode("utf-8")], hint, no_repeat=no_repeat)[0]


def fill_seed(seed: Seed, fill) -> bytes:
    """The seed's holes filled left to right by fill(prefix, suffix, hint, rule) -> bytes."""
    parts = [seed.kept[0]]
    for j, hint in enumerate(seed.hints):
        parts += [fill(b"".join(parts), seed.kept[j + 1], hint, seed.rule(j)), seed.kept[j + 1]]
    return b"".join(parts)


def seedable(f: SourceFile) -> spans.Language | None:
    """The language of a file seeded mode can handle: a model candidate (candidates.py: not too
    large, not minified), known, UTF-8 text, no NUL, parses cleanly."""
    name = spans.language_for(f.path)
    if not model_candidate(f) or not name or HOLE in f.data:
        return None
    try:
        f.data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    lang = spans.load(name)
    return None if spans.has_errors(lang, f.data) else lang


class Planner:
    """Seeds for a repository's files, re-plannable per file at a higher budget (verify.py does)."""

    def __init__(self, files: list[SourceFile], model, min_similarity: float = 0.0, progress=None,
                 no_repeat: int = NO_REPEAT):
        self.files, self.model, self.min_similarity, self.progress = files, model, min_similarity, progress
        self.no_repeat = no_repeat  # the fill rule; pack records it in the archive header
        self.langs = {i: lang for i, f in enumerate(files) if (lang := seedable(f))}
        shared = assess.names_elsewhere({files[i].path: files[i].data for i in self.langs})
        task = progress.add_task("assess", total=len(self.langs)) if progress else None
        self.pieces = {}
        self._fills: dict[bytes, bytes] = {}
        for i in self.langs:
            self.pieces[i] = assess.assess(model, self.langs[i], files[i].data, shared[files[i].path])
            if progress:
                progress.advance(task)

    def select(self, i: int, budget: float) -> list[bool]:
        ps = self.pieces[i]
        exact_bits = sum(p.bits for p in ps)
        prob = select.Problem([p.value for p in ps], [p.bits for p in ps], budget * exact_bits, HOLE_BITS)
        return close_cheap_holes(list(select.greedy(prob).kept), [p.bits for p in ps])

    def repair(self, i: int, kept: list[bool], strict: bool = False) -> tuple[Seed, bytes]:
        """Keep every hole whose fill breaks parsing (or blanks a docstring), until the decoder's
        reconstruction parses.
        Strict: also keep every code hole (one without a stop rule) whose fill is not the original
        text, so that only comments and docstrings can differ: the code is the original.

        One pass fills the holes left to right exactly as `reconstruct` does, and tests each fill
        against the original text after the hole: a fill that brings parse errors is replaced by the
        original (its code pieces are kept; free-text pieces in it stay dropped, as holes of their
        own with stop rules in the next pass). Keeping a hole lengthens the suffix the hole before
        it was filled with, so passes repeat until one keeps nothing new; that pass computed exactly
        what unpack will compute. Fills are cached by their inputs, so a repeat pass is cheap. If
        MAX_REPAIR_PASSES do not settle it, strict keeps all code, and the caller checks the result.
        """
        lang, data, ps = self.langs[i], self.files[i].data, self.pieces[i]
        for _ in range(MAX_REPAIR_PASSES):
            seed = build_seed(self.model, data, ps, tuple(kept))
            holes = hole_ranges(kept)
            parts, changed = [seed.kept[0]], False
            for j, hint in enumerate(seed.hints):
                prefix, suffix = b"".join(parts), seed.kept[j + 1]
                a, b = ps[holes[j][0]].start, ps[holes[j][1] - 1].end
                code_hole = strict and seed.rule(j) == "."
                if code_hole and not self.model.reproduces(prefix.decode("utf-8"), suffix.decode("utf-8"),
                                                            self.model.encode(data[a:b].decode("utf-8"))):
                    mid = b""  # it would not come back as it was: no need to generate it
                else:
                    mid = self.fill_hole(prefix, suffix, hint, seed.rule(j))
                if (code_hole and mid != data[a:b]) or empties_docstring(seed.rule(j), data[a:b], mid) \
                        or spans.has_errors(lang, prefix + mid + data[b:]):
                    # keep the hole's code; its free text, if any, becomes holes of its own next pass
                    hole = range(*holes[j])
                    code = [k for k in hole if ps[k].kind not in spans.FREE_TEXT]
                    for k in code if code and len(code) < len(hole) else hole:
                        kept[k] = True
                    mid, changed = data[a:b], True
                parts += [mid, suffix]
            if not changed:
                return seed, b"".join(parts)
        if strict:
            kept[:] = [k or p.kind not in spans.FREE_TEXT for k, p in zip(kept, ps)]
        seed = build_seed(self.model, data, ps, tuple(kept))
        return seed, self.reconstruct(seed)

    def reconstruct(self, seed: Seed) -> bytes:
        """reconstruct() of one seed, through the fill cache (the same bytes, computed once)."""
        return fill_seed(seed, self.fill_hole)

    def fill_hole(self, prefix: bytes, suffix: bytes, hint: int, rule: str = ".") -> bytes:
        """raw_fill, as reconstruct() calls it, cached by its inputs; then the stop rule."""
        key = hashlib.sha256(b"%d\0%d\0" % (hint, len(prefix)) + prefix + suffix).digest()
        if key not in self._fills:
            self._fills[key] = raw_fill(self.model, prefix, suffix, hint, self.no_repeat)
        return cut_fill(self._fills[key], rule).encode("utf-8")

    def plan(self, budgets: dict[int, float], strict: bool = False) -> dict[int, SeededFile]:
        """For each file, the first budget from budgets[i] up (in BUDGET_STEP) at which the repaired
        reconstruction parses cleanly and reaches min_similarity; files that get there with at least
        one hole are returned, the others stay exact. Strict: see repair()."""
        budgets = {i: b for i, b in budgets.items() if i in self.langs}
        done: dict[int, SeededFile] = {}
        task = self.progress.add_task("reconstruct", total=len(budgets)) if self.progress else None
        for i, budget in budgets.items():
            lang, data = self.langs[i], self.files[i].data
            while budget < 1.0:
                kept = self.select(i, budget)
                seed, recon = self.repair(i, kept, strict)
                saved = sum(p.bits for p, k in zip(self.pieces[i], kept) if not k) - HOLE_BITS * len(seed.hints)
                if saved < SEED_OVERHEAD_BITS:
                    break  # repair kept (nearly) everything: exact storage is as small and exact
                if not spans.has_errors(lang, recon):
                    sim = ast_similarity(lang, data, recon)
                    if sim >= self.min_similarity:
                        done[i] = SeededFile(seed, recon, budget, sim, saved, strict)
                        break
                budget += BUDGET_STEP
            if self.progress:
                self.progress.advance(task)
        return done


def close_cheap_holes(kept: list[bool], bits: list[float]) -> list[bool]:
    """Keep the text of every hole that costs more (HOLE_BITS) than its text would: the seed gets
    smaller and the model has less to guess. The selector leaves such holes when a tiny piece (a
    line break, a colon) between two kept pieces adds little MP: its value model counts a kept
    neighbour as making a piece worth less, so closing the hole looks like a loss of value to it."""
    kept = list(kept)
    for a, b in hole_ranges(kept):
        if sum(bits[a:b]) < HOLE_BITS:
            kept[a:b] = [True] * (b - a)
    return kept


def hole_ranges(kept: list[bool]) -> list[tuple[int, int]]:
    """[start, end) piece indices of each run of dropped pieces, in order (one per seed hole)."""
    out, start = [], None
    for k, flag in enumerate(kept):
        if not flag and start is None:
            start = k
        elif flag and start is not None:
            out.append((start, k))
            start = None
    if start is not None:
        out.append((start, len(kept)))
    return out

