"""Classical per-file codecs. Every archive entry names its codec; pack picks the smallest.

Model-based codecs (exact LM coding, seeded) live in their own modules and are chosen per file
against these, so no file is ever stored larger than the best classical codec would store it.
"""
from __future__ import annotations

import lzma
from dataclasses import dataclass
from typing import Callable

import zstandard

from codeseed.errors import ArchiveError

ZSTD_LEVEL = 19
ZSTD_WINDOW_LOG = 27  # long window: 128 MiB, so large files still find far matches


def _zstd_encode(data: bytes) -> bytes:
    params = zstandard.ZstdCompressionParameters.from_level(ZSTD_LEVEL, window_log=ZSTD_WINDOW_LOG,
                                                            enable_ldm=True, write_content_size=True,
                                                            write_checksum=False, write_dict_id=False)
    return zstandard.ZstdCompressor(compression_params=params).compress(data)


def _zstd_decode(data: bytes) -> bytes:
    return zstandard.ZstdDecompressor(max_window_size=1 << ZSTD_WINDOW_LOG).decompress(data)


def xz_encode(data: bytes) -> bytes:
    # raw LZMA2 stream: the .xz container's 60 bytes of framing matter on small source files
    return lzma.compress(data, format=lzma.FORMAT_RAW, filters=[{"id": lzma.FILTER_LZMA2,
                                                                  "preset": 9 | lzma.PRESET_EXTREME}])


def xz_decode(data: bytes) -> bytes:
    return lzma.decompress(data, format=lzma.FORMAT_RAW, filters=[{"id": lzma.FILTER_LZMA2}])


@dataclass(frozen=True)
class Codec:
    name: str
    encode: Callable[[bytes], bytes]
    decode: Callable[[bytes], bytes]


CLASSICAL = {
    "stored": Codec("stored", bytes, bytes),
    "zstd": Codec("zstd", _zstd_encode, _zstd_decode),
    "xz": Codec("xz", xz_encode, xz_decode),
}


def best_classical(data: bytes) -> tuple[str, bytes]:
    """The smallest classical encoding of `data` (ties go to the faster codec, listed first)."""
    best_name, best = "stored", data
    if data:
        for name in ("zstd", "xz"):
            enc = CLASSICAL[name].encode(data)
            if len(enc) < len(best):
                best_name, best = name, enc
    return best_name, best


def decode_classical(codec: str, payload: bytes) -> bytes:
    if codec not in CLASSICAL:
        raise ArchiveError(f"unknown codec {codec!r} (archive from a newer codeseed?)")
    try:
        return CLASSICAL[codec].decode(payload)
    except (lzma.LZMAError, zstandard.ZstdError) as e:
        raise ArchiveError(f"corrupt payload ({codec}: {e})") from None
