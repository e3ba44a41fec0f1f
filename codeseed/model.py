"""The code model behind codeseed: loading, identity, scoring, fill-in-the-middle.

Any local Hugging Face folder of a Llama-family causal LM in safetensors format works (`--model
PATH`); the bundled one lives in `codeseed/models/`. A model's identity is the SHA-256 over its
weights, config and tokenizer files: archives record it, and decoding with any other model is
refused.

Everything runs on the exact engine (engine.py): scores, greedy fills and the LM codec compute the
same numbers on every machine, whatever the batch or thread count, so fills can be batched across
holes and files and an archive's seeds regenerate anywhere. The tokenizer is the `tokenizers`
library's (no transformers import).
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np
import torch

from codeseed import fim
from codeseed.engine import ExactLM
from codeseed.errors import InputError

MODELS_DIR = Path(__file__).resolve().parent / "models"
# The model pack uses. The models it replaced stay in MODELS_DIR: an archive names the model it was
# packed with, and unpack takes that one (bundled_for) so that every archive ever written decodes.
BUNDLED_NAME = "codeseed-small-2"
# fill() never repeats a sequence of this many tokens within one middle. Greedy decoding of a small
# model falls into loops ("of the version of the version ...") that never reach the stop token; on
# 60 held-out bodies and docstrings, banning repeats of 6 tokens raised the share of fills that stop
# by themselves from 77% to 97% (benchmarks/RESULTS.md). 0 is plain greedy.
NO_REPEAT = 6
# teacher-forced passes feed this many tokens a row a call: attention's cost grows with the keys a call
# sees (the window plus the block), and 24 rows of 250 tokens scored in 2.41 s with blocks of 256, 0.96 s
# with 16 (the same numbers: the engine's passes do not depend on the blocking)
PREFILL_BLOCK = 16
ENCODE_CACHE = 256
IDENTITY_FILES = ("config.json", "model.safetensors", "pytorch_model.bin", "tokenizer.json", "tokenizer.model",
                  "vocab.json", "merges.txt")


def bundled_path() -> Path:
    return MODELS_DIR / BUNDLED_NAME


def bundled_for(name: object) -> Path | None:
    """The bundled model folder an archive's header names (`{"id": name}`), or None when codeseed
    ships no model of that name. `name` comes from an archive: it is compared with the folders'
    names, never joined to a path."""
    if not isinstance(name, str) or not MODELS_DIR.is_dir():
        return None
    return next((p for p in sorted(MODELS_DIR.iterdir()) if p.is_dir() and p.name == name), None)


@dataclass(frozen=True)
class ModelId:
    name: str
    sha256: str

    def to_dict(self) -> dict:
        return {"id": self.name, "sha256": self.sha256}


class CodeModel:
    """A tokenizer and the exact engine of one model folder, loaded once."""

    batch_invariant = True  # a row's results do not depend on the batch (seeded.py batches fills)

    def __init__(self, path: str | Path | None = None, device: str = "cpu"):
        from tokenizers import Tokenizer
        self.path = Path(path) if path else bundled_path()
        if not (self.path / "config.json").is_file():
            raise InputError(f"{self.path}: not a Hugging Face model folder (no config.json)")
        if not (self.path / "tokenizer.json").is_file():
            raise InputError(f"{self.path}: no tokenizer.json (a fast tokenizer file is needed)")
        try:
            self.fast = Tokenizer.from_file(str(self.path / "tokenizer.json"))
            config = json.loads((self.path / "config.json").read_text())
        except (OSError, ValueError, Exception) as e:  # tokenizers raises its own Exception type
            raise InputError(f"{self.path}: cannot load the tokenizer ({str(e).splitlines()[0]})") from None
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if str(device).startswith("cuda") and not torch.cuda.is_available():
            raise InputError(f"--device {device}: this torch has no CUDA device here (use cpu; archives decode "
                             "the same on either)")
        try:
            self.engine = ExactLM(self.path, device)
        except (RuntimeError, AssertionError) as e:  # an unknown or absent device
            raise InputError(f"cannot run the model on {device!r} ({str(e).splitlines()[0]})") from None
        meta = self.path / "training.json"
        self.context = int(json.loads(meta.read_text())["config"]["seq_len"]) if meta.is_file() else \
            int(min(config.get("max_position_embeddings", 2048), 2048))
        self.vocab_size = int(config["vocab_size"])
        eos = config.get("eos_token_id")
        eos = eos[0] if isinstance(eos, list) else eos
        bos = config.get("bos_token_id")
        self.eos = int(eos if eos is not None else 0)
        self.bos = int(bos if bos is not None else self.eos)
        pad = config.get("pad_token_id")
        self.pad = int(pad if pad is not None else self.eos)

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
        return fim.detect(self.fast.get_vocab(with_added_tokens=True))

    @cached_property
    def _fim_ids(self) -> tuple[int, int, int, frozenset[int]]:
        """Token ids of the prefix, suffix and middle sentinels and of the stop tokens."""
        fmt, vocab = self.fim_format, self.fast.get_vocab(with_added_tokens=True)
        stops = frozenset({vocab[s] for s in fmt.stops if s in vocab} | {self.eos})
        return vocab[fmt.prefix], vocab[fmt.suffix], vocab[fmt.middle], stops

    # ------------------------------------------------------------ text <-> tokens

    def encode(self, text: str) -> list[int]:
        """Token ids of `text` (no special tokens). The last ENCODE_CACHE texts are remembered: seeded
        pack builds a FIM prompt from the same long prefix for each check and fill of a hole."""
        return list(self._encode(text))

    @lru_cache(maxsize=ENCODE_CACHE)  # noqa: B019 (one model a process: the cache lives as long as it)
    def _encode(self, text: str) -> tuple[int, ...]:
        return tuple(self.fast.encode(text, add_special_tokens=False).ids)

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

    # ------------------------------------------------------------ teacher-forced passes

    def _passes(self, rows: list[list[int]], cache: dict):
        """Feed each row (a segment from position 0; shorter rows padded) to the engine, PREFILL_BLOCK
        tokens a row a call, through `cache` (new_cache(len(rows), context)); yields (first column
        of the block, head sums (R, b, V), row scales (R, b, 1)) for each block of b <= PREFILL_BLOCK."""
        n = max((len(r) for r in rows), default=0)
        tok = torch.full((len(rows), n), self.pad, dtype=torch.int64)
        seg = torch.full((len(rows), n), -1, dtype=torch.int64)
        for i, r in enumerate(rows):
            tok[i, :len(r)] = torch.tensor(r, dtype=torch.int64)
            seg[i, :len(r)] = 0
        pos = torch.arange(n).expand(len(rows), n).contiguous()
        for a in range(0, n, PREFILL_BLOCK):
            b = a + PREFILL_BLOCK
            yield a, *self.engine.forward(tok[:, a:b], pos[:, a:b], seg[:, a:b], cache)

    def _run(self, rows: list[list[int]]) -> list[torch.Tensor]:
        """Logits (len(row), V) float64 after every token of each row (each row a segment from
        position 0), by the engine's teacher-forced passes with its sliding window."""
        eng = self.engine
        out = [eng.logits(acc, scale) for _, acc, scale in self._passes(rows, eng.new_cache(len(rows), self.context))]
        logits = torch.cat(out, dim=1) if out else torch.zeros(len(rows), 0, self.vocab_size, dtype=torch.float64)
        return [logits[i, :len(r)] for i, r in enumerate(rows)]

    @torch.no_grad()
    def token_bits(self, ids: list[int]) -> np.ndarray:
        """Bits of each token given the ones before it (the model alone, from BOS, sliding window)."""
        return self.token_bits_many([ids])[0]

    @torch.no_grad()
    def token_bits_many(self, id_lists: list[list[int]], rows: int = 32, chunk: int | None = None) -> list[np.ndarray]:
        """token_bits() of several token lists, `rows` at a time side by side (the same numbers),
        each token's bits taken block by block (a 20,000-token file's (n, V) float64 logits took
        1.3 GB and half its time).

        `chunk` (tokens): a longer list is scored as rows of `chunk` tokens side by side, each
        reading first the up to `context` tokens before its own (whose bits the row before gives):
        the same window for every token, but the deeper layers no longer reach past it, so bits
        differ a little from the whole pass (assess: predictive potential; RESULTS.md, issue 15)."""
        eng = self.engine
        out = [np.zeros(len(ids)) for ids in id_lists]
        pieces = []  # (list, where its feed starts in [bos] + ids, context tokens read first, feed)
        for i, ids in enumerate(id_lists):
            x = [self.bos] + list(ids[:-1])
            step = chunk or max(len(ids), 1)
            for s in range(0, len(ids), step):
                c = max(0, s - self.context)
                pieces.append((i, c, s - c, x[c:s + step]))
        pieces.sort(key=lambda p: -len(p[3]))
        for a in range(0, len(pieces), rows):
            batch = pieces[a:a + rows]
            for at, acc, scale in self._passes([p[3] for p in batch], eng.new_cache(len(batch), self.context)):
                lp = torch.log_softmax(eng.logits(acc, scale), -1)
                for r, (i, c, skip, feed) in enumerate(batch):
                    lo, hi = max(at, skip), min(at + acc.shape[1], len(feed))
                    if lo < hi:  # feed position q predicts ids[c + q]
                        target = torch.tensor(id_lists[i][c + lo:c + hi])
                        out[i][c + lo:c + hi] = (lp[r, torch.arange(lo - at, hi - at), target] / -np.log(2)).numpy()
        return out

    def char_bits(self, text: str, chunk: int | None = None) -> np.ndarray:
        """Bits per character: each token's surprisal spread evenly over the characters it covers
        (`chunk`: see token_bits_many)."""
        return self.char_bits_many([text], chunk)[0]

    def char_bits_many(self, texts: list[str], chunk: int | None = None) -> list[np.ndarray]:
        """char_bits() of several texts, scored side by side."""
        encs = [self.fast.encode(t, add_special_tokens=False) for t in texts]
        out = []
        for text, enc, bits in zip(texts, encs, self.token_bits_many([e.ids for e in encs], chunk=chunk)):
            per_char = np.zeros(len(text), dtype=np.float64)
            for b, (s, e) in zip(bits, enc.offsets):
                if e > s:
                    per_char[s:e] += b / (e - s)
            out.append(per_char)
        return out

    def score(self, texts: list[str]) -> list[np.ndarray]:
        """Per-token surprisal in bits for each text (an estimate of its exact-mode cost)."""
        return self.token_bits_many([self.encode(t) for t in texts])

    # ------------------------------------------------------------ fill in the middle

    def _prompt_room(self, middle_tokens: int) -> int:
        """Prompt tokens (besides the sentinels) that leave room for a middle this long; a hole longer
        than the context still gets some context on both sides (its fill will be poor, and pack's
        checks will catch that)."""
        return max(32, self.context - middle_tokens - 4)

    def _fim_prompt(self, prefix: str, suffix: str, room: int) -> list[int]:
        """PSM prompt: the end of the prefix and the start of the suffix, in `room` tokens."""
        pre, suf, mid, _ = self._fim_ids
        pi, si = self._edge_ids(prefix, room, end=True), self._edge_ids(suffix, room, end=False)
        n_s = min(len(si), max(room // 3, room - len(pi)))
        n_p = min(len(pi), room - n_s)
        return [pre] + pi[len(pi) - n_p:] + [suf] + si[:n_s] + [mid]

    @cached_property
    def _cut_pattern(self) -> re.Pattern | None:
        """Where _clean_cut may cut: a space before printable ASCII other than a quote, and not
        before an added token (the tokenizer splits those out first, so whitespace before one
        ends its piece as at the end of a string). None unless the tokenizer is byte-level BPE
        behind GPT-2's pre-tokenizer regex with no normalizer and no added token holding a space.
        tests/test_engine.py checks the cuts on real files, with added tokens in the text."""
        cfg = json.loads((self.path / "tokenizer.json").read_text())
        added = [a.get("content", "") for a in cfg.get("added_tokens", [])]
        if not (cfg.get("normalizer") is None and cfg.get("model", {}).get("type") == "BPE"
                and cfg.get("pre_tokenizer") == {"type": "ByteLevel", "add_prefix_space": False,
                                                 "trim_offsets": True, "use_regex": True}
                and all(a and not any(c.isspace() for c in a) for a in added)):
            return None
        not_added = "".join(f"(?!{re.escape(a)})" for a in added)
        return re.compile(r" (?=[!-&(-~])" + not_added)

    def _clean_cut(self, text: str, at: int) -> int:
        """The first place at or after `at` where a space comes before a printable ASCII character
        (not a quote, not an added token), else len(text). GPT-2's regex starts a piece there
        (" x", " =", " ("), and whitespace before it, to the end of a string or before that space,
        is one piece either way: so text[:cut] tokenizes as the start of the whole text's tokens and
        text[cut:] as their end. Only where _cut_pattern is not None."""
        m = self._cut_pattern.search(text, at)
        return m.start() if m else len(text)

    def _edge_ids(self, text: str, least: int, end: bool) -> list[int]:
        """The last (end) or first tokens of encode(text), at least `least` of them (or all):
        tokenizing only a tail or a head of a long text, cut cleanly, gives the same tokens there
        as tokenizing all of it."""
        if self._cut_pattern is not None:
            span = 8 * least
            while span < len(text):
                part = text[self._clean_cut(text, len(text) - span):] if end else text[:self._clean_cut(text, span)]
                ids = self.encode(part)
                if len(ids) >= least:
                    return ids
                span *= 4
        return self.encode(text)

    @torch.no_grad()
    def reproduces(self, prefix: str, suffix: str, middle: list[int]) -> bool:
        """Whether greedy fill(prefix, suffix, len(middle)) gives `middle` back (before any stop),
        from one teacher-forced pass; exact, since the engine's passes equal its steps."""
        return self.reproduces_prompts([(self._fim_prompt(prefix, suffix, self._prompt_room(len(middle))), middle)])[0]

    @torch.no_grad()
    def reproduces_prompts(self, cases: list[tuple[list[int], list[int]]], rows: int = 32) -> list[bool]:
        """reproduces() of each (FIM prompt as _fim_prompt gives it, middle), `rows` side by side (similar lengths
        together), teacher-forced a block at a time: a row is decided at its first middle token
        that is not the greedy choice, a batch ends when every row is. Each answer is the same
        whatever else is in its batch (exact engine)."""
        out = [True] * len(cases)
        todo = sorted((k for k, (_, m) in enumerate(cases) if m), key=lambda k: -len(cases[k][0]) - len(cases[k][1]))
        eng = self.engine
        for at in range(0, len(todo), rows):
            batch = todo[at:at + rows]
            firsts = [len(cases[k][0]) - 1 for k in batch]  # the output at `first` predicts middle[0]
            open_rows = set(range(len(batch)))
            feeds = [list(cases[k][0]) + list(cases[k][1][:-1]) for k in batch]
            for a, acc, scale in self._passes(feeds, eng.new_cache(len(batch), self.context)):
                b = a + acc.shape[1]
                for r in sorted(open_rows):
                    middle, first = cases[batch[r]][1], firsts[r]
                    lo, hi = max(a, first), min(b, first + len(middle))
                    if lo < hi and eng.logits(acc[r, lo - a:hi - a], scale[r, lo - a:hi - a]).argmax(-1).tolist() != \
                            list(middle[lo - first:hi - first]):
                        out[batch[r]] = False
                    if not out[batch[r]] or hi == first + len(middle):
                        open_rows.discard(r)
                if not open_rows:
                    break
        return out

    @torch.no_grad()
    def stop_probability(self, prefix: str, suffix: str, middle: list[int], room: int | None = None) -> float:
        """P(a stop token) right after the true `middle`, teacher-forced (benchmarks/model_eval.py).
        `room`: prompt tokens besides the sentinels (default: as fill() leaves them)."""
        p = torch.softmax(self._fim_logits(prefix, suffix, middle, middle, room)[-1], -1)
        return max(float(p[t]) for t in self._fim_ids[3])

    def _fim_logits(self, prefix: str, suffix: str, middle: list[int], feed: list[int],
                    room: int | None = None) -> torch.Tensor:
        """Logits from the middle sentinel on, one row per fed token + 1, for the PSM prompt with
        room for `middle` (as fill() leaves it, unless `room` says otherwise) followed by `feed`."""
        prompt = self._fim_prompt(prefix, suffix, self._prompt_room(len(middle)) if room is None else room)
        return self._run([prompt + list(feed)])[0][len(prompt) - 1:]

    @torch.no_grad()
    def fill(self, prefixes: list[str], suffixes: list[str], max_tokens: int | list[int] = 64,
             no_repeat: int = NO_REPEAT) -> list[str]:
        """Greedy FIM middles, one row each, stepped together. Stops at the format's stop tokens or
        the cap. A token that would repeat a `no_repeat`-token sequence already in the same middle
        is never chosen (0: plain greedy). Each row's fill is the same whatever else is in the batch
        and on every machine (exact engine); ties go to the lowest token id."""
        stops = self._fim_ids[3]
        limits = max_tokens if isinstance(max_tokens, list) else [max_tokens] * len(prefixes)
        prompts = [self._fim_prompt(p, s, self._prompt_room(lim)) for p, s, lim in zip(prefixes, suffixes, limits)]
        R = len(prompts)
        out: list[list[int]] = [[] for _ in prompts]
        stopped = [False] * R
        if R:
            eng = self.engine
            cache = eng.new_cache(R, self.context)
            last = torch.tensor([len(p) - 1 for p in prompts])
            logits = torch.empty(R, eng.vocab, dtype=torch.float64)              # (R, V) after each prompt
            for a, acc, scale in self._passes(prompts, cache):
                rows = ((last >= a) & (last < a + acc.shape[1])).nonzero()[:, 0]
                logits[rows] = eng.logits(acc[rows, last[rows] - a], scale[rows, last[rows] - a])
            here = last + 1                                                       # next position per row
            alive = [True] * R
            seen: list[dict[tuple[int, ...], set[int]]] = [{} for _ in prompts]
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
                live = torch.tensor(alive)
                acc, scale = eng.forward(torch.tensor(nxt)[:, None], here[:, None],
                                         torch.where(live, 0, -1)[:, None], cache)
                logits = eng.logits(acc, scale)[:, 0]
                here = here + 1
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
