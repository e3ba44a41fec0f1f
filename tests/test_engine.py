"""The exact engine, the integer entropy model and the lockstep LM stream: same numbers everywhere."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from codeseed import cm, engine, lmcodec

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "sample-py"
TEXTS = [p.read_text() for p in sorted(FIXTURE.rglob("*.py"))]


def _logits(m: engine.ExactLM, rows: list[list[int]], block: int, window: int = 16) -> list[torch.Tensor]:
    """Each row as one segment, fed `block` tokens a call; logits per position."""
    n = max(len(r) for r in rows)
    tok = torch.zeros(len(rows), n, dtype=torch.long)
    seg = torch.full((len(rows), n), -1, dtype=torch.long)
    for i, r in enumerate(rows):
        tok[i, :len(r)] = torch.tensor(r)
        seg[i, :len(r)] = i
    pos = torch.arange(n).expand(len(rows), n).contiguous()
    cache = m.new_cache(len(rows), window)
    out = [m.logits(*m.forward(tok[:, a:a + block], pos[:, a:a + block], seg[:, a:a + block], cache))
           for a in range(0, n, block)]
    full = torch.cat(out, dim=1)
    return [full[i, :len(r)] for i, r in enumerate(rows)]


def test_engine_gives_the_same_bits_for_any_blocking_and_batch(tiny_model):
    m = tiny_model.engine
    ids = tiny_model.encode(TEXTS[0])[:90]
    other = tiny_model.encode(TEXTS[1])[:60]
    whole = _logits(m, [ids], block=len(ids))[0]
    for block in (1, 7, 33):
        assert torch.equal(_logits(m, [ids], block)[0], whole)
    # beside another row of another length, the row's numbers do not move
    assert torch.equal(_logits(m, [other, ids], block=5)[1], whole)
    # the sliding window is really used: 90 tokens through a window of 16
    assert not torch.equal(_logits(m, [ids], block=len(ids), window=64)[0], whole)


def test_torch_path_equals_the_cpu_kernels(tiny_model):
    """Off the CPU (a GPU) every stage runs as torch tensor ops, and without torch's int8 GEMM the
    linear layers run in float32: the same bits as the CPU's compiled kernels and int8 GEMM."""
    m = tiny_model.engine
    ids = tiny_model.encode(TEXTS[0])[:70]
    want = _logits(m, [ids], block=9)[0]
    try:
        m.cpu_kernel, m.int_mm = False, False
        assert torch.equal(_logits(m, [ids], block=9)[0], want)
        assert torch.equal(_logits(m, [ids], block=1)[0], want)
    finally:
        m.cpu_kernel, m.int_mm = True, engine._has_int_mm(m.device)


def test_cpu_kernels_equal_the_torch_path_with_biases_and_grouped_heads(tiny_model_path):
    """The kernels' branches the tiny model does not take: Qwen2-style biases on every linear layer
    (q/k/v, o, down) and grouped-query attention (two query heads a key head), stepwise and in
    blocks, against the torch path."""
    m = engine.ExactLM(tiny_model_path)
    gen = torch.Generator().manual_seed(7)
    for blk in m.blocks:
        for name in ("qkv", "o", "down"):
            wq, ws, _ = blk[name]
            blk[name] = (wq, ws, torch.randn(wq.shape[0], generator=gen) * 0.3)
    if m.heads % 2 == 0:  # every second key head serves two query heads
        kv = m.heads // 2
        for blk in m.blocks:
            wq, ws, b = blk["qkv"]
            q, k, v = (slice(0, m.heads * m.head_dim), slice(m.heads * m.head_dim, m.heads * m.head_dim + kv * m.head_dim),
                       slice(2 * m.heads * m.head_dim, 2 * m.heads * m.head_dim + kv * m.head_dim))
            blk["qkv"] = tuple(torch.cat([t[q], t[k], t[v]]) for t in (wq, ws, b))
        m.kv_heads = kv
    ids = torch.randint(0, m.vocab, (3, 40), generator=gen)
    pos = torch.arange(40).expand(3, 40).contiguous()
    seg = torch.zeros(3, 40, dtype=torch.long)
    seg[2, 20:] = 1  # a second segment in row 2
    pos[2, 20:] -= 20
    outs = []
    for cpu in (True, False):
        m.cpu_kernel = cpu
        cache = m.new_cache(3, 16)
        steps = [m.logits(*m.forward(ids[:, i:i + 1], pos[:, i:i + 1], seg[:, i:i + 1], cache)) for i in range(25)]
        steps.append(m.logits(*m.forward(ids[:, 25:], pos[:, 25:], seg[:, 25:], cache)))
        outs.append(torch.cat(steps, dim=1))
    assert torch.equal(outs[0], outs[1])


def test_engine_tracks_the_float_model(tiny_model):
    """Quantization moves the distribution only a little: KL from the float model's, per token."""
    from transformers import AutoModelForCausalLM
    ids = [tiny_model.bos] + tiny_model.encode(TEXTS[0])[:60]
    hf = AutoModelForCausalLM.from_pretrained(tiny_model.path, dtype=torch.float64).eval()
    with torch.no_grad():
        ref = torch.log_softmax(hf(torch.tensor([ids])).logits[0], -1)
    got = torch.log_softmax(_logits(tiny_model.engine, [ids], block=len(ids), window=1024)[0], -1)
    kl = (ref.exp() * (ref - got)).sum(-1).mean().item()
    assert kl < 0.01  # nats per token; measured ~1e-3 on the tiny model


ENGINE_DIGEST = """
import hashlib, sys, torch
sys.path.insert(0, {root!r})
torch.set_num_threads(int(sys.argv[1]))
from codeseed.engine import ExactLM
m = ExactLM({path!r})
tok = torch.tensor([[{ids}]])
pos = torch.arange(tok.shape[1])[None]
acc, scale = m.forward(tok, pos, torch.zeros_like(pos), m.new_cache(1, 16))
print(hashlib.sha256(m.logits(acc, scale).numpy().tobytes()).hexdigest())
"""


def test_engine_is_independent_of_threads_and_cpu_kernels(tiny_model, tiny_model_path):
    """The bits must not depend on the thread count, the kernels torch picks (generic ones on a CPU
    without AVX2) or MKL's code path (the float codec of format 2 failed under both)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ids = ",".join(map(str, tiny_model.encode(TEXTS[0])[:70]))
    code = ENGINE_DIGEST.format(root=root, path=str(tiny_model_path), ids=ids)
    digests = set()
    for threads, env in (("1", {}), ("2", {}), ("2", {"ATEN_CPU_CAPABILITY": "default"}),
                         ("2", {"MKL_CBWR": "COMPATIBLE"})):
        out = subprocess.run([sys.executable, "-c", code, threads], env={**os.environ, **env},
                             capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        digests.add(out.stdout.strip())
    assert len(digests) == 1


def test_tables_are_built_without_libm():
    sig = engine.sigmoid_table()
    x = np.arange(len(sig)) / engine.SIGMOID_STEPS - engine.SIGMOID_RANGE
    assert np.abs(sig - 1 / (1 + np.exp(-x))).max() < 1e-12
    cos, sin = engine.rope_table(10000.0, 16, 5000)
    p = np.arange(5000)[:, None] * 10000.0 ** (-np.arange(0, 16, 2) / 16)
    assert np.abs(cos - np.cos(p)).max() < 1e-5 and np.abs(sin - np.sin(p)).max() < 1e-5
    t = engine.decay_table(engine.OUT_STEPS, engine.OUT_SCALE_BITS, 1)
    assert t[0] == 1 << engine.OUT_SCALE_BITS and t[-1] == 1 and np.all(np.diff(t) <= 0)
    k = np.arange(2000)
    assert np.allclose(t[:2000], 2 ** 24 * np.exp(-k / engine.OUT_STEPS), rtol=1e-6)
    # attention's last weight, a masked key's, is 0: engine_cpu.attend skips masked keys for it
    assert engine.decay_table(engine.ATT_STEPS, engine.ATT_SCALE_BITS, 0)[-1] == 0
    sq, st = cm.squash_table(), cm.stretch_table()
    assert sq[2047] == 2048 and np.all(np.diff(sq) >= 0) and abs(st[2048]) <= 1


def test_range_coder_round_trip_with_extreme_frequencies():
    """Totals from 2 to 2^45, symbols of frequency 1 beside huge ones: carries ripple, nothing lost."""
    rng = np.random.default_rng(7)
    V, n = 50, 4000
    freqs = rng.integers(1, 1 << rng.integers(1, 40, size=(n, 1)), size=(n, V)).astype(np.int64)
    freqs[::7, 3] = 1 << 44
    syms = np.array([rng.choice(V, p=f / f.sum()) if i % 5 else rng.integers(V) for i, f in enumerate(freqs)])
    cum = np.array([f[:s].sum() for f, s in zip(freqs, syms)], dtype=np.int64)
    out = np.zeros(8 * n + 64, np.uint8)
    coder = cm.encoder_start()
    cm.encode_symbols(coder, out, cum, freqs[np.arange(n), syms], freqs.sum(1))
    data = out[:cm.encoder_finish(coder, out)]
    ideal = -np.log2(freqs[np.arange(n), syms] / freqs.sum(1)).sum() / 8
    assert len(data) <= ideal + 16
    dec = cm.decoder_start(data)
    got = [cm._rc_decode(dec, data, f, int(f.sum())) for f in freqs]
    assert got == syms.tolist()


def _round_trip(tiny_model, token_lists, settings, known=None):
    eng = tiny_model.engine
    sc = lmcodec.Scorer(eng, tiny_model.bos, token_lists, settings)
    coded = [known is None or k is None for k in (known or [None] * len(token_lists))]
    payload = sc.payload(coded)
    trace: list = []
    got = lmcodec.decode(eng, tiny_model.bos, [len(t) for t in token_lists],
                         known or [None] * len(token_lists), payload, settings, trace=trace)
    return sc, payload, got, trace


@pytest.mark.parametrize("rows,chunk", [(1, 10_000), (3, 40), (16, 25)])
def test_lm_stream_round_trip_for_any_rows_and_chunks(tiny_model, rows, chunk):
    toks = [tiny_model.encode(t) for t in TEXTS]
    toks = [t for t in toks if t] + [[5]]  # a one-token file too
    s = lmcodec.StreamSettings(window=32, rows=rows, chunk=chunk)
    sc, payload, got, _ = _round_trip(tiny_model, toks, s)
    assert got == toks
    assert abs(len(payload) - sc.file_bits.sum() / 8) < 16


def test_files_stored_another_way_are_fed_not_coded(tiny_model):
    toks = [tiny_model.encode(t) for t in TEXTS if t]
    s = lmcodec.StreamSettings(window=32, rows=3, chunk=60)
    known = [None] * len(toks)
    known[1] = toks[1]
    full, _, _, _ = _round_trip(tiny_model, toks, s)
    sc, payload, got, _ = _round_trip(tiny_model, toks, s, known)
    assert got == toks
    assert len(payload) < len(full.payload([True] * len(toks))) - full.file_bits[1] / 8 + 16


def test_teacher_forced_encoder_frequencies_equal_the_stepwise_decoder(tiny_model):
    """The encoder scores whole blocks at once, the decoder one step at a time: every symbol's
    (cum, freq, total) must be the same integers."""
    text = (FIXTURE / "inventory" / "store.py").read_text()
    toks = [tiny_model.encode(text), tiny_model.encode(TEXTS[0])]
    s = lmcodec.StreamSettings(window=32, rows=2, chunk=10_000)
    sc, _, got, trace = _round_trip(tiny_model, toks, s)
    dec = [np.stack([t[k] for t in trace]) for k in range(3)]          # (steps, R) each
    mask = sc.fil.T[1:] >= 0
    for k, enc in enumerate((sc.cum, sc.freq, sc.total)):
        assert np.array_equal(enc[1:][mask], dec[k][mask])


def test_mixing_learns_a_repetitive_repository(tiny_model):
    texts = [(FIXTURE / "inventory" / "store.py").read_text(), (FIXTURE / "tests" / "test_store.py").read_text()]
    toks = [tiny_model.encode(t) for t in texts] * 2  # the second copy must come almost for free
    sizes = {}
    for name, mix in {"lm": cm.MixSettings(ngram_orders=(), ngram_alpha=(), match=False),
                      "mixed": cm.MixSettings()}.items():
        sc = lmcodec.Scorer(tiny_model.engine, tiny_model.bos, toks, lmcodec.StreamSettings(32, 1, 10_000, mix))
        sizes[name] = sc.file_bits
    assert sizes["mixed"].sum() < 0.8 * sizes["lm"].sum()
    assert sizes["mixed"][2:].sum() < 0.25 * sizes["mixed"][:2].sum()


def test_a_damaged_stream_decodes_to_other_tokens_or_an_error(tiny_model):
    toks = [tiny_model.encode(TEXTS[0])]
    s = lmcodec.StreamSettings(window=32, rows=1, chunk=10_000)
    payload = lmcodec.Scorer(tiny_model.engine, tiny_model.bos, toks, s).payload([True])
    bad = bytearray(payload)
    bad[len(bad) // 2] ^= 0x55
    try:
        got = lmcodec.decode(tiny_model.engine, tiny_model.bos, [len(toks[0])], [None], bytes(bad), s)
    except ValueError:
        return
    assert got != toks  # the archive's SHA-256 then names the file


def test_fills_do_not_depend_on_the_batch(tiny_model):
    src = (FIXTURE / "inventory" / "store.py").read_text()
    cut = [(src[:a], src[a + 30:]) for a in (120, 400, 800)]
    alone = [tiny_model.fill([p], [s], 12)[0] for p, s in cut]
    together = tiny_model.fill([p for p, _ in cut], [s for _, s in cut], 12)
    assert together == alone


def test_reproduces_agrees_with_fill(tiny_model):
    src = (FIXTURE / "inventory" / "store.py").read_text()
    for a in (100, 300, 500, 700):
        pre, suf = src[:a], src[a + 25:]
        tiny_model.fill([pre], [suf], 10, no_repeat=0)
        ids = tiny_model.last_fill_ids[0]
        if len(ids) == 10 and not tiny_model.last_fill_stopped[0]:
            assert tiny_model.reproduces(pre, suf, ids)
        wrong = [(t + 1) % tiny_model.vocab_size for t in ids] or [1]
        assert not tiny_model.reproduces(pre, suf, wrong)
        if len(ids) > 1:  # wrong only at its end: the block-wise check must reach it
            assert not tiny_model.reproduces(pre, suf, ids[:-1] + wrong[-1:])


def test_token_bits_sum_to_the_codec_cost_without_mixing(tiny_model):
    ids = tiny_model.encode(TEXTS[0])
    bits = tiny_model.token_bits(ids)
    mix = cm.MixSettings(ngram_orders=(), ngram_alpha=(), match=False)
    sc = lmcodec.Scorer(tiny_model.engine, tiny_model.bos, [ids], lmcodec.StreamSettings(tiny_model.context, 1,
                                                                                          10_000, mix))
    # the codec's integer frequencies are the model's softmax to 2^-10 nats in the logits
    assert abs(sc.file_bits[0] - bits.sum()) < 0.01 * bits.sum() + 2


def test_batched_scores_and_checks_equal_one_at_a_time(tiny_model):
    texts = [TEXTS[0][:900], "", TEXTS[1][:300], TEXTS[0][:40]]
    many = tiny_model.char_bits_many(texts)
    for text, bits in zip(texts, many):
        assert np.array_equal(bits, tiny_model.char_bits(text))
    src = (FIXTURE / "inventory" / "store.py").read_text()
    cases = [(src[:a], src[a + n:], tiny_model.encode(src[a:a + n])) for a in (100, 400, 700, 1000) for n in (3, 20, 60)]
    prompts = [(tiny_model._fim_prompt(p, s, tiny_model._prompt_room(len(m))), m) for p, s, m in cases]
    one = [tiny_model.reproduces(*c) for c in cases]
    assert tiny_model.reproduces_prompts(prompts) == tiny_model.reproduces_prompts(prompts, rows=5) == one
    # a middle that is the model's own greedy choice, token by token, is True beside ones that are not
    prompt, greedy = prompts[0][0], []
    for _ in range(6):
        greedy.append(int(tiny_model._run([prompt + greedy])[0][-1].argmax()))
    assert tiny_model.reproduces_prompts([(prompt, greedy)] + prompts) == [True] + one
    assert tiny_model.reproduces_prompts([(prompt, greedy[:-1] + [greedy[-1] + 1])]) == [False]


def test_fim_prompts_from_a_cut_text_equal_prompts_from_the_whole_text(tiny_model):
    """_fim_prompt tokenizes only a cleanly cut tail of the prefix and head of the suffix: the same
    prompt as tokenizing them whole, for every room and hole position (real files, CRLF and odd
    whitespace and added tokens written in the text included); and the cuts themselves: a tail's
    tokens end the whole text's, a head's begin them."""
    import random
    m = tiny_model
    assert m._cut_pattern is not None  # else the fast path is never taken and this checks nothing
    pre_id, suf_id, mid_id, _ = m._fim_ids
    special = " ".join(m.decode([t]) for t in m._fim_ids[:3])  # added tokens, as text in a file
    texts = TEXTS + [TEXTS[0].replace("\n", "\r\n"), "\n".join(f"{' ' * (i % 7)}x{i}\t\u00a0y \n#" for i in range(400)),
                     "\n".join(f"x{' ' * (i % 3)} {special}  <|endoftext|>\n  <fim_pad> y" for i in range(300))]
    rnd = random.Random(5)
    for text in texts:
        for _ in range(60):
            a = rnd.randrange(len(text))
            b = min(len(text), a + rnd.randrange(40))
            prefix, suffix, room = text[:a], text[b:], rnd.choice([8, 40, 100, 252])
            pi, si = m.encode(prefix), m.encode(suffix)
            n_s = min(len(si), max(room // 3, room - len(pi)))
            n_p = min(len(pi), room - n_s)
            assert m._fim_prompt(prefix, suffix, room) == [pre_id] + pi[len(pi) - n_p:] + [suf_id] + si[:n_s] + [mid_id]
            cut = m._clean_cut(text, a)
            whole, tail, head = m.encode(text), m.encode(text[cut:]), m.encode(text[:cut])
            assert whole[len(whole) - len(tail):] == tail and whole[:len(head)] == head


def test_shipped_tables_are_what_their_builders_compute():
    """tables.npz holds every decimal-built table, each equal to what its builder computes now
    (regenerate with `python -m codeseed.tables` after changing one)."""
    from codeseed import bytecm, logistic, tables  # noqa: F401 (they register their tables)
    shipped = tables._shipped()
    assert set(shipped) == set(tables.BUILDERS) and shipped
    for name, build in tables.BUILDERS.items():
        assert shipped[name].dtype == np.int64 and np.array_equal(shipped[name], build()), name
