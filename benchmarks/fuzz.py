"""Fuzz codeseed's archive reader: `info`, `test` and `unpack`, in-process, on mutated archives.

    python benchmarks/fuzz.py --cases 100000 --seed 1          # a campaign; findings kept
    python benchmarks/fuzz.py --replay                          # run every kept finding again

Inputs start from a corpus of small valid archives (built here by `codeseed pack --classical` from
synthetic trees: stored, zstd, xz and hex payloads, solid blocks, symlinks, modes, odd names; and
the committed format 1 and 2 archives). Hypothesis draws each case (the generation engine and its
boundary-value heuristics; no shrinking, since a case never raises: outcomes are recorded):

- structure-aware (most cases): the archive is taken apart into header, payload table, entries and
  tree digest; one to three fields are replaced by hostile values (codec names, sizes, payload ids,
  starts, modes, paths, link targets decoded from zstd/xz, metas and headers as JSON and as
  bytes, bombs that decode to far more than declared, added and removed entries, truncated
  payloads); the archive is put together again with valid CRCs and footer, so the checks behind
  the checksums are reached;
- index bytes: the decoded index is flipped, cut or extended byte-wise, then re-framed with
  valid CRCs;
- file bytes: bytes of the whole file are flipped, inserted, deleted or cut (CRCs break).

Each case runs `info` (text or --json), `test` and `unpack` (with or without --skip-unsafe) through
cli.main in this process, each under a time limit (SIGALRM) and with the process's peak memory
reset before and read after (Linux /proc/self/clear_refs and VmHWM). A finding is: an exception
other than codeseed's errors (a traceback), exit 1 (an error not mapped to its exit code), a
case past the time limit, a peak over the memory limit, anything written outside the output
folder (the sandbox and a canary folder that hostile paths aim at are checked after every case), a
symlink in the output that resolves outside it, or a staging folder left behind. Each finding is
kept in benchmarks/fuzz-findings/ (the archive, and a .txt with the failure's first line);
tests/test_fuzz.py replays them all. The model step is stubbed: an archive that names a model is
refused as packed with another model (exit 6), as any model but its own would refuse it, so cases
never load torch.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import lzma
import os
import re
import shutil
import signal
import struct
import sys
import tempfile
import time
import traceback
import zlib
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.append(str(ROOT))  # after PYTHONPATH: --replay-dir can run an older codeseed

import zstandard  # noqa: E402
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import seed as hypothesis_seed  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import codeseed  # noqa: E402
from codeseed import archive, codecs, unpacking  # noqa: E402
from codeseed.cli import main  # noqa: E402
from codeseed.errors import ModelMismatchError  # noqa: E402

FINDINGS = ROOT / "benchmarks" / "fuzz-findings"
TIME_LIMIT = 10.0         # seconds per command
MEMORY_LIMIT_MB = 512     # peak resident memory per command, over the harness's own
ALLOWED_EXITS = {0, 3, 4, 5, 6, 7, 8}


# ---------------------------------------------------------------- corpus

def _tree(root: Path, files: dict[str, bytes | str], modes: dict[str, int] | None = None) -> Path:
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, str):  # a symlink
            os.symlink(data, p)
        else:
            p.write_bytes(data)
    for rel, m in (modes or {}).items():
        os.chmod(root / rel, m)
    return root


def build_corpus(work: Path) -> list[bytes]:
    """Small valid archives covering every codec, solid blocks, links, modes and odd names."""
    lock = b"".join(b'hash = "sha256:%s"\n' % hashlib.sha256(b"%d" % i).hexdigest().encode() for i in range(6))
    trees = [
        ({"README.md": b"# demo\n" * 30, "pkg/__init__.py": b"", "pkg/core.py": b"def f(x):\n    return x\n" * 40,
          "pkg/alias.py": "core.py", "bin/run.sh": b"#!/bin/sh\necho hi\n", "data.bin": os.urandom(300),
          "uv.lock": lock, "big.txt": b"line of text %d\n" * 2000}, {"bin/run.sh": 0o755, "data.bin": 0o600}),
        ({f"d{i % 3}/f{i}.txt": b"value_%d = %d\n" % (i, i * 7) for i in range(40)} | {"up": "d0"}, {}),
        ({"a/b/c/deep.txt": b"deep\n", "a/link": "b/c", "a/b/up": "..", "caf\xe9.txt": b"x", "sp ace.txt": b"y" * 500,
          "same1.txt": b"identical\n" * 9, "same2.txt": b"identical\n" * 9}, {"a/b/c/deep.txt": 0o640}),
    ]
    out = []
    for k, (files, modes) in enumerate(trees):
        src = _tree(work / f"corpus{k}", files, modes)
        dst = work / f"corpus{k}.cseed"
        codeseed.pack(src, dst, mode="classical", no_ignore=True)
        out.append(dst.read_bytes())
    for v in (1, 2):
        out.append((ROOT / "tests" / "data" / f"format{v}.cseed").read_bytes())
    return out


# ---------------------------------------------------------------- taking an archive apart, putting it together

@dataclass
class Parts:
    """An archive as editable fields; `build` puts it together with valid CRCs and footer in the
    layout of `version` (3 to 6; `build_v2` in format 2's)."""
    header: bytes                                       # format 6's binary header
    header_json: bytes = b""                            # formats 1-5's JSON header (5: less nothing)
    payloads: list[list] = field(default_factory=list)  # [codec bytes, data bytes, raw size, length or None, crc or None]
    entries: list[list] = field(default_factory=list)   # [path, fidelity, meta (bytes), kind, mode, size, pid, start,
                                                        #  digest prefix, full SHA-256 of the data,
                                                        #  typed meta column values (archive.TYPED_META, + 1)]
    digest: bytes | None = None                         # the tree digest; None: computed from the entries
    index_raw: bytes | None = None                      # when set: used as the decoded index as is
    raw_len: int | None = None                          # the footer's decoded index length (None: true)
    version: int = archive.FORMAT_VERSION

    @classmethod
    def parse(cls, blob: bytes, work: Path) -> Parts:
        path = work / "parse.cseed"
        path.write_bytes(blob)
        with archive.Archive(path) as arc:
            try:
                binary = archive.compact_header(arc.header)
            except ValueError:  # a model of another shape (an old archive's): its JSON, as bytes
                binary = arc.header.to_bytes()
            parts = cls(binary, arc.header.to_bytes())
            fulls = [hashlib.sha256(d).digest() for d in _decoded(arc)]
            seen: dict[int, int] = {}
            for e in arc.entries:
                if e.payload_id not in seen:
                    seen[e.payload_id] = len(parts.payloads)
                    parts.payloads.append([e.codec.encode(), blob[e.offset:e.offset + e.length], e.decoded_size(),
                                           None, None])
                rest = {k: v for k, v in e.meta.items() if k not in archive.TYPED_META}
                meta = json.dumps(rest, sort_keys=True, separators=(",", ":")).encode() if rest else b""
                typed = [e.meta[k] + 1 if k in e.meta else 0 for k in archive.TYPED_META]
                parts.entries.append([e.path.encode("utf-8", "surrogateescape"), e.fidelity.encode(), meta,
                                      int(e.is_symlink) | (0 if archive.stores_digest(e, parts.version)
                                                           else archive.NO_DIGEST),
                                      0 if e.is_symlink else e.permissions(), e.size, seen[e.payload_id], e.start,
                                      e.sha256[:8] or fulls[len(parts.entries)][:8], fulls[len(parts.entries)],
                                      typed])
        return parts

    def tree_digest(self) -> bytes:
        return self.digest if self.digest is not None else hashlib.sha256(b"".join(e[9] for e in self.entries)).digest()

    def index(self) -> bytes:
        if self.index_raw is not None:
            return self.index_raw
        v, ver, ents = codecs.varint, self.version, self.entries
        header = self.header if ver >= 6 else self.header_json
        out = bytearray(v(len(header)) + header if ver >= 4 else b"")
        out += v(len(self.payloads))
        for p in self.payloads:
            out += v(len(p[0])) + p[0]
        for p in self.payloads:
            out += v(len(p[1]) if p[3] is None else p[3])
        if ver < 5:
            for p in self.payloads:
                out += v(p[2])
        for p in self.payloads:
            out += struct.pack("<I", zlib.crc32(p[1]) if p[4] is None else p[4])
        out += v(len(ents))
        if ver >= 5:  # paths NUL-separated (6: front-coded), the payload's expected starts and sizes
            shared = archive.shared_folders([e[0] for e in ents]) if ver >= 6 else [0] * len(ents)
            out += b"".join(v(k) for k in shared) if ver >= 6 else b""
            joined = b"\0".join(e[0][k:] for e, k in zip(ents, shared))
            out += v(len(joined)) + joined
            cols = (1, 2)
            expect = archive._expected_starts([e[5] for e in ents], [e[6] for e in ents])
            ends: dict[int, int] = {}  # each payload's expected decoded size (_expected_raw_sizes; any pid)
            for e in ents:
                ends[e[6]] = max(ends.get(e[6], 0), e[7] + e[5])
        else:
            cols = (0, 1, 2)
        for col in cols:
            for e in ents:
                out += v(len(e[col])) + e[col]
        out += bytes(e[3] & 0xFF for e in ents)
        for col in (4, 5, 6, 7):
            for k, e in enumerate(ents):
                out += v(archive._zigzag(e[7] - expect[k]) if col == 7 and ver >= 5 else e[col])
        if ver >= 4:
            for k in range(len(archive.TYPED_META)):
                for e in ents:
                    x = e[10][k] if len(e) > 10 else 0
                    if ver >= 6 and k == 0 and x:  # the token count: its difference from the guess
                        x = 1 + archive._zigzag(x - 1 - archive.expected_tokens(e[5]))
                    out += v(x)
        if ver >= 5:
            for i, p in enumerate(self.payloads):
                out += v(archive._zigzag(p[2] - ends.get(i, 0)))
        for e in ents:
            out += b"" if e[3] & archive.NO_DIGEST else e[8]
        return bytes(out + self.tree_digest())

    def build_v2(self) -> bytes:
        """The same fields in the format-2 layout (each entry carries its payload's codec, offset,
        length and CRC32; starts and decoded sizes are not stored), to reach the old-format reader."""
        hdr = self.header_json
        body = bytearray(archive.MAGIC + struct.pack("<HI", 2, len(hdr)) + hdr + struct.pack("<I", zlib.crc32(hdr)))
        offsets = []
        for p in self.payloads:
            offsets.append(len(body))
            body += p[1]
        v = codecs.varint
        out = bytearray(v(len(self.entries)))
        pay = [self.payloads[e[6]] if e[6] < len(self.payloads) else [b"stored", b"", 0, None, None]
               for e in self.entries]
        offs = [offsets[e[6]] if e[6] < len(offsets) else 0 for e in self.entries]
        for column in ([e[0] for e in self.entries], [p[0] for p in pay], [e[1] for e in self.entries],
                       [e[2] for e in self.entries]):
            for blob in column:
                out += v(len(blob)) + blob
        out += bytes((e[3] & 1) | (2 if e[4] & 0o111 else 0) for e in self.entries)  # v2: no NO_DIGEST bit
        for e, p, off in zip(self.entries, pay, offs):
            out += v(e[5]) + v(off) + v(len(p[1]) if p[3] is None else p[3])
        for e, p in zip(self.entries, pay):
            out += e[8] + struct.pack("<I", zlib.crc32(p[1]) if p[4] is None else p[4])
        raw = bytes(out + self.tree_digest())
        index = lzma.compress(raw, format=lzma.FORMAT_RAW, filters=_fast_xz(raw))
        return bytes(body + archive._frame_index(2, raw, len(body), coded=index))

    def build(self) -> bytes:
        hdr = self.header_json
        if self.version >= 4:  # the header travels in the index
            body = bytearray(archive.MAGIC + struct.pack("<H", self.version))
        else:
            body = bytearray(archive.MAGIC + struct.pack("<HI", self.version, len(hdr)) + hdr
                             + struct.pack("<I", zlib.crc32(hdr)))
        for p in self.payloads:
            body += p[1]
        raw = self.index()
        index = (bytes([archive.INDEX_XZ]) if self.version >= 4 else b"") + lzma.compress(
            raw, format=lzma.FORMAT_RAW, filters=_fast_xz(raw))
        version = self.version if self.version in archive.FOOTERS else 3  # another version: framed as 3
        return bytes(body + archive._frame_index(version, raw, len(body), coded=index, raw_len=self.raw_len))


def _fast_xz(raw: bytes) -> list[dict]:
    return [{"id": lzma.FILTER_LZMA2, "preset": 1, "dict_size": max(4096, len(raw))}]


def _decoded(arc: archive.Archive) -> list[bytes]:
    """Each entry's data in a valid classical archive (the corpus), for the digests."""
    out = []
    for e in arc.entries:
        data = codecs.decode_classical(e.codec, arc.payload(e), e.decoded_size())
        out.append(data[e.start:e.start + e.size])
    return out


def reframe_index(blob: bytes, mutate) -> bytes:
    """Decode the index of any version, let `mutate(raw) -> raw` change it, re-frame with valid CRCs."""
    version, ioff, raw = archive._index_of(blob)
    raw = mutate(raw)
    index = (bytes([archive.INDEX_XZ]) if version >= 4 else b"") + lzma.compress(
        raw, format=lzma.FORMAT_RAW, filters=_fast_xz(raw))
    return blob[:ioff] + archive._frame_index(version, raw, ioff, coded=index)


# ---------------------------------------------------------------- hostile values

def _zstd(data: bytes) -> bytes:
    return zstandard.ZstdCompressor(level=1).compress(data)


BOMBS = {}  # filled by prepare(): payloads that decode to far more than any entry declares
# the largest rarely: a payload that declares 600 MiB is honoured (streamed, a few seconds)
BOMB_DRAWS: list[tuple[str, int]] = []


def prepare(big: bool = True) -> None:
    """The bombs; `big`: up to 600 MiB (a campaign), else up to 8 MiB (the test suite's short run)."""
    BOMBS.clear()
    for n in (1 << 20, 64 << 20, 600 << 20) if big else (1 << 20, 8 << 20, 8 << 20):
        zeros = b"\0" * n
        BOMBS[("zstd", n)] = _zstd(zeros)
        if n <= 64 << 20:  # xz -9e takes seconds a 64 MiB: the largest bomb is zstd only
            BOMBS[("xz", n)] = codecs.xz_encode(zeros)
        del zeros
    sizes = sorted({n for _, n in BOMBS})
    BOMB_DRAWS[:] = ([("zstd", sizes[0])] * 8 + [("xz", sizes[0])] * 8 + [("zstd", sizes[1])] * 3
                     + [("xz", sizes[1])] * 3 + [("zstd", sizes[-1])])


V2_ONLY = False   # --format2: structured cases in format 2 only (what codeseed before format 3 reads)
CANARY = "canary"  # a folder next to each case's sandbox that hostile paths aim at


def hostile_paths(canary: Path) -> list[bytes]:
    return [b"", b"/", b".", b"..", b"../x", b"a/../../x", b"a//b", b"./a", b"a/./b", b"a\\b", b"c:x", b"C:\\x",
            b"x\0y", b"a/", b"/tmp/x", os.fsencode(canary / "abs.txt"), b"../../" + CANARY.encode() + b"/rel.txt",
            b"n" * 256, b"d/" + b"n" * 256, (b"d" * 200 + b"/") * 25, b"caf\xe9", b"\xff\xfe", b"\xed\xa0\x80",
            b"a\nb", b"\x1b[2J", b"[bold]x", b"pkg", b"pkg/core.py", b"pkg/alias.py/x", b"up/x", b"a/link/x"]


def hostile_targets(canary: Path) -> list[bytes]:
    return [b"/etc", b"/", b"..", b"../..", b"../" + CANARY.encode(), os.fsencode(canary), b"a\0b", b"", b".",
            b"x" * 5000, b"y" * 256, b"d/..", b"up/..", b"a/b/up/..", b"a/link/../..", b"pkg/alias.py",
            b"self", b"../../" + CANARY.encode() + b"/t", b"\xff"]


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12)
INTS = st.one_of(st.integers(0, 70), st.sampled_from([127, 128, 255, 256, 4095, 4096, 65535, 2**31 - 1, 2**32,
                                                      2**40, 2**40 + 1, 2**63 - 1, 2**64 - 1]),
                 st.integers(0, 2**64 - 1))
CODECS = st.one_of(st.sampled_from([b"stored", b"zstd", b"xz", b"hex", b"lm", b"ppmd", b"", b"ZSTD"]),
                   st.binary(max_size=40))
FIDELITIES = st.one_of(st.sampled_from([f.encode() for f in archive.FIDELITIES] + [b"", b"exact "]),
                       st.binary(max_size=20))
METAS = st.one_of(
    st.just(b""), st.binary(max_size=60), st.sampled_from([b"{", b"[" * 5000, b"null", b"{}", b'{"n":1e999}',
                                                           b'{"n":NaN}', b'{"holes":[1,2],"stops":"zz"}']),
    st.fixed_dictionaries({}, optional={"n": JSON_VALUES | INTS, "holes": st.lists(INTS, max_size=4) | JSON_VALUES,
                                        "stops": st.text(max_size=4), "budget": JSON_VALUES,
                                        "similarity": JSON_VALUES}).map(lambda d: json.dumps(d).encode()))
HEADERS = st.one_of(
    st.binary(max_size=80),
    st.fixed_dictionaries({}, optional={"flags": JSON_VALUES, "model": JSON_VALUES | st.fixed_dictionaries(
        {"id": st.text(max_size=8), "sha256": st.text(max_size=64)}), "settings": JSON_VALUES | st.fixed_dictionaries(
        {}, optional={"fill": JSON_VALUES, "lm": JSON_VALUES})}).map(lambda d: json.dumps(d).encode()),
    st.just(b'{"flags":[],"model":{"id":"m","sha256":"' + b"0" * 64 + b'"},"settings":{}}'))


HEADERS6 = st.builds(  # format 6's binary header: the model, the stream's rows and chunk, then JSON
    lambda model, rows, chunk, rest: model + codecs.varint(rows) + (codecs.varint(chunk) if rows else b"") + rest,
    st.sampled_from([b"\x00", b"\x02m" + bytes(8), b"\x0fcodeseed-small" + bytes(8), b"\x05ab"]) | st.binary(max_size=12),
    st.integers(0, 70) | INTS, st.integers(0, 2000) | INTS, st.just(b"") | HEADERS)


def _encode_for(codec: bytes, data: bytes) -> bytes:
    name = codec.decode("ascii", "replace")
    return codecs.CLASSICAL[name].encode(data) if name in codecs.CLASSICAL else data


@st.composite
def structured(draw, parts: Parts, canary: Path) -> bytes:
    """One to three field mutations of a taken-apart archive."""
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["header", "codec", "raw", "length", "crc", "payload", "bomb", "path", "fidelity",
                                     "meta", "kind", "mode", "size", "pid", "start", "digest", "target", "add",
                                     "drop", "dup", "tree", "rawlen", "version"]))
        if parts.entries:
            e = parts.entries[draw(st.integers(0, len(parts.entries) - 1))]
        if parts.payloads:
            p = parts.payloads[draw(st.integers(0, len(parts.payloads) - 1))]
        if kind == "header":
            parts.header, parts.header_json = draw(HEADERS6), draw(HEADERS)
        elif kind == "codec" and parts.payloads:
            p[0] = draw(CODECS)
        elif kind == "raw" and parts.payloads:
            p[2] = draw(INTS)
        elif kind == "length" and parts.payloads:
            p[3] = draw(INTS)
        elif kind == "crc" and parts.payloads:
            p[4] = draw(st.integers(0, 2**32 - 1))
        elif kind == "payload" and parts.payloads:
            how = draw(st.sampled_from(["random", "cut", "reencode"]))
            if how == "random":
                p[1] = draw(st.binary(max_size=200))
            elif how == "cut":
                p[1] = p[1][:draw(st.integers(0, max(len(p[1]) - 1, 0)))]
            else:
                p[1] = _encode_for(p[0], draw(st.binary(max_size=200)))
        elif kind == "bomb" and parts.payloads:
            name, n = draw(st.sampled_from(BOMB_DRAWS))
            p[0], p[1] = name.encode(), BOMBS[(name, n)]
            if draw(st.booleans()):
                p[2] = draw(st.sampled_from([n, n - 1, 5, 2**40]))
        elif kind == "path" and parts.entries:
            e[0] = draw(st.sampled_from(hostile_paths(canary)) | st.binary(max_size=30))
        elif kind == "fidelity" and parts.entries:
            e[1] = draw(FIDELITIES)
        elif kind == "meta" and parts.entries:
            e[2] = draw(METAS)
        elif kind == "kind" and parts.entries:
            e[3] = draw(st.integers(0, 3) | st.integers(0, 255))
        elif kind == "mode" and parts.entries:
            e[4] = draw(INTS)
        elif kind == "size" and parts.entries:
            e[5] = draw(INTS)
        elif kind == "pid" and parts.entries:
            e[6] = draw(INTS | st.integers(0, len(parts.payloads)))
        elif kind == "start" and parts.entries:
            e[7] = draw(INTS)
        elif kind == "digest" and parts.entries:
            e[8] = draw(st.binary(min_size=8, max_size=8))
        elif kind == "target" and parts.entries:  # a symlink whose decoded target is hostile, checksums right
            target = draw(st.sampled_from(hostile_targets(canary)) | st.binary(max_size=20))
            codec = draw(st.sampled_from([b"stored", b"zstd", b"xz"]))
            parts.payloads.append([codec, _encode_for(codec, target), len(target), None, None])
            e[3], e[4], e[5], e[6], e[7], e[2], e[1] = 1, 0, len(target), len(parts.payloads) - 1, 0, b"", b"exact"
            e[9] = hashlib.sha256(target).digest()
            e[8] = e[9][:8]
        elif kind == "add":
            data = draw(st.binary(max_size=50))
            codec = draw(st.sampled_from([b"stored", b"zstd", b"xz"]))
            parts.payloads.append([codec, _encode_for(codec, data), len(data), None, None])
            is_link = draw(st.booleans())
            parts.entries.append([draw(st.sampled_from(hostile_paths(canary)) | st.binary(max_size=20)), b"exact", b"",
                                  int(is_link), 0 if is_link else 0o644, len(data), len(parts.payloads) - 1, 0,
                                  hashlib.sha256(data).digest()[:8], hashlib.sha256(data).digest()])
        elif kind == "drop" and parts.entries:
            parts.entries.remove(e)
        elif kind == "dup" and parts.entries:
            parts.entries.append(list(e))
        elif kind == "tree":
            parts.digest = draw(st.binary(min_size=0, max_size=40))
        elif kind == "rawlen":
            parts.raw_len = draw(INTS)
        elif kind == "version":
            parts.version = draw(st.integers(0, archive.FORMAT_VERSION + 1))
    if V2_ONLY:
        return parts.build_v2()
    return parts.build_v2() if parts.version == 3 and draw(st.integers(0, 3)) == 0 else parts.build()


@st.composite
def index_bytes(draw, blob: bytes) -> bytes:
    ops = draw(st.lists(st.tuples(st.sampled_from(["flip", "set", "insert", "delete", "cut"]), st.integers(0, 2**16),
                                  st.integers(0, 255)), min_size=1, max_size=4))

    return reframe_index(blob, lambda raw: _edit(raw, ops))


@st.composite
def file_bytes(draw, blob: bytes) -> bytes:
    return _edit(blob, draw(st.lists(st.tuples(st.sampled_from(["flip", "insert", "delete", "cut"]),
                                               st.integers(0, 2**20), st.integers(0, 255)), min_size=1, max_size=3)))


def _edit(data: bytes, ops) -> bytes:
    """`data` with each (op, at, value) applied in turn: flip a bit, set a byte, insert, delete, cut."""
    b = bytearray(data)
    for op, at, val in ops:
        i = at % (len(b) + 1)
        if op == "flip" and i < len(b):
            b[i] ^= 1 << (val % 8)
        elif op == "set" and i < len(b):
            b[i] = val
        elif op == "insert":
            b[i:i] = bytes([val])
        elif op == "delete" and i < len(b):
            del b[i]
        elif op == "cut":
            del b[i:]
    return bytes(b)


# ---------------------------------------------------------------- running a case

class Timeout(BaseException):
    """Raised by SIGALRM: a BaseException, so that no handler in codeseed swallows it."""


def _alarm(signum, frame):
    raise Timeout()


def _reset_peak() -> None:
    with contextlib.suppress(OSError):
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")


def _peak_mb() -> float:
    with contextlib.suppress(OSError):
        m = re.search(r"VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text())
        if m:
            return int(m.group(1)) / 1024
    return 0.0


def _refuse_model(arc, model=None):
    if arc.header.model:
        raise ModelMismatchError("fuzz: the model step is stubbed (this archive names a model)")
    return None


def _where(tb) -> str:
    frames = [f for f in traceback.extract_tb(tb) if "codeseed" in f.filename] or traceback.extract_tb(tb)
    f = frames[-1]
    return f"{Path(f.filename).name}:{f.lineno}"


def _knows_skip_unsafe() -> bool:
    """Whether the codeseed under test has `unpack --skip-unsafe` (not before issue 14)."""
    from codeseed.cli import build_parser
    with contextlib.redirect_stderr(io.StringIO()):
        try:
            build_parser().parse_args(["unpack", "a", "-o", "b", "--skip-unsafe"])
            return True
        except SystemExit:
            return False


SKIP_UNSAFE = _knows_skip_unsafe()


def run_case(blob: bytes, sandbox: Path, canary: Path, info_json: bool, skip_unsafe: bool,
             time_limit: float = TIME_LIMIT, memory_limit_mb: float = MEMORY_LIMIT_MB,
             stats: dict | None = None) -> list[str]:
    """Run info, test and unpack on `blob`; the failures found (empty: none). `stats` collects the
    largest peak memory (MB over the harness's) and time (s) of one command."""
    signal.signal(signal.SIGALRM, _alarm)
    sandbox.mkdir(parents=True, exist_ok=True)
    arc, out = sandbox / "a.cseed", sandbox / "out"
    arc.write_bytes(blob)
    failures = []
    commands = [["info", str(arc)] + (["--json"] if info_json else []), ["test", str(arc), "-q"],
                ["unpack", str(arc), "-o", str(out), "-q"] + (["--skip-unsafe"] if skip_unsafe and SKIP_UNSAFE else [])]
    for argv in commands:
        _reset_peak()
        base = _peak_mb()  # the resident memory now: the peak from here on is this command's
        start = time.monotonic()
        signal.setitimer(signal.ITIMER_REAL, time_limit)
        stdout, stderr = io.StringIO(), io.StringIO()
        try:
            with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                code = main(argv)
            if stats is not None:  # how deep the cases reach: exit 0 is a case every check let through
                exits = stats.setdefault("exits", {})
                exits[f"{argv[0]} {code}"] = exits.get(f"{argv[0]} {code}", 0) + 1
            if code not in ALLOWED_EXITS:
                failures.append(f"{argv[0]}: exit {code}: {stderr.getvalue().strip().splitlines()[-1][:160]}")
        except Timeout:
            failures.append(f"{argv[0]}: hang (over {time_limit:.0f} s)")
        except SystemExit as e:
            failures.append(f"{argv[0]}: SystemExit {e.code}")
        except BaseException as e:  # noqa: BLE001 - every escape is a finding
            failures.append(f"{argv[0]}: traceback: {type(e).__name__} at {_where(e.__traceback__)}: "
                            f"{str(e).splitlines()[0][:120] if str(e) else ''}")
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        peak, elapsed = _peak_mb() - base, time.monotonic() - start
        if stats is not None:
            stats["max_peak_mb"] = max(stats.get("max_peak_mb", 0.0), round(peak, 1))
            stats["max_command_s"] = max(stats.get("max_command_s", 0.0), round(elapsed, 2))
        if peak > memory_limit_mb:
            failures.append(f"{argv[0]}: memory {peak:.0f} MB over the harness's")
    failures += _escapes(sandbox, out, canary)
    shutil.rmtree(sandbox, ignore_errors=True)
    return failures


def _escapes(sandbox: Path, out: Path, canary: Path) -> list[str]:
    found = []
    extra = sorted(p.name for p in sandbox.iterdir() if p.name not in ("a.cseed", "out"))
    if extra:
        found.append(f"written outside the output folder: {extra[:3]}")
    if any(canary.iterdir()):
        found.append(f"written into the canary folder: {[p.name for p in canary.iterdir()][:3]}")
        for p in canary.iterdir():
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
    if out.is_dir():
        real_out = os.path.realpath(out)
        for dirpath, dirnames, filenames in os.walk(out):
            for name in dirnames + filenames:
                p = os.path.join(dirpath, name)
                if name.startswith(getattr(unpacking, "STAGING_PREFIX", ".cseed-unpack-")):
                    found.append("staging folder left behind")
                if os.path.islink(p):
                    real = os.path.realpath(p)
                    if real != real_out and not real.startswith(real_out + os.sep):
                        found.append(f"symlink leads out of the output folder: {os.readlink(p)!r}")
    return found


# ---------------------------------------------------------------- campaign

@dataclass
class Campaign:
    work: Path
    corpus: list[bytes]
    parts: list[Parts]
    canary: Path
    keep: bool = True
    findings: Path = FINDINGS
    cases: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)  # first line of each distinct failure -> count
    saved: list[str] = field(default_factory=list)
    stats: dict = field(default_factory=dict)  # max_peak_mb, max_command_s

    def record(self, blob: bytes, kind: str, failures: list[str]) -> None:
        self.cases += 1
        self.by_kind[kind] = self.by_kind.get(kind, 0) + 1
        for f in failures:
            key = _kind_of(f)
            first = key not in self.outcomes
            self.outcomes[key] = self.outcomes.get(key, 0) + 1
            if first and self.keep:
                self.findings.mkdir(parents=True, exist_ok=True)
                name = hashlib.sha256(blob).hexdigest()[:16]
                (self.findings / f"{name}.cseed").write_bytes(blob)
                (self.findings / f"{name}.txt").write_text(f"{f}\n")
                self.saved.append(name)


def _kind_of(failure: str) -> str:
    """What makes two failures the same: a traceback's type and place; otherwise the line with its
    numbers and quoted values blanked out."""
    m = re.match(r"(\w+: traceback: \w+ at [\w.]+:\d+)", failure)
    if m:
        return m.group(1)
    return re.sub(r"'[^']*'|\"[^\"]*\"|0x[0-9a-f]+|\d+", "N", failure)


def make_campaign(work: Path, keep: bool = True, big: bool = True) -> Campaign:
    prepare(big)
    work.mkdir(parents=True, exist_ok=True)
    corpus = build_corpus(work / "corpus")
    parts = [Parts.parse(b, work) for b in corpus]
    canary = work / "case" / CANARY  # hostile paths aim at ../../canary from the output folder
    canary.mkdir(parents=True, exist_ok=True)
    return Campaign(work, corpus, parts, canary, keep)


def run(c: Campaign, cases: int, seed: int | None = None, quiet: bool = False, export: Path | None = None) -> Campaign:
    """Run `cases` hypothesis-drawn cases (reproducible with `seed`); with `export`, write them there
    instead of running them (to run them elsewhere with --replay-dir, e.g. on an older codeseed)."""
    import copy
    sandbox = c.work / "case" / "sandbox"

    @st.composite
    def case(draw):
        kind = draw(st.sampled_from(["structured"] * 6 + ["index"] * 2 + ["file"]))
        if kind == "structured":
            blob = draw(structured(copy.deepcopy(draw(st.sampled_from(c.parts))), c.canary))
        elif kind == "index":
            blob = draw(index_bytes(draw(st.sampled_from(c.corpus))))
        else:
            blob = draw(file_bytes(draw(st.sampled_from(c.corpus))))
        return kind, blob, draw(st.booleans()), draw(st.booleans())

    last = [time.monotonic()]

    @settings(max_examples=cases, database=None, deadline=None, phases=[Phase.generate], derandomize=False,
              suppress_health_check=list(HealthCheck), report_multiple_bugs=False)
    @given(case())
    def one(args):
        kind, blob, info_json, skip = args
        if export is not None:
            (export / f"{c.cases:06d}-{kind}-{int(info_json)}{int(skip)}.cseed").write_bytes(blob)
            c.cases += 1
            return
        c.record(blob, kind, run_case(blob, sandbox, c.canary, info_json, skip, stats=c.stats))
        if not quiet and time.monotonic() - last[0] > 30:
            last[0] = time.monotonic()
            print(f"fuzz: {c.cases:,} cases, {len(c.outcomes)} distinct failures", file=sys.stderr, flush=True)

    if seed is not None:
        one = hypothesis_seed(seed)(one)
    one()
    return c


def replay(paths: list[Path], work: Path) -> dict[str, list[str]]:
    """Each kept finding through run_case again: {name: failures} (empty lists when all are fixed)."""
    canary = work / "case" / CANARY
    canary.mkdir(parents=True, exist_ok=True)
    return {p.name: [f for j, s in ((False, False), (True, True))
                     for f in run_case(p.read_bytes(), work / "case" / "sandbox", canary, j, s)] for p in paths}


def _patch_model_step() -> None:
    import functools

    import codeseed.cli
    codeseed.cli.build_parser = functools.lru_cache(codeseed.cli.build_parser)  # 5 ms a call (gettext), reusable
    unpacking.load_model_for = _refuse_model
    if hasattr(codeseed.cli, "load_model_for"):  # codeseed before issue 14 imported it into the CLI
        codeseed.cli.load_model_for = _refuse_model


def main_cli(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--replay", action="store_true", help="run every kept finding again and print what still fails")
    ap.add_argument("--export", type=Path, help="write the generated cases into this folder instead of running them")
    ap.add_argument("--replay-dir", type=Path, help="run the cases in this folder (from --export)")
    ap.add_argument("--format2", action="store_true",
                    help="structured cases in format 2 only (to run them on codeseed before format 3)")
    ap.add_argument("--findings", type=Path, default=FINDINGS, help=f"where to keep findings (default {FINDINGS})")
    ap.add_argument("--no-keep", action="store_true", help="do not write findings")
    ap.add_argument("--json", type=Path, help="write the summary as JSON here")
    args = ap.parse_args(argv)
    global V2_ONLY
    V2_ONLY = args.format2
    _patch_model_step()
    with tempfile.TemporaryDirectory(prefix="codeseed-fuzz-") as tmp:
        if args.replay:
            results = replay(sorted(FINDINGS.glob("*.cseed")), Path(tmp))
            for name, fails in results.items():
                print(f"{name}: {'ok' if not fails else '; '.join(fails)}")
            return 1 if any(results.values()) else 0
        t = time.monotonic()
        if args.replay_dir:
            canary = Path(tmp) / "case" / CANARY
            canary.mkdir(parents=True)
            c = Campaign(Path(tmp), [], [], canary, keep=not args.no_keep, findings=args.findings)
            for p in sorted(args.replay_dir.glob("*.cseed")):
                flags = p.stem.rsplit("-", 1)[-1]
                c.record(p.read_bytes(), p.stem.split("-")[1],
                         run_case(p.read_bytes(), Path(tmp) / "case" / "sandbox", canary, flags[0] == "1", flags[1] == "1",
                                  stats=c.stats))
        else:
            c = make_campaign(Path(tmp), keep=not args.no_keep)
            c.findings = args.findings
            if args.export:
                args.export.mkdir(parents=True, exist_ok=True)
            c = run(c, args.cases, args.seed, export=args.export)
        seconds = time.monotonic() - t
    summary = {"cases": c.cases, "seconds": round(seconds, 1), "cases_per_second": round(c.cases / seconds, 1),
               "seed": args.seed, "by_kind": c.by_kind, "corpus": "5 archives: 3 packed --classical here "
               "(every classical codec, solid blocks, links, modes, odd names), tests/data/format1.cseed and "
               f"format2.cseed; structured cases are written in the current format ({archive.FORMAT_VERSION}) or, "
               "when a case draws another version, in that version's layout (format 2's for a quarter of the 3s)",
               "time_limit_s": TIME_LIMIT, "memory_limit_mb": MEMORY_LIMIT_MB, **c.stats,
               "harness_peak_mb": round(_peak_mb(), 1),
               "distinct_failures": c.outcomes, "kept": c.saved}
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 1 if c.outcomes else 0


if __name__ == "__main__":
    sys.exit(main_cli())
