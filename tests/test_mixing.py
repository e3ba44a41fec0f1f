"""Adaptive blending in the LM stream's entropy model (cm.py, MixSettings.adaptive): the encoder's
symbols equal the decoder's, the setting is stored and needed, and it learns what fixed alphas cannot."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from codeseed import cm, lmcodec
from tests.test_engine import _round_trip

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "sample-py"
TEXTS = [p.read_text() for p in sorted(FIXTURE.rglob("*.py"))]
ADAPTIVE = cm.MixSettings(adaptive=True)
FIXED = cm.MixSettings(adaptive=False)


@pytest.mark.parametrize("rows,chunk", [(1, 10_000), (3, 40)])
def test_adaptive_stream_round_trips_with_the_encoders_symbols(tiny_model, rows, chunk):
    toks = [t for t in (tiny_model.encode(x) for x in TEXTS) if t]
    s = lmcodec.StreamSettings(window=32, rows=rows, chunk=chunk, mix=ADAPTIVE)
    sc, payload, got, trace = _round_trip(tiny_model, toks, s)
    assert got == toks
    dec = [np.stack([t[k] for t in trace]) for k in range(3)]
    mask = sc.fil.T[1:] >= 0
    for k, enc in enumerate((sc.cum, sc.freq, sc.total)):
        assert np.array_equal(enc[1:][mask], dec[k][mask])


def test_known_files_keep_the_adaptive_state_in_step(tiny_model):
    """A file stored classically is fed, not decoded: its tokens still teach the alpha choice."""
    toks = [t for t in (tiny_model.encode(x) for x in TEXTS) if t][:4]
    s = lmcodec.StreamSettings(window=32, rows=2, chunk=10_000, mix=ADAPTIVE)
    known = [None, toks[1], None, toks[3]]
    _, _, got, _ = _round_trip(tiny_model, toks, s, known=known)
    assert got == toks


def test_the_setting_is_stored_and_decoding_needs_it(tiny_model):
    assert cm.MixSettings.from_dict(ADAPTIVE.to_dict()) == ADAPTIVE
    assert cm.MixSettings.from_dict(FIXED.to_dict()) == FIXED
    old = {k: v for k, v in FIXED.to_dict().items() if k != "adaptive"}  # format 5 and before wrote none for fixed
    assert cm.MixSettings.from_dict(old) == FIXED
    toks = [t for t in (tiny_model.encode(x) for x in TEXTS) if t]
    s = lmcodec.StreamSettings(window=32, rows=1, chunk=10_000, mix=ADAPTIVE)
    payload = lmcodec.Scorer(tiny_model.engine, tiny_model.bos, toks, s).payload([True] * len(toks))
    wrong = lmcodec.StreamSettings(window=32, rows=1, chunk=10_000, mix=FIXED)
    try:
        got = lmcodec.decode(tiny_model.engine, tiny_model.bos, [len(t) for t in toks], [None] * len(toks),
                             payload, wrong)
    except ValueError:
        return
    assert got != toks


def test_adaptive_blending_trusts_a_files_own_statistics_where_they_predict_better(tiny_model):
    """Text the tiny model never saw, with a vocabulary of its own repeated in varied orders: the
    n-gram counts predict it far better than the LM, which a fixed alpha of 6 and 3 underweights."""
    rng = np.random.default_rng(0)
    words = ["zorp", "quix", "blen", "frav", "mump", "tesk"]
    text = "\n".join(" ".join(rng.choice(words, 6)) for _ in range(300))
    toks = [tiny_model.encode(text)]
    bits = {}
    for name, mix in (("fixed", FIXED), ("adaptive", ADAPTIVE)):
        s = lmcodec.StreamSettings(window=32, rows=1, chunk=10_000, mix=mix)
        bits[name] = lmcodec.Scorer(tiny_model.engine, tiny_model.bos, toks, s).file_bits.sum()
    assert bits["adaptive"] < 0.985 * bits["fixed"]  # measured: 2.4% smaller
