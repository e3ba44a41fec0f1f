"""The float engine of archive formats 1 and 2, kept only to decode their LM streams and seeds.

Formats 1 and 2 ran the model through transformers in float32: an archive decodes only where the
batch shape, thread count, kernels and CPU give the same bits as where it was packed (measured:
not under ATEN_CPU_CAPABILITY=default or MKL_CBWR=COMPATIBLE). Format 3 uses the exact engine
(engine.py). Nothing here is used to write archives. The code below is the format-2 code as it was
(codeseed 60c3893), with the HF model behind `FloatModel` loaded from the same folder.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from contextlib import contextmanager
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import constriction  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from codeseed import fim  # noqa: E402
from codeseed.errors import InputError  # noqa: E402


BUNDLED_NAME = "codeseed-small"
NO_REPEAT = 6
IDENTITY_FILES = ("config.json", "model.safetensors", "pytorch_model.bin", "tokenizer.json", "tokenizer.model",
                  "vocab.json", "merges.txt")


def bundled_path() -> Path:
    return Path(__file__).resolve().parent / "models" / BUNDLED_NAME


@dataclass(frozen=True)
class ModelId:
    name: str
    sha256: str

    def to_dict(self) -> dict:
        return {"id": self.name, "sha256": self.sha256}


class FloatModel:
    """A causal LM and its tokenizer, loaded once, evaluated on the CPU in float32."""

    def __init__(self, path: str | Path | None = None, threads: int | None = None):
        from transformers import AutoModelForCausalLM, AutoTokenizer
        self.path = Path(path) if path else bundled_path()
        if not (self.path / "config.json").is_file():
            raise InputError(f"{self.path}: not a Hugging Face model folder (no config.json)")
        if threads:
            torch.set_num_threads(threads)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
            self.model = AutoModelForCausalLM.from_pretrained(self.path, local_files_only=True,
                                                              dtype=torch.float32).eval()
        except (OSError, ValueError) as e:
            raise InputError(f"{self.path}: cannot load model ({str(e).splitlines()[0]})") from None
        self.fast = self.tokenizer.backend_tokenizer  # the Rust tokenizer: no per-call Python overhead
        meta = self.path / "training.json"
        self.context = int(json.loads(meta.read_text())["config"]["seq_len"]) if meta.is_file() else \
            int(min(getattr(self.model.config, "max_position_embeddings", 2048), 2048))
        self.vocab_size = int(self.model.config.vocab_size)
        self.bos = self.tokenizer.bos_token_id if self.tokenizer.bos_token_id is not None \
            else self.tokenizer.eos_token_id

    @cached_property
    def id(self) -> ModelId:
        h = hashlib.sha256()
        for name in IDENTITY_FILES:
            p = self.path / name
            if p.is_file():
                h.update(name.encode() + b"\0")
                with open(p, "rb") as fh:
                    for block in iter(lambda: fh.read(1 << 20), b""):
                        h.update(block)
        return ModelId(self.path.name, h.hexdigest())

    @cached_property
    def fim_format(self) -> fim.FimFormat:
        return fim.detect(self.tokenizer.get_vocab())

    @cached_property
    def _fim_ids(self) -> tuple[int, int, int, frozenset[int]]:
        """Token ids of the prefix, suffix and middle sentinels and of the stop tokens, looked up
        once: get_vocab() builds a fresh dict (3 ms here), and fills run once per hole."""
        fmt, vocab = self.fim_format, self.tokenizer.get_vocab()
        stops = frozenset({vocab[s] for s in fmt.stops if s in vocab} | {self.tokenizer.eos_token_id})
        return vocab[fmt.prefix], vocab[fmt.suffix], vocab[fmt.middle], stops

    # ------------------------------------------------------------ text <-> tokens

    def encode(self, text: str) -> list[int]:
        return self.fast.encode(text, add_special_tokens=False).ids

    def decode(self, ids: list[int]) -> str:
        return self.fast.decode(ids, skip_special_tokens=False)

    def tokenize_exact(self, data: bytes) -> list[int] | None:
        """Token ids that decode back to exactly `data`, or None (not UTF-8, or no exact round trip)."""
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return None
        ids = self.encode(text)
        return ids if self.decode(ids) == text else None

    # ------------------------------------------------------------ scoring (estimates)

    @torch.no_grad()
    def token_bits(self, ids: list[int]) -> np.ndarray:
        """Bits of each token given the ones before it, by full forward passes over half-overlapping windows."""
        w = self.context
        seq = [self.bos] + list(ids)
        bits = np.zeros(len(ids), dtype=np.float64)
        done = 0  # tokens of `ids` scored so far
        while done < len(ids):
            start = max(0, done + 1 - w // 2) if done else 0
            chunk = seq[start:start + w]
            logits = self.model(torch.tensor([chunk])).logits[0].double()
            logp = torch.log_softmax(logits, -1)
            targets = torch.tensor(seq[start + 1:start + len(chunk)])
            lp = logp[torch.arange(len(targets)), targets].numpy() / -np.log(2)
            first = done - start  # position in lp of token `done`
            take = lp[first:]
            bits[done:done + len(take)] = take
            done += len(take)
        return bits

    def char_bits(self, text: str) -> np.ndarray:
        """Bits per character: each token's surprisal spread evenly over the characters it covers."""
        enc = self.fast.encode(text, add_special_tokens=False)
        bits = self.token_bits(enc.ids)
        per_char = np.zeros(len(text), dtype=np.float64)
        for b, (s, e) in zip(bits, enc.offsets):
            if e > s:
                per_char[s:e] += b / (e - s)
        return per_char

    def score(self, texts: list[str]) -> list[np.ndarray]:
        """Per-token surprisal in bits for each text (an estimate of its exact-mode cost)."""
        return [self.token_bits(self.encode(t)) for t in texts]

    # ------------------------------------------------------------ fill in the middle

    def _prompt_room(self, middle_tokens: int) -> int:
        """Prompt tokens (besides the sentinels) that leave room for a middle this long; a hole longer
        than the context still gets some context on both sides (its fill will be poor, and pack's
        checks will catch that)."""
        return max(32, self.context - middle_tokens - 4)

    def _fim_prompt(self, prefix: str, suffix: str, room: int) -> list[int]:
        """PSM prompt: the end of the prefix and the start of the suffix, in `room` tokens."""
        pre, suf, mid, _ = self._fim_ids
        pi, si = self.encode(prefix), self.encode(suffix)
        n_s = min(len(si), max(room // 3, room - len(pi)))
        n_p = min(len(pi), room - n_s)
        return [pre] + pi[len(pi) - n_p:] + [suf] + si[:n_s] + [mid]

    @torch.no_grad()
    def reproduces(self, prefix: str, suffix: str, middle: list[int]) -> bool:
        """Whether greedy fill(prefix, suffix, len(middle)) likely gives `middle` back, from one
        teacher-forced forward pass instead of len(middle) steps. A filter only: a near tie can
        come out otherwise in fill()'s cached steps, so a True must be confirmed with fill()."""
        if not middle:
            return True
        return self._fim_logits(prefix, suffix, middle, middle[:-1]).argmax(-1).tolist() == list(middle)

    @torch.no_grad()
    def stop_probability(self, prefix: str, suffix: str, middle: list[int], room: int | None = None) -> float:
        """P(a stop token) right after the true `middle`, teacher-forced: whether the model knows
        where a middle ends, apart from what greedy decoding makes of it (benchmarks/model_eval.py).
        `room`: prompt tokens besides the sentinels (default: as fill() leaves them)."""
        p = torch.softmax(self._fim_logits(prefix, suffix, middle, middle, room)[-1].double(), -1)
        return max(float(p[t]) for t in self._fim_ids[3])

    def _fim_logits(self, prefix: str, suffix: str, middle: list[int], feed: list[int],
                    room: int | None = None) -> torch.Tensor:
        """One forward pass over the PSM prompt (with room for `middle`, as fill() leaves it, unless
        `room` says otherwise) followed by the tokens `feed`: the logits from the middle sentinel on,
        one row per fed token + 1."""
        prompt = self._fim_prompt(prefix, suffix, self._prompt_room(len(middle)) if room is None else room)
        return self.model(torch.tensor([prompt + feed])).logits[0, len(prompt) - 1:]

    @torch.no_grad()
    def fill(self, prefixes: list[str], suffixes: list[str], max_tokens: int | list[int] = 64,
             no_repeat: int = NO_REPEAT) -> list[str]:
        """Greedy FIM middles, batched with a KV cache. Stops at the format's stop tokens or the cap.
        A token that would repeat a `no_repeat`-token sequence already in the same middle is never
        chosen (0: plain greedy).

        Deterministic for the same call; a different batch (other prompts beside this one) can change
        a fill, because left padding changes the numerics (measured). Callers that need the same
        output on another run must batch the same way (seeded.reconstruct fills files one by one).
        """
        from transformers import DynamicCache
        stops = self._fim_ids[3]
        limits = max_tokens if isinstance(max_tokens, list) else [max_tokens] * len(prefixes)
        room = self._prompt_room(max(limits))  # one room for the batch: the longest fill's
        prompts = [self._fim_prompt(p, s, room) for p, s in zip(prefixes, suffixes)]
        # left-pad to a common length; the attention mask hides the pads
        width = max(len(p) for p in prompts)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        x = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
        cache = DynamicCache(config=self.model.config)
        out: list[list[int]] = [[] for _ in prompts]
        alive = [True] * len(prompts)
        stopped = [False] * len(prompts)  # ended by a stop token, not by its cap
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        logits = self.model(x, attention_mask=mask, position_ids=pos, cache=cache, use_cache=True).logits[:, -1]
        seen: list[dict[tuple[int, ...], set[int]]] = [{} for _ in prompts]  # (n-1)-gram -> tokens after it
        for step in range(max(limits) + 1):  # + 1: whether a fill of exactly `limit` tokens then stops
            if no_repeat > 1 and step >= no_repeat - 1:
                logits = self._ban_repeats(logits, out, seen, alive, no_repeat)
            nxt = logits.argmax(-1).tolist()
            for r, t in enumerate(nxt):
                if alive[r]:
                    if t in stops:
                        alive[r], stopped[r] = False, True
                    elif len(out[r]) >= limits[r]:
                        alive[r] = False
                    else:
                        out[r].append(t)
            if not any(alive):
                break
            mask = torch.cat([mask, torch.ones(len(prompts), 1, dtype=mask.dtype)], 1)
            pos = pos[:, -1:] + 1
            logits = self.model(torch.tensor(nxt)[:, None], attention_mask=mask, position_ids=pos, cache=cache,
                                use_cache=True).logits[:, -1]
        self.last_fill_stopped = stopped
        self.last_fill_ids = out  # tokens generated per row (the text may re-tokenize otherwise)
        self.last_fill_tokens = [len(o) for o in out]
        return [self.decode(o) for o in out]

    @staticmethod
    def _ban_repeats(logits: torch.Tensor, out: list[list[int]], seen: list[dict], alive: list[bool],
                     n: int) -> torch.Tensor:
        """Logits with -inf on each row's tokens that would repeat one of its n-grams."""
        banned = []
        for r, toks in enumerate(out):
            if not alive[r] or len(toks) < n - 1:
                continue
            if len(toks) >= n:  # record the n-gram the last step completed
                seen[r].setdefault(tuple(toks[-n:-1]), set()).add(toks[-1])
            for t in seen[r].get(tuple(toks[-(n - 1):]), ()):
                banned.append((r, t))
        if banned:
            logits = logits.clone()
            rows, cols = zip(*banned)
            logits[list(rows), list(cols)] = float("-inf")
        return logits


class Stepper:
    """Next-token log-probabilities for a fixed batch of rows, one token per row per step.

    Context policy (fixed, recorded in archives): each row starts from the model's BOS token; when
    the cache holds `window` tokens it is rebuilt from the last `window // 2` tokens by one forward
    pass. Encoder and decoder make exactly the same calls with the same shapes, so results match
    bit for bit on the same machine and library versions.
    """

    def __init__(self, model: FloatModel, rows: int, window: int):
        self.m, self.rows, self.window = model, rows, window
        self.history: list[list[int]] = [[model.bos] for _ in range(rows)]
        self._start(torch.tensor([[model.bos]] * rows))

    @torch.no_grad()
    def _start(self, x: torch.Tensor) -> None:
        from transformers import DynamicCache
        self.cache = DynamicCache(config=self.m.model.config)
        self.filled = x.shape[1]
        self.logits = self.m.model(x, cache=self.cache, use_cache=True).logits[:, -1]

    def logprobs(self) -> np.ndarray:
        """(rows, vocab) float64 log-probabilities of the next token, quantized to a 2^-12 grid."""
        lp = torch.log_softmax(self.logits.double(), -1).numpy()
        return np.round(lp * 4096.0) / 4096.0

    @torch.no_grad()
    def push(self, tokens: list[int]) -> None:
        for h, t in zip(self.history, tokens):
            h.append(t)
        if self.filled >= self.window:
            keep = self.window // 2
            self._start(torch.tensor([h[-keep:] for h in self.history]))
            return
        self.filled += 1
        self.logits = self.m.model(torch.tensor(tokens)[:, None], cache=self.cache, use_cache=True).logits[:, -1]


# ---------------------------------------------------------------- the format-2 LM codec

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


def run_batch(model: FloatModel, state: ArchiveState, rows: list[Row]) -> None:
    """Advance every row to its end: encode known tokens, decode unknown ones, or just replay them."""
    with pinned_threads(state.s.threads):
        _run_batch(model, state, rows)


def _run_batch(model: FloatModel, state: ArchiveState, rows: list[Row]) -> None:
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


def encode_batch(model: FloatModel, state: ArchiveState, token_lists: list[list[int]]) -> list[bytes]:
    rows = [Row(len(t), known=t, encoder=constriction.stream.queue.RangeEncoder()) for t in token_lists]
    run_batch(model, state, rows)
    state.absorb(token_lists)
    return [r.encoder.get_compressed().astype("<u4").tobytes() for r in rows]


def decode_batch(model: FloatModel, state: ArchiveState, ns: list[int],
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


def decode_stream(model: FloatModel, settings: MixSettings,
                   files: list[tuple[int, bytes | None, list[int] | None]], advance=None) -> list[list[int]]:
    """Tokens of the files of an LM stream, in order; each is (token count, LM payload or None,
    known tokens when its payload is another codec's). Raises ValueError on a malformed stream."""
    chunks = plan_chunks([n for n, _, _ in files], settings.chunk_tokens)
    count = Counter(f for f, _, _ in chunks)
    per_file = {f: split_chunks(payload, count[f]) for f, (_, payload, _) in enumerate(files)
                if payload is not None}
    taken = {f: 0 for f in per_file}
    out: list[list[int]] = [[] for _ in files]
    state = ArchiveState(settings)
    for batch in plan_batches(len(chunks), settings.batch_rows):
        rows, payloads, known = [chunks[c] for c in batch], [], []
        for f, a, e in rows:
            if f in per_file:
                payloads.append(per_file[f][taken[f]])
                taken[f] += 1
                known.append(None)
            else:
                payloads.append(None)
                known.append(files[f][2][a:e])
        for (f, _, _), toks in zip(rows, decode_batch(model, state, [e - a for _, a, e in rows],
                                                              payloads, known)):
            out[f].extend(toks)
        if advance:
            advance(sum(e - a for _, a, e in rows))
    return out
