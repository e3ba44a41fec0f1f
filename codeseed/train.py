"""Train codeseed's bundled fill-in-the-middle code model on the CPU or a GPU, resumably.

    python -m codeseed.train --out runs/small --hours 3          # start or resume
    python -m codeseed.train --out runs/small --export DIR       # write the HF folder of the latest checkpoint
    python -m codeseed.train --out runs/next --init-from runs/small --hours 2 --peak-lr 1e-3   # continue
    python -m codeseed.train --out runs/prep --init-from MODEL --write-bundle corpus.tar.xz  # carry the corpus ...
    python -m codeseed.train --out runs/gpu --bundle corpus.tar.xz --init-from MODEL --preset gpu  # ... to a GPU

Recipe (measured in shared/notes/training.md): a small Llama, byte-level BPE of 8,192 tokens,
rows of 256 tokens and 16 rows a step (many optimizer steps beat big batches here), bf16 autocast
and torch.compile, AdamW with warmup and a cosine decay over the *wall-clock* budget, so a resumed
run continues the same schedule. 70% of the rows are FIM examples, each in a row of its own, in PSM
or SPM order, split at AST span boundaries (a kind drawn first: block, docstring, statement,
expression, comment) or at random characters, closed by `<|endoftext|>`; that stop label can
weigh more than the others (`--stop-weight`), and the sentinels are never labels.
"""
from __future__ import annotations

import argparse
import ast
import io
import json
import math
import os
import pickle
import random
import re
import time
import tokenize
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from codeseed import corpus
from codeseed.fim import BUNDLED, SPECIAL_TOKENS

EOT = 0  # <|endoftext|>, first special token
PAD_LABEL = -100


@dataclass
class TrainConfig:
    vocab_size: int = 8192
    layers: int = 6
    d_model: int = 192
    heads: int = 6
    ffn: int = 512
    seq_len: int = 256
    batch: int = 16
    peak_lr: float = 2e-3
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.1
    fim_rate: float = 0.7  # the rest are plain windows, which exact mode's coding relies on
    span_rate: float = 0.8  # FIM rows split at an AST span (the rest at random characters)
    psm_rate: float = 0.75  # FIM rows in PSM order, the one fill() prompts in (the rest SPM)
    stop_weight: float = 5.0  # loss weight of the stop label that closes a whole FIM middle
    hours: float = 3.0
    seed: int = 1234
    threads: int = 2
    compile: bool = True
    eval_every_s: float = 600.0
    device: str = "auto"  # cuda when there is one
    workers: int = 0  # processes that build batches (0: the training loop builds them itself)


# One run on a lent GPU (a few minutes of an H200, 16 cores). The model keeps the CPU model's shape:
# exact mode's speed on a 2-core CPU is one forward step of this shape a token (a model twice the
# size halves it), so a GPU buys more tokens seen, not more parameters. Batches are 8x the CPU's
# (a step costs the GPU about the same up to there), built by 14 worker processes.
PRESETS = {"cpu": {}, "gpu": {"batch": 128, "peak_lr": 1e-3, "warmup_steps": 200, "hours": 0.085,
                              "eval_every_s": 60.0, "threads": 2, "workers": 14}}


# ---------------------------------------------------------------- data

def train_tokenizer(texts: list[str], vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def hf_tokenizer(tok):
    from transformers import PreTrainedTokenizerFast
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<fim_pad>",
                                   additional_special_tokens=SPECIAL_TOKENS[1:], clean_up_tokenization_spaces=False)


def prepare(out: Path, cfg: TrainConfig, roots: list[Path], tokenizer: Path | None = None) -> None:
    """Corpus, tokenizer and token stream, cached in `out` (done once per run folder). `tokenizer`: a
    tokenizer.json to keep (a run that starts from an exported model must read text as it did)."""
    from tokenizers import Tokenizer
    files, manifest = corpus.collect(roots)
    train = [f for f in files if not corpus.is_validation(f)]
    val = [f for f in files if corpus.is_validation(f)]
    if tokenizer:
        tok = Tokenizer.from_file(str(tokenizer))
    else:
        rng = random.Random(cfg.seed)
        sample = rng.sample(train, min(len(train), 3000))  # ~40 MB is plenty for an 8k BPE
        tok = train_tokenizer([f.text for f in sample], cfg.vocab_size)
    tok.save(str(out / "tokenizer.json"))
    texts = [f.text for f in train]
    n_tokens = write_token_stream(out, tok, texts)
    with open(out / "texts.pkl", "wb") as fh:
        pickle.dump({"train": texts, "val": [f.text for f in val]}, fh)
    info = {"manifest": json.loads(manifest.to_json()), "train_files": len(train), "val_files": len(val),
            "train_tokens": n_tokens, "train_bytes": sum(len(t.encode()) for t in texts)}
    (out / "corpus.json").write_text(json.dumps(info, indent=2))


def write_token_stream(out: Path, tok, texts: list[str]) -> int:
    """All training files as one uint16 token stream, each closed by <|endoftext|>."""
    ids = tok.encode_batch(texts)
    lengths = np.array([len(e.ids) + 1 for e in ids], dtype=np.int64)
    stream = np.empty(int(lengths.sum()), dtype=np.uint16)
    pos = 0
    for e in ids:
        stream[pos:pos + len(e.ids)] = e.ids
        stream[pos + len(e.ids)] = EOT
        pos += len(e.ids) + 1
    np.save(out / "train_tokens.npy", stream)
    return int(stream.size)


BUNDLE_FILES = ("corpus.json", "tokenizer.json", "texts.pkl")


def write_bundle(out: Path, dest: Path) -> None:
    """The prepared corpus of a run folder as one .tar.xz (~1/5 of its size) to carry to another
    machine, such as a GPU machine that cannot read this one's site-packages."""
    import tarfile
    with tarfile.open(dest, "w:xz", preset=6) as tf:
        for name in BUNDLE_FILES:
            tf.add((out / name).resolve(), arcname=name)


def unpack_bundle(bundle: Path, out: Path) -> None:
    import tarfile
    from tokenizers import Tokenizer
    with tarfile.open(bundle) as tf:
        for name in BUNDLE_FILES:
            member = tf.getmember(name)
            (out / name).write_bytes(tf.extractfile(member).read())
    with open(out / "texts.pkl", "rb") as fh:
        texts = pickle.load(fh)["train"]
    write_token_stream(out, Tokenizer.from_file(str(out / "tokenizer.json")), texts)


_COMMENT = re.compile(r"^[ \t]*#.*$", re.M)
_QUOTES = re.compile(r"[rRuUbBfF]*(\"\"\"|\'\'\'|\"|\')")
# FIM rows split at AST spans draw a kind first, then a span of that kind: drawn uniformly over all
# spans, 78% of rows were tiny expressions and 2% whole bodies (measured on argparse.py), and the
# model never learned where a body or a docstring ends (P(stop) after a true body: 0.013).
# comment_text and docstring_text are the holes seeded mode leaves in free text: a comment's text
# after its marker, a docstring's between its quotes (codeseed/spans.py). Trained on whole comment
# lines and whole docstrings only, the first GPU run's model filled 383 of tinydb's 453 such holes
# with code (309), nothing (73) or quotes (1) (RESULTS.md, fourth landing of issue 15).
SPAN_KINDS = {"block": 0.25, "docstring": 0.05, "docstring_text": 0.15, "statement": 0.2, "expression": 0.15,
              "comment": 0.05, "comment_text": 0.15}
_BLOCK_FIELDS = ("body", "orelse", "finalbody")


def span_candidates(text: str) -> dict[str, list[tuple[int, int]]]:
    """Character spans codeseed fills at unpack time, by kind: blocks (bodies of functions, classes and
    compound statements, and a function's body after its docstring), docstrings, statements,
    expressions and comments; each 1 to 600 characters."""
    spans: dict[str, list[tuple[int, int]]] = {k: [] for k in SPAN_KINDS}
    spans["comment"] = [(m.start(), m.end()) for m in _COMMENT.finditer(text)]
    lines = text.splitlines(keepends=True)
    line_starts = [0]
    for line in lines:
        line_starts.append(line_starts[-1] + len(line))
    spans["comment_text"] = comment_texts(text, line_starts)
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        tree = None

    def offset(lineno: int, col: int) -> int:
        line = lines[lineno - 1] if lineno - 1 < len(lines) else ""
        return line_starts[lineno - 1] + (col if line.isascii() else len(line.encode()[:col].decode("utf-8", "ignore")))

    def add(kind: str, first: ast.AST, last: ast.AST) -> None:
        if last.end_lineno - first.lineno < 30:  # longer ones exceed 600 characters anyway; skip the offsets
            spans[kind].append((offset(first.lineno, first.col_offset), offset(last.end_lineno, last.end_col_offset)))

    for node in ast.walk(tree) if tree else ():
        if isinstance(node, ast.Module):
            continue
        for field in _BLOCK_FIELDS:
            block = getattr(node, field, None)
            if isinstance(block, list) and block and isinstance(block[0], ast.stmt):
                add("block", block[0], block[-1])
        if isinstance(node, ast.stmt):
            is_doc = isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) \
                and isinstance(node.value.value, str)
            add("docstring" if is_doc else "statement", node, node)
            if is_doc and node.end_lineno - node.lineno < 30:
                a, b = offset(node.lineno, node.col_offset), offset(node.end_lineno, node.end_col_offset)
                q = _QUOTES.match(text, a)
                if q and b - a >= q.end() - a + len(q.group(1)) and text[b - len(q.group(1)):b] == q.group(1):
                    spans["docstring_text"].append((q.end(), b - len(q.group(1))))
        elif isinstance(node, ast.expr) and getattr(node, "end_lineno", None):
            add("expression", node, node)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and len(node.body) > 1 \
                and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant):
            add("block", node.body[1], node.body[-1])  # the body a seeded file keeps the docstring of
    return {k: [s for s in v if 0 < s[1] - s[0] <= 600] for k, v in spans.items()}


def comment_texts(text: str, starts: list[int]) -> list[tuple[int, int]]:
    """Character spans of every comment's text (after `#` and the blanks that follow it, to the end
    of its line), trailing comments too, found by Python's tokenizer; whole-line comments only where
    the file does not tokenize. `starts`: the offset of each line of text (span_candidates')."""
    found = []
    try:
        for t in tokenize.generate_tokens(io.StringIO(text).readline):
            if t.type == tokenize.COMMENT:
                found.append((starts[t.start[0] - 1] + t.start[1], t.string))
    except (tokenize.TokenError, SyntaxError, ValueError):
        found = [(m.start() + m.group().index("#"), m.group().strip()) for m in _COMMENT.finditer(text)]
    out = []
    for at, comment in found:
        body = comment[1:].rstrip("\r")
        a = at + 1 + len(body) - len(body.lstrip(" \t"))
        if a < at + 1 + len(body):
            out.append((a, at + 1 + len(body)))
    return out


class Batcher:
    """Yields (input_ids, labels, weights) of shape (batch, seq_len): plain windows and FIM rows."""

    MAX_MIDDLE = 120  # tokens of middle per FIM row; longer middles are cut and get no stop label

    def __init__(self, out: Path, tok, cfg: TrainConfig, rng: np.random.Generator, part: tuple[int, int] = (0, 1)):
        """part (k, n): FIM rows come from files k, k + n, k + 2n, ... only. Each file's spans are found
        once (an AST parse: ~35 ms a file, 6 minutes for the corpus), so n workers each take a share."""
        self.stream = np.load(out / "train_tokens.npy", mmap_mode="r")
        with open(out / "texts.pkl", "rb") as fh:
            self.texts = pickle.load(fh)["train"]
        self.weights = np.array([len(t) for t in self.texts], dtype=np.float64)
        self.weights[np.arange(len(self.texts)) % part[1] != part[0]] = 0.0
        self.weights /= self.weights.sum()
        self.tok, self.cfg, self.rng = tok, cfg, rng
        self.special = {s: tok.token_to_id(s) for s in SPECIAL_TOKENS}
        # The sentinel that closes a prefix or suffix is never a label: where a prompt piece is cut is
        # chance, and predicting it taught the model to end pieces anywhere (it ranked <fim_middle>
        # second after a true body). The stop token after a whole middle is the label that matters.
        self.sentinels = {self.special[s] for s in (BUNDLED.prefix, BUNDLED.suffix, BUNDLED.middle)}
        self.kinds, kind_p = list(SPAN_KINDS), np.array(list(SPAN_KINDS.values()))
        self.kind_p = kind_p / kind_p.sum()
        self._spans: dict[int, dict[str, np.ndarray]] = {}

    def plain_row(self) -> tuple[list[int], list[int], int | None]:
        n = self.cfg.seq_len + 1
        start = int(self.rng.integers(0, self.stream.size - n))
        w = self.stream[start:start + n].astype(np.int64).tolist()
        return w[:-1], w[1:], None

    def pick_span(self, i: int) -> tuple[int, int] | None:
        if i not in self._spans:  # as int32 arrays: the whole corpus has ~60M spans
            self._spans[i] = {k: np.array(v, dtype=np.int32).reshape(-1, 2)
                              for k, v in span_candidates(self.texts[i]).items()}
        spans = self._spans[i][self.kinds[int(self.rng.choice(len(self.kinds), p=self.kind_p))]]
        return tuple(int(c) for c in spans[int(self.rng.integers(len(spans)))]) if len(spans) else None

    def fim_row(self) -> tuple[list[int], list[int], int | None]:
        """A FIM row, and the position of its stop label (None when the middle was cut)."""
        cfg, rng = self.cfg, self.rng
        i = int(rng.choice(len(self.texts), p=self.weights))
        text = self.texts[i]
        span = self.pick_span(i) if rng.random() < cfg.span_rate else None
        if span:
            a, b = span
        else:  # random character split
            a = int(rng.integers(0, max(1, len(text))))
            b = min(len(text), a + int(rng.integers(0, 400)))
        pre = self.tok.encode(text[max(0, a - 1500):a]).ids
        mid = self.tok.encode(text[a:b]).ids
        whole = len(mid) <= self.MAX_MIDDLE
        mid = mid[:self.MAX_MIDDLE]
        suf = self.tok.encode(text[b:b + 1500]).ids
        room = cfg.seq_len + 1 - len(mid) - 4
        # Leave a random part of the row empty after the stop. Rows filled to the brim put nearly every
        # stop label at the last position, and the model learned that instead of where a middle ends:
        # with the weights of 2026-11-27, median P(stop) after a true function body was 0.993 when it
        # ended at position 255, 0.008 at position 254 (12 bodies of eval-public).
        room -= int(rng.integers(0, max(1, room - 32)))
        n_suf = min(len(suf), max(room // 3, room - len(pre)))
        n_pre = min(len(pre), room - n_suf)
        pre, suf = pre[len(pre) - n_pre:], suf[:n_suf]
        sp = self.special
        if rng.random() < cfg.psm_rate:  # PSM, the order fill() prompts in
            seq = [sp[BUNDLED.prefix]] + pre + [sp[BUNDLED.suffix]] + suf + [sp[BUNDLED.middle]]
        else:  # SPM
            seq = [sp[BUNDLED.suffix]] + suf + [sp[BUNDLED.prefix]] + pre + [sp[BUNDLED.middle]]
        seq = seq + mid + [EOT]
        stop = len(seq) - 2  # the label position of the stop token
        labels = [PAD_LABEL if t in self.sentinels else t for t in seq[1:]]
        labels += [PAD_LABEL] * (cfg.seq_len + 1 - len(seq))
        if not whole:  # a cut middle must not teach the model to stop mid-span
            labels[stop], stop = PAD_LABEL, None
        seq = seq[:-1] + [EOT] * (cfg.seq_len + 1 - len(seq))
        return seq[:cfg.seq_len], labels[:cfg.seq_len], stop

    def batch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rows = [self.fim_row() if self.rng.random() < self.cfg.fim_rate else self.plain_row()
                for _ in range(self.cfg.batch)]
        x = torch.tensor([r[0] for r in rows], dtype=torch.long)
        y = torch.tensor([r[1] for r in rows], dtype=torch.long)
        w = torch.ones(y.shape)
        for r, (_, _, stop) in enumerate(rows):
            if stop is not None and stop < w.shape[1]:
                w[r, stop] = self.cfg.stop_weight
        return x, y, w


class BatchStream(torch.utils.data.IterableDataset):
    """Batcher.batch() forever, in each DataLoader worker with a generator of its own (seeded by the
    run's seed, its step and the worker's number: a resumed run draws new batches)."""

    def __init__(self, out: Path, cfg: TrainConfig, seed: list[int]):
        self.out, self.cfg, self.seed = out, cfg, seed

    def __iter__(self):
        from tokenizers import Tokenizer
        info = torch.utils.data.get_worker_info()
        k, n = (info.id, info.num_workers) if info else (0, 1)
        rng = np.random.default_rng(self.seed + [k])
        batcher = Batcher(self.out, Tokenizer.from_file(str(self.out / "tokenizer.json")), self.cfg, rng, part=(k, n))
        while True:
            yield batcher.batch()


def batches(out: Path, cfg: TrainConfig, seed: list[int]):
    stream = BatchStream(out, cfg, seed)
    if cfg.workers <= 0:
        return iter(stream)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # the workers are the parallelism
    return iter(torch.utils.data.DataLoader(stream, batch_size=None, num_workers=cfg.workers, prefetch_factor=8,
                                            pin_memory=torch.cuda.is_available()))


# ---------------------------------------------------------------- model

def make_model(cfg: TrainConfig):
    from transformers import LlamaConfig, LlamaForCausalLM
    conf = LlamaConfig(vocab_size=cfg.vocab_size, hidden_size=cfg.d_model, intermediate_size=cfg.ffn,
                       num_hidden_layers=cfg.layers, num_attention_heads=cfg.heads, num_key_value_heads=cfg.heads,
                       max_position_embeddings=1024, tie_word_embeddings=True, bos_token_id=EOT, eos_token_id=EOT,
                       pad_token_id=SPECIAL_TOKENS.index("<fim_pad>"), rope_theta=10000.0)
    return LlamaForCausalLM(conf)


def lr_at(cfg: TrainConfig, step: int, elapsed_s: float) -> float:
    if step < cfg.warmup_steps:
        return cfg.peak_lr * (step + 1) / cfg.warmup_steps
    frac = min(1.0, elapsed_s / (cfg.hours * 3600))
    return cfg.peak_lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * frac)))


@torch.no_grad()
def validation_bpb(model, tok, texts: list[str], max_bytes: int = 300_000, seq_len: int = 256,
                   device: str = "cpu") -> float:
    """Bits per byte on held-out corpus files, in non-overlapping windows (a rough, fast curve)."""
    model.eval()
    bits, nbytes = 0.0, 0
    for text in texts:
        if nbytes >= max_bytes:
            break
        ids = [EOT] + tok.encode(text).ids
        for s in range(0, len(ids) - 1, seq_len):
            chunk = torch.tensor([ids[s:s + seq_len + 1]], device=device)
            logits = model(chunk[:, :-1]).logits.float()
            bits += torch.nn.functional.cross_entropy(logits[0], chunk[0, 1:], reduction="sum").item() / math.log(2)
        nbytes += len(text.encode())
    model.train()
    return bits / nbytes if nbytes else float("nan")


def export(model, tok, dest: Path, meta: dict) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(dest, safe_serialization=True)
    hf_tokenizer(tok).save_pretrained(dest)
    (dest / "training.json").write_text(json.dumps(meta, indent=2))


CORPUS_CACHE = BUNDLE_FILES + ("train_tokens.npy",)  # a run folder's prepared corpus


def is_exported(folder: Path) -> bool:
    """A Hugging Face folder written by --export (weights and tokenizer), not a run folder."""
    return (folder / "model.safetensors").is_file() and not (folder / "ckpt.pt").exists()


def kept_tokenizer(init_from: Path | None) -> Path | None:
    """The tokenizer.json a run that starts from an exported model must read text with, else None."""
    return init_from / "tokenizer.json" if init_from is not None and is_exported(init_from) else None


def train(out: Path, cfg: TrainConfig, roots: list[Path], init_from: Path | None = None,
          bundle: Path | None = None) -> None:
    from tokenizers import Tokenizer
    torch.set_num_threads(cfg.threads)
    dev = torch.device("cuda" if cfg.device in ("auto", "cuda") and torch.cuda.is_available() else "cpu")
    out.mkdir(parents=True, exist_ok=True)
    if bundle and not (out / "corpus.json").exists():
        print(f"unpacking corpus bundle {bundle} ...", flush=True)
        unpack_bundle(bundle, out)
    exported = kept_tokenizer(init_from) is not None
    if init_from and not exported and not (out / "ckpt.pt").exists():
        # A continuation is a new run (fresh optimizer and LR schedule) that starts from another
        # run's weights; it must use that run's tokenizer and corpus, so it links them.
        for name in CORPUS_CACHE:
            if not (out / name).exists():
                (out / name).symlink_to((init_from / name).resolve())
    if not (out / "corpus.json").exists():
        print("preparing corpus and tokenizer ...", flush=True)
        prepare(out, cfg, roots, tokenizer=kept_tokenizer(init_from))
    if exported and Tokenizer.from_file(str(out / "tokenizer.json")).to_str() != \
            Tokenizer.from_file(str(init_from / "tokenizer.json")).to_str():
        raise SystemExit(f"{out}: its corpus was tokenized otherwise than {init_from} reads text")
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    tok = Tokenizer.from_file(str(out / "tokenizer.json"))
    with open(out / "texts.pkl", "rb") as fh:
        val_texts = pickle.load(fh)["val"]
    torch.manual_seed(cfg.seed)
    model = make_model(cfg).to(dev)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.peak_lr, betas=(0.9, 0.95), eps=1e-8)
    state = {"step": 0, "elapsed_s": 0.0, "tokens": 0, "curve": []}
    ckpt = out / "ckpt.pt"
    if ckpt.exists():
        saved = torch.load(ckpt, weights_only=False, map_location=dev)
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["opt"])
        state = saved["state"]
        print(f"resumed at step {state['step']}, {state['elapsed_s'] / 60:.1f} min", flush=True)
    elif exported:
        from safetensors.torch import load_file
        missing, unexpected = model.load_state_dict(load_file(init_from / "model.safetensors"), strict=False)
        if unexpected or set(missing) - {"lm_head.weight"}:  # tied to the embeddings, not saved
            raise SystemExit(f"{init_from}: not this model's shape (missing {missing}, unexpected {unexpected})")
        model.tie_weights()
        meta = json.loads((init_from / "training.json").read_text()) if (init_from / "training.json").exists() else {}
        st = meta.get("state", {})
        state["parent"] = {"run": str(init_from), "steps": st.get("step"), "tokens": st.get("tokens"),
                           "minutes": round(st.get("elapsed_s", 0) / 60, 1), "parent": st.get("parent")}
        print(f"starting from the exported model {init_from} (step {st.get('step')})", flush=True)
    elif init_from:
        parent = torch.load(init_from / "ckpt.pt", weights_only=False, map_location=dev)
        model.load_state_dict(parent["model"])
        state["parent"] = {"run": str(init_from), "steps": parent["state"]["step"],
                           "tokens": parent["state"]["tokens"], "minutes": round(parent["state"]["elapsed_s"] / 60, 1),
                           "parent": parent["state"].get("parent")}
        print(f"starting from the weights of {init_from} (step {parent['state']['step']})", flush=True)
    data = batches(out, cfg, [cfg.seed, state["step"]])
    step_fn = torch.compile(model) if cfg.compile else model
    model.train()
    t_last, t_eval = time.time(), time.time()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params / 1e6:.2f}M parameters, on {dev}", flush=True)

    def save() -> None:
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "state": state, "cfg": asdict(cfg)},
                   out / "ckpt.tmp")
        os.replace(out / "ckpt.tmp", ckpt)

    while state["elapsed_s"] < cfg.hours * 3600:
        x, y, w = next(data)
        x, y, w = (t.to(dev, non_blocking=True) for t in (x, y, w))
        lr = lr_at(cfg, state["step"], state["elapsed_s"])
        for g in opt.param_groups:
            g["lr"] = lr
        with torch.autocast(dev.type, dtype=torch.bfloat16):
            logits = step_fn(x).logits
        token_loss = torch.nn.functional.cross_entropy(logits.float().view(-1, logits.size(-1)), y.view(-1),
                                                       ignore_index=PAD_LABEL, reduction="none")
        w = w.view(-1) * (y.view(-1) != PAD_LABEL)
        loss = (token_loss * w).sum() / w.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        now = time.time()
        state["elapsed_s"] += now - t_last
        t_last = now
        state["step"] += 1
        state["tokens"] += x.numel()
        if state["step"] % 50 == 0:
            print(f"step {state['step']} loss {loss.item():.3f} lr {lr:.2e} tokens {state['tokens'] / 1e6:.1f}M "
                  f"{state['elapsed_s'] / 60:.1f} min", flush=True)
        if now - t_eval > cfg.eval_every_s:
            bpb = validation_bpb(model, tok, val_texts, seq_len=cfg.seq_len, device=dev)
            state["curve"].append({"step": state["step"], "minutes": round(state["elapsed_s"] / 60, 1),
                                   "tokens": state["tokens"], "val_bpb": round(bpb, 4)})
            print(f"eval step {state['step']} val bits/byte {bpb:.4f}", flush=True)
            save()
            t_eval = t_last = time.time()  # evaluation time is not training time
    bpb = validation_bpb(model, tok, val_texts, seq_len=cfg.seq_len, device=dev)
    state["curve"].append({"step": state["step"], "minutes": round(state["elapsed_s"] / 60, 1),
                           "tokens": state["tokens"], "val_bpb": round(bpb, 4)})
    save()
    print(f"done: val bits/byte {bpb:.4f}", flush=True)


def export_checkpoint(out: Path, dest: Path) -> None:
    from tokenizers import Tokenizer
    saved = torch.load(out / "ckpt.pt", weights_only=False, map_location="cpu")
    cfg = TrainConfig(**{**asdict(TrainConfig()), **saved["cfg"]})
    model = make_model(cfg)
    model.load_state_dict(saved["model"])
    tok = Tokenizer.from_file(str(out / "tokenizer.json"))
    meta = {"config": saved["cfg"], "state": saved["state"],
            "corpus": json.loads((out / "corpus.json").read_text()), "torch": torch.__version__}
    export(model, tok, dest, meta)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m codeseed.train", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="run folder (checkpoints, corpus cache)")
    ap.add_argument("--corpus", type=Path, action="append", help="train on these folders instead of stdlib+site-packages")
    ap.add_argument("--export", type=Path, help="write the latest checkpoint as a Hugging Face folder and exit")
    ap.add_argument("--init-from", type=Path,
                    help="start a new run from this run folder's weights, corpus and tokenizer")
    ap.add_argument("--write-bundle", type=Path, help="write the run folder's prepared corpus as a .tar.xz and exit")
    ap.add_argument("--bundle", type=Path, help="prepare the run folder from such a bundle (no corpus walk)")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="cpu",
                    help="defaults for the settings below (gpu: a larger model for one run on a GPU)")
    preset = PRESETS[ap.parse_known_args(argv)[0].preset]
    for f, v in asdict(TrainConfig()).items():
        v = preset.get(f, v)
        ap.add_argument("--" + f.replace("_", "-"), type=type(v) if not isinstance(v, bool) else int, default=v)
    args = ap.parse_args(argv)
    if args.export:
        export_checkpoint(args.out, args.export)
        return
    cfg = TrainConfig(**{f: getattr(args, f) for f in asdict(TrainConfig())})
    cfg.compile = bool(cfg.compile)
    roots = args.corpus or corpus.default_roots()
    if args.write_bundle:
        if not (args.out / "corpus.json").exists():  # prepare it, read as --init-from's model reads text
            args.out.mkdir(parents=True, exist_ok=True)
            prepare(args.out, cfg, roots, tokenizer=kept_tokenizer(args.init_from))
        write_bundle(args.out, args.write_bundle)
        return
    train(args.out, cfg, roots, init_from=args.init_from, bundle=args.bundle)


if __name__ == "__main__":
    main()
