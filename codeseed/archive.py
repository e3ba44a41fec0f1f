"""The .cseed container: magic and version, payloads, a compressed index, a fixed-size footer.

Format 6 (written now; 1 to 5 are still read):

    magic     8 bytes   b"CSEED\\r\\n\\x1a"  (like PNG's: catches text-mode transfer damage)
    version   u16       FORMAT_VERSION
    payloads  ...       back to back, in payload-table order
    index     ilen      varint: the decoded index's length (_index_bound); a codec byte (INDEX_XZ:
                        raw LZMA2, INDEX_CM: bytecm.py, whichever is smaller; INDEX_STORED when
                        both code past _index_bound); then the binary index (see _encode_index),
                        which opens with the binary header (compact_header)
    footer    12 bytes  index length u32 (the index ends where the footer starts), index CRC32 u32,
                        b"CSND"

Format 3 stored the header (length u32, JSON, CRC32) after the version, compressed the index with
xz alone, kept every meta key in JSON and a digest prefix for every entry. Format 4 moved the
header into the index and the token counts and measured sizes of exact mode into varint columns.
Format 5 left out of the header the settings every archive of the format shares and kept 16 hex
digits of the model's SHA-256 (it names the model; the tree digest still checks every file),
separated paths by NUL instead of a length each, stored starts and decoded sizes as differences
from back-to-back entries (zero for the LM stream's files), and no digest prefix for an empty file.
Format 6 makes the header binary (26 bytes for an exact archive instead of 128 of JSON), the footer
12 bytes instead of 36 (no index offset: the index ends at the footer; its decoded length is a
varint in front of it), front-codes paths by the folders they share with the path before, and
stores token counts as differences from 3.3 bytes a token. Index, checksums and framing of
eval-public's three trees: 32.5 bytes a file in format 3, 22.2 in 4, 16.9 in 5, 14.7 in 6
(benchmarks/RESULTS.md, issue 15).

A *payload* is one coded byte string: a codec, a length, a CRC32 and its decoded size. An *entry*
(a file or a symlink) points to a payload and to where its data starts in the decoded payload:
several small files share one payload (a solid block, coded together), and identical contents
are stored once. Decoding never produces more than the declared decoded size (codecs.py), so the
sizes in the index bound the memory unpack uses.

Integrity, two layers: each payload has a CRC32 (caught before decoding), and each decoded file
that has a payload of its own an 8-byte prefix of its SHA-256 (names the file that differs; a slice
of a solid block or of the LM stream stores none from format 4 on, an empty file none in 5), while
the index holds one full SHA-256 over all files' full SHA-256s in index order (the tree digest: full
strength for the whole archive at 8 bytes a file, not 32; format 1 stored 32 a file and no tree digest).

Every field is checked on read, here and only here (`_decode_index`, `_check_header`,
`_check_entries`): a well-framed but wrong value is an ArchiveError (exit 4), never a traceback.
What a path or link may be is not a format question: safety.py decides that, for pack and unpack.

All integers little-endian. The index sits at the end so that `info` lists entries without
decoding payloads and `pack` can stream payloads. Nothing depends on time or machine: the same
input gives the same bytes.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import struct
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from codeseed import codecs, safety
from codeseed.errors import ArchiveError, InputError

MAGIC = b"CSEED\r\n\x1a"
FORMAT_VERSION = 6
END_MAGICS = {1: b"CSEEDEND", 2: b"CSEEDEND", 3: b"CSEEDEND", 4: b"CSEEDEND", 5: b"CSEEDEND", 6: b"CSND"}
ENTRY_DIGEST_BYTES = {1: 32, 2: 8, 3: 8, 4: 8, 5: 8, 6: 8}  # per-entry SHA-256 bytes stored, by format version
SYMLINK, NO_DIGEST = 1, 2     # entry kind bits: a symlink; no digest prefix (stores_digest: format 4 on)
# the footer's fields: index offset, index length, decoded index length (format 3-5), index CRC32, end magic;
# format 6: index length and CRC32 (the index ends where the footer starts; its decoded length opens it)
FOOTERS = {1: struct.Struct("<QQI8s"), 2: struct.Struct("<QQI8s"), 3: struct.Struct("<QQQI8s"),
           4: struct.Struct("<QQQI8s"), 5: struct.Struct("<QQQI8s"), 6: struct.Struct("<II4s")}
MAX_INDEX_LENGTH = (1 << 32) - 1  # format 6's footer: bytes of the coded index
MAX_PATH_BYTES = safety.PATH_MAX - 1  # no path unpack would write is longer
MIN_PATH_BUDGET, PATH_BUDGET_RATIO = 64 << 20, 64  # path_budget()
TYPED_META = ("n", "lm", "alt")  # format 4: these meta keys are varint columns (value + 1; 0: absent), not JSON
INDEX_XZ, INDEX_CM, INDEX_STORED = 0, 1, 2  # the index blob's first byte, the codec of the rest (format 4 on;
                              # stored: format 6 on, for an index that codes smaller than INDEX_MAX_RATIO allows)
INDEX_MAX_RATIO = 64          # an index decodes to at most this many bytes a coded byte (real ones: 3-10) ...
INDEX_FREE_BYTES = 16 << 20   # ... or to this many, whatever it is coded to (xz; cm decodes ~0.3 MB/s: a small
                              # index claiming much would hold unpack for minutes)
FIDELITIES = ("exact", "seeded", "seeded+similarity", "seeded+tests")
MAX_SIZE = 1 << 40            # bytes: an entry's size or a payload's decoded size (1 TiB)
MAX_INDEX_BYTES = 1 << 30     # decoded index; formats 1-2 do not declare its size, 3 does
MAX_MODEL_ENTRY = 16 << 20    # an entry the model codes or seeds is decoded in memory: pack gives the model
                              # files of at most candidates.MODEL_MAX_BYTES (128,000)
PERMISSION_BITS = 0o777       # stored file modes: no setuid, setgid or sticky bit
DEFAULT_MODES = (0o644, 0o755)  # formats 1-2 stored only the executable bit
# the header leaves out what these say (format 5 on; part of the format: later code may change its own defaults)
HEADER_MODEL_SHA_BYTES = 8    # the model's SHA-256, first 8 bytes (64 bits: names the model, not a check of it)
HEADER_MODEL_SHA_CHARS = 2 * HEADER_MODEL_SHA_BYTES  # the same in hex (format 5 stored hex)
HEADER_ENGINE = "exact-1"     # settings["engine"] when settings has "lm"
HEADER_LM = {"window": 256}   # settings["lm"] keys, and settings["lm"]["mix"] keys (the writer writes every key)
HEADER_MIX = {"ngram_orders": [2, 3], "ngram_alpha": [6, 3], "match": True, "adaptive": True}
HEADER_MIX_V5 = {k: v for k, v in HEADER_MIX.items() if k != "adaptive"}  # format 5 wrote no adaptive=False


@dataclass
class Header:
    flags: list[str] = field(default_factory=list)
    model: dict | None = None      # {"id": ..., "sha256": ...} when an entry needs a model
    settings: dict = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        return json.dumps({"flags": self.flags, "model": self.model, "settings": self.settings},
                          sort_keys=True, separators=(",", ":")).encode()


@dataclass
class Entry:
    """One file or symlink. Its data is decoded_payload[start:start + size] for an exact entry
    (the whole decoded payload, a seed, for a seeded one); a symlink's data is its target."""
    path: str
    size: int
    sha256: bytes  # full when packing; when read, the stored prefix (ENTRY_DIGEST_BYTES; empty: none stored)
    codec: str     # the codec of its payload
    fidelity: str = "exact"
    executable: bool = False
    is_symlink: bool = False
    offset: int = 0        # its payload's place in the file, length and CRC32 (shared by a block's entries)
    length: int = 0
    crc32: int = 0
    meta: dict = field(default_factory=dict)
    mode: int | None = None       # permission bits; None: 0o755 if executable else 0o644
    start: int = 0                # where its data starts in the decoded payload
    raw_size: int | None = None   # the payload's decoded size; None: `size` (one file's payload)
    payload_id: int = -1          # when read: the payload's number (entries sharing it share the id)

    def permissions(self) -> int:
        return self.mode if self.mode is not None else DEFAULT_MODES[bool(self.executable)]

    def decoded_size(self) -> int:
        return self.size if self.raw_size is None else self.raw_size

    def in_block(self) -> bool:
        """A slice of a larger payload (a solid block's file): it stores no digest prefix of its own
        (8 bytes were 40% of a 20-byte file); the block's CRC32 and the tree digest check it."""
        return self.fidelity == "exact" and not self.is_symlink and self.decoded_size() > self.size

    def stored_share(self) -> int:
        """Bytes of the archive this entry accounts for: its payload's length, or its share of a block."""
        raw = self.decoded_size()
        return self.length if raw <= self.size or not raw else round(self.length * self.size / raw)


# ---------------------------------------------------------------- binary index

class _Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ArchiveError("corrupt archive: index ends early")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def varint(self, limit: int = MAX_SIZE) -> int:
        n, self.pos = codecs.read_varint(self.data, self.pos)
        if n > limit:
            raise ArchiveError(f"corrupt archive: index value {n} out of range")
        return n

    def count(self, least_bytes_each: int) -> int:
        """A count of items that take at least `least_bytes_each` bytes each in what is left."""
        return self.varint((len(self.data) - self.pos) // least_bytes_each)

    def blob(self) -> bytes:
        return self.take(self.varint(len(self.data)))

    def text(self, what: str) -> str:
        try:
            return self.blob().decode("utf-8")
        except UnicodeDecodeError:
            raise ArchiveError(f"corrupt archive: {what} is not UTF-8") from None


def tree_digest(full_digests: list[bytes]) -> bytes:
    return hashlib.sha256(b"".join(full_digests)).digest()


def _canonical_json(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode() if obj else b""


def _zigzag(v: int) -> int:
    return 2 * v if v >= 0 else -2 * v - 1


def _unzigzag(v: int) -> int:
    return v >> 1 if not v & 1 else -((v + 1) >> 1)


def _expected_starts(sizes: list[int], ids: list[int]) -> list[int]:
    """Where each entry's data would start if the entries of a payload lay back to back in index
    order (the LM stream's and most blocks' files do): format 5 on stores the difference."""
    end: dict[int, int] = {}
    out = []
    for size, i in zip(sizes, ids):
        out.append(end.get(i, 0))
        end[i] = out[-1] + size
    return out


def _expected_raw_sizes(n_payloads: int, sizes: list[int], ids: list[int], starts: list[int]) -> list[int]:
    """Each payload's decoded size if it ends where its last entry does (a file's own payload, the
    LM stream, a block): format 5 on stores the difference (a seed's payload is shorter)."""
    out = [0] * n_payloads
    for size, i, start in zip(sizes, ids, starts):
        out[i] = max(out[i], start + size)
    return out


def shared_folders(paths: list[bytes]) -> list[int]:
    """Format 6 front-codes paths: for each, how many of its first bytes are the folders it shares
    with the path before it (up to and including their last common '/'); it stores only the rest.
    Paths in walk order share most of their folders: 14 bytes less over eval-public's three trees."""
    out, prev = [], b""
    for x in paths:
        out.append(x.rfind(b"/", 0, len(os.path.commonprefix([prev, x]))) + 1)
        prev = x
    return out


def path_budget(index_bytes: int) -> int:
    """Bytes all paths of a format-6 index may add up to once front-decoded: a 20 KB archive of
    paths each one byte longer than the one before decoded to 1 GB of them (a fresh review)."""
    return max(MIN_PATH_BUDGET, PATH_BUDGET_RATIO * index_bytes)


def expected_tokens(size: int) -> int:
    """Format 6 stores a token count as its difference from this guess: 3.3 bytes a token, about the
    bundled tokenizer's rate on code and prose (44 bytes less over eval-public's three trees)."""
    return (10 * size + 16) // 33


def _typed_meta(e: Entry, key: str) -> int:
    """A TYPED_META column's value: 0 when absent, else value + 1 (the token count "n": its zigzagged
    difference from expected_tokens, + 1)."""
    if key not in e.meta:
        return 0
    return 1 + (_zigzag(e.meta[key] - expected_tokens(e.size)) if key == "n" else e.meta[key])


def stores_digest(e: Entry, version: int) -> bool:
    """Whether the index holds an entry's digest prefix: not for a slice of a larger payload
    (format 4 on: the payload's CRC32 and the tree digest check it) nor for an empty file (format
    5: its content, and so its digest, is known)."""
    if version < 4:
        return True
    return not (e.in_block() or (version >= 5 and e.size == 0 and not e.is_symlink))


_ABSENT = object()


def _drop_defaults(d: dict, defaults: dict) -> dict:
    return {k: v for k, v in d.items() if defaults.get(k, _ABSENT) != v}


def compact_header(h: Header) -> bytes:
    """Format 6's header, binary:

        model   varint: 0 for none, else 1 + the length of its id; the id (UTF-8); the first
                HEADER_MODEL_SHA_BYTES of its SHA-256
        stream  varint rows of the LM stream (0: none, or not plain integers: then all of
                settings["lm"] is in `rest`); when not 0, varint chunk
        rest    canonical JSON of the flags and settings that are left, less what the format's
                defaults say (HEADER_ENGINE, HEADER_LM, HEADER_MIX); nothing when nothing is left

    An exact archive's header is 26 bytes (format 5's JSON: 128; 93 once compressed).
    expand_header() gives the header back; ValueError for a model that is not {id, SHA-256 in hex}."""
    model, rest = h.model, json.loads(h.to_bytes())
    del rest["model"]
    if model is None:
        out = bytearray(codecs.varint(0))
    else:
        if set(model) != {"id", "sha256"}:
            raise ValueError(f"a header model has keys {sorted(model)}, not id and sha256")
        name = model["id"].encode()
        out = bytearray(codecs.varint(len(name) + 1) + name + bytes.fromhex(model["sha256"])[:HEADER_MODEL_SHA_BYTES])
    st = rest["settings"]
    lm = st.get("lm")
    if (isinstance(lm, dict) and type(lm.get("rows")) is int and type(lm.get("chunk")) is int and lm["rows"] >= 1
            and lm["chunk"] >= 0 and isinstance(lm.get("mix"), dict)):
        out += codecs.varint(lm.pop("rows")) + codecs.varint(lm.pop("chunk"))
        if st.get("engine") == HEADER_ENGINE:
            del st["engine"]
        lm = st["lm"] = _drop_defaults(lm, HEADER_LM)
        lm["mix"] = _drop_defaults(lm["mix"], HEADER_MIX)
        if not lm["mix"]:
            del lm["mix"]
        if not lm:
            del st["lm"]
    else:
        out += codecs.varint(0)
    rest = {k: v for k, v in rest.items() if v}  # no flags, no settings: left out
    return bytes(out + (_canonical_json(rest) if rest else b""))


def expand_header(blob: bytes) -> dict:
    """compact_header()'s bytes back to the header's fields, {"flags", "model", "settings"} (the
    model's SHA-256 as the HEADER_MODEL_SHA_BYTES it keeps, in hex); ArchiveError if unreadable."""
    r = _Reader(blob)
    n = r.varint(len(blob))
    model = None if not n else {"id": r.take(n - 1).decode("utf-8", "replace"),
                                "sha256": r.take(HEADER_MODEL_SHA_BYTES).hex()}
    rows = r.varint()
    chunk = r.varint() if rows else None
    rest = _parse_json(blob[r.pos:], "header") if r.pos < len(blob) else {}
    if not isinstance(rest, dict) or "model" in rest or not isinstance(rest.get("settings", {}), dict):
        raise ArchiveError("corrupt archive (unreadable header)")
    d = {"flags": rest.get("flags", []), "model": model, "settings": rest.get("settings", {})}
    if rows:
        st = d["settings"]
        lm = st.setdefault("lm", {})
        if not isinstance(lm, dict) or "rows" in lm or "chunk" in lm:
            raise ArchiveError("corrupt archive (LM settings stored twice)")
        lm["rows"], lm["chunk"] = rows, chunk
        st.setdefault("engine", HEADER_ENGINE)
        for k, v in HEADER_LM.items():
            lm.setdefault(k, v)
        mix = lm.setdefault("mix", {})
        if isinstance(mix, dict):
            for k, v in HEADER_MIX.items():
                mix.setdefault(k, list(v) if isinstance(v, list) else v)
    return d


def expand_header_v5(d) -> dict:
    """Format 5's header (canonical JSON less HEADER_*_V5's defaults, 16 hex digits of the model's
    SHA-256), parsed, back to the header it was made from (in place)."""
    if isinstance(d, dict):
        d.setdefault("flags", [])
        st = d.get("settings")
        if isinstance(st, dict) and isinstance(st.get("lm"), dict):
            st.setdefault("engine", HEADER_ENGINE)
            for k, v in HEADER_LM.items():
                st["lm"].setdefault(k, v)
            if isinstance(st["lm"].get("mix"), dict):
                for k, v in HEADER_MIX_V5.items():
                    st["lm"]["mix"].setdefault(k, list(v) if isinstance(v, list) else v)
    return d


def _encode_index(entries: list[Entry], payload_ids: list[int], payloads: list[tuple[str, int, int, int]],
                  header: bytes = b"") -> bytes:
    """Format 6, column by column (all codecs, then all lengths, ...; all paths, then all fidelities,
    ...): like values sit together, so the codec finds the repeats (measured: smaller than entry by
    entry, most for seeded entries' meta). `payloads` holds (codec, length, decoded size, CRC32) in
    file order. The header comes first (compressed with the rest), the TYPED_META keys are
    columns (the token count as its difference from expected_tokens), paths are front-coded
    (shared_folders) and NUL-separated (a path holds no NUL), and starts and decoded sizes are
    stored as differences from where back-to-back entries would put them (_expected_starts,
    _expected_raw_sizes): zero, mostly, which costs nearly nothing once compressed."""
    out = bytearray(codecs.varint(len(header)) + header)
    out += codecs.varint(len(payloads))
    for codec, *_ in payloads:
        out += codecs.varint(len(codec.encode())) + codec.encode()
    for p in payloads:
        out += codecs.varint(p[1])
    for p in payloads:
        out += struct.pack("<I", p[3])
    out += codecs.varint(len(entries))
    paths = [e.path.encode("utf-8", "surrogateescape") for e in entries]
    if any(b"\0" in p for p in paths):
        raise ValueError("a path with a NUL byte")
    if any(len(x) > MAX_PATH_BYTES for x in paths):
        raise InputError(f"a path longer than {MAX_PATH_BYTES} bytes (unpack would refuse it)")
    shared = shared_folders(paths)
    for k in shared:
        out += codecs.varint(k)
    joined = b"\0".join(x[k:] for x, k in zip(paths, shared))
    out += codecs.varint(len(joined)) + joined
    for column in ([e.fidelity.encode() for e in entries],
                   [_canonical_json({k: v for k, v in e.meta.items() if k not in TYPED_META}) for e in entries]):
        for blob in column:
            out += codecs.varint(len(blob)) + blob
    out += bytes(e.is_symlink * SYMLINK | (not stores_digest(e, FORMAT_VERSION)) * NO_DIGEST for e in entries)
    sizes, starts = [e.size for e in entries], [e.start for e in entries]
    typed = [[_typed_meta(e, key) for e in entries] for key in TYPED_META]
    at = [_zigzag(s - x) for s, x in zip(starts, _expected_starts(sizes, payload_ids))]
    raw = [_zigzag(p[2] - x) for p, x in zip(payloads, _expected_raw_sizes(len(payloads), sizes, payload_ids, starts))]
    for values in ([0 if e.is_symlink else e.permissions() for e in entries], sizes, payload_ids, at, *typed, raw):
        for v in values:
            out += codecs.varint(v)
    for e in entries:
        out += e.sha256[:ENTRY_DIGEST_BYTES[FORMAT_VERSION]] if stores_digest(e, FORMAT_VERSION) else b""
    out += tree_digest([e.sha256 for e in entries])
    if sum(map(len, paths)) > path_budget(len(out)):  # what the reader allows
        raise InputError("the paths add up to more than an archive's index may hold")
    return bytes(out)


def _decode_index(raw: bytes, version: int, payload_start: int, payload_end: int
                  ) -> tuple[list[Entry], bytes | None, bytes | None]:
    """Entries (each with its payload's codec, offset, length, CRC32 and decoded size), the tree
    digest, and the header (format 4 holds it in the index; None before)."""
    r = _Reader(raw)
    if version < 3:
        return (*_decode_index_v1(r, version), None)
    header = r.blob() if version >= 4 else None
    p = r.count(7)  # codec, length, decoded size: 1 byte each at least; CRC32 4
    codec_names = [r.text("a codec name") for _ in range(p)]
    lengths = [r.varint() for _ in range(p)]
    raw_sizes = [r.varint() for _ in range(p)] if version < 5 else []  # format 5: after the entries
    crcs = [struct.unpack("<I", r.take(4))[0] for _ in range(p)]
    if payload_start + sum(lengths) != payload_end:
        raise ArchiveError("corrupt archive: payload lengths do not add up to the payload area")
    offsets, pos = [], payload_start
    for length in lengths:
        offsets.append(pos)
        pos += length
    n = r.count(3 + 5)  # path, fidelity, meta; kind byte, mode, size, payload, start
    if version < 5:
        paths = [r.blob().decode("utf-8", "surrogateescape") for _ in range(n)]
    else:
        shared = [r.varint(MAX_PATH_BYTES) for _ in range(n)] if version >= 6 else [0] * n
        joined = r.blob()
        rest = joined.split(b"\0") if n else []
        if len(rest) != n or (joined and not n):
            raise ArchiveError("corrupt archive: the path column does not hold one path an entry")
        paths, prev, budget = [], b"", path_budget(len(raw))
        for k, x in zip(shared, rest):
            if k > len(prev):
                raise ArchiveError("corrupt archive: a path shares more than the path before it holds")
            prev = prev[:k] + x
            budget -= len(prev)
            if len(prev) > MAX_PATH_BYTES or budget < 0:  # front coding must not make paths a memory bomb
                raise ArchiveError("corrupt archive: a path longer than a path may be, or paths adding up "
                                   "to far more than their index")
            paths.append(prev.decode("utf-8", "surrogateescape"))
    fidelities = [r.text("a fidelity") for _ in range(n)]
    metas = [_parse_meta(r.blob()) for _ in range(n)]
    kinds = r.take(n)
    modes = [r.varint(PERMISSION_BITS) for _ in range(n)]
    sizes = [r.varint() for _ in range(n)]
    ids = [r.varint(p - 1) for _ in range(n)]
    starts = [r.varint() for _ in range(n)]
    if version >= 5:
        starts = [x + _unzigzag(d) for x, d in zip(_expected_starts(sizes, ids), starts)]
        if any(x < 0 or x > MAX_SIZE for x in starts):
            raise ArchiveError("corrupt archive: an entry starts outside its payload")
    if version >= 4:
        for key in TYPED_META:
            for meta, v in zip(metas, [r.varint() for _ in range(n)]):
                if key in meta:
                    raise ArchiveError(f"corrupt archive: meta {key!r} both typed and in JSON")
                if v:
                    meta[key] = v - 1
        if version >= 6:
            for meta, size in zip(metas, sizes):
                if "n" in meta:
                    meta["n"] = expected_tokens(size) + _unzigzag(meta["n"])
    if version >= 5:
        expect = _expected_raw_sizes(p, sizes, ids, starts)
        raw_sizes = [x + _unzigzag(r.varint(2 * MAX_SIZE + 1)) for x in expect]
        if any(x < 0 or x > MAX_SIZE for x in raw_sizes):
            raise ArchiveError("corrupt archive: a payload's decoded size out of range")
    entries = []
    for k in range(n):
        if kinds[k] > (SYMLINK | NO_DIGEST if version >= 4 else SYMLINK):
            raise ArchiveError(f"corrupt archive: unknown entry kind {kinds[k]}")
        i, link = ids[k], bool(kinds[k] & SYMLINK)
        sha = b"" if kinds[k] & NO_DIGEST else r.take(ENTRY_DIGEST_BYTES[version])
        e = Entry(paths[k], sizes[k], sha, codec_names[i], fidelities[k], bool(modes[k] & 0o111), link, offsets[i],
                  lengths[i], crcs[i], metas[k], mode=None if link else modes[k], start=starts[k],
                  raw_size=raw_sizes[i], payload_id=i)
        if version >= 4 and bool(kinds[k] & NO_DIGEST) == stores_digest(e, version):  # format 3: every entry has one
            raise ArchiveError(f"corrupt archive: entry {e.path!r} has no digest but needs one"
                               if not sha else f"corrupt archive: entry {e.path!r} has a digest it does not need")
        entries.append(e)
    digest = r.take(32)
    if r.pos != len(raw):
        raise ArchiveError("corrupt archive: trailing bytes in index")
    if set(ids) != set(range(p)):
        raise ArchiveError("corrupt archive: a payload no entry uses")
    return entries, digest, header


def _decode_index_v1(r: _Reader, version: int) -> tuple[list[Entry], bytes | None]:
    """Formats 1-2: each entry carries its own payload's codec, offset, length and CRC32."""
    n = r.count(4 + 1 + 3 + ENTRY_DIGEST_BYTES[version] + 4)
    paths = [r.blob().decode("utf-8", "surrogateescape") for _ in range(n)]
    codec_names = [r.text("a codec name") for _ in range(n)]
    fidelities = [r.text("a fidelity") for _ in range(n)]
    metas = [_parse_meta(r.blob()) for _ in range(n)]
    flags = r.take(n)
    sizes = [(r.varint(), r.varint(), r.varint()) for _ in range(n)]
    entries, ids = [], {}
    for k in range(n):
        if flags[k] > 3:
            raise ArchiveError(f"corrupt archive: unknown entry flags {flags[k]}")
        sha = r.take(ENTRY_DIGEST_BYTES[version])
        crc = struct.unpack("<I", r.take(4))[0]
        size, offset, length = sizes[k]
        key = (codec_names[k], offset, length, crc)
        holes = metas[k].get("holes")
        # a seed's size was not recorded: a seed is never longer than the original plus one separator a hole
        raw_size = size + len(holes) if fidelities[k] != "exact" and isinstance(holes, list) else None
        entries.append(Entry(paths[k], size, sha, codec_names[k], fidelities[k], bool(flags[k] & 2), bool(flags[k] & 1),
                             offset, length, crc, metas[k], raw_size=raw_size, payload_id=ids.setdefault(key, len(ids))))
    digest = r.take(32) if version >= 2 else None
    if r.pos != len(r.data):
        raise ArchiveError("corrupt archive: trailing bytes in index")
    return entries, digest


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a number")


def _finite(text: str) -> float:
    v = float(text)
    if not math.isfinite(v):  # 1e999: json reads it as infinity, which JSON cannot write back
        raise ValueError(f"{text} is not a finite number")
    return v


def _parse_json(blob: bytes, what: str):
    try:
        return json.loads(blob.decode("utf-8"), parse_constant=_reject_constant, parse_float=_finite)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ArchiveError(f"corrupt archive: {what} is not UTF-8 JSON") from None


def _parse_meta(blob: bytes) -> dict:
    if not blob:
        return {}
    meta = _parse_json(blob, "entry meta")
    if not isinstance(meta, dict) or not meta:
        raise ArchiveError("corrupt archive: entry meta is not a JSON object")
    return meta


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return (_is_int(v) or isinstance(v, float)) and math.isfinite(v)


# The entry meta keys codeseed knows, and the type of each (others are kept and ignored).
META_TYPES = {"n": _is_int, "holes": lambda v: isinstance(v, list) and all(_is_int(h) and h >= 0 for h in v),
              "stops": lambda v: isinstance(v, str) and v.isascii(),  # seeded.Seed.parse checks the letters
              "budget": _is_number, "similarity": _is_number, "chrf": _is_number,
              "judge": lambda v: isinstance(v, str) and v.isprintable() and len(v) <= 64,
              "lm": _is_int, "alt": _is_int}  # exact mode: a stream member's measured sizes in and outside the stream


def _check_entries(entries: list[Entry], model: dict | None, version: int) -> None:
    """Types and ranges of every entry field that the index alone can tell wrong."""
    for e in entries:
        where = f"entry {e.path!r}"
        if e.fidelity not in FIDELITIES:
            raise ArchiveError(f"corrupt archive: {where} has an unknown fidelity {e.fidelity!r}")
        if not e.codec or len(e.codec) > 32 or not e.codec.isascii() or not e.codec.isprintable():
            raise ArchiveError(f"corrupt archive: {where} has a bad codec name")
        for key, ok in META_TYPES.items():
            if key in e.meta and not ok(e.meta[key]):
                raise ArchiveError(f"corrupt archive: {where} has a bad meta {key!r}")
        seeded = e.fidelity != "exact"
        if e.codec == "lm" or seeded:
            if model is None:
                raise ArchiveError(f"corrupt archive: {where} needs a model but the header names none")
        if (e.codec == "lm" or seeded or "n" in e.meta) and max(e.size, e.decoded_size()) > MAX_MODEL_ENTRY:
            raise ArchiveError(f"corrupt archive: {where} is too large for the model ({e.size} bytes)")
        if "n" in e.meta and not 0 < e.meta["n"] <= (e.decoded_size() if seeded else e.size):
            raise ArchiveError(f"corrupt archive: {where} has a token count out of range (a token is a byte at least)")
        if e.codec == "lm" and "n" not in e.meta and version < 3:  # format 3: a copy of a stream member
            raise ArchiveError(f"corrupt archive: {where} is LM-coded without a token count")
        if seeded:
            holes = e.meta.get("holes")
            if holes is None or sum(holes) > e.size or len(e.meta.get("stops", "")) not in (0, len(holes)):
                raise ArchiveError(f"corrupt archive: {where} has bad seed hints")
            if e.codec == "lm" and version >= 3:  # a seed in the LM stream: its length is what decodes
                if e.start > e.decoded_size():
                    raise ArchiveError(f"corrupt archive: {where} lies outside its payload")
            elif e.start or e.decoded_size() > e.size + len(holes):
                raise ArchiveError(f"corrupt archive: {where} has a seed longer than its file")
        elif e.start + e.size > e.decoded_size():
            raise ArchiveError(f"corrupt archive: {where} lies outside its payload")
        if e.is_symlink and (seeded or e.codec == "lm" or e.meta):
            raise ArchiveError(f"corrupt archive: symlink {e.path!r} is not stored exact")
        if e.codec == "stored" and e.length != e.decoded_size() and not (seeded and version < 3):
            raise ArchiveError(f"corrupt archive: {where} is stored but its lengths differ")


def _check_header(h) -> Header:
    if not isinstance(h, dict) or not {"flags", "model", "settings"} <= set(h):
        raise ArchiveError("corrupt archive (unreadable header)")
    flags, model, settings = h["flags"], h["model"], h["settings"]
    if not isinstance(flags, list) or not all(isinstance(f, str) for f in flags):
        raise ArchiveError("corrupt archive (header flags are not a list of strings)")
    if model is not None and not (isinstance(model, dict) and isinstance(model.get("id"), str)
                                  and isinstance(model.get("sha256"), str)
                                  and HEADER_MODEL_SHA_CHARS <= len(model["sha256"]) <= 64
                                  and not model["sha256"].strip("0123456789abcdef")):
        raise ArchiveError("corrupt archive (header model is not {id, sha256 of 16 to 64 hex digits})")
    if not isinstance(settings, dict):
        raise ArchiveError("corrupt archive (header settings are not an object)")
    lm = settings.get("lm")
    if lm is not None and not isinstance(lm, dict):  # its values: exact.decode checks them
        raise ArchiveError("corrupt archive (bad LM settings)")
    fill = settings.get("fill")
    if fill is not None and not (isinstance(fill, dict) and _is_int(fill.get("no_repeat", 0))
                                 and 0 <= fill.get("no_repeat", 0) <= 1 << 16):
        raise ArchiveError("corrupt archive (bad fill settings)")
    return Header(flags, model, settings)


# ---------------------------------------------------------------- write / read

def write(dst: Path, header: Header, entries: list[Entry], payloads: list[bytes]) -> int:
    """Write atomically (temporary file, then rename), in format FORMAT_VERSION; returns the size.

    `payloads[i]` is entry i's coded payload; entries whose payloads are equal (same codec and
    bytes) share one stored copy, which is how a solid block's entries (each with its `start` and
    the block's `raw_size`) and identical files are stored once. Fills each entry's offset, length,
    CRC32 and payload_id."""
    dst = Path(dst)
    fd, tmp = tempfile.mkstemp(prefix=".cseed-", dir=dst.parent or ".")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(MAGIC + struct.pack("<H", FORMAT_VERSION))  # the header travels in the index
            pos = fh.tell()
            table: list[tuple[str, int, int, int]] = []  # (codec, length, decoded size, CRC32)
            offsets: list[int] = []
            stored: dict[tuple[str, bytes], int] = {}
            ids = []
            for e, payload in zip(entries, payloads, strict=True):
                if e.codec == "stored" and e.raw_size is None:
                    e.raw_size = len(payload)  # a stored payload is its decoded self
                if e.fidelity != "exact" and e.raw_size is None:
                    raise ValueError(f"seeded entry {e.path!r} needs raw_size (its seed's length)")
                key = (e.codec, payload)
                if key not in stored:
                    stored[key] = len(table)
                    table.append((e.codec, len(payload), e.decoded_size(), zlib.crc32(payload)))
                    offsets.append(pos)
                    fh.write(payload)
                    pos += len(payload)
                i = stored[key]
                if table[i][2] != e.decoded_size():
                    raise ValueError(f"entries sharing a payload disagree on its decoded size ({e.path!r})")
                e.offset, e.length, e.crc32, e.payload_id = offsets[i], table[i][1], table[i][3], i
                ids.append(i)
            raw = _encode_index(entries, ids, table, compact_header(header))
            if len(raw) > MAX_INDEX_BYTES:
                raise InputError(f"too many files for one archive: an index of {len(raw):,} bytes "
                                 f"(at most {MAX_INDEX_BYTES:,})")
            fh.write(_frame_index(FORMAT_VERSION, raw, pos))
            size = fh.tell()
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, dst)
        return size
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _frame_index(version: int, raw: bytes, ioff: int, coded: bytes | None = None, raw_len: int | None = None
                 ) -> bytes:
    """Index and footer as format `version` frames them after a payload area ending at `ioff`:
    `coded` is the compressed index (default: _compress_index(raw); xz alone before format 4) and
    `raw_len` the decoded length it claims (default: len(raw)). The tests and the fuzzer frame
    hostile indexes with it."""
    raw_len = len(raw) if raw_len is None else raw_len
    if coded is None:
        coded = _compress_index(raw) if version >= 4 else codecs.xz_encode(raw)
    if version >= 6:  # the decoded length opens the index; the index ends where the footer starts
        index = codecs.varint(raw_len) + coded
        if len(index) > MAX_INDEX_LENGTH:
            raise InputError(f"an index of {len(index):,} bytes: more than an archive can frame")
        return index + FOOTERS[version].pack(len(index), zlib.crc32(index), END_MAGICS[version])
    head = (ioff, len(coded), raw_len) if version >= 3 else (ioff, len(coded))
    return coded + FOOTERS[version].pack(*head, zlib.crc32(coded), END_MAGICS[version])


def _index_of(data: bytes) -> tuple[int, int, bytes]:
    """(format version, index offset, decoded index) of a whole archive in memory, for the tests and
    the fuzzer (no check beyond what taking it apart needs: Archive checks)."""
    (version,) = struct.unpack("<H", data[8:10])
    footer = FOOTERS[version]
    fields = footer.unpack(data[-footer.size:])
    if version >= 6:
        ioff = len(data) - footer.size - fields[0]
        raw_len, start = codecs.read_varint(data, ioff)
        return version, ioff, _decompress_index(data[start:len(data) - footer.size], version, raw_len)
    raw_len = fields[2] if version >= 3 else MAX_INDEX_BYTES
    return version, fields[0], _decompress_index(data[fields[0]:fields[0] + fields[1]], version, raw_len)


def _index_bound(coded_bytes: int, codec: int) -> int:
    """The most bytes a coded index of `coded_bytes` may decode to: INDEX_MAX_RATIO a coded byte
    (real indexes: 3-10), or INDEX_FREE_BYTES whatever it is coded to (not for cm, which decodes at
    ~0.3 MB/s). A 44 KB archive claiming 300 MB of index took 880 MB of memory (a fresh review)."""
    free = 0 if codec == INDEX_CM else INDEX_FREE_BYTES
    return max(free, INDEX_MAX_RATIO * coded_bytes)


def _compress_index(raw: bytes) -> bytes:
    """The smaller of raw LZMA2 and the byte-level context mixing codec (bytecm.py), after a byte
    naming it (the footer's CRC already guards the index); on eval-public's trees cm was 8-12%
    smaller. An index that codes smaller than the reader lets it (_index_bound) is stored as is."""
    xz = bytes([INDEX_XZ]) + codecs.xz_encode(raw)
    from codeseed import bytecm
    cm = bytes([INDEX_CM]) + bytecm.encode(raw)
    fits = [c for c in (cm, xz) if len(raw) <= _index_bound(len(c) - 1, c[0])]
    return min(fits, key=len) if fits else bytes([INDEX_STORED]) + raw


def _decompress_index(index: bytes, version: int, raw_len: int) -> bytes:
    """The decoded index, at most raw_len bytes (formats 1-2: at most what _index_bound allows)."""
    codec = INDEX_XZ if version < 4 else (index[0] if index else -1)
    coded = index if version < 4 else index[1:]
    if codec not in (INDEX_XZ, INDEX_CM) and not (codec == INDEX_STORED and version >= 6):
        raise ArchiveError("corrupt archive (unknown index codec)")
    if codec == INDEX_STORED:
        if len(coded) != raw_len:
            raise ArchiveError("corrupt archive (a stored index of another length than declared)")
        return coded
    bound = _index_bound(len(coded), codec)
    if version < 3:  # the length is not declared: decoding stops at the bound
        raw_len = min(raw_len, bound)
    elif raw_len > bound:
        raise ArchiveError(f"corrupt archive (a {len(coded)}-byte index cannot hold {raw_len} bytes)")
    if codec == INDEX_XZ:
        return codecs.xz_decode(coded, raw_len)
    from codeseed import bytecm
    return bytecm.decode(coded, raw_len)


class Archive:
    """A read-only view of a .cseed file; every field is checked when it is opened, every read after."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self._fh = open(self.path, "rb")
        except IsADirectoryError:
            raise ArchiveError(f"{path}: is a directory, not an archive") from None
        except OSError as e:
            raise ArchiveError(f"{path}: cannot open ({e.strerror})") from None
        try:
            self._read()
        except ArchiveError as e:
            self._fh.close()
            msg = str(e)
            raise ArchiveError(msg if msg.startswith(f"{path}:") else f"{path}: {msg}") from None
        except BaseException:
            self._fh.close()
            raise

    def _read(self) -> None:
        self.size = os.fstat(self._fh.fileno()).st_size
        head = self._fh.read(14)
        if len(head) < 10 or head[:8] != MAGIC:
            raise ArchiveError("not a codeseed archive (bad magic)")
        (version,) = struct.unpack("<H", head[8:10])
        if version > FORMAT_VERSION:
            raise ArchiveError(f"archive format version {version} is newer than this codeseed reads "
                               f"({FORMAT_VERSION}); upgrade codeseed")
        if version < 1:
            raise ArchiveError(f"unknown archive format version {version}")
        self.version = version
        footer = FOOTERS[version]
        if version >= 4:  # the header is in the index
            hdr, self.payload_start = None, 10
            if 10 + footer.size > self.size:
                raise ArchiveError("truncated archive")
        else:
            if len(head) < 14:
                raise ArchiveError("truncated archive")
            (hlen,) = struct.unpack("<I", head[10:14])
            if 14 + hlen + 4 + footer.size > self.size:
                raise ArchiveError("truncated archive")
            self._fh.seek(14)
            hdr = self._fh.read(hlen)
            (hcrc,) = struct.unpack("<I", self._fh.read(4))
            if zlib.crc32(hdr) != hcrc:
                raise ArchiveError("corrupt archive (header checksum mismatch)")
            self.payload_start = 14 + hlen + 4
        self._fh.seek(self.size - footer.size)
        fields = footer.unpack(self._fh.read(footer.size))
        if fields[-1] != END_MAGICS[version]:
            raise ArchiveError("truncated or corrupt archive (no end marker)")
        if version >= 6:
            ilen, icrc = fields[0], fields[1]
            ioff = self.size - footer.size - ilen
        else:
            ioff, ilen, icrc = fields[0], fields[1], fields[-2]
        raw_len = fields[2] if 3 <= version < 6 else MAX_INDEX_BYTES
        if ioff < self.payload_start or ioff + ilen != self.size - footer.size:
            raise ArchiveError("corrupt archive (bad index position)")
        self._fh.seek(ioff)
        index = self._fh.read(ilen)
        if zlib.crc32(index) != icrc:
            raise ArchiveError("corrupt archive (index checksum mismatch)")
        if version >= 6:  # the decoded length opens the index
            raw_len, start = codecs.read_varint(index, 0)
            index = index[start:]
        if raw_len > MAX_INDEX_BYTES:
            raise ArchiveError("corrupt archive (bad index length)")
        try:
            raw = _decompress_index(index, version, raw_len)
        except ArchiveError:
            raise ArchiveError("corrupt archive (index does not decompress)") from None
        if len(raw) > raw_len or (version >= 3 and len(raw) != raw_len):
            raise ArchiveError("corrupt archive (index size differs from the footer's)")
        self.payload_end = ioff
        self.entries, self.tree_digest, in_index = _decode_index(raw, version, self.payload_start, ioff)
        if version >= 6:
            self.header = _check_header(expand_header(in_index))
        else:
            parsed = _parse_json(in_index if version >= 4 else hdr, "header")
            self.header = _check_header(expand_header_v5(parsed) if version == 5 else parsed)
        for e in self.entries:
            if e.offset < self.payload_start or e.offset + e.length > self.payload_end:
                raise ArchiveError(f"corrupt archive (entry {e.path!r} points outside the payload area)")
        _check_entries(self.entries, self.header.model, version)

    def payload(self, e: Entry) -> bytes:
        """Entry e's coded payload (a whole block for a block's entries), its CRC32 checked."""
        self._fh.seek(e.offset)
        data = self._fh.read(e.length)
        if len(data) != e.length or zlib.crc32(data) != e.crc32:
            raise ArchiveError(f"{self.path}: corrupt archive (payload checksum mismatch in {e.path!r})")
        return data

    def matches(self, e: Entry, data: bytes) -> tuple[bool, bytes]:
        """Whether `data` has `e`'s stored digest; also returns its full SHA-256 for check_tree."""
        full = hashlib.sha256(data).digest()
        return full[:len(e.sha256)] == e.sha256, full

    def check_tree(self, full_digests: list[bytes]) -> None:
        """The full-strength check over every decoded file (format 2 on)."""
        if self.tree_digest is not None and tree_digest(full_digests) != self.tree_digest:
            raise ArchiveError(f"{self.path}: corrupt archive (files do not match the tree digest)")

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
