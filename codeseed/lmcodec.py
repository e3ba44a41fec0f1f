"""Exact coding with a language model, mixed with adaptive models, range-coded with constriction.

Per token the probability of the next token is built in three stages:
1. the LM (Stepper: one KV-cached step per token, identical in encoder and decoder);
2. an n-gram *cache* over this file and the archive's earlier files, with the LM as its prior:
   p(x) = (c(ctx, x) + a * p_lm(x)) / (c(ctx) + a), for contexts of 2 and then 3 tokens.
   A repository repeats its names and idioms; the LM's 256-token window cannot see that far;
3. a match model (as in lpaq): the token that followed the longest earlier occurrence of the last
   few tokens gets a probability from a small online logistic mixer (inputs: the current
   probability of that token and the observed hit rate at this match length).
The result is quantized to integer frequencies (2^24 scale) and range-coded.

Each file's tokens are cut into chunks of at most `chunk_tokens`; chunks are the rows of batches
that advance in lockstep (`batch_rows` at a time, in archive order), and each batch's rows see
the archive state built from all earlier batches. Chunking keeps a long file from holding a whole
batch back (the rows of a batch wait for the longest; schedule's 66 KB test file set the time of
its batch). A chunk starts from BOS with no row-local statistics, which costs size (measured on
tinydb's .py files: 2.9% at 4096 tokens, 7.7% at 1024), so only long files are cut. The decoder
derives the same chunks and batches from the token counts (entry meta {"n": ...}) of the entries
in the LM stream, in archive order. A chunk whose file ended up stored by a classical codec is fed
its known tokens.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, field

import constriction
import numpy as np
import torch

from codeseed.model import CodeModel, Stepper

FREQ_SCALE = float(1 << 24)
MATCH_MIN = 5          # tokens of context that start a match
MATCH_BUCKETS = 16


@dataclass(frozen=True)
class MixSettings:
    """Numeric settings of the codec; stored in the archive header and required to decode."""
    window: int = 256
    batch_rows: int = 16
    chunk_tokens: int = 8192  # tinydb .py, bits/byte: whole files 0.938, chunks of 4096 0.966, of 1024 1.011
    ngram_orders: tuple[int, ...] = (2, 3)
    ngram_alpha: tuple[float, ...] = (6.0, 3.0)
    match: bool = True
    mixer_lr: float = 0.02
    threads: int = 1

    def to_dict(self) -> dict:
        return {"window": self.window, "batch_rows": self.batch_rows, "chunk_tokens": self.chunk_tokens,
                "ngram_orders": list(self.ngram_orders),
                "ngram_alpha": list(self.ngram_alpha), "match": self.match, "mixer_lr": self.mixer_lr,
                "threads": self.threads}

    @classmethod
    def from_dict(cls, d: dict) -> MixSettings:
        return cls(d["window"], d["batch_rows"], d["chunk_tokens"], tuple(d["ngram_orders"]),
                   tuple(d["ngram_alpha"]), d["match"], d["mixer_lr"], d["threads"])


def _stretch(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def _squash(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(min(x, 30.0), -30.0)))


@dataclass
class Row:
    """One file being coded: its tokens (known or being decoded) and its local adaptive state."""
    n: int
    known: list[int] | None = None
    encoder: object | None = None
    decoder: object | None = None
    tokens: list[int] = field(default_factory=list)
    counts: list[dict] = field(default_factory=list)
    table: dict = field(default_factory=dict)     # last MATCH_MIN tokens -> position after them
    match_src: list[int] | None = None
    match_pos: int = 0
    match_len: int = 0
    bits: float = 0.0


class ArchiveState:
    """What the codec has learned from earlier batches, plus the online mixer."""

    def __init__(self, settings: MixSettings):
        self.s = settings
        self.counts: list[dict] = [dict() for _ in settings.ngram_orders]
        self.history: list[int] = []
        self.table: dict = {}
        self.weights = [[0.3, 1.0, 0.0] for _ in range(MATCH_BUCKETS)]
        self.hits = [[0, 0] for _ in range(MATCH_BUCKETS)]

    # ------------------------------------------------------------ per-token prediction

    def predict(self, row: Row, lp: np.ndarray) -> tuple[np.ndarray, tuple | None]:
        p = np.exp(lp)
        p /= p.sum()
        toks = row.tokens
        for k, (order, alpha) in enumerate(zip(self.s.ngram_orders, self.s.ngram_alpha)):
            if len(toks) < order:
                continue
            ctx = tuple(toks[-order:])
            g, loc = self.counts[k].get(ctx), row.counts[k].get(ctx)
            if not g and not loc:
                continue
            merged = dict(g) if g else {}
            if loc:
                for t, c in loc.items():
                    merged[t] = merged.get(t, 0) + c
            n = sum(merged.values())
            p *= alpha / (n + alpha)
            idx = np.fromiter(merged.keys(), dtype=np.int64, count=len(merged))
            val = np.fromiter(merged.values(), dtype=np.float64, count=len(merged))
            p[idx] += val / (n + alpha)
        mix = None
        if self.s.match and row.match_len > 0:
            pred = row.match_src[row.match_pos]
            b = min(row.match_len, MATCH_BUCKETS - 1)
            pm = float(p[pred])
            h, t = self.hits[b]
            x = (_stretch(pm), _stretch((h + 0.5) / (t + 1.0)), 1.0)
            w = self.weights[b]
            q = _squash(w[0] * x[0] + w[1] * x[1] + w[2] * x[2])
            q = min(max(q, 1e-5), 1 - 1e-5)
            if pm < 1.0:
                p *= (1.0 - q) / (1.0 - pm)
            p[pred] = q
            mix = (pred, b, x, q)
        return p, mix

    def update(self, row: Row, token: int, mix: tuple | None) -> None:
        if mix is not None:
            pred, b, x, q = mix
            hit = 1.0 if token == pred else 0.0
            err = (hit - q) * self.s.mixer_lr
            w = self.weights[b]
            for i in range(3):
                w[i] += err * x[i]
            self.hits[b][0] += int(hit)
            self.hits[b][1] += 1
        toks = row.tokens
        for k, order in enumerate(self.s.ngram_orders):
            if len(toks) >= order:
                d = row.counts[k].setdefault(tuple(toks[-order:]), {})
                d[token] = d.get(token, 0) + 1
        # match model: extend the current match, or look for a new one (this file first, then the archive)
        if row.match_len > 0 and row.match_src[row.match_pos] == token:
            row.match_len += 1
            row.match_pos += 1
            if row.match_pos >= len(row.match_src):
                row.match_len = 0
        else:
            row.match_len = 0
        toks.append(token)
        if len(toks) >= MATCH_MIN:
            key = tuple(toks[-MATCH_MIN:])
            if row.match_len == 0:
                if key in row.table:
                    row.match_src, row.match_pos, row.match_len = toks, row.table[key], MATCH_MIN
                elif key in self.table:
                    row.match_src, row.match_pos, row.match_len = self.history, self.table[key], MATCH_MIN
            row.table[key] = len(toks)

    def absorb(self, files: list[list[int]]) -> None:
        """Learn from a finished batch, in row order."""
        for toks in files:
            for k, order in enumerate(self.s.ngram_orders):
                counts = self.counts[k]
                for i in range(order, len(toks)):
                    d = counts.setdefault(tuple(toks[i - order:i]), {})
                    d[toks[i]] = d.get(toks[i], 0) + 1
            base = len(self.history)
            self.history.extend(toks)
            for i in range(MATCH_MIN, len(toks)):
                self.table[tuple(toks[i - MATCH_MIN:i])] = base + i


def quantize(p: np.ndarray) -> np.ndarray:
    """Deterministic integer frequencies (every token >= 1), as the float32 array constriction takes."""
    f = np.floor(p * FREQ_SCALE) + 1.0
    return (f / f.sum()).astype(np.float32)


_FAMILY = constriction.stream.model.Categorical(perfect=False)


@contextmanager
def pinned_threads(n: int):
    """Cached steps give different bits with 1 and 2 threads (measured): code with a fixed count."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_batch(model: CodeModel, state: ArchiveState, rows: list[Row]) -> None:
    """Advance every row to its end: encode known tokens, decode unknown ones, or just replay them."""
    with pinned_threads(state.s.threads):
        _run_batch(model, state, rows)


def _run_batch(model: CodeModel, state: ArchiveState, rows: list[Row]) -> None:
    for row in rows:
        row.counts = [dict() for _ in state.s.ngram_orders]
    stepper = Stepper(model, len(rows), state.s.window)
    longest = max(r.n for r in rows)
    one = np.zeros(1, dtype=np.int32)
    for step in range(longest):
        lp = stepper.logprobs()
        pushed = []
        for i, row in enumerate(rows):
            if step >= row.n:
                pushed.append(model.bos)
                continue
            p, mix = state.predict(row, lp[i])
            if row.known is not None:
                token = row.known[step]
                if row.encoder is not None:
                    f = quantize(p)
                    one[0] = token
                    row.encoder.encode(one, _FAMILY, f[None, :])
                    row.bits -= math.log2(float(f[token]))
            else:
                token = int(row.decoder.decode(_FAMILY, quantize(p)[None, :])[0])
            state.update(row, token, mix)
            pushed.append(token)
        if step + 1 < longest:
            stepper.push(pushed)


def plan_chunks(ntokens: list[int], chunk_tokens: int) -> list[tuple[int, int, int]]:
    """(file, start, end) token ranges of every chunk, files in order."""
    return [(f, a, min(a + chunk_tokens, n)) for f, n in enumerate(ntokens) for a in range(0, n, chunk_tokens)]


def plan_batches(nrows: int, batch_rows: int) -> list[list[int]]:
    """Rows (chunks) in archive order, cut into consecutive batches of at most `batch_rows`."""
    return [list(range(i, min(i + batch_rows, nrows))) for i in range(0, nrows, batch_rows)]


def join_chunks(payloads: list[bytes]) -> bytes:
    """One file's chunk streams: the word counts of all but the last (u32 each), then the streams."""
    head = b"".join(np.uint32(len(p) // 4).tobytes() for p in payloads[:-1])
    return head + b"".join(payloads)


def split_chunks(payload: bytes, count: int) -> list[bytes]:
    head = 4 * (count - 1)
    if len(payload) < head or len(payload) % 4:
        raise ValueError("bad chunk table")
    sizes = [4 * int(w) for w in np.frombuffer(payload[:head], dtype="<u4")]
    if sum(sizes) > len(payload) - head:
        raise ValueError("bad chunk table")
    out, pos = [], head
    for size in sizes:
        out.append(payload[pos:pos + size])
        pos += size
    return out + [payload[pos:]]


def encode_batch(model: CodeModel, state: ArchiveState, token_lists: list[list[int]]) -> list[bytes]:
    rows = [Row(len(t), known=t, encoder=constriction.stream.queue.RangeEncoder()) for t in token_lists]
    run_batch(model, state, rows)
    state.absorb(token_lists)
    return [r.encoder.get_compressed().astype("<u4").tobytes() for r in rows]


def decode_batch(model: CodeModel, state: ArchiveState, ns: list[int],
                 payloads: list[bytes | None], known: list[list[int] | None]) -> list[list[int]]:
    """Rows with a payload are decoded; the others (stored by another codec) replay their known tokens."""
    rows = []
    for n, payload, k in zip(ns, payloads, known):
        if payload is not None:
            words = np.frombuffer(payload, dtype="<u4").astype(np.uint32)
            rows.append(Row(n, decoder=constriction.stream.queue.RangeDecoder(words)))
        else:
            rows.append(Row(n, known=k))
    run_batch(model, state, rows)
    out = [r.tokens for r in rows]
    state.absorb(out)
    return out
