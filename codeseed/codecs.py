"""Classical per-file codecs. Every archive entry names its codec; pack picks the smallest.

Model-based codecs (exact LM coding, seeded) live in their own modules and are chosen per file
against these, so no file is ever stored larger than the best classical codec would store it.
"""
from __future__ import annotations

import lzma
import re
from dataclasses import dataclass
from typing import Callable, Iterator

import zstandard

from codeseed.errors import ArchiveError

ZSTD_LEVEL = 19
ZSTD_WINDOW_LOG = 27  # long window: 128 MiB, so large files still find far matches
XZ_PRESET = 9 | lzma.PRESET_EXTREME
XZ_MAX_DICT = 64 << 20  # preset 9's dictionary
_READ_STEP = 1 << 20    # bounded decoders produce at most this much more than asked for, per step


def _zstd_encode(data: bytes) -> bytes:
    params = zstandard.ZstdCompressionParameters.from_level(ZSTD_LEVEL, window_log=ZSTD_WINDOW_LOG,
                                                            enable_ldm=True, write_content_size=True,
                                                            write_checksum=False, write_dict_id=False)
    return zstandard.ZstdCompressor(compression_params=params).compress(data)


def _zstd_decode(data: bytes, limit: int) -> Iterator[bytes]:
    """Chunks of at most _READ_STEP bytes, no more than limit + 1 in all, whatever the frame header
    claims (a frame can claim any content size, and `decompress()` would allocate it); frames back to
    back are read as one stream."""
    reader = zstandard.ZstdDecompressor(max_window_size=1 << ZSTD_WINDOW_LOG).stream_reader(
        data, read_across_frames=True)
    done = 0
    while done <= limit:
        chunk = reader.read(min(_READ_STEP, limit + 1 - done))
        if not chunk:
            return
        done += len(chunk)
        yield chunk


def _xz_filters(size: int) -> list[dict]:
    # The dictionary need not exceed the data: a raw LZMA2 stream does not record its dictionary
    # size, the output is the same as with preset 9's 64 MiB (checked on this repository's files),
    # and setting up 64 MiB cost ~33 ms a call (measured), which dominated trees of small files.
    return [{"id": lzma.FILTER_LZMA2, "preset": XZ_PRESET, "dict_size": min(XZ_MAX_DICT, max(4096, size))}]


def xz_encode(data: bytes) -> bytes:
    # raw LZMA2 stream: the .xz container's 60 bytes of framing matter on small source files
    return lzma.compress(data, format=lzma.FORMAT_RAW, filters=_xz_filters(len(data)))


def xz_decode(data: bytes, limit: int) -> bytes:
    """At most limit + 1 bytes (see _xz_chunks)."""
    return b"".join(_xz_chunks(data, limit))


def _xz_chunks(data: bytes, limit: int) -> Iterator[bytes]:
    """Chunks of at most _READ_STEP bytes, no more than limit + 1 in all; ArchiveError if the stream
    is cut short or followed by other bytes. The dictionary is sized for `limit` (no match reaches
    further back than the output is long): a fixed default of 8 MiB failed on files over 8 MiB with
    matches further back."""
    dec = lzma.LZMADecompressor(format=lzma.FORMAT_RAW, filters=[{"id": lzma.FILTER_LZMA2,
                                                                  "dict_size": min(XZ_MAX_DICT, max(4096, limit))}])
    done, pending = 0, data
    while not dec.eof and done <= limit:
        chunk = dec.decompress(pending, max_length=min(_READ_STEP, limit + 1 - done))
        pending = b""
        if not chunk and dec.needs_input:
            raise ArchiveError("corrupt payload (xz: stream cut short)")
        done += len(chunk)
        yield chunk
    if done <= limit and dec.unused_data:
        raise ArchiveError("corrupt payload (xz: bytes after the end)")


# Lock files (uv.lock, poetry.lock, go.sum...) are mostly SHA-256 / BLAKE2 digests in hex: pure
# entropy at 4 bits a digit, which xz pays ~4.5 bits for. The "hex" codec lifts every run of at
# least HEX_MIN_RUN lowercase hex digits out as packed nibbles and xz-codes the rest (measured on
# semver's uv.lock: xz 60,819 -> 56,265 bytes). A NUL marks each run, so files holding NUL are not eligible.
HEX_MIN_RUN = 32
HEX_MAX_BYTES = 64 << 20  # decoded in memory at once (a lock file): larger files use the other codecs
_HEX_RUN = re.compile(rb"[0-9a-f]{%d,}" % HEX_MIN_RUN)


def varint(n: int) -> bytes:
    """LEB128: 7 bits a byte, low bits first (the archive index uses it too)."""
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def read_varint(data: bytes, pos: int) -> tuple[int, int]:
    """The varint at data[pos:] and the position after it; ArchiveError if cut short or absurd."""
    n = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ArchiveError("corrupt archive: bad or truncated integer")
        b = data[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, pos


def _hex_encode(data: bytes) -> bytes:
    """varint(len(side)) side nibbles, side = xz(varint(runs) run lengths... skeleton)."""
    runs = [m.group() for m in _HEX_RUN.finditer(data)]
    skeleton = _HEX_RUN.sub(b"\0", data)
    digits = b"".join(runs)
    side = xz_encode(varint(len(runs)) + b"".join(varint(len(r)) for r in runs) + skeleton)
    nibbles = bytes.fromhex((digits + b"0" * (len(digits) % 2)).decode())
    return varint(len(side)) + side + nibbles


def _hex_decode(payload: bytes, limit: int) -> Iterator[bytes]:
    yield _hex_decode_all(payload, limit)


def _hex_decode_all(payload: bytes, limit: int) -> bytes:
    """The whole output at once: archive.py refuses hex payloads declaring over HEX_MAX_BYTES."""
    if limit > HEX_MAX_BYTES:
        raise ValueError(f"a hex payload decodes to at most {HEX_MAX_BYTES} bytes")
    n, pos = read_varint(payload, 0)
    # the side stream holds the run table (a varint a run of >= HEX_MIN_RUN digits) and the skeleton
    inner_limit = limit + 10 * (limit // HEX_MIN_RUN + 2)
    inner, nibbles = xz_decode(payload[pos:pos + n], inner_limit), payload[pos + n:]
    if len(inner) > inner_limit or 2 * len(nibbles) > limit + 1:
        raise ValueError("decodes to more than the declared size")
    count, pos = read_varint(inner, 0)
    lengths = []
    for _ in range(count):
        length, pos = read_varint(inner, pos)
        lengths.append(length)
    pieces = inner[pos:].split(b"\0")
    digits = nibbles.hex().encode()
    if len(pieces) != count + 1 or len(digits) - sum(lengths) not in (0, 1):
        raise ArchiveError("corrupt payload (hex: run table does not match the text)")
    out, at = bytearray(pieces[0]), 0
    for length, piece in zip(lengths, pieces[1:]):
        out += digits[at:at + length] + piece
        at += length
    return bytes(out)


def hex_eligible(data: bytes) -> bool:
    return len(data) <= HEX_MAX_BYTES and b"\0" not in data and _HEX_RUN.search(data) is not None


def _cm_encode(data: bytes) -> bytes:
    from codeseed import bytecm  # numba: imported when a payload needs it, so `info` starts fast
    return bytecm.encode(data)


def _cm_decode(payload: bytes, limit: int) -> Iterator[bytes]:
    """Exactly `limit` bytes (the declared size), in one chunk: bytecm.decode refuses a payload that
    cannot hold them (each byte costs at least bytecm.MIN_BITS_PER_BYTE), so memory stays within a
    fixed multiple of the payload's size."""
    from codeseed import bytecm
    yield bytecm.decode(payload, limit)


@dataclass(frozen=True)
class Codec:
    name: str
    encode: Callable[[bytes], bytes]
    decode: Callable[[bytes, int], Iterator[bytes]]  # (payload, limit) -> chunks, at most limit + 1 bytes in all


CLASSICAL = {
    "stored": Codec("stored", bytes, lambda payload, limit: (payload[i:i + _READ_STEP]
                                                            for i in range(0, len(payload), _READ_STEP))),
    "zstd": Codec("zstd", _zstd_encode, _zstd_decode),
    "xz": Codec("xz", xz_encode, _xz_chunks),
    "hex": Codec("hex", _hex_encode, _hex_decode),
    "cm": Codec("cm", _cm_encode, _cm_decode),  # byte-level context mixing (bytecm.py)
}


# Codecs a solid block (several small files coded together) may use, tried in this order; the
# smallest wins. Any classical codec can code a block: a block is just a payload that entries slice.
# "cm" is the strongest on text (benchmarks/RESULTS.md, issue 18: 11% under xz on the trees' blocks);
# PPMd (pyppmd) and ZPAQ (the `zpaq` wheel) were measured and left out: pyppmd's decoder crashed on
# random payloads and its encoder dropped bytes on large inputs, the zpaq wheel has no output limit.
BLOCK_CODECS = ("zstd", "xz", "cm")


def best_classical(data: bytes, names: tuple[str, ...] | None = None) -> tuple[str, bytes]:
    """The smallest classical encoding of `data` among `names` (default: zstd, xz, cm, and hex where
    eligible) or stored; ties go to the codec listed first."""
    best_name, best = "stored", data
    if data:
        for name in names or (("zstd", "xz", "cm") + (("hex",) if hex_eligible(data) else ())):
            enc = CLASSICAL[name].encode(data)
            if len(enc) < len(best):
                best_name, best = name, enc
    return best_name, best


def decode_chunks(codec: str, payload: bytes, size: int, exact_size: bool = True) -> Iterator[bytes]:
    """Decode a payload whose declared decoded size is `size` bytes (`exact_size`: exactly that many;
    otherwise at most), in chunks of at most 1 MiB. Never produces more than size + 1 bytes, whatever
    the payload claims, so a decompression bomb costs no more than its declared size, and streamed
    (to a file, to a hash) no more memory than a chunk and the codec's window. ArchiveError (exit 4)
    on an unknown codec, a corrupt payload, or a size other than declared (raised once the chunks
    show it: a consumer must not trust what it got before the generator ends)."""
    if codec not in CLASSICAL:
        raise ArchiveError(f"unknown codec {codec!r} (archive from a newer codeseed?)")
    done = 0
    try:
        for chunk in CLASSICAL[codec].decode(payload, size):
            done += len(chunk)
            if done > size:
                raise ArchiveError(f"corrupt payload ({codec}: decodes to more than the {size} bytes declared)")
            yield chunk
    except (lzma.LZMAError, zstandard.ZstdError, ValueError) as e:
        raise ArchiveError(f"corrupt payload ({codec}: {e})") from None
    if exact_size and done != size:
        raise ArchiveError(f"corrupt payload ({codec}: decodes to {done} bytes, {size} declared)")


def decode_classical(codec: str, payload: bytes, size: int, exact_size: bool = True) -> bytes:
    """decode_chunks() joined: for what is held in memory anyway (link targets, seeds, tests)."""
    return b"".join(decode_chunks(codec, payload, size, exact_size))
