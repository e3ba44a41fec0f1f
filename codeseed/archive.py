"""The .cseed container: header, entry payloads, a compressed index, a fixed-size footer.

    magic     8 bytes   b"CSEED\\r\\n\\x1a"  (like PNG's: catches text-mode transfer damage)
    version   u16       FORMAT_VERSION
    hlen      u32       length of the header
    header    hlen      canonical JSON: {"flags", "model", "settings"}
    hcrc      u32       CRC32 of the header
    payloads  ...       entry payloads, back to back; identical contents are stored once
    index     ilen      xz-compressed binary index (see _encode_index)
    footer    28 bytes  index offset u64, index length u64, index CRC32 u32, b"CSEEDEND"

Integrity, two layers: each payload has a CRC32 (caught before decoding), and each decoded file
an 8-byte prefix of its SHA-256 (names the file that differs), while the index holds one full
SHA-256 over all files' full SHA-256s in index order (the tree digest: full strength for the whole
archive at 8 bytes a file, not 32; format 1 stored 32 a file and is still read).

All integers little-endian. The index sits at the end so that `info` lists entries without
decoding payloads and `pack` can stream payloads. Nothing depends on time or machine: the same
input gives the same bytes.
"""
from __future__ import annotations

import hashlib
import json
import lzma
import os
import struct
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from codeseed import codecs
from codeseed.errors import ArchiveError

MAGIC = b"CSEED\r\n\x1a"
END_MAGIC = b"CSEEDEND"
FORMAT_VERSION = 2
ENTRY_DIGEST_BYTES = {1: 32, 2: 8}  # per-entry SHA-256 bytes stored, by format version
FOOTER = struct.Struct("<QQI8s")
FIDELITIES = ("exact", "seeded", "seeded+similarity", "seeded+tests")


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
    path: str
    size: int
    sha256: bytes  # full when packing; when read, the stored prefix (ENTRY_DIGEST_BYTES)
    codec: str
    fidelity: str = "exact"
    executable: bool = False
    is_symlink: bool = False
    offset: int = 0
    length: int = 0
    crc32: int = 0
    meta: dict = field(default_factory=dict)


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

    def varint(self) -> int:
        n, self.pos = codecs.read_varint(self.data, self.pos)
        return n

    def blob(self) -> bytes:
        return self.take(self.varint())


def tree_digest(full_digests: list[bytes]) -> bytes:
    return hashlib.sha256(b"".join(full_digests)).digest()


def _encode_index(entries: list[Entry], version: int) -> bytes:
    """Column by column (all paths, then all codecs, ...): like values sit together, so xz finds the
    repeats (measured: smaller than entry by entry, most for seeded entries' meta)."""
    out = bytearray(codecs.varint(len(entries)))
    metas = [json.dumps(e.meta, sort_keys=True, separators=(",", ":")).encode() if e.meta else b"" for e in entries]
    for column in ([e.path.encode("utf-8", "surrogateescape") for e in entries], [e.codec.encode() for e in entries],
                   [e.fidelity.encode() for e in entries], metas):
        for blob in column:
            out += codecs.varint(len(blob)) + blob
    out += bytes(e.is_symlink | (e.executable << 1) for e in entries)
    for e in entries:
        out += codecs.varint(e.size) + codecs.varint(e.offset) + codecs.varint(e.length)
    for e in entries:
        out += e.sha256[:ENTRY_DIGEST_BYTES[version]] + struct.pack("<I", e.crc32)
    if version >= 2:
        out += tree_digest([e.sha256 for e in entries])
    return codecs.xz_encode(bytes(out))  # raw LZMA2: the footer's CRC already guards the index


def _decode_index(data: bytes, version: int) -> tuple[list[Entry], bytes | None]:
    try:
        raw = codecs.xz_decode(data)
    except lzma.LZMAError:
        raise ArchiveError("corrupt archive: index does not decompress") from None
    r = _Reader(raw)
    n = r.varint()
    paths = [r.blob().decode("utf-8", "surrogateescape") for _ in range(n)]
    codec_names = [r.blob().decode() for _ in range(n)]
    fidelities = [r.blob().decode() for _ in range(n)]
    metas = [r.blob() for _ in range(n)]
    flags = r.take(n)
    sizes = [(r.varint(), r.varint(), r.varint()) for _ in range(n)]
    entries = []
    for k in range(n):
        sha = r.take(ENTRY_DIGEST_BYTES[version])
        crc = struct.unpack("<I", r.take(4))[0]
        size, offset, length = sizes[k]
        entries.append(Entry(paths[k], size, sha, codec_names[k], fidelities[k], bool(flags[k] & 2), bool(flags[k] & 1),
                             offset, length, crc, json.loads(metas[k]) if metas[k] else {}))
    digest = r.take(32) if version >= 2 else None
    if r.pos != len(raw):
        raise ArchiveError("corrupt archive: trailing bytes in index")
    return entries, digest


# ---------------------------------------------------------------- write / read

def write(dst: Path, header: Header, entries: list[Entry], payloads: list[bytes], version: int = FORMAT_VERSION) -> int:
    """Write atomically (temporary file, then rename); fills offsets and CRCs; returns the size.
    `version` below the current one is for compatibility tests only."""
    dst = Path(dst)
    fd, tmp = tempfile.mkstemp(prefix=".cseed-", dir=dst.parent or ".")
    try:
        with os.fdopen(fd, "wb") as fh:
            hdr = header.to_bytes()
            fh.write(MAGIC + struct.pack("<HI", version, len(hdr)) + hdr + struct.pack("<I", zlib.crc32(hdr)))
            pos = fh.tell()
            stored: dict[bytes, tuple[int, int]] = {}
            for e, payload in zip(entries, payloads, strict=True):
                key = e.codec.encode() + b"\0" + payload
                if key not in stored:
                    fh.write(payload)
                    stored[key] = (pos, len(payload))
                    pos += len(payload)
                e.offset, e.length = stored[key]
                e.crc32 = zlib.crc32(payload)
            index = _encode_index(entries, version)
            fh.write(index)
            fh.write(FOOTER.pack(pos, len(index), zlib.crc32(index), END_MAGIC))
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


class Archive:
    """A read-only view of a .cseed file; every read is checked."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self._fh = open(self.path, "rb")
        except IsADirectoryError:
            raise ArchiveError(f"{path}: is a directory, not an archive") from None
        except OSError as e:
            raise ArchiveError(f"{path}: cannot open ({e.strerror})") from None
        self.size = os.fstat(self._fh.fileno()).st_size
        head = self._fh.read(14)
        if len(head) < 14 or head[:8] != MAGIC:
            raise ArchiveError(f"{path}: not a codeseed archive (bad magic)")
        version, hlen = struct.unpack("<HI", head[8:14])
        if version > FORMAT_VERSION:
            raise ArchiveError(f"{path}: archive format version {version} is newer than this codeseed reads "
                               f"({FORMAT_VERSION}); upgrade codeseed")
        if version < 1:
            raise ArchiveError(f"{path}: unknown archive format version {version}")
        if 14 + hlen + 4 + FOOTER.size > self.size:
            raise ArchiveError(f"{path}: truncated archive")
        hdr = self._fh.read(hlen)
        (hcrc,) = struct.unpack("<I", self._fh.read(4))
        if zlib.crc32(hdr) != hcrc:
            raise ArchiveError(f"{path}: corrupt archive (header checksum mismatch)")
        try:
            h = json.loads(hdr)
            self.header = Header(h["flags"], h["model"], h["settings"])
        except (ValueError, KeyError, TypeError):
            raise ArchiveError(f"{path}: corrupt archive (unreadable header)") from None
        self.payload_start = 14 + hlen + 4
        self._fh.seek(self.size - FOOTER.size)
        ioff, ilen, icrc, end = FOOTER.unpack(self._fh.read(FOOTER.size))
        if end != END_MAGIC:
            raise ArchiveError(f"{path}: truncated or corrupt archive (no end marker)")
        if ioff < self.payload_start or ioff + ilen != self.size - FOOTER.size:
            raise ArchiveError(f"{path}: corrupt archive (bad index position)")
        self._fh.seek(ioff)
        index = self._fh.read(ilen)
        if zlib.crc32(index) != icrc:
            raise ArchiveError(f"{path}: corrupt archive (index checksum mismatch)")
        self.entries, self.tree_digest = _decode_index(index, version)
        self.payload_end = ioff
        for e in self.entries:
            if e.offset < self.payload_start or e.offset + e.length > self.payload_end:
                raise ArchiveError(f"{path}: corrupt archive (entry {e.path!r} points outside the payload area)")

    def payload(self, e: Entry) -> bytes:
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
