"""The code model behind codeseed: loading, identity, scoring, fill-in-the-middle, stepping.

Any local Hugging Face causal LM folder works (`--model PATH`); the bundled one lives in
`codeseed/models/`. A model's identity is the SHA-256 over its weights, config and tokenizer
files: archives record it, and decoding with any other model is refused.

Two ways to get probabilities, kept apart on purpose:
- `score()` runs full forward passes: fast, for estimates (assessment, audit, codec choice).
- `Stepper` feeds one token per row through a KV cache, in lockstep over a batch. The LM codec's
  encoder and decoder both use it, with the same batch and the same calls, because a full pass and
  a cached step differ by ~1e-7 and range decoding breaks on any difference.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from codeseed import fim  # noqa: E402
from codeseed.errors import InputError  # noqa: E402

MODELS_DIR = Path(__file__).resolve().parent / "models"
BUNDLED_NAME = "codeseed-small"
# fill() never repeats a sequence of this many tokens within one middle. Greedy decoding of a small
# model falls into loops ("of the version of the version ...") that never reach the stop token; on
# 60 held-out bodies and docstrings, banning repeats of 6 tokens raised the share of fills that stop
# by themselves from 77% to 97% (benchmarks/RESULTS.md). 0 is plain greedy.
NO_REPEAT = 6
IDENTITY_FILES = ("config.json", "model.safetensors", "pytorch_model.bin", "tokenizer.json", "tokenizer.model",
                  "vocab.json", "merges.txt")


def bundled_path() -> Path:
    return MODELS_DIR / BUNDLED_NAME


@dataclass(frozen=True)
class ModelId:
    name: str
    sha256: str

    def to_dict(self) -> dict:
        return {"id": self.name, "sha256": self.sha256}


class CodeModel:
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

    def __init__(self, model: CodeModel, rows: int, window: int):
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
