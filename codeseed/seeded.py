"""Seeded mode: keep a seed of each source file, let the FIM model regenerate the rest.

Per file: pieces with MP and bits (assess) -> knapsack under budget * exact bits (select) -> a seed:
the kept runs of text, and for each hole between them a length hint (its token count). The seed text
is the kept runs joined by NUL (never in a text file), coded like any file by the exact codecs;
the hints go in the entry's meta. Reconstruction fills the holes left to right with the FIM model,
greedy, each capped at its hint (so it never depends on the model stopping), one file at a time.
A hole that is exactly one free-text piece (a comment's or docstring's text) has a stop rule that
cuts its fill so that it cannot leave the comment or string: such holes always parse.

Pack runs the same reconstruction, so it knows the result: a hole whose fill the file's judge
refuses (fidelity.py: CPython for Python, tree-sitter for the rest) is kept instead
(Planner.repair), and so is free text whose regeneration is junk, a directive, wider than the lines
it replaces, or below the text-similarity floor (chrF). A file whose reconstruction still fails,
or falls below the similarity floor, is selected again with a larger budget (+BUDGET_STEP), up to
exact. The archive records, per file, the budget, the SHA-256 of the reconstruction, its AST
similarity, the judge that checked it and the chrF of its regenerated text.
"""
from __future__ import annotations

import hashlib
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from codeseed import assess, fidelity, select, spans
from codeseed.candidates import model_candidate
from codeseed.engine import pinned_threads
from codeseed.model import NO_REPEAT
from codeseed.walk import SourceFile

HOLE = b"\0"
BUDGET_STEP = 0.15
HOLE_BITS = 32.0  # a hole's cost, as the selector counts it: its marker in the seed (median 19.9 bits by
                  # codeseed-small-2, tinydb's table.py) and its length hint in the index (~12 bits)
MAX_REPAIR_PASSES = 6
FILL_ROWS = 32     # holes filled together in one batch (the engine gives each the same tokens alone)
SEED_OVERHEAD_BITS = 384.0  # a seeded entry's extra index meta (hints, budget, similarity, stops):
                            # ~40 bytes a file on sample-py


# Stop rules of free-text holes (a comment's text, a docstring's text): the fill is cut at the first
# stop string, so it cannot end the comment or the string early and any fill parses. An upper-case
# rule also tidies the text (tidy()); archives written before tidying have lower-case rules, and
# their fills are cut as they were.
STOPS = {".": (), "n": ("\n", "\r"), "d": ('"""',), "s": ("'''",), "q": ('"', "\n", "\r"), "a": ("'", "\n", "\r")}
RULES = set(STOPS) | {r.upper() for r in STOPS if r != "."}
QUOTE_RULES = {'"""': "d", "'''": "s", '"': "q", "'": "a"}  # longest first
NEWLINES = re.compile(r"\r\n|\r|\n")
# control characters (tab and line breaks aside) and Unicode line separators: tools disagree on
# whether they end a line, so regenerated text never holds them
CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\x85\u2028\u2029]")


def cut_fill(text: str, rule: str, prefix: bytes = b"") -> str:
    """A free-text hole's fill cut by its stop rule; `prefix` (the file before the hole) gives a
    tidy rule its indentation and line breaks."""
    tidy_it, rule = rule.isupper(), rule.lower()
    stops = STOPS[rule]
    for s in stops:
        at = text.find(s)
        if at >= 0:
            text = text[:at]
    if tidy_it:
        return tidy(text, rule, prefix)
    if rule in ("d", "s", "q", "a"):
        # inside a string: a backslash could escape the closing quote or start a bad escape, and a
        # quote at the end would run into the closing one
        text = text.replace("\\", "").rstrip(stops[0][0])
    return text


def tidy(text: str, rule: str, prefix: bytes) -> str:
    """Regenerated text, whitespace-clean: no control characters, no trailing whitespace, no
    backslash (a comment's would splice the next line in C; a string's could escape the quote), the
    file's line breaks, and a docstring's lines at the docstring's indentation (their relative
    indentation kept). A string's text never ends in its quote character."""
    if rule == "n":
        return CONTROL.sub("", text).strip().rstrip("\\ \t")
    lines = [CONTROL.sub("", line).rstrip() for line in NEWLINES.split(text.replace("\\", ""))]
    last_line = prefix[max(prefix.rfind(b"\n"), prefix.rfind(b"\r")) + 1:].decode("utf-8", "replace")
    indent = last_line[:len(last_line) - len(last_line.lstrip(" \t"))]
    at = prefix.rfind(b"\n")
    newline = "\r\n" if at > 0 and prefix[at - 1:at] == b"\r" else "\n"
    lines[0] = lines[0].lstrip()
    body = lines[1:] if "\t" in indent else [x.expandtabs(8) for x in lines[1:]]  # tabs only where the file has them
    margin = min((len(x) - len(x.lstrip()) for x in body if x), default=0)
    body = [indent + x[margin:] if x else "" for x in body]
    lines = lines[:1] + body
    lines[-1] = lines[-1].rstrip(STOPS[rule][0][0] + " \t")
    if len(lines) > 1 and not lines[-1]:
        lines[-1] = indent  # the closing quotes on a line of their own, at the docstring's indentation
    return newline.join(lines)


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
        if len(kept) != len(hints) + 1 or (stops and len(stops) != len(hints)) or set(stops) - RULES:
            raise ValueError("seed does not match its hole hints")
        return cls(kept, hints, stops)


@dataclass
class SeededFile:
    seed: Seed
    reconstruction: bytes
    budget: float
    similarity: float
    saved_bits: float = 0.0  # what seeding saves: Planner.measured_saving
    strict: bool = False     # only comments and docstrings may differ from the original
    judge: str = ""          # the parser that checked the reconstruction (fidelity.Judge.name)
    texts: list[tuple[str, str]] = field(default_factory=list)  # (original, regenerated) free text
    kept_text: dict[str, int] = field(default_factory=dict)     # free-text pieces repair kept, by why

    @property
    def text_chrf(self) -> float | None:
        """chrF (0-100) of the regenerated free text against the original; None when there is none."""
        return fidelity.chrf([r for _, r in self.texts], [o for o, _ in self.texts]) if self.texts else None

    def meta(self) -> dict:
        # the reconstruction's SHA-256 is the entry's sha256 field (what unpack writes and checks)
        meta = {"holes": self.seed.hints, "budget": round(self.budget, 2), "similarity": round(self.similarity, 3)}
        meta |= {"stops": self.seed.stops} if self.seed.stops else {}
        meta |= {"judge": self.judge} if self.judge else {}
        return meta | ({"chrf": round(self.text_chrf, 1)} if self.texts else {})


def ast_similarity(lang: spans.Language, a: bytes, b: bytes) -> float:
    """1 - normalized Levenshtein distance between preorder node-type sequences of the language's
    judge (CPython's AST for Python, tree-sitter's tree otherwise): a cheap lower bound on tree edit
    distance; comments and formatting do not count."""
    return fidelity.judge_for(lang).similarity(a, b)


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


def stop_rule(data: bytes, hole: list[assess.Piece]) -> str:
    """The stop rule of a hole: free text alone in its hole gets one (a tidy one), anything else none."""
    if len(hole) != 1 or hole[0].kind not in spans.FREE_TEXT:
        return "."
    if hole[0].kind == "comment_text":
        return "N"
    before = data[max(0, hole[0].start - 4):hole[0].start].rstrip(b"\"'")
    if before[-1:] in (b"f", b"F", b"b", b"B"):
        return "."  # f-strings and bytes: braces and non-ASCII would need more rules
    after = data[hole[0].end:hole[0].end + 3].decode("utf-8", "replace")
    for quote, rule in QUOTE_RULES.items():
        if after.startswith(quote):
            return rule.upper()
    return "."


def reconstruct(model, seeds: list[Seed], progress=None, no_repeat: int = NO_REPEAT) -> list[bytes]:
    """Fill every hole of every seed, each seed's left to right (a fill's prefix holds the fills
    before it): round j fills hole j of all seeds that have one, FILL_ROWS at a time. `no_repeat`
    is the archive's (header settings "fill"; archives from before it was recorded used plain
    greedy, 0). The exact engine gives each fill the same tokens in any batch and on any machine,
    so this equals filling one hole at a time (`fill_seed`), as pack did; the float engine of
    formats 1-2 (legacy.FloatModel) does not, and fills alone."""
    task = progress.add_task("reconstruct", total=sum(len(s.hints) for s in seeds)) if progress else None
    if not getattr(model, "batch_invariant", False):
        def one(prefix: bytes, suffix: bytes, hint: int, rule: str) -> bytes:
            if progress:
                progress.advance(task)
            return cut_fill(raw_fill(model, prefix, suffix, hint, no_repeat), rule, prefix).encode("utf-8")
        return [fill_seed(seed, one) for seed in seeds]
    parts = [[seed.kept[0]] for seed in seeds]
    for j in range(max((len(s.hints) for s in seeds), default=0)):
        todo = [k for k, s in enumerate(seeds) if j < len(s.hints)]
        prefixes = [b"".join(parts[k]) for k in todo]
        fills = raw_fills(model, [(p, seeds[k].kept[j + 1], seeds[k].hints[j]) for p, k in zip(prefixes, todo)],
                          no_repeat)
        for k, prefix, text in zip(todo, prefixes, fills):
            parts[k] += [cut_fill(text, seeds[k].rule(j), prefix).encode("utf-8"), seeds[k].kept[j + 1]]
        if progress:
            progress.advance(task, len(todo))
    return [b"".join(p) for p in parts]


def raw_fill(model, prefix: bytes, suffix: bytes, hint: int, no_repeat: int) -> str:
    """The model's fill of one hole, before its stop rule: alone in its batch, on one thread."""
    with pinned_threads(1):
        return model.fill([prefix.decode("utf-8")], [suffix.decode("utf-8")], hint, no_repeat=no_repeat)[0]


def raw_fills(model, holes: list[tuple[bytes, bytes, int]], no_repeat: int) -> list[str]:
    """raw_fill of each (prefix, suffix, hint), in order: FILL_ROWS holes a batch, holes of like
    hints together (a batch steps until its longest fill ends). The same fills as one at a time:
    the engine is batch-invariant."""
    out: list[str] = [""] * len(holes)
    order = sorted(range(len(holes)), key=lambda k: holes[k][2])
    with pinned_threads(1):
        for a in range(0, len(order), FILL_ROWS):
            part = order[a:a + FILL_ROWS]
            got = model.fill([holes[k][0].decode("utf-8") for k in part], [holes[k][1].decode("utf-8") for k in part],
                             [holes[k][2] for k in part], no_repeat=no_repeat)
            for k, text in zip(part, got):
                out[k] = text
    return out


def repeats_banned(ids: list[int], n: int) -> bool:
    """Whether model.fill's no-repeat rule (n-grams, n > 1) would ban one of `ids` if greedy
    decoding chose them in order: some n-gram of `ids` occurs twice (the rule of _ban_repeats)."""
    if n <= 1:
        return False
    seen: dict[tuple[int, ...], set[int]] = {}
    for k in range(n - 1, len(ids)):
        if k >= n:
            seen.setdefault(tuple(ids[k - n:k - 1]), set()).add(ids[k - 1])
        if ids[k] in seen.get(tuple(ids[k - n + 1:k]), ()):
            return True
    return False


def _fill_key(prefix: bytes, suffix: bytes, hint: int) -> bytes:
    return hashlib.sha256(b"%d\0%d\0" % (hint, len(prefix)) + prefix + suffix).digest()


def fill_seed(seed: Seed, fill) -> bytes:
    """The seed's holes filled left to right by fill(prefix, suffix, hint, rule) -> bytes."""
    parts = [seed.kept[0]]
    for j, hint in enumerate(seed.hints):
        parts += [fill(b"".join(parts), seed.kept[j + 1], hint, seed.rule(j)), seed.kept[j + 1]]
    return b"".join(parts)


def seedable(f: SourceFile) -> spans.Language | None:
    """The language of a file seeded mode can handle: a model candidate (candidates.py: not too
    large, not minified), known, UTF-8 text, no NUL, parses cleanly (tree-sitter, which proposes the
    spans) and its judge parses it (fidelity.unseedable_reason)."""
    return _seedable(f)[0]


def _seedable(f: SourceFile) -> tuple[spans.Language | None, str]:
    """seedable(), and why not for a file of a known language ("" when seedable or unknown)."""
    name = spans.language_for(f.path)
    if f.is_symlink or not name or not f.data:
        return None, ""
    if not model_candidate(f):
        return None, "too large or minified for the model"
    if HOLE in f.data:
        return None, "holds NUL bytes"
    try:
        f.data.decode("utf-8")
    except UnicodeDecodeError:
        return None, "not UTF-8"
    lang = spans.load(name)
    if spans.has_errors(lang, f.data):
        return None, "tree-sitter does not parse it cleanly"
    why = fidelity.unseedable_reason(lang, f.data)
    return (None, why) if why else (lang, "")


class Planner:
    """Seeds for a repository's files, re-plannable per file at a higher budget (verify.py does).

    `min_text_similarity` (0..1, chrF / 100): free text whose regeneration scores lower against the
    original stays in the seed. `exact_reasons` says, per file of a known language that is not
    seeded at all, why."""

    def __init__(self, files: list[SourceFile], model, min_similarity: float = 0.0, progress=None,
                 no_repeat: int = NO_REPEAT, min_text_similarity: float = 0.0, jobs: int = 1):
        self.files, self.model, self.min_similarity, self.progress = files, model, min_similarity, progress
        self.jobs = jobs  # files planned side by side in threads (the plans do not depend on it)
        self.min_text_similarity = min_text_similarity
        self.no_repeat = no_repeat  # the fill rule; pack records it in the archive header
        self.langs: dict[int, spans.Language] = {}
        self.exact_reasons: dict[int, str] = {}
        for i, f in enumerate(files):
            lang, why = _seedable(f)
            if lang:
                self.langs[i] = lang
            elif why:
                self.exact_reasons[i] = why
        self.judges = {i: fidelity.judge_for(lang) for i, lang in self.langs.items()}
        shared = assess.names_elsewhere({files[i].path: files[i].data for i in self.langs})
        task = progress.add_task("assess", total=len(self.langs)) if progress else None
        self.pieces = {}
        self._fills: dict[tuple | bytes, str] = {}   # by _key()
        self._repro: dict[tuple, bool] = {}          # by _check_key()
        self._views: dict[int, object] = {}
        self.texts: dict[int, list[tuple[str, str]]] = {}   # the last repair's regenerated free text
        self.kept_text: dict[int, dict[int, str]] = {}      # the last repair's kept free text: why

        def one(i: int) -> None:
            self.pieces[i] = assess.assess(model, self.langs[i], files[i].data, shared[files[i].path])
            if progress:
                progress.advance(task)

        self._each(list(self.langs), one)
        self.pieces = {i: self.pieces[i] for i in self.langs}

    def _each(self, items: list[int], fn) -> None:
        """fn(i) for each file index, in `jobs` threads (largest file first), on one intra-op thread
        each: the model's kernels release the GIL, and each file's work depends on that file alone."""
        items = sorted(items, key=lambda i: -len(self.files[i].data))
        with pinned_threads(1):
            if self.jobs > 1 and len(items) > 1:
                with ThreadPoolExecutor(self.jobs) as pool:
                    for f in [pool.submit(fn, i) for i in items]:
                        f.result()
            else:
                for i in items:
                    fn(i)

    def select(self, i: int, budget: float) -> list[bool]:
        ps = self.pieces[i]
        exact_bits = sum(p.bits for p in ps)
        prob = select.Problem([p.value for p in ps], [p.bits for p in ps], budget * exact_bits, HOLE_BITS,
                              fixed=tuple(bool(p.pin) for p in ps))
        return close_cheap_holes(list(select.greedy(prob).kept), [p.bits for p in ps])

    def view(self, i: int):
        """The original file's code view under its judge (computed once)."""
        if i not in self._views:
            self._views[i] = self.judges[i].code_view(self.files[i].data)
        return self._views[i]

    def repair(self, i: int, kept: list[bool], strict: bool = False) -> tuple[Seed, bytes]:
        """Keep every hole whose fill the file's judge refuses, and free text whose regeneration is
        not acceptable text (text_refusal), until the decoder's reconstruction passes.
        Strict: also keep every code hole (one without a stop rule) whose fill is not the original
        text, so that only comments and docstrings can differ: the code is the original, and the
        judge checks each free-text fill against the original's code view.

        One pass fills the holes left to right exactly as `reconstruct` does, and tests each fill
        against the original text after the hole: a refused fill is replaced by the original (its
        code pieces are kept; free-text pieces in it stay dropped, as holes of their own with stop
        rules in the next pass). Keeping a hole lengthens the suffix the hole before it was filled
        with, so passes repeat until one keeps nothing new; that pass computed exactly what unpack
        will compute. Fills are cached by their inputs, so a repeat pass is cheap. If
        MAX_REPAIR_PASSES do not settle it, every piece is kept (the file ends exact).
        After the call, texts[i] holds the (original, regenerated) free text of the result and
        kept_text[i] why each free-text piece repair kept stayed.
        """
        data, ps, judge = self.files[i].data, self.pieces[i], self.judges[i]
        why_kept: dict[int, str] = {}
        for _ in range(MAX_REPAIR_PASSES):
            seed = build_seed(self.model, data, ps, tuple(kept))
            holes = hole_ranges(kept)
            self._prefetch(i, seed, holes, strict)
            parts, changed, texts = [seed.kept[0]], False, []
            for j, hint in enumerate(seed.hints):
                prefix, suffix = b"".join(parts), seed.kept[j + 1]
                a, b = ps[holes[j][0]].start, ps[holes[j][1] - 1].end
                rule = seed.rule(j)
                code_hole = strict and rule == "."
                if code_hole and not self.reproduces(prefix, suffix, data[a:b]):
                    mid = b""  # it would not come back as it was: no need to generate it
                else:
                    mid = self.fill_hole(prefix, suffix, hint, rule)
                if code_hole:
                    refused = "code" if mid != data[a:b] else ""  # the original text: its view is unchanged
                elif rule != ".":
                    refused = self.text_refusal(i, holes[j][0], prefix, mid, strict)
                else:
                    refused = "" if judge.parses(prefix + mid + data[b:]) else "parse"
                if refused:
                    # keep the hole's code; its free text, if any, becomes holes of its own next pass
                    hole = range(*holes[j])
                    code = [k for k in hole if ps[k].kind not in spans.FREE_TEXT]
                    for k in code if code and len(code) < len(hole) else hole:
                        kept[k] = True
                        if ps[k].kind in spans.FREE_TEXT:
                            why_kept[k] = refused
                    mid, changed = data[a:b], True
                elif rule != ".":
                    texts.append((data[a:b].decode("utf-8"), mid.decode("utf-8")))
                parts += [mid, suffix]
            if not changed:
                self.texts[i], self.kept_text[i] = texts, why_kept
                return seed, b"".join(parts)
        kept[:] = [True] * len(kept)
        self.texts[i], self.kept_text[i] = [], why_kept
        return Seed([data], []), data

    def _prefetch(self, i: int, seed: Seed, holes: list[tuple[int, int]], strict: bool) -> None:
        """The model work of one repair pass, ahead of it and side by side: every code hole's check
        (reproduces_many, in batches, in threads) and every other hole's fill (in batches), each as
        the pass will ask for it if every hole before it comes back as the original (a code hole
        always does; free text does when refused). The pass then finds them in the caches; where a
        fill before it was accepted, its prompt differs and it computes its own (the same results
        either way)."""
        data, ps = self.files[i].data, self.pieces[i]
        checks, fills = [], {}
        for j, hint in enumerate(seed.hints):
            a, b = ps[holes[j][0]].start, ps[holes[j][1] - 1].end
            prefix, suffix = data[:a], seed.kept[j + 1]
            if strict and seed.rule(j) == ".":
                if self._check_key(prefix, suffix, data[a:b]) not in self._repro:
                    checks.append((prefix, suffix, data[a:b]))
            else:
                key = self._key(prefix, suffix, hint)
                if key not in self._fills:
                    fills[key] = (prefix, suffix, hint)
        if len(checks) + len(fills) < 2:
            return
        # the checks, FILL_ROWS side by side, in `jobs` threads, beside the fills in this one (one thread
        # for all checks left the other core idle once the fills were done)
        checks.sort(key=lambda c: len(c[2]))
        with ThreadPoolExecutor(max(1, self.jobs)) as pool:
            done = [pool.submit(self.reproduces_many, checks[a:a + FILL_ROWS]) for a in range(0, len(checks), FILL_ROWS)]
            texts = raw_fills(self.model, list(fills.values()), self.no_repeat) if fills else []
            for f in done:
                f.result()
        for key, text in zip(fills, texts):
            self._fills.setdefault(key, text)

    def text_refusal(self, i: int, k: int, prefix: bytes, mid: bytes, strict: bool) -> str:
        """Why `mid`, the regenerated text of free-text piece k after `prefix`, must not stand, or "",
        the first reason in this order (the cheap checks first: the judge parses the whole file):
        'directive' (a regenerated directive would instruct tools), a junk kind ('empty', 'quotes',
        'code') where the original is not (and 'empty' for no text at all), 'width' (a line wider
        than the widest original line it replaces), 'floor' (chrF below min_text_similarity),
        'parser' (the judge refuses the file: strict, its code view changed; otherwise it does not
        parse)."""
        lang, data, judge = self.langs[i], self.files[i].data, self.judges[i]
        a, b = self.pieces[i][k].start, self.pieces[i][k].end
        candidate = prefix + mid + data[b:]
        original, text = data[a:b].decode("utf-8"), mid.decode("utf-8")
        marker = lang.line_comment if self.pieces[i][k].kind == "comment_text" else None
        if fidelity.is_directive(lang, f"{marker} {text}" if marker else text):
            return "directive"  # a comment's patterns see its marker
        junk = fidelity.junk_kind(lang, text)
        if junk and (not text.strip() or junk != fidelity.junk_kind(lang, original)):
            return junk  # nothing at all is never text: a comment's marker would end in a space
        if max(fidelity.line_widths(candidate, len(prefix), len(prefix) + len(mid))) > \
                max(fidelity.line_widths(data, a, b)):
            return "width"
        if fidelity.text_similarity(text, original) < self.min_text_similarity:
            return "floor"
        if (judge.code_view(candidate) != self.view(i)) if strict else not judge.parses(candidate):
            return "parser"
        return ""

    def reconstruct(self, seed: Seed) -> bytes:
        """reconstruct() of one seed, through the fill cache (the same bytes, computed once)."""
        return fill_seed(seed, self.fill_hole)

    def _key(self, prefix: bytes, suffix: bytes, hint: int) -> tuple | bytes:
        """What a fill of `hint` tokens depends on: the model's FIM prompt (the end of the prefix and
        the start of the suffix that fit), so a later repair pass, which lengthens a suffix past
        what the prompt holds, finds the fill computed before."""
        m = self.model
        if not hasattr(m, "_fim_prompt"):
            return _fill_key(prefix, suffix, hint)
        return hint, tuple(m._fim_prompt(prefix.decode("utf-8"), suffix.decode("utf-8"), m._prompt_room(hint)))

    def fill_hole(self, prefix: bytes, suffix: bytes, hint: int, rule: str = ".") -> bytes:
        """raw_fill, as reconstruct() calls it, cached by its prompt; then the stop rule."""
        key = self._key(prefix, suffix, hint)
        if key not in self._fills:
            self._fills[key] = raw_fill(self.model, prefix, suffix, hint, self.no_repeat)
        return cut_fill(self._fills[key], rule, prefix).encode("utf-8")

    def _check_key(self, prefix: bytes, suffix: bytes, middle: bytes) -> tuple:
        ids = tuple(self.model.encode(middle.decode("utf-8")))
        return self._key(prefix, suffix, len(ids)), ids

    def reproduces(self, prefix: bytes, suffix: bytes, middle: bytes) -> bool:
        """model.reproduces of a code hole, cached by its prompt and middle. A hole that reproduces
        and that no rule of fill() can stop or steer (no stop token in it, no repeated
        no_repeat-gram) is filled with exactly its middle: that fill goes into the fill cache, so
        repair does not generate it again token by token."""
        return self.reproduces_many([(prefix, suffix, middle)])[0]

    def reproduces_many(self, cases: list[tuple[bytes, bytes, bytes]]) -> list[bool]:
        """reproduces() of each (prefix, suffix, middle): the ones not cached checked side by side
        (model.reproduces_prompts), the same answers as one at a time."""
        keys = [self._check_key(*c) for c in cases]
        todo = {k: c for k, c in zip(keys, cases) if k not in self._repro}
        if todo and all(isinstance(k[0], tuple) for k in todo):  # the keys hold the model's prompts
            got = self.model.reproduces_prompts([(list(k[0][1]), list(k[1])) for k in todo])
        else:
            got = [self.model.reproduces(p.decode("utf-8"), s.decode("utf-8"), list(k[1]))
                   for k, (p, s, _) in todo.items()]
        stops = getattr(self.model, "_fim_ids", (None, None, None, ()))[3]
        for key, ok in zip(todo, got):
            self._repro[key] = ok
            ids = list(key[1])
            if ok and not any(t in stops for t in ids) and not repeats_banned(ids, self.no_repeat):
                self._fills.setdefault(key[0], self.model.decode(ids))
        return [self._repro[k] for k in keys]

    def measured_saving(self, i: int, seed: Seed) -> float:
        """Bits seeding file i saves, measured: the model's bits of the file less its bits of the seed
        (hole markers, and what the holes take from their neighbours' context, included) less
        HOLE_BITS a hole (which counts the hint and, a second time, the marker: conservative). The selector's estimate (the dropped pieces' bits in the whole
        file's context) missed the context: tinydb's table.py, 42 text holes estimated to save ~1,000
        bits, coded 18 bytes larger seeded than exact (RESULTS.md)."""
        exact_bits = sum(p.bits for p in self.pieces[i])
        return exact_bits - float(assess.byte_bits(self.model, seed.text()).sum()) - HOLE_BITS * len(seed.hints)

    def plan(self, budgets: dict[int, float], strict: bool = False) -> dict[int, SeededFile]:
        """For each file, the first budget from budgets[i] up (in BUDGET_STEP) at which the repaired
        reconstruction passes its judge (strict: the original's code view; otherwise it parses) and
        reaches min_similarity; files that get there with at least one hole are returned, the others
        stay exact. Strict: see repair()."""
        budgets = {i: b for i, b in budgets.items() if i in self.langs}
        done: dict[int, SeededFile] = {}
        task = self.progress.add_task("reconstruct", total=len(budgets)) if self.progress else None

        def one(i: int) -> None:
            budget = budgets[i]
            data, judge = self.files[i].data, self.judges[i]
            while budget < 1.0:
                kept = self.select(i, budget)
                seed, recon = self.repair(i, kept, strict)
                saved = sum(p.bits for p, k in zip(self.pieces[i], kept) if not k) - HOLE_BITS * len(seed.hints)
                if saved < SEED_OVERHEAD_BITS:
                    break  # repair kept (nearly) everything: exact storage is as small and exact
                if (judge.code_view(recon) == self.view(i)) if strict else judge.parses(recon):
                    sim = judge.similarity(data, recon)
                    if sim >= self.min_similarity:
                        saved = self.measured_saving(i, seed)
                        if saved < SEED_OVERHEAD_BITS:
                            break  # the seed codes no smaller than the file: exact storage is as small
                        kept_text: dict[str, int] = {}
                        for why in self.kept_text[i].values():
                            kept_text[why] = kept_text.get(why, 0) + 1
                        done[i] = SeededFile(seed, recon, budget, sim, saved, strict, judge.name,
                                             self.texts[i], kept_text)
                        break
                budget += BUDGET_STEP
            if self.progress:
                self.progress.advance(task)

        self._each(list(budgets), one)
        return {i: done[i] for i in budgets if i in done}


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
