"""Exact mode with an LM: round trips, determinism, model identity, never worse than classical."""
from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys

import pytest

import codeseed
from codeseed import archive, codecs, lmcodec
from codeseed.errors import ArchiveError, ModelMismatchError
from tests.conftest import make_tiny_model
from tests.test_archive import FIXTURE, tree_digest


@pytest.fixture
def sample(tmp_path):
    dst = tmp_path / "sample"
    shutil.copytree(FIXTURE, dst, symlinks=True)
    return dst


def test_exact_round_trip_uses_lm_and_never_exceeds_classical(sample, tmp_path, tiny_model):
    report = codeseed.pack(sample, tmp_path / "a.cseed", mode="exact", model=tiny_model)
    codeseed.unpack(tmp_path / "a.cseed", tmp_path / "out", model=tiny_model)
    assert tree_digest(tmp_path / "out") == tree_digest(sample)
    by_path = {f.path: f for f in report.files}
    assert by_path["inventory/store.py"].codec == "lm"
    assert by_path["assets/logo.png"].codec != "lm"            # binary
    assert by_path["assets/legacy-latin1.txt"].codec != "lm"   # not UTF-8
    for f in report.files:
        data = (sample / f.path).read_bytes()
        assert f.stored_bytes <= len(codecs.best_classical(data)[1])
    with archive.Archive(tmp_path / "a.cseed") as arc:
        assert arc.header.model["sha256"] == tiny_model.id.sha256
        assert all(e.fidelity == "exact" for e in arc.entries)


def test_mixing_helps_on_a_repetitive_repository(tiny_model):
    texts = [(FIXTURE / "inventory" / "store.py").read_text(), (FIXTURE / "tests" / "test_store.py").read_text()]
    toks = [tiny_model.encode(t) for t in texts] * 2  # the second copy must come almost for free
    sizes = {}
    for name, s in {"lm": lmcodec.MixSettings(window=64, batch_rows=2, ngram_orders=(), ngram_alpha=(), match=False),
                    "mixed": lmcodec.MixSettings(window=64, batch_rows=2)}.items():
        state = lmcodec.ArchiveState(s)
        sizes[name] = [len(p) for b in lmcodec.plan_batches(len(toks), 2)
                       for p in lmcodec.encode_batch(tiny_model, state, [toks[i] for i in b])]
    assert sum(sizes["mixed"]) < 0.8 * sum(sizes["lm"])
    assert sum(sizes["mixed"][2:]) < 0.25 * sum(sizes["mixed"][:2])


@pytest.mark.parametrize("rows", [1, 3])
def test_lm_stream_round_trip_for_batch_sizes(tiny_model, rows):
    texts = [p.read_text() for p in sorted(FIXTURE.rglob("*.py"))]
    toks = [tiny_model.encode(t) for t in texts]
    s = lmcodec.MixSettings(window=64, batch_rows=rows)
    enc, dec = lmcodec.ArchiveState(s), lmcodec.ArchiveState(s)
    for b in lmcodec.plan_batches(len(toks), rows):
        payloads = lmcodec.encode_batch(tiny_model, enc, [toks[i] for i in b])
        got = lmcodec.decode_batch(tiny_model, dec, [len(toks[i]) for i in b], payloads, [None] * len(b))
        assert got == [toks[i] for i in b]


def test_decode_in_another_process_with_other_thread_counts(sample, tmp_path, tiny_model, tiny_model_path):
    import torch
    torch.set_num_threads(2)
    codeseed.pack(sample, tmp_path / "a.cseed", mode="exact", model=tiny_model)
    assert torch.get_num_threads() == 2  # the codec pins its own count and restores the caller's
    for threads in (1, 2):
        out = tmp_path / f"out{threads}"
        code = ("import torch,sys; torch.set_num_threads(int(sys.argv[1])); import codeseed;"
                "codeseed.unpack(sys.argv[2], sys.argv[3], model=sys.argv[4])")
        subprocess.run([sys.executable, "-c", code, str(threads), str(tmp_path / "a.cseed"), str(out),
                        str(tiny_model_path)], check=True)
        assert tree_digest(out) == tree_digest(sample)


def test_wrong_model_is_refused_before_writing(sample, tmp_path, tiny_model, tmp_path_factory):
    codeseed.pack(sample, tmp_path / "a.cseed", mode="exact", model=tiny_model)
    other = make_tiny_model(tmp_path_factory.mktemp("other") / "other", seed=1, steps=0)
    with pytest.raises(ModelMismatchError, match="packed with model"):
        codeseed.unpack(tmp_path / "a.cseed", tmp_path / "out", model=other)
    assert not (tmp_path / "out").exists()
    r = subprocess.run([sys.executable, "-m", "codeseed", "unpack", str(tmp_path / "a.cseed"), "-o",
                        str(tmp_path / "out"), "--model", str(other)], capture_output=True, text=True)
    assert r.returncode == ModelMismatchError.exit_code
    assert "Traceback" not in r.stderr and "packed with model" in r.stderr
    assert not (tmp_path / "out").exists()


def test_long_files_are_cut_into_chunks_that_round_trip(sample, tmp_path, tiny_model):
    """Chunks of 40 tokens: files span several chunks, and chunks of one file span batches."""
    s = lmcodec.MixSettings(window=64, batch_rows=3, chunk_tokens=40)
    report = codeseed.pack(sample, tmp_path / "a.cseed", mode="exact", model=tiny_model, settings=s)
    assert {f.path: f for f in report.files}["inventory/store.py"].codec == "lm"
    with archive.Archive(tmp_path / "a.cseed") as arc:
        assert arc.header.settings["lm"]["chunk_tokens"] == 40
        assert max(e.meta.get("n", 0) for e in arc.entries) > 3 * 40
    codeseed.unpack(tmp_path / "a.cseed", tmp_path / "out", model=tiny_model)
    assert tree_digest(tmp_path / "out") == tree_digest(sample)


def test_chunk_table_round_trip_and_rejects_garbage():
    parts = [b"\1\2\3\4", b"", b"\5\6\7\x08" * 3]
    assert lmcodec.split_chunks(lmcodec.join_chunks(parts), 3) == parts
    assert lmcodec.split_chunks(b"wxyz", 1) == [b"wxyz"]
    with pytest.raises(ValueError):
        lmcodec.split_chunks(b"\xff\xff\xff\x00abcd", 2)  # a chunk longer than the payload
    with pytest.raises(ValueError):
        lmcodec.split_chunks(b"\0\0", 3)


@pytest.mark.parametrize("text", [b"", b"abc", b"x" * 10 + b"a" * 33, b"0" * 33, b"f" * 31 + b"\n",
                                  b"a" * 33 + b"x" + b"1" * 32, b"sha256:" + bytes(range(48, 58)) * 7 + b"\n"])
def test_hex_codec_round_trip(text):
    payload = codecs.CLASSICAL["hex"].encode(text)
    assert codecs.decode_classical("hex", payload, len(text)) == text


def test_hex_codec_wins_on_a_lock_file_and_rejects_garbage():
    lock = b"".join(b'{ name = "pkg%d", hash = "sha256:%s" }\n' % (i, hashlib.sha256(b"%d" % i).hexdigest().encode())
                    for i in range(200))
    name, payload = codecs.best_classical(lock)
    assert name == "hex" and len(payload) < len(codecs.xz_encode(lock))
    assert codecs.decode_classical(name, payload, len(lock)) == lock
    for damaged in (payload[:-1], b"\x05abcde" + payload[6:], b"\xff"):
        with pytest.raises(ArchiveError):
            codecs.decode_classical("hex", damaged, len(lock))
