"""Seeded mode: keep a seed of each source file, let the FIM model regenerate the rest.

Per file: pieces with MP and bits (assess) -> knapsack under budget * exact bits (select) -> a seed:
the kept runs of text, and for each hole between them a length hint (its token count). The seed text
is the kept runs joined by NUL (never in a text file), coded like any file by the exact codecs;
the hints go in the entry's meta. Reconstruction fills the holes left to right with the FIM model,
greedy, each capped at its hint (so it never depends on the model stopping), one file at a time.

Pack runs the same reconstruction, so it knows the result: a file whose reconstruction does not
parse cleanly is selected again with a larger budget (+BUDGET_STEP), up to exact storage. The
archive records, per file, the budget, the SHA-256 of the reconstruction and its AST similarity.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from rapidfuzz.distance import Levenshtein

from codeseed import assess, select, spans
from codeseed.lmcodec import pinned_threads
from codeseed.walk import SourceFile

HOLE = b"\0"
BUDGET_STEP = 0.15
HOLE_BITS = 12.0  # position + length hint, per hole, as the selector counts it


@dataclass
class Seed:
    kept: list[bytes]    # len(hints) + 1 runs
    hints: list[int]     # token count of each hole in the original

    def text(self) -> bytes:
        return HOLE.join(self.kept)

    @classmethod
    def parse(cls, text: bytes, hints: list[int]) -> Seed:
        kept = text.split(HOLE)
        if len(kept) != len(hints) + 1:
            raise ValueError("seed does not match its hole hints")
        return cls(kept, hints)


@dataclass
class SeededFile:
    seed: Seed
    reconstruction: bytes
    budget: float
    similarity: float

    def meta(self) -> dict:
        return {"holes": self.seed.hints, "budget": round(self.budget, 3),
                "recon": hashlib.sha256(self.reconstruction).hexdigest(), "similarity": round(self.similarity, 4)}


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
    runs, hints, hole = [b""], [], None
    for p, k in zip(pieces, kept):
        if k:
            if hole is not None:
                hints.append(len(model.encode(data[hole:p.start].decode("utf-8"))))
                runs.append(b"")
                hole = None
            runs[-1] += data[p.start:p.end]
        elif hole is None:
            hole = p.start
    if hole is not None:
        hints.append(len(model.encode(data[hole:].decode("utf-8"))))
        runs.append(b"")
    return Seed(runs, hints)


def reconstruct(model, seeds: list[Seed], progress=None) -> list[bytes]:
    """Fill every hole, left to right, each file on its own and on one thread.

    Batching files together was measured to change fills (left padding shifts the numerics, and a
    greedy argmax flips), and so does the thread count; pack and unpack batch differently, so each
    file is filled alone, with the thread count pinned, and both sides compute the same.
    """
    task = progress.add_task("reconstruct", total=sum(len(s.hints) for s in seeds)) if progress else None
    out = []
    with pinned_threads(1):
        for seed in seeds:
            parts = [seed.kept[0]]
            for j, hint in enumerate(seed.hints):
                mid = model.fill([b"".join(parts).decode("utf-8")], [seed.kept[j + 1].decode("utf-8")], hint)[0]
                parts += [mid.encode("utf-8"), seed.kept[j + 1]]
                if progress:
                    progress.advance(task)
            out.append(b"".join(parts))
    return out


def seedable(f: SourceFile) -> spans.Language | None:
    """The language of a file seeded mode can handle: known, UTF-8 text, no NUL, parses cleanly."""
    name = spans.language_for(f.path)
    if f.is_symlink or not name or not f.data or HOLE in f.data:
        return None
    try:
        f.data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    lang = spans.load(name)
    return None if spans.has_errors(lang, f.data) else lang


class Planner:
    """Seeds for a repository's files, re-plannable per file at a higher budget (verify.py does)."""

    def __init__(self, files: list[SourceFile], model, min_similarity: float = 0.0, progress=None):
        self.files, self.model, self.min_similarity, self.progress = files, model, min_similarity, progress
        self.langs = {i: lang for i, f in enumerate(files) if (lang := seedable(f))}
        shared = assess.names_elsewhere({files[i].path: files[i].data for i in self.langs})
        task = progress.add_task("assess", total=len(self.langs)) if progress else None
        self.pieces = {}
        for i in self.langs:
            self.pieces[i] = assess.assess(model, self.langs[i], files[i].data, shared[files[i].path])
            if progress:
                progress.advance(task)

    def seed(self, i: int, budget: float) -> Seed:
        ps = self.pieces[i]
        exact_bits = sum(p.bits for p in ps)
        prob = select.Problem([p.value for p in ps], [p.bits for p in ps], budget * exact_bits, HOLE_BITS)
        return build_seed(self.model, self.files[i].data, ps, select.greedy(prob).kept)

    def plan(self, budgets: dict[int, float]) -> dict[int, SeededFile]:
        """For each file, the first budget from budgets[i] up (in BUDGET_STEP) whose reconstruction
        parses cleanly and reaches min_similarity; files that get there below 1.0 are returned."""
        budgets = {i: b for i, b in budgets.items() if i in self.langs}
        done: dict[int, SeededFile] = {}
        pending = [i for i, b in budgets.items() if b < 1.0]
        while pending:
            seeds = {i: self.seed(i, budgets[i]) for i in pending}
            recon = dict(zip(pending, reconstruct(self.model, [seeds[i] for i in pending], self.progress)))
            retry = []
            for i in pending:
                lang, data = self.langs[i], self.files[i].data
                if not seeds[i].hints:
                    continue  # nothing dropped: exact mode stores it as well
                ok = not spans.has_errors(lang, recon[i])
                sim = ast_similarity(lang, data, recon[i]) if ok else 0.0
                if ok and sim >= self.min_similarity:
                    done[i] = SeededFile(seeds[i], recon[i], budgets[i], sim)
                    continue
                budgets[i] += BUDGET_STEP
                if budgets[i] < 1.0:
                    retry.append(i)
            pending = retry
        return done


def plan(files: list[SourceFile], model, budget: float, min_similarity: float = 0.0,
         progress=None) -> dict[int, SeededFile]:
    """Seeds for the files that reconstruct to clean parses within budget; others stay exact."""
    planner = Planner(files, model, min_similarity, progress)
    return planner.plan({i: budget for i in planner.langs})
