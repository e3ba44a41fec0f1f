"""Exact mode with an LM: round trips, determinism, model identity, never worse than classical."""
from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import codeseed
from codeseed import archive, codecs, exact, lmcodec, packing
from codeseed.errors import ArchiveError, ModelMismatchError
from codeseed.walk import scan
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
    # which files the LM keeps depends on the tiny model against the solid block: some Python file does
    assert any(f.codec == "lm" for p, f in by_path.items() if p.endswith(".py"))
    assert by_path["assets/logo.png"].codec != "lm"            # binary
    assert by_path["assets/legacy-latin1.txt"].codec != "lm"   # not UTF-8
    for f in report.files:
        data = (sample / f.path).read_bytes()
        assert f.stored_bytes <= len(codecs.best_classical(data)[1])
    with archive.Archive(tmp_path / "a.cseed") as arc:
        assert tiny_model.id.sha256.startswith(arc.header.model["sha256"]) and len(arc.header.model["sha256"]) == 16
        assert all(e.fidelity == "exact" for e in arc.entries)


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


def test_unpack_takes_the_bundled_model_the_archive_names(sample, tmp_path, tiny_model_path, tmp_path_factory,
                                                          monkeypatch):
    """Pack names its model; unpack given no model takes the bundled model of that name, so an
    archive packed with a model codeseed has since replaced still decodes. A name that is no bundled
    folder (a path among them) is never opened: the default model is tried, and refused."""
    from codeseed import model as model_mod
    models = tmp_path / "models"
    shutil.copytree(tiny_model_path, models / "old-small")
    make_tiny_model(models / "new-small", seed=1, steps=0)
    monkeypatch.setattr(model_mod, "MODELS_DIR", models)
    monkeypatch.setattr(model_mod, "BUNDLED_NAME", "old-small")
    codeseed.pack(sample, tmp_path / "a.cseed", mode="exact")
    with archive.Archive(tmp_path / "a.cseed") as arc:
        assert arc.header.model["id"] == "old-small" and any(e.codec == "lm" for e in arc.entries)
    monkeypatch.setattr(model_mod, "BUNDLED_NAME", "new-small")  # a newer model replaces it for pack
    codeseed.unpack(tmp_path / "a.cseed", tmp_path / "out")
    assert tree_digest(tmp_path / "out") == tree_digest(sample)
    assert model_mod.bundled_for("old-small") == models / "old-small"
    for name in ("../models/old-small", str(models / "old-small"), "", None, 7, "old-small/"):
        assert model_mod.bundled_for(name) is None
    shutil.rmtree(models / "old-small")  # a codeseed that no longer ships it: one line, nothing written
    with pytest.raises(ModelMismatchError, match="'old-small'"):
        codeseed.unpack(tmp_path / "a.cseed", tmp_path / "out2")
    assert not (tmp_path / "out2").exists()


def lm_wins_everything(monkeypatch):
    """For tests of the stream itself: every candidate stays in the stream, whatever the tiny model
    scores against the classical codecs (which codec wins is tested above, on measured sizes)."""
    monkeypatch.setattr(exact.EncodedFile, "alternative", lambda self: 1e12)


def test_long_files_are_cut_into_segments_that_round_trip(sample, tmp_path, tiny_model, monkeypatch):
    """Segments of 40 tokens in 3 rows: files span several segments, on several rows."""
    lm_wins_everything(monkeypatch)
    s = lmcodec.StreamSettings(window=32, rows=3, chunk=40)
    report = codeseed.pack(sample, tmp_path / "a.cseed", mode="exact", model=tiny_model, settings=s)
    assert {f.path: f for f in report.files}["inventory/store.py"].codec == "lm"
    with archive.Archive(tmp_path / "a.cseed") as arc:
        assert arc.header.settings["lm"]["chunk"] == 40 and arc.header.settings["lm"]["rows"] == 3
        assert max(e.meta.get("n", 0) for e in arc.entries) > 3 * 40
        assert len({e.payload_id for e in arc.entries if e.codec == "lm"}) == 1  # one stream
    codeseed.unpack(tmp_path / "a.cseed", tmp_path / "out", model=tiny_model)
    assert tree_digest(tmp_path / "out") == tree_digest(sample)


def test_identical_text_files_are_coded_once(tmp_path, tiny_model, monkeypatch):
    lm_wins_everything(monkeypatch)
    src = tmp_path / "src"
    (src / "a").mkdir(parents=True)
    text = (FIXTURE / "inventory" / "store.py").read_bytes()
    (src / "a" / "one.py").write_bytes(text)
    (src / "two.py").write_bytes(text)
    codeseed.pack(src, tmp_path / "a.cseed", mode="exact", model=tiny_model)
    with archive.Archive(tmp_path / "a.cseed") as arc:
        assert sorted(("n" in e.meta, e.codec) for e in arc.entries) == [(False, "lm"), (True, "lm")]
    codeseed.unpack(tmp_path / "a.cseed", tmp_path / "out", model=tiny_model)
    assert (tmp_path / "out" / "two.py").read_bytes() == text == (tmp_path / "out" / "a" / "one.py").read_bytes()


def test_block_sizes_that_decided_are_those_of_the_final_block(tmp_path, tiny_model, monkeypatch):
    """A file leaves the stream only for a block cost measured with the block's final members: a
    README whose near-copy sits in the stream is not cheap in a block that does not hold that copy
    (`PKG-INFO` sorts first in block order; it and its twin stay in the stream)."""
    text = (FIXTURE / "inventory" / "store.py").read_bytes()
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    for name in ("PKG-INFO", "sub/PKG-INFO"):
        (src / name).write_bytes(text)
    (src / "README.rst").write_bytes(text + b"# one more line\n")
    n_copy = len(tiny_model.tokenize_exact(text))
    real_init = lmcodec.Scorer.__init__

    def init(self, engine, bos, token_lists, *a, **k):  # the stream wins the copies only
        real_init(self, engine, bos, token_lists, *a, **k)
        self.file_bits = [8 * (10.0 if len(t) == n_copy else 1e6) for t in token_lists]
    monkeypatch.setattr(lmcodec.Scorer, "__init__", init)
    files = scan(src, no_ignore=True).files
    encoded, _ = exact.encode(files, tiny_model)
    by = {f.path: e for f, e in zip(files, encoded)}
    assert by["PKG-INFO"].codec == "lm" and by["sub/PKG-INFO"].codec == "lm"
    outside = {i for i, e in enumerate(encoded) if e.codec != "lm"}
    at = [f.path for f in files].index("README.rst")
    final = packing.block_costs(files, outside)
    assert by["README.rst"].block_bytes == pytest.approx(final[at])  # measured without the stream's copies
    assert final[at] > 100 > packing.block_costs(files)[at]          # which would have made it nearly free


def test_a_damaged_stream_is_a_one_line_error_naming_the_file(sample, tmp_path, tiny_model, tiny_model_path):
    """Flip a byte in the LM payload (CRC fixed up, so only the decode can notice): the SHA-256 names
    a file, or the stream itself is refused; never a traceback, never a written file."""
    codeseed.pack(sample, tmp_path / "a.cseed", mode="exact", model=tiny_model)
    with archive.Archive(tmp_path / "a.cseed") as arc:
        e = next(e for e in arc.entries if e.codec == "lm")
        offset, length = e.offset, e.length
    data = bytearray((tmp_path / "a.cseed").read_bytes())
    data[offset + length // 2] ^= 0x10
    bad = tmp_path / "bad.cseed"
    bad.write_bytes(_fix_crc(bytes(data), offset, length))
    r = subprocess.run([sys.executable, "-m", "codeseed", "unpack", str(bad), "-o", str(tmp_path / "out"),
                        "--model", str(tiny_model_path), "-q"], capture_output=True, text=True)
    assert r.returncode == ArchiveError.exit_code, r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert ".py" in r.stderr or "LM stream" in r.stderr
    assert not (tmp_path / "out").exists()


def _fix_crc(data: bytes, offset: int, length: int) -> bytes:
    """The archive with the CRC32 of the payload at `offset` recomputed: index and footer rewritten."""
    import struct
    import zlib
    version, ioff, raw = archive._index_of(data)
    index = bytearray(raw)
    # the header, then the payload table: count, codec names, lengths, CRC32s (format 5 on)
    hlen, pos = codecs.read_varint(index, 0)
    n, pos = codecs.read_varint(index, pos + hlen)
    for _ in range(n):
        ln, pos = codecs.read_varint(index, pos)
        pos += ln
    lengths = []
    for _ in range(n):
        v, pos = codecs.read_varint(index, pos)
        lengths.append(v)
    starts = [ioff - sum(lengths[:n]) + sum(lengths[:k]) for k in range(n)]
    k = starts.index(offset)
    index[pos + 4 * k:pos + 4 * k + 4] = struct.pack("<I", zlib.crc32(data[offset:offset + length]))
    return data[:ioff] + archive._frame_index(version, bytes(index), ioff)


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


# tests/data/format2-lm.cseed and format2-seeded.cseed: a README and two Python files (the second
# select.py as it was at 60c3893) packed --exact and seeded by codeseed 60c3893 with the bundled
# model: format 2, float engine. Their LM streams and seeds decode through legacy.py.
FORMAT2_SHA256 = {
    "README.md": "80e283180a64353d7556adf04230a01cf6873c42868e281efaacba010b8f25d4",
    "pkg/util.py": "695b90ba44e179323f06926cc6c30d148aeb1b3c9e12360505fa99692c3543f8",
    "pkg/select.py": "c9f13aa42b41bf92e0d4c6f413d41f8fc8cf82cf3dfd6234a29bbe03cd345b52",
}
SEEDED_SELECT_SHA256 = "8339d7442b5d5b677058fa59f4fe051b78ba9a43d541f8c99e00ff1b723c83ab"  # its reconstruction


@pytest.mark.parametrize("kind", ["lm", "seeded"])
def test_format2_model_archives_decode_with_the_float_engine_or_say_why(tmp_path, kind):
    """The float engine decodes only where its floats match the packing machine's: the archive comes
    back exactly (the same kind of CPU as where it was packed), or unpack stops with one line
    naming the cause (exit 4 or 8) and writes nothing; never a traceback, never a wrong file."""
    src = Path(__file__).resolve().parent / "data" / f"format2-{kind}.cseed"
    with archive.Archive(src) as arc:
        assert arc.version == 2 and any(e.codec == "lm" for e in arc.entries)
        assert (kind == "seeded") == any(e.fidelity != "exact" for e in arc.entries)
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "codeseed", "unpack", str(src), "-o", str(out), "-q"],
                       capture_output=True, text=True)
    if r.returncode:
        assert r.returncode in (ArchiveError.exit_code, 8) and "Traceback" not in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and not out.exists()
        return
    want = dict(FORMAT2_SHA256, **({"pkg/select.py": SEEDED_SELECT_SHA256} if kind == "seeded" else {}))
    got = {p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
           for p in out.rglob("*") if p.is_file()}
    assert got == want


# tests/data/format3-lm.cseed and format3-seeded.cseed: the same three files packed --exact and seeded
# by codeseed 3f0cf3a (format 3: the exact engine, the first LM stream layout, mixing without adaptive
# blending, every entry with a digest prefix, the header outside the index). format4-lm.cseed and
# format4-seeded.cseed: the same files packed --exact, and seeded with --lossy-code
# --min-text-similarity 0 (select.py seeded, in the LM stream), by codeseed 981199e (format 4: the
# full header and every path, start and decoded size in the index). format5-lm.cseed and
# format5-seeded.cseed: the same two ways, by codeseed 70d4fca (format 5: the JSON header less its
# defaults, paths NUL-separated, the 36-byte footer). format6-lm.cseed and format6-seeded.cseed: the
# same two ways, by codeseed 22a3d5d (format 6: the binary header, front-coded paths, the 12-byte
# footer). All of them name the model codeseed-small, which pack no longer uses: unpack takes the
# bundled model an archive names. They decode exactly on any machine: that is what the exact engine
# is for.
SEEDED_SELECT_SHA256_BY_FORMAT = {3: "2b6bda1647efcb1b4dcfc0d5d8245093841c94832ca290f8f51b79ea925efaed",
                                  4: "e777229fba65e5660b8a65b9cbc8d9bac8c9238658cb96b6de18a21597088bf2",
                                  5: "e777229fba65e5660b8a65b9cbc8d9bac8c9238658cb96b6de18a21597088bf2",
                                  6: "e777229fba65e5660b8a65b9cbc8d9bac8c9238658cb96b6de18a21597088bf2"}


@pytest.mark.parametrize("version,kind", [(v, k) for v in (3, 4, 5, 6) for k in ("lm", "seeded")])
def test_format3_to_6_archives_still_decode_exactly(tmp_path, version, kind):
    src = Path(__file__).resolve().parent / "data" / f"format{version}-{kind}.cseed"
    with archive.Archive(src) as arc:
        assert arc.version == version and any(e.codec == "lm" for e in arc.entries)
        assert (kind == "seeded") == any(e.fidelity != "exact" for e in arc.entries)
        if version == 3:
            assert "adaptive" not in arc.header.settings["lm"]["mix"]  # coded before adaptive blending
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "codeseed", "unpack", str(src), "-o", str(out), "-q"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    seeded = {"pkg/select.py": SEEDED_SELECT_SHA256_BY_FORMAT[version]} if kind == "seeded" else {}
    got = {p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
           for p in out.rglob("*") if p.is_file()}
    assert got == dict(FORMAT2_SHA256, **seeded)


def _with_header(data: bytes, change) -> bytes:
    """The archive with its header (in the index) changed by change(dict), CRCs valid."""
    version, ioff, index = archive._index_of(data)
    hlen, pos = codecs.read_varint(index, 0)
    header = archive.expand_header(index[pos:pos + hlen])
    change(header)
    blob = archive.compact_header(archive.Header(header["flags"], header["model"], header["settings"]))
    raw = codecs.varint(len(blob)) + blob + index[pos + hlen:]
    return data[:ioff] + archive._frame_index(version, raw, ioff)


@pytest.mark.parametrize("key, value", [("window", 65536), ("window", 128), ("rows", "12"), ("rows", 1.5),
                                        ("rows", 4096), ("chunk", 1),
                                        ("mix.match", "x"), ("mix.adaptive", 10**15), ("mix.ngram_alpha", [10**9, 3])])
def test_stream_settings_of_the_wrong_type_or_size_are_refused_at_once(sample, tmp_path, tiny_model,
                                                                      tiny_model_path, key, value):
    """A header's LM settings size the decoder's KV cache and tables: a window over the model's
    context (65,536 took 18 GB before this check), more rows than pack writes (4,096 took 6.8 GB),
    chunks of 1 token (held the schedule for minutes), or a value of the wrong type, is exit 4 in
    one line before any decoding."""
    import time
    src = tmp_path / "a.cseed"
    codeseed.pack(sample, src, mode="exact", model=tiny_model)

    def change(h):
        lm = h["settings"]["lm"]
        if key.startswith("mix."):
            lm["mix"][key[4:]] = value
        else:
            lm[key] = value
    bad = tmp_path / "bad.cseed"
    bad.write_bytes(_with_header(src.read_bytes(), change))
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "codeseed", "test", str(bad), "--model", str(tiny_model_path)],
                       capture_output=True, text=True)
    assert r.returncode == ArchiveError.exit_code and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "LM settings" in r.stderr
    assert time.perf_counter() - t < 60


@pytest.mark.parametrize("sha", ["", "f447", "F447AC2AE0603D0B", "f447ac2ae0603d0g", "0" * 65])
def test_a_format5_model_hash_that_is_not_16_to_64_hex_digits_is_a_corrupt_header(tmp_path, sha):
    """Format 5 kept 16 hex digits of the model's SHA-256 in JSON: fewer, other characters or more
    than a SHA-256 has are a damaged header (exit 4), not a model mismatch (exit 6). (Format 6 keeps
    8 bytes: any value is 16 hex digits.)"""
    import json
    data = (Path(__file__).resolve().parent / "data" / "format5-lm.cseed").read_bytes()
    version, ioff, index = archive._index_of(data)
    hlen, pos = codecs.read_varint(index, 0)
    header = json.loads(index[pos:pos + hlen])
    header["model"]["sha256"] = sha
    blob = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    bad = tmp_path / "bad.cseed"
    bad.write_bytes(data[:ioff] + archive._frame_index(version, codecs.varint(len(blob)) + blob + index[pos + hlen:], ioff))
    with pytest.raises(ArchiveError, match="sha256 of 16 to 64 hex digits"):
        archive.Archive(bad)


@pytest.mark.parametrize("cut", [b"", b"\x05ab", b"\x0fcodeseed-small\x01\x02", b"\x00\x03\x80",
                                 b"\x00\x00[]", b"\x00\x00{\"model\":null}", b"\x00\x00{\"settings\":[1]}",
                                 b"\x00\x03\x10{\"settings\":{\"lm\":{\"rows\":3}}}", b"\x00\x00{\"flags\":\"x\"}",
                                 b"\x00\x00{\"settings\":{\"x\":1e999}}"])
def test_a_format6_header_that_does_not_read_is_one_line_exit_4(sample, tmp_path, cut):
    """Format 6's binary header cut short, with a model id longer than the header, JSON that is not
    an object, LM settings both binary and in JSON, or a number JSON cannot write back (1e999 read
    as infinity made `info --json` print invalid JSON): a corrupt header, never a traceback."""
    src = tmp_path / "a.cseed"
    codeseed.pack(sample, src, mode="classical")
    data = src.read_bytes()
    version, ioff, index = archive._index_of(data)
    assert version == 6
    hlen, pos = codecs.read_varint(index, 0)
    bad = tmp_path / "bad.cseed"
    bad.write_bytes(data[:ioff] + archive._frame_index(version, codecs.varint(len(cut)) + cut + index[pos + hlen:], ioff))
    r = subprocess.run([sys.executable, "-m", "codeseed", "info", str(bad)], capture_output=True, text=True)
    assert r.returncode == ArchiveError.exit_code and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "corrupt" in r.stderr
