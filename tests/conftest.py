"""Shared fixtures: a tiny model made on the fly, so LM tests need neither the bundled weights nor time."""
from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def make_tiny_model(dest: Path, seed: int = 0, layers: int = 2, steps: int = 150) -> Path:
    """A tiny Llama with a BPE tokenizer, both trained briefly on the fixtures and a frozen copy of
    codeseed's own code (tests/data/tiny_corpus.json.xz): trained on the live source, every edit to
    codeseed, a comment included, changed the model and with it the fills some tests rely on."""
    import json
    import lzma

    import torch

    from codeseed.train import TrainConfig, export, make_model, train_tokenizer
    texts = [p.read_text("utf-8") for p in sorted((ROOT / "fixtures").rglob("*"))
             if p.is_file() and p.suffix in (".py", ".js", ".go", ".c", ".md")]
    texts += json.loads(lzma.decompress((ROOT / "tests" / "data" / "tiny_corpus.json.xz").read_bytes()))
    cfg = TrainConfig(vocab_size=512, layers=layers, d_model=32, heads=2, ffn=64, seq_len=64)
    tok = train_tokenizer(texts, cfg.vocab_size)
    torch.manual_seed(seed)
    model = make_model(cfg)
    if steps:  # a few seconds of training on the same texts, so the LM codec can beat zstd on fixtures
        ids = [i for t in texts for i in tok.encode(t).ids + [0]]
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
        gen = torch.Generator().manual_seed(seed)
        for _ in range(steps):
            starts = torch.randint(0, len(ids) - 65, (8,), generator=gen).tolist()
            x = torch.tensor([ids[s:s + 65] for s in starts])
            loss = torch.nn.functional.cross_entropy(
                model(x[:, :-1]).logits.reshape(-1, cfg.vocab_size), x[:, 1:].reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
    export(model, tok, dest, {"config": {"seq_len": cfg.seq_len}, "note": "test model"})
    return dest


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture(scope="session")
def tiny_model(tiny_model_path):
    from codeseed.model import CodeModel
    return CodeModel(tiny_model_path)


@pytest.fixture
def seeds_kept(monkeypatch):
    """Pack keeps its seeds even where the exact archive would be as small (packing.seeds_pay): for
    tests of what seeded regeneration does, on files too small for seeds to pay."""
    from codeseed import packing
    monkeypatch.setattr(packing, "seeds_pay", lambda seeded_bytes, exact_bytes: True)


@pytest.fixture
def prose_fills(monkeypatch):
    """The tiny model writes no text: its fills of comment and docstring holes are identifiers such
    as 'ffffffpp', junk that repair refuses, so nothing would be seeded. With this fixture a hole
    right after a comment marker or opening quotes is filled with a short sentence, the others by
    the model; pack and unpack both fill through it (seeded.raw_fill, and raw_fills for batches)."""
    from codeseed import seeded
    real, real_many = seeded.raw_fill, seeded.raw_fills

    def prose(prefix: bytes) -> bool:
        return prefix.rstrip(b" ").endswith((b"#", b'"""', b"'''"))

    def fill(model, prefix: bytes, suffix: bytes, hint: int, no_repeat: int) -> str:
        return "a note" if prose(prefix) else real(model, prefix, suffix, hint, no_repeat)

    def fills(model, holes, no_repeat: int) -> list[str]:
        rest = iter(real_many(model, [h for h in holes if not prose(h[0])], no_repeat))
        return ["a note" if prose(h[0]) else next(rest) for h in holes]

    monkeypatch.setattr(seeded, "raw_fill", fill)
    monkeypatch.setattr(seeded, "raw_fills", fills)
