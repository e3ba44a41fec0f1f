"""The FIM rows the model learns from: which spans, which labels, which weights."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

from codeseed.fim import BUNDLED
from codeseed.train import EOT, PAD_LABEL, Batcher, TrainConfig, span_candidates, train_tokenizer, write_token_stream

SOURCE = '''import os


class Store:
    """Keeps things."""

    def get(self, key):
        """The value of key."""
        value = self.items[key]  # looked up
        return value

    def put(self, key, value):
        if key in self.items:
            raise KeyError(key)
        # stored by key
        self.items[key] = value
'''


def text_of(span):
    return SOURCE[span[0]:span[1]]


def test_span_kinds():
    spans = span_candidates(SOURCE)
    blocks = [text_of(s) for s in spans["block"]]
    # a function's body after its docstring, the span seeded mode most often leaves to the model
    assert 'value = self.items[key]  # looked up\n        return value' in blocks
    assert "raise KeyError(key)" in blocks  # the body of an if
    assert [text_of(s) for s in spans["docstring"]] == ['"""Keeps things."""', '"""The value of key."""']
    assert "return value" in [text_of(s) for s in spans["statement"]]
    assert "self.items[key]" in [text_of(s) for s in spans["expression"]]
    # whole-line comments only: a trailing one stays with its code line
    assert [text_of(s).strip() for s in spans["comment"]] == ["# stored by key"]
    # the holes seeded mode leaves in free text: a comment's text after its marker (trailing ones
    # too), a docstring's between its quotes
    assert [text_of(s) for s in spans["comment_text"]] == ["looked up", "stored by key"]
    assert [text_of(s) for s in spans["docstring_text"]] == ["Keeps things.", "The value of key."]
    assert all(0 < b - a <= 600 for kind in spans.values() for a, b in kind)


def test_span_candidates_of_broken_code_keeps_comments():
    spans = span_candidates("# a note\ndef f(:\n")
    assert spans["comment"] == [(0, 8)] and spans["block"] == []
    assert spans["comment_text"] == [(2, 8)]


def test_free_text_spans_match_seeded_modes_holes():
    """comment_text and docstring_text are exactly the pieces seeded mode makes holes of
    (spans.segments with the language's line comment; past the first two lines, which stay whole), on a
    file with trailing comments, a raw
    docstring, a '#' inside a string and CRLF line ends."""
    from codeseed import spans as seeded_spans
    text = 'import os\n\nx = "#no"  #  trailing note\r\ndef f():\n    r\'\'\'Raw doc.\'\'\'\n    # c\n    return 1\n'
    lang = seeded_spans.load("python")
    data = text.encode()
    pieces = seeded_spans.segments(data, seeded_spans.extract(lang, data), lang.line_comment)
    for kind in ("comment_text", "docstring_text"):
        want = [data[p.start:p.end].decode() for p in pieces if p.kind == kind]
        assert [text[a:b] for a, b in span_candidates(text)[kind]] == want and want


@pytest.fixture(scope="module")
def batcher(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    texts = [SOURCE, SOURCE.replace("Store", "Shelf"), "x = 1\n" * 40]
    tok = train_tokenizer(texts * 5, 300)
    tok.save(str(out / "tokenizer.json"))
    write_token_stream(out, tok, texts)
    with open(out / "texts.pkl", "wb") as fh:
        pickle.dump({"train": texts, "val": []}, fh)
    cfg = TrainConfig(seq_len=128, batch=64, fim_rate=1.0, span_rate=1.0, psm_rate=0.5, stop_weight=4.0)
    return Batcher(out, tok, cfg, np.random.default_rng(0)), tok


def test_fim_rows_label_the_stop_and_never_a_sentinel(batcher):
    b, tok = batcher
    x, y, w = b.batch()
    sentinels = {tok.token_to_id(s) for s in (BUNDLED.prefix, BUNDLED.suffix, BUNDLED.middle)}
    middle = tok.token_to_id(BUNDLED.middle)
    assert not np.isin(y.numpy(), list(sentinels)).any()
    stops = 0
    for row_x, row_y, row_w in zip(x.tolist(), y.tolist(), w.tolist()):
        heavy = [i for i, v in enumerate(row_w) if v != 1.0]
        assert len(heavy) <= 1 and all(row_w[i] == 4.0 for i in heavy)
        if heavy:  # the weighted label is the stop token, right after the middle
            i = heavy[0]
            stops += 1
            assert row_y[i] == EOT and middle in row_x[:i + 1]
            assert all(v == PAD_LABEL for v in row_y[i + 1:])
    assert stops > 48  # spans of this source are short: nearly every middle is whole


def test_weights_leave_plain_rows_alone(batcher):
    b, _ = batcher
    cfg = b.cfg
    b.cfg = TrainConfig(**{**cfg.__dict__, "fim_rate": 0.0})
    try:
        _, y, w = b.batch()
    finally:
        b.cfg = cfg
    assert (w == 1.0).all() and (y != PAD_LABEL).all()


def test_stop_position_is_not_the_row_end(tmp_path):
    """With long files every prompt could fill its row; then the stop label always sat at the last
    position and the model learned the position, not the end of the middle."""
    texts = ["\n".join(SOURCE.replace("Store", f"Store{i}") for i in range(30))]
    tok = train_tokenizer(texts, 300)
    write_token_stream(tmp_path, tok, texts)
    with open(tmp_path / "texts.pkl", "wb") as fh:
        pickle.dump({"train": texts, "val": []}, fh)
    cfg = TrainConfig(seq_len=128, batch=200, fim_rate=1.0, span_rate=1.0, stop_weight=2.0)
    _, _, w = Batcher(tmp_path, tok, cfg, np.random.default_rng(1)).batch()
    rows, positions = (w == 2.0).nonzero(as_tuple=True)
    assert len(rows) > 150
    assert (positions == cfg.seq_len - 1).float().mean() < 0.1
    assert len(set(positions.tolist())) > 40
