"""The model API: scoring, fill-in-the-middle, FIM formats, and the shipped model offline."""
from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from codeseed import fim
from codeseed.model import CodeModel, bundled_path
from tests.test_archive import FIXTURE


def test_token_bits_follow_the_float_model_over_several_windows(tiny_model):
    """token_bits slides the engine's window over a long file; on the first window it must agree with
    the float model (transformers) up to the engine's quantization."""
    from transformers import AutoModelForCausalLM
    text = (FIXTURE / "inventory" / "store.py").read_text()
    ids = tiny_model.encode(text)
    assert len(ids) > 3 * tiny_model.context  # several windows
    bits = tiny_model.token_bits(ids)
    assert bits.shape == (len(ids),) and np.all(bits > 0)
    first = [tiny_model.bos] + ids[:tiny_model.context - 1]
    hf = AutoModelForCausalLM.from_pretrained(tiny_model.path, dtype=torch.float64).eval()
    with torch.no_grad():
        logp = torch.log_softmax(hf(torch.tensor([first])).logits[0], -1)
    direct = -logp[torch.arange(len(first) - 1), torch.tensor(first[1:])].numpy() / np.log(2)
    assert np.abs(bits[:len(direct)] - direct).mean() < 0.05
    assert tiny_model.score([text])[0].sum() == pytest.approx(bits.sum())


def test_fill_is_deterministic_and_capped(tiny_model):
    # Deterministic for the same call, and for any batch (tests/test_engine.py)
    text = (FIXTURE / "inventory" / "models.py").read_text()
    cuts = [(200, 260), (500, 540), (900, 1000)]
    pre = [text[:a] for a, b in cuts]
    suf = [text[b:] for a, b in cuts]
    together = tiny_model.fill(pre, suf, max_tokens=[5, 8, 12])
    generated = tiny_model.last_fill_tokens
    assert together == tiny_model.fill(pre, suf, max_tokens=[5, 8, 12])
    alone = tiny_model.fill(pre[:1], suf[:1], max_tokens=5)
    assert alone == tiny_model.fill(pre[:1], suf[:1], max_tokens=5)
    # the cap counts generated tokens; re-encoding the text can differ (a token cut mid-character
    # decodes to U+FFFD), so the count comes from fill itself
    assert all(n <= cap for n, cap in zip(generated, [5, 8, 12]))


def test_fill_never_repeats_an_ngram_within_a_middle(tiny_model):
    text = (FIXTURE / "inventory" / "models.py").read_text()
    pre, suf = [text[:300], text[:800]], [text[300:], text[800:]]
    stops = tiny_model._fim_ids[3]

    def repeats(ids: list[int], n: int) -> bool:
        grams = [tuple(ids[i:i + n]) for i in range(len(ids) - n + 1)]
        return len(grams) != len(set(grams))

    plain = tiny_model.fill(pre, suf, max_tokens=40, no_repeat=0)
    plain_ids = tiny_model.last_fill_ids
    assert any(repeats(ids, 3) for ids in plain_ids)  # the tiny model loops: the ban has work to do
    banned = tiny_model.fill(pre, suf, max_tokens=40, no_repeat=3)
    assert banned != plain
    for ids in tiny_model.last_fill_ids:
        assert not repeats(ids, 3) and not stops & set(ids)


def test_fill_reports_stops_and_caps_apart(tiny_model, monkeypatch):
    """A row that reaches its cap has not stopped by itself, whatever the other rows' caps."""
    text = (FIXTURE / "inventory" / "models.py").read_text()
    pre, suf = [text[:200], text[:500], text[:900]], [text[260:], text[540:], text[1000:]]
    pre_id, suf_id, mid_id, _ = tiny_model._fim_ids
    monkeypatch.setitem(tiny_model.__dict__, "_fim_ids", (pre_id, suf_id, mid_id, frozenset()))
    mids = tiny_model.fill(pre, suf, max_tokens=[3, 6, 9])
    assert tiny_model.last_fill_stopped == [False, False, False]
    assert all(mids)  # no stop token: each row ran to its cap
    every = frozenset(range(tiny_model.vocab_size))
    monkeypatch.setitem(tiny_model.__dict__, "_fim_ids", (pre_id, suf_id, mid_id, every))
    assert tiny_model.fill(pre, suf, max_tokens=[3, 6, 9]) == ["", "", ""]
    assert tiny_model.last_fill_stopped == [True, True, True]


@pytest.mark.parametrize("fmt", fim.FORMATS, ids=lambda f: f.name)
def test_fim_formats_detected_from_vocabulary(fmt):
    vocab = {t: i for i, t in enumerate(["a", "b", fmt.prefix, fmt.suffix, fmt.middle, *fmt.stops])}
    assert fim.detect(vocab).prefix == fmt.prefix
    assert fmt.prompt("P", "S") == f"{fmt.prefix}P{fmt.suffix}S{fmt.middle}"


def test_model_without_fim_tokens_is_a_clear_error():
    with pytest.raises(fim.NoFimError, match="no fill-in-the-middle tokens"):
        fim.detect({"a": 0, "<|endoftext|>": 1})


def test_shipped_model_loads_and_scores_with_the_network_cut():
    assert (bundled_path() / "model.safetensors").is_file(), "the bundled model is missing"
    code = ("from codeseed.model import CodeModel; m = CodeModel(); "
            "b = m.score(['def add(a, b):\\n    return a + b\\n'])[0]; "
            "assert m.fim_format.name == 'starcoder'; print(m.id.sha256, float(b.sum()) / 30)")
    cmd = [sys.executable, "-c", code]
    if shutil.which("unshare") and subprocess.run(["unshare", "-n", "true"]).returncode == 0:
        cmd = ["unshare", "-n"] + cmd
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    sha, bpb = r.stdout.split()
    assert sha == CodeModel().id.sha256
    assert 0 < float(bpb) < 3.0  # a trained model, not random weights (~13 bits/byte)
