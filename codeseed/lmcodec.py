"""The LM stream: files coded by the exact engine (engine.py) and the entropy model (cm.py), in lockstep rows.

Layout of a stream. Each file's tokens are cut into chunks of at most `chunk` tokens; a chunk is a
*segment*: the model sees it from its BOS token on, with a sliding window of `window` positions, and
never across segments. Segments are dealt to `rows` rows, longest first, each to the row with the
fewest tokens so far (ties: the lowest row). All rows advance one token per step; at every step
each row, in row order, predicts its next token, codes it and updates the shared adaptive state,
so the one range-coded stream holds the symbols step by step, row by row. Rows are independent for
the model, so the encoder scores many steps of every row in one teacher-forced pass, while the
decoder advances all rows one step per model call. The arithmetic is exact (engine.py), so both get
the same frequencies whatever the batch shape, thread count or machine.

Files whose tokens the decoder learns another way (stored by a classical codec because that was
smaller) keep their place in the schedule: their tokens are fed and learnt from, not coded.

The encoder runs in two passes over cheap data: `Scorer.score` runs the model and the entropy model
once and records each token's symbol (cum, freq, total) and so each file's exact coded size; the
caller then picks which files to code, and `Scorer.payload` range-codes only their symbols.
"""
from __future__ import annotations

import heapq
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch

from codeseed import cm
from codeseed.cm import MixSettings
from codeseed.engine import ExactLM, pinned_threads

# decoding: a thread per 16 rows (benchmarks/decode_step.py: 40 rows 8.9 ms a step on 1 thread, 7.1 on 2)
STEPWISE_ROWS_PER_THREAD = 16
DECODE_FLOOR_TOKENS = 256   # below this, a file is not worth cutting
# what a stored stream may ask of the decoder: its KV cache holds rows x window positions (64 x 256:
# 94 MB for the bundled model; 4,096 rows took 6.8 GB), and its schedule has one segment a chunk
# (chunks of 1 token held unpack for minutes). choose_settings writes at most 64 rows of 1,024 tokens.
MAX_ROWS, MIN_CHUNK = 64, 32


@dataclass(frozen=True)
class StreamSettings:
    """The settings a stream is decoded with (stored in the archive)."""
    window: int = 256           # attention window, positions (the model's training context)
    rows: int = 64              # lockstep rows
    chunk: int = 8192           # longest segment, tokens
    mix: MixSettings = field(default_factory=MixSettings)

    def to_dict(self) -> dict:
        return {"window": self.window, "rows": self.rows, "chunk": self.chunk, "mix": self.mix.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> StreamSettings:
        """TypeError or ValueError on anything but integers in range (exact.decode also checks the
        window against the model's: a window is a KV cache of that many positions a row)."""
        if not all(type(d[k]) is int for k in ("window", "rows", "chunk")):
            raise TypeError("stream settings are not integers")
        s = cls(d["window"], d["rows"], d["chunk"], MixSettings.from_dict(d["mix"]))
        if not (2 <= s.window <= 1 << 16 and 1 <= s.rows <= MAX_ROWS and MIN_CHUNK <= s.chunk <= 1 << 24):
            raise ValueError("stream settings out of range")
        return s


def choose_settings(ntokens: list[int], window: int, max_rows: int = MAX_ROWS, min_chunk: int = 1024,
                    max_chunk: int = 8192, mix: MixSettings | None = None) -> StreamSettings:
    """Rows and chunk size for a stream of files: enough rows to keep the decoder's batches full,
    chunks no shorter than `min_chunk` (each cut loses context: measured in benchmarks/RESULTS.md)."""
    total = sum(ntokens)
    chunk = min(max_chunk, max(min_chunk, -(-total // max_rows)))
    segments = sum(-(-n // chunk) for n in ntokens if n)
    return StreamSettings(window=window, rows=max(1, min(max_rows, segments)), chunk=chunk, mix=mix or MixSettings())


@dataclass
class Schedule:
    """Where every token of every file sits: row streams of [BOS, tokens...] segments."""
    rows: int
    length: int                  # steps: the longest row, in stream items
    seg_file: np.ndarray         # (segments,) file of each segment
    seg_start: np.ndarray        # (segments,) first token of the segment in its file
    seg_len: np.ndarray          # (segments,) tokens
    seg_row: np.ndarray          # (segments,) row
    seg_at: np.ndarray           # (segments,) index of its BOS in the row stream

    @classmethod
    def plan(cls, ntokens: list[int], s: StreamSettings) -> Schedule:
        segs = [(f, a, min(n, a + s.chunk) - a) for f, n in enumerate(ntokens) for a in range(0, n, s.chunk)]
        rows = max(1, min(s.rows, len(segs)))
        free = [(0, r) for r in range(rows)]  # (load, row): the least loaded row first, ties to the lowest
        order = sorted(range(len(segs)), key=lambda i: (-segs[i][2], i))
        seg_row, seg_at = np.zeros(len(segs), np.int64), np.zeros(len(segs), np.int64)
        for i in order:
            load, r = heapq.heappop(free)
            seg_row[i], seg_at[i] = r, load
            heapq.heappush(free, (load + segs[i][2] + 1, r))
        arr = np.array(segs, dtype=np.int64).reshape(-1, 3)
        return cls(rows, max(load for load, _ in free) if segs else 0, arr[:, 0], arr[:, 1], arr[:, 2], seg_row, seg_at)

    def layout(self, bos: int, tokens: list[np.ndarray | None]) -> tuple[np.ndarray, ...]:
        """Row streams: token (known ones filled, else -1), segment id, position, file, index in file,
        each (rows, length) int64 (padding: segment -1)."""
        shape = (self.rows, self.length)
        tok, seg, pos = np.full(shape, -1, np.int64), np.full(shape, -1, np.int64), np.zeros(shape, np.int64)
        fil, idx = np.full(shape, -1, np.int64), np.full(shape, -1, np.int64)
        for i in range(len(self.seg_file)):
            r, at, n = self.seg_row[i], self.seg_at[i], self.seg_len[i]
            f, a = self.seg_file[i], self.seg_start[i]
            tok[r, at] = bos
            if tokens[f] is not None:
                tok[r, at + 1:at + 1 + n] = tokens[f][a:a + n]
            seg[r, at:at + 1 + n] = i
            pos[r, at:at + 1 + n] = np.arange(n + 1)
            fil[r, at + 1:at + 1 + n] = f
            idx[r, at + 1:at + 1 + n] = np.arange(a, a + n)
        return tok, seg, pos, fil, idx


class StreamError(ValueError):
    """An LM stream that does not decode; `file` is the member being decoded, where known."""

    def __init__(self, message: str, file: int | None):
        super().__init__(message)
        self.file = file


class _Rows:
    """The model side of a stream: its rows cut into `jobs` groups, each with its own KV cache, run
    side by side in threads (torch and the attention kernel release the GIL; one intra-op thread
    each, which is also far faster on a busy machine). The result is the same for any `jobs`."""

    def __init__(self, engine: ExactLM, rows: int, window: int, jobs: int, stepwise: bool = False):
        self.engine = engine
        jobs = max(1, min(jobs, rows))
        if stepwise:  # one token a row a call: per-op overhead (GIL-bound) dominates, and threads win only
            jobs = max(1, min(jobs, rows // STEPWISE_ROWS_PER_THREAD))  # with many rows (RESULTS.md)
        cuts = [rows * g // jobs for g in range(jobs + 1)]
        self.groups = [(a, b) for a, b in zip(cuts, cuts[1:]) if b > a]
        self.caches = [engine.new_cache(b - a, window) for a, b in self.groups]
        self.pool = ThreadPoolExecutor(len(self.groups)) if len(self.groups) > 1 else None

    def forward(self, tok: np.ndarray, pos: np.ndarray, seg: np.ndarray, bos: int) -> tuple[np.ndarray, np.ndarray]:
        """Head sums (R, S, V) and row scales (R, S) for the items tok (R, S) (padding fed as BOS)."""
        R, S = tok.shape
        acc = np.empty((R, S, self.engine.vocab), np.float32)
        scale = np.empty((R, S), np.float32)
        dev = self.engine.device

        def run(g: int) -> None:
            a, b = self.groups[g]
            t = torch.from_numpy(np.where(seg[a:b] >= 0, tok[a:b], bos))
            out, sc = self.engine.forward(t.to(dev), torch.from_numpy(pos[a:b]).to(dev),
                                          torch.from_numpy(seg[a:b]).to(dev), self.caches[g])
            acc[a:b], scale[a:b] = out.cpu().numpy(), sc[..., 0].cpu().numpy()

        with pinned_threads(1):
            if self.pool:
                for f in [self.pool.submit(run, g) for g in range(len(self.groups))]:
                    f.result()
            else:
                run(0)
        return acc, scale

    def close(self) -> None:
        if self.pool:
            self.pool.shutdown()


def _state(engine: ExactLM, s: StreamSettings, sched: Schedule, total: int) -> cm.State:
    return cm.State(s.mix, sched.rows, sched.length, total)


class Scorer:
    """The encoder: the constructor runs model and entropy model once over the whole stream and
    records every token's symbol; `payload` range-codes the chosen files' symbols."""

    def __init__(self, engine: ExactLM, bos: int, token_lists: list[list[int]], settings: StreamSettings,
                 block: int = 16, progress=None, jobs: int = 2):
        self.s, self.engine = settings, engine
        self.ntokens = [len(t) for t in token_lists]
        self.sched = Schedule.plan(self.ntokens, settings)
        tok, seg, pos, fil, idx = self.sched.layout(bos, [np.asarray(t, np.int64) for t in token_lists])
        self.fil, self.idx = fil, idx
        R, L = tok.shape
        self.cum = np.zeros((L, R), np.int64)
        self.freq = np.ones((L, R), np.int64)
        self.total = np.ones((L, R), np.int64)
        state = _state(engine, settings, self.sched, sum(self.ntokens))
        rows = _Rows(engine, R, settings.window, jobs)
        head_scale = engine.head[1].cpu().numpy()
        tokT = np.ascontiguousarray(tok.T)                              # (L, R): step-major, as coded
        activeT = np.ascontiguousarray((fil >= 0).T)
        known = np.zeros_like(activeT)
        mixer = ThreadPoolExecutor(1)
        pending = None
        try:
            # the model's output at item i predicts item i + 1 (steps i = 0 .. L - 2); the entropy model
            # mixes block k in its own thread while the model computes block k + 1
            for a0 in range(0, max(L - 1, 0), block):
                a1 = min(L - 1, a0 + block)
                acc, scale = rows.forward(tok[:, a0:a1], pos[:, a0:a1], seg[:, a0:a1], bos)
                if pending:
                    pending.result()
                s = slice(a0 + 1, a1 + 1)
                pending = mixer.submit(cm.run, cm.SCORE, acc, scale, head_scale, tokT[s], known[s], activeT[s],
                                       self.cum[s], self.freq[s], self.total[s], cm.encoder_start(),
                                       np.zeros(1, np.uint8), *state.arrays())
                if progress:
                    progress(int(activeT[s].sum()))
            if pending:
                pending.result()
        finally:
            mixer.shutdown()
            rows.close()
        # bits per file, from the recorded symbols
        bits = -np.log2(self.freq / self.total) * activeT
        self.file_bits = np.zeros(len(self.ntokens))
        np.add.at(self.file_bits, self.fil.T[activeT], bits[activeT])

    def payload(self, coded: list[bool]) -> bytes:
        """The range-coded symbols of the files marked in `coded`, step by step, row by row."""
        mask = (self.fil.T >= 0)
        coded_arr = np.asarray(coded, bool)
        mask &= np.where(self.fil.T >= 0, coded_arr[np.maximum(self.fil.T, 0)], False)
        cum, freq, total = self.cum[mask], self.freq[mask], self.total[mask]
        out = np.zeros(8 * len(cum) + 64, np.uint8)
        coder = cm.encoder_start()
        cm.encode_symbols(coder, out, cum, freq, total)
        return bytes(out[:cm.encoder_finish(coder, out)])


def decode(engine: ExactLM, bos: int, ntokens: list[int], known: list[list[int] | None], payload: bytes,
           settings: StreamSettings, progress=None, trace: list | None = None, jobs: int = 2) -> list[list[int]]:
    """Tokens of every file of the stream. `known[f]`: the tokens of a file stored another way (fed,
    not decoded), else None. Raises StreamError when the stream is damaged. `trace`, if given,
    receives each step's symbols (cum, freq, total), each (R,) int64, as the encoder records them.
    All rows advance one token per step; `jobs` threads share the rows (the result does not change)."""
    sched = Schedule.plan(ntokens, settings)
    tok, seg, pos, fil, idx = sched.layout(bos, [None if k is None else np.asarray(k, np.int64) for k in known])
    R, L = tok.shape
    state = _state(engine, settings, sched, sum(ntokens))
    rows = _Rows(engine, R, settings.window, jobs, stepwise=True)
    head_scale = engine.head[1].cpu().numpy()
    activeT = np.ascontiguousarray((fil >= 0).T)
    is_known = np.array([k is not None for k in known] + [False], bool)
    knownT = np.ascontiguousarray(np.where(fil >= 0, is_known[fil], False).T)
    stream = np.frombuffer(payload, np.uint8)
    coder = cm.decoder_start(stream)
    sym = [np.zeros((1, R), np.int64) for _ in range(3)]
    out = np.zeros((1, R), np.int64)
    try:
        for i in range(max(L - 1, 0)):
            acc, scale = rows.forward(tok[:, i:i + 1], pos[:, i:i + 1], seg[:, i:i + 1], bos)
            out[0] = tok[:, i + 1]
            rc = cm.run(cm.DECODE, acc, scale, head_scale, out, knownT[i + 1:i + 2], activeT[i + 1:i + 2], *sym, coder,
                        stream, *state.arrays())
            if rc < 0:
                f = int(fil[-1 - rc, i + 1])
                raise StreamError(f"it does not decode at token {idx[-1 - rc, i + 1]} of its member {f}", f)
            if trace is not None:
                trace.append(tuple(np.where(activeT[i + 1] & ~knownT[i + 1], x[0], 0) for x in sym))
            tok[:, i + 1] = np.where(activeT[i + 1], out[0], tok[:, i + 1])
            if progress:
                progress(int(activeT[i + 1].sum()))
    finally:
        rows.close()
    if int(coder[2]) > len(stream) + 8:
        raise StreamError("it ends before its last symbol", None)
    result = [[0] * n for n in ntokens]
    for f, ix, t in zip(fil[fil >= 0], idx[fil >= 0], tok[fil >= 0]):
        result[f][ix] = int(t)
    return result
