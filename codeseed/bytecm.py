"""Byte-level context mixing: the classical codec "cm" for what the LM stream does not code.

Prose, data files and solid blocks of small files are coded bit by bit (most significant first).
Each bit's probability mixes these predictions in the logistic domain (as the paq family does):

- order-0 (the partial byte) and orders 1, 2, 3, 4 and 6 (hashed previous bytes): adaptive
  probabilities with a count-based rate (1 / (n + 1.5), n capped at COUNT_LIMIT);
- words: the current word (letters, digits, '_'), and it with the word before;
- column: the byte above (at the same column of the previous line) with the previous byte;
- match: the bit that follows the latest earlier occurrence of the last MATCH_MIN bytes, weighted
  by how often that was right at this match length.

A logistic mixer (weights chosen by the partial byte and match state) combines them, two adaptive
probability maps (APM/SSE, orders 0 and 1) refine the result, and a 32-bit binary arithmetic coder
codes the bit. Everything is integer arithmetic (cm.py's stretch and squash tables), so encoder and
decoder compute the same probabilities on every machine; `_run` is the one driver for both.

Decoding is bounded: exactly the declared number of bytes comes out, tables are sized from that
number (at most TABLE_BITS_MAX), and a payload too short for the declared size (each byte costs at
least MIN_BITS_PER_BYTE, since probabilities are clamped) is refused before any work.
"""
from __future__ import annotations

from decimal import Decimal, localcontext

import numpy as np
from numba import njit

from codeseed.errors import ArchiveError
from codeseed.logistic import squash_table, stretch_table
from codeseed.tables import table

ORDERS = (1, 2, 3, 4, 6)      # hashed byte contexts, besides order 0
N_CTX = 1 + len(ORDERS) + 3    # order 0, the orders, two word contexts, the column context
N_IN = N_CTX + 2               # + match, + bias
MATCH_MIN = 6                  # bytes of context that start a match
MATCH_MAX_VERIFY = 64          # bytes compared backwards when a match starts
COUNT_LIMIT = 10               # adaptation: rate 1 / (n + 1.5) until n reaches this (10 beat 14, 30, 60, 255)
TABLE_BITS_MAX = 22            # slots per context table, log2 (4 Mi slots: 12 MiB a table)
MIX_SHIFT = 16                 # mixer weights are fixed point, 2^-16
MIX_LR = 8                     # mixer learning rate (units of err * input >> 14; 8 beat 4, 12, 16)
MIN_BITS_PER_BYTE = 8 * 0.000352  # p clamped to [1, 4095] / 4096: a bit costs at least log2(4096 / 4095)
FLUSH = 4
PARAMS = np.array([MIX_LR], np.int64)


def table_bits(n: int) -> int:
    """Slots per context table (log2) for n bytes of data: about 2 per bit coded, 2^12 .. 2^22."""
    return min(TABLE_BITS_MAX, max(12, (8 * max(n, 1)).bit_length() + 1))


@njit(cache=True, inline="always")
def _hash(h, x):
    return ((h + np.uint64(x) + np.uint64(1)) * np.uint64(0x9E3779B97F4A7C15)) ^ (h >> np.uint64(29))


@njit(cache=True, nogil=True)
def _run(mode, buf, n, stream, tbits, stretch, squash, params, cost, bitcost):
    """Encode (mode 0: buf holds n bytes, stream receives the code; returns its length) or decode
    (mode 1: stream holds the code, buf receives n bytes; returns the bytes of stream consumed, or
    -1 when the code reads past its end). The same calls in the same order either way. Encoding
    with `cost` of shape (n,) also records each byte's ideal code length there (2^-16 bits, from
    `bitcost`, the cost of a bit of probability p / 4096)."""
    nctx = 9
    nin = nctx + 2
    lr = params[0]
    mask = np.uint64((1 << tbits) - 1)
    prob = np.full((nctx, 1 << tbits), 32768, np.int32)
    cnt = np.zeros((nctx, 1 << tbits), np.int32)
    rate = np.empty(COUNT_LIMIT + 1, np.int64)
    for i in range(COUNT_LIMIT + 1):
        rate[i] = (2 * 65536) // (2 * i + 3)
    weights = np.full((256 * 3, nin), (1 << MIX_SHIFT) // 4, np.int64)
    apm_row = np.empty(33, np.int64)
    for j in range(33):
        apm_row[j] = squash[min(max((j - 16) * 128, -2047), 2047) + 2047] * 16
    apm1 = np.empty((65536, 33), np.int64)  # 17 MB, filled row by row: column by column (strided) it
    for i in range(65536):                   # took 9 ms a call, most of a small file's time
        apm1[i, :] = apm_row
    mm = np.full((64, 2), 1 << 15, np.int64)   # match: P(expected bit) by length bucket, and its count
    mt = np.full(1 << max(tbits - 2, 12), -1, np.int64)
    mt_mask = np.uint64(mt.shape[0] - 1)
    base = np.zeros(nctx, np.uint64)
    idx = np.zeros(nctx, np.int64)
    st = np.zeros(nin, np.int64)
    x1, x2, x = np.uint64(0), np.uint64(0xFFFFFFFF), np.uint64(0)
    at = 0
    if mode == 1:
        for _ in range(4):
            x = (x << np.uint64(8)) | np.uint64(stream[at] if at < stream.shape[0] else 0)
            at += 1
    w0, w1 = np.uint64(0), np.uint64(0)
    line0, line1 = 0, -1           # start of the current line, and of the one before
    mlen, mptr = 0, 0
    for pos in range(n):
        # contexts of this byte
        c1 = buf[pos - 1] if pos >= 1 else 0
        h = np.uint64(0)
        k = 0
        base[0] = np.uint64(0)
        for o in range(1, 7):
            h = _hash(h, buf[pos - o] if pos >= o else 0)
            if o == 1 or o == 2 or o == 3 or o == 4 or o == 6:
                k += 1
                base[k] = _hash(h, 100 + o)
        base[6] = _hash(w0, 200)
        base[7] = _hash(_hash(w0, np.uint64(w1 & np.uint64(0xFFFFFFFF))), 201)
        col = pos - line0
        above = 0
        if line1 >= 0 and line1 + col < line0:
            above = buf[line1 + col]
        base[8] = _hash(_hash(np.uint64(above), c1), 202)
        mbucket = 0 if mlen == 0 else (1 if mlen < 16 else 2)
        ebyte = buf[mptr] if mlen > 0 else 0
        c0 = 1
        for bit in range(8):
            # predict
            idx[0] = c0
            for i in range(1, nctx):
                idx[i] = np.int64(((base[i] + np.uint64(c0) * np.uint64(0x2545F4914F6CDD1D)) >> np.uint64(20)) & mask)
            for i in range(nctx):
                if cnt[i, idx[i]] == 0:
                    st[i] = 0
                else:
                    st[i] = stretch[prob[i, idx[i]] >> 4]
            ebit = -1
            mb = 0
            if mlen > 0 and ((ebyte | 256) >> (8 - bit)) == c0:
                ebit = (ebyte >> (7 - bit)) & 1
                mb = min(mlen, 31) * 2 + (1 if bit == 0 else 0)
                s = stretch[mm[mb, 0] >> 4]
                st[nctx] = s if ebit == 1 else -s
            else:
                st[nctx] = 0
            st[nctx + 1] = 256
            ws = c0 + 256 * mbucket
            dot = np.int64(0)
            for i in range(nin):
                dot += weights[ws, i] * st[i]
            dot >>= MIX_SHIFT
            dot = min(max(dot, -2047), 2047)
            pmix = squash[dot + 2047]
            # refine: APMs over stretch(pmix), interpolated between 33 buckets
            sq = dot + 2048
            lo, wt = sq >> 7, sq & 127
            a1c = c0 | (c1 << 8)
            a1 = (apm1[a1c, lo] * (128 - wt) + apm1[a1c, lo + 1] * wt) >> 11
            p = (pmix + 3 * a1 + 2) >> 2
            p = min(max(p, 1), 4095)
            # code
            if mode == 0 and cost.shape[0] > 0:
                cost[pos] += bitcost[p] if (buf[pos] >> (7 - bit)) & 1 else bitcost[4096 - p]
            xmid = x1 + ((x2 - x1) >> np.uint64(12)) * np.uint64(p)
            if mode == 0:
                y = (buf[pos] >> (7 - bit)) & 1
            else:
                y = 1 if x <= xmid else 0
            if y == 1:
                x2 = xmid
            else:
                x1 = xmid + np.uint64(1)
            while ((x1 ^ x2) & np.uint64(0xFF000000)) == 0:
                if mode == 0:
                    stream[at] = np.uint8(x2 >> np.uint64(24))
                else:
                    x = ((x << np.uint64(8)) & np.uint64(0xFFFFFFFF)) | np.uint64(stream[at] if at < stream.shape[0] else 0)
                at += 1
                x1 = (x1 << np.uint64(8)) & np.uint64(0xFFFFFFFF)
                x2 = ((x2 << np.uint64(8)) & np.uint64(0xFFFFFFFF)) | np.uint64(255)
            if mode == 1 and at > stream.shape[0]:
                return -1
            # update
            for i in range(nctx):
                c = cnt[i, idx[i]]
                pr = prob[i, idx[i]]
                prob[i, idx[i]] = pr + ((((y << 16) - pr) * rate[c]) >> 16)
                if c < COUNT_LIMIT:
                    cnt[i, idx[i]] = c + 1
            err = ((y << 12) - pmix) * lr
            for i in range(nin):
                weights[ws, i] += (st[i] * err) >> 14
            if ebit >= 0:
                hit = 1 if ebit == y else 0
                mm[mb, 0] += (((hit << 16) - mm[mb, 0]) * rate[min(mm[mb, 1], COUNT_LIMIT)]) >> 16
                mm[mb, 1] += 1
            t = (y << 16)
            apm1[a1c, lo] += ((t - apm1[a1c, lo]) * (128 - wt)) >> 13
            apm1[a1c, lo + 1] += ((t - apm1[a1c, lo + 1]) * wt) >> 13
            c0 = (c0 << 1) | y
        c = c0 & 255
        if mode == 1:
            buf[pos] = c
        # after the byte: words, lines, match
        if (c >= 97 and c <= 122) or (c >= 65 and c <= 90) or (c >= 48 and c <= 57) or c == 95 or c >= 128:
            w0 = _hash(w0, c | 32 if c < 128 else c)
        elif w0 != np.uint64(0):
            w1 = w0
            w0 = np.uint64(0)
        if c == 10:
            line1, line0 = line0, pos + 1
        if mlen > 0 and buf[mptr] == c:
            mlen += 1
            mptr += 1
        else:
            mlen = 0
        end = pos + 1
        if end >= MATCH_MIN:
            hm = np.uint64(0)
            for j in range(1, MATCH_MIN + 1):
                hm = _hash(hm, buf[end - j])
            slot = np.int64((hm >> np.uint64(16)) & mt_mask)
            if mlen == 0 and mt[slot] >= 0:
                cand = mt[slot]
                ln = 0
                while ln < MATCH_MAX_VERIFY and cand - 1 - ln >= 0 and buf[cand - 1 - ln] == buf[end - 1 - ln]:
                    ln += 1
                if ln >= MATCH_MIN:
                    mlen, mptr = ln, cand
            mt[slot] = end
        if mlen > 0 and mptr >= end:
            mlen = 0
    if mode == 0:
        for _ in range(FLUSH):
            stream[at] = np.uint8(x1 >> np.uint64(24))
            x1 = (x1 << np.uint64(8)) & np.uint64(0xFFFFFFFF)
            at += 1
    return at


@table("bytecm.bit_cost")
def bit_cost_table() -> np.ndarray:
    """-log2(p / 4096) in units of 2^-16 bits, p = 0 .. 4096 (entry 0 unused), exact decimals."""
    out = [0]
    with localcontext() as ctx:
        ctx.prec = 40
        ln2 = Decimal(2).ln()
        for p in range(1, 4097):
            out.append(int((-(Decimal(p) / 4096).ln() / ln2 * 65536).to_integral_value()))
    return np.array(out, dtype=np.int64)


def _encode(data: bytes, with_costs: bool) -> tuple[bytes, np.ndarray]:
    n = len(data)
    cost = np.zeros(n if with_costs else 0, np.int64)
    if n == 0:
        return b"", cost
    buf = np.frombuffer(data, np.uint8).copy()
    out = np.zeros(n + n // 2 + 1024, np.uint8)
    m = _run(0, buf, n, out, table_bits(n), stretch_table(), squash_table(), PARAMS, cost, bit_cost_table())
    return out[:m].tobytes(), cost


def encode(data: bytes) -> bytes:
    """The "cm" payload of `data` (any bytes)."""
    return _encode(data, False)[0]


def segment_costs(data: bytes, cuts: list[int]) -> list[float]:
    """What each segment data[cuts[i]:cuts[i + 1]] costs in the "cm" payload of `data`, in bytes
    (ideal code length of its bits, coded after everything before it). `cuts` starts at 0 and ends
    at len(data). The payload itself is within FLUSH + a few bytes of their sum."""
    cost = _encode(data, True)[1]
    total = np.concatenate([[0], np.cumsum(cost)])
    return [float(total[b] - total[a]) / (8 * 65536) for a, b in zip(cuts, cuts[1:])]


def decode(payload: bytes, size: int) -> bytes:
    """Exactly `size` bytes from a "cm" payload; ArchiveError when the payload cannot hold them (too
    short for `size`, cut short, or followed by other bytes)."""
    if size == 0:
        if payload:
            raise ArchiveError("corrupt payload (cm: bytes after the end)")
        return b""
    if size * MIN_BITS_PER_BYTE > 8 * (len(payload) + 8):
        raise ArchiveError(f"corrupt payload (cm: {len(payload)} bytes cannot hold {size})")
    buf = np.zeros(size, np.uint8)
    stream = np.frombuffer(payload, np.uint8).copy()
    used = _run(1, buf, size, stream, table_bits(size), stretch_table(), squash_table(), PARAMS,
                np.zeros(0, np.int64), bit_cost_table())
    if used < 0:
        raise ArchiveError("corrupt payload (cm: stream cut short)")
    if used != len(payload):
        raise ArchiveError("corrupt payload (cm: bytes after the end)")
    return buf.tobytes()
