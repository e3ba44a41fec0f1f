"""The exact engine's CPU step: every elementwise stage of a layer as one compiled kernel.

ExactLM.forward spends most of a decoder step (one token a row) on the fixed cost of several
hundred small torch operations, not on arithmetic: 40 rows took 12.0 ms a step, of which the int8
GEMMs were 2.1 ms (benchmarks/RESULTS.md, issue 15). These kernels do the same arithmetic as the
torch operations they replace, in the same order and precision (float32 where the torch path is
float32, float64 where it is float64, int64 for the residual; round half to even; no fused
multiply-add, which numba does not emit without fastmath), so a step between the GEMMs is a few
kernel calls instead of dozens of operations, and every number is the one the torch path
(ExactLM._forward_torch, what a GPU runs) gives: tests/test_engine.py checks that they agree.

Shapes: M = R x S positions (rows times new tokens), D model width, H query heads and KV key
heads of DH, F the MLP's width. Weights are int8 per output channel with float32 scales `ws`;
`acc` is a GEMM's integer sums, int32 (or float32 holding integers, without torch's int8 GEMM).
"""
from __future__ import annotations

import numpy as np
from numba import njit

F127 = 127.0


@njit(cache=True, nogil=True, inline="always")
def _quant(x, out, i):
    """out[i, :] = round(x * float32(127 / m)), m = max |x| (1 if 0), in float64; returns m.
    x float32 (K,), out int8 (M, K)."""
    mx = np.float32(0.0)
    for j in range(x.shape[0]):
        a = abs(x[j])
        if a > mx:
            mx = a
    m = np.float64(mx)
    if not m > 0.0:
        m = 1.0
    f = np.float32(F127 / m)
    for j in range(x.shape[0]):
        out[i, j] = np.int8(np.rint(x[j] * f))
    return m


@njit(cache=True, nogil=True)
def norm_quant(h, eps_term, xq, s):
    """RMSNorm then int8 per row (ExactLM._norm_quant): h int64 (M, D) in units of 2^-16 ->
    xq int8 (M, D), s float32 (M,) = m / 127 / rms."""
    M, D = h.shape
    x = np.empty(D, np.float32)
    for i in range(M):
        ss = np.int64(0)
        for j in range(D):
            ss += h[i, j] * h[i, j]
            x[j] = np.float32(h[i, j])
        rms = np.sqrt(np.float64(ss) / np.float64(D) + eps_term)
        m = _quant(x, xq, i)
        s[i] = np.float32(m / F127 / rms)


@njit(cache=True, nogil=True)
def qkv_post(acc, s, ws, b, cos, sin, H, KV, DH, score_factor, value_limit, qq, qs, kq, ks, vi):
    """After the fused q/k/v GEMM: scale the sums, rotate queries and keys (rotate-half layout),
    quantize them int8 per head, put values on the 2^-16 grid (ExactLM.forward's attention inputs).

    acc (R, S, (H + 2 KV) DH), s (R, S) float32, ws, b ((H + 2 KV) DH,) float32 (b empty: no
    bias), cos/sin (R, S, DH/2) float32 -> qq int8 (R, S, H, DH), qs float32 (R, S, H) (the
    query's score factor), kq int8 (R, KV, S, DH), ks float32 (R, KV, S), vi int32 (R, KV, S, DH)."""
    R, S, N = acc.shape
    half = DH // 2
    y = np.empty(N, np.float32)
    rot = np.empty(DH, np.float32)
    row = np.empty((1, DH), np.int8)
    unit = np.float32(65536.0)
    lim = np.float32(value_limit)
    for r in range(R):
        for t in range(S):
            sc = s[r, t]
            for n in range(N):
                y[n] = (np.float32(acc[r, t, n]) * sc) * ws[n]
                if b.shape[0]:
                    y[n] = y[n] + b[n]
            for hd in range(H + KV):
                o = hd * DH
                for d in range(half):
                    c, z = cos[r, t, d], sin[r, t, d]
                    rot[d] = y[o + d] * c - y[o + half + d] * z
                    rot[half + d] = y[o + half + d] * c + y[o + d] * z
                m = _quant(rot, row, 0)
                if hd < H:
                    qq[r, t, hd, :] = row[0]
                    qs[r, t, hd] = np.float32(m / F127 * score_factor)
                else:
                    kq[r, hd - H, t, :] = row[0]
                    ks[r, hd - H, t] = np.float32(m / F127)
            o = (H + KV) * DH
            for g in range(KV):
                for d in range(DH):
                    v = np.rint(y[o + g * DH + d] * unit)
                    if v < -lim:
                        v = -lim
                    elif v > lim:
                        v = lim
                    vi[r, g, t, d] = np.int32(v)


@njit(cache=True, nogil=True)
def store(ck, cks, cv, kq, ks, vi, rr, jj, slot):
    """The new keys and values of positions (rr, jj) into ring slots: ck (R, KV, DH, W-1) int8,
    cks (R, KV, W-1) float32, cv (R, KV, DH, W-1) int32 <- kq/vi (R, KV, S, DH), ks (R, KV, S)."""
    KV, DH = ck.shape[1], ck.shape[2]
    for i in range(rr.shape[0]):
        r, j, n = rr[i], jj[i], slot[i]
        for g in range(KV):
            cks[r, g, n] = ks[r, g, j]
            for d in range(DH):
                ck[r, g, d, n] = kq[r, g, j, d]
                cv[r, g, d, n] = vi[r, g, j, d]


@njit(cache=True, nogil=True)
def att_post(att, xq, scale):
    """Attention output (R, S, H, DH) float64 -> float32, then int8 per position over H x DH:
    xq int8 (R x S, H DH), scale float32 (R x S,) = m / 127."""
    R, S, H, DH = att.shape
    x = np.empty(H * DH, np.float32)
    for r in range(R):
        for t in range(S):
            for hd in range(H):
                for d in range(DH):
                    x[hd * DH + d] = np.float32(att[r, t, hd, d])
            i = r * S + t
            scale[i] = np.float32(_quant(x, xq, i) / F127)


@njit(cache=True, nogil=True)
def residual_norm(h, acc, s, ws, b, eps_term, xq, xs):
    """h += round((acc * s * ws + b) * 2^16) (int64, in place), then norm_quant(h) into xq, xs.
    h int64 (M, D), acc (M, D), s float32 (M,), ws, b (D,) float32 (b empty: no bias)."""
    M, D = h.shape
    unit = np.float32(65536.0)
    for i in range(M):
        si = s[i]
        for j in range(D):
            y = (np.float32(acc[i, j]) * si) * ws[j]
            if b.shape[0]:
                y = y + b[j]
            h[i, j] += np.int64(np.rint(y * unit))
    norm_quant(h, eps_term, xq, xs)


@njit(cache=True, nogil=True)
def swiglu(acc, s, ws, sigmoid, steps, lo, xq, xs):
    """After the fused gate/up GEMM: g, u = halves of acc * s * ws; x = sigmoid[k] * g * u with
    k = round(g * steps + lo) clamped to the table; then int8 per row: xq int8 (M, F), xs float32
    (M,) = m / 127. acc (M, 2F), ws (2F,), sigmoid float32 (2 lo + 1,)."""
    M, F2 = acc.shape
    F = F2 // 2
    x = np.empty(F, np.float32)
    st, off, top = np.float32(steps), np.float32(lo), np.float32(2 * lo)
    for i in range(M):
        si = s[i]
        for j in range(F):
            g = (np.float32(acc[i, j]) * si) * ws[j]
            u = (np.float32(acc[i, F + j]) * si) * ws[F + j]
            k = np.rint(g * st + off)
            if k < 0:
                k = np.float32(0.0)
            elif k > top:
                k = top
            x[j] = (sigmoid[np.int64(k)] * g) * u
        xs[i] = np.float32(_quant(x, xq, i) / F127)


VALUE_SCALE_DOWN = 2.0 ** -16  # values are integers in units of 2^-16 (engine.VALUE_BITS)


@njit(cache=True, nogil=True)
def attend(qq, qs, nk, nks, nv, ck, cks, cv, blocked, table, last, out):
    """Attention of S queries a row, the same arithmetic as ExactLM._attend (integer sums, so their
    order is free), reading the cache as stored (int8 keys, int32 values, laid out (DH, N) so the
    inner loops run along the keys and vectorize): qq (R, S, H, DH) int8, qs (R, S, H) f32; new
    keys nk (R, KV, S, DH) int8, scales nks (R, KV, S) f32, values nv (R, KV, S, DH) int32; cache ck
    (R, KV, DH, N) int8, cks (R, KV, N) f32, cv (R, KV, DH, N) int32; blocked (R, S, N + S); out
    (R, S, H, DH) float64.
    Masked keys weigh 0 (table[last] == 0), so the integer sums are the same without them: the
    loops over the cache run over the span of keys a query sees (half the cache, on average, while
    a prompt fills it), and a query that sees itself and none of the cache (a segment's first
    block) takes _attend_new."""
    R, S, H, DH = qq.shape
    KV, N = ck.shape[1], ck.shape[3]
    rep = H // KV
    neg = np.float32(-1e30)
    half = np.float32(0.5)
    dots = np.empty(N, dtype=np.int32)
    sc = np.empty(N + S, dtype=np.float32)
    w = np.empty(N + S, dtype=np.int32)  # weights <= 2^12: int32 x int32 -> int64 products
    for r in range(R):
        for s in range(S):
            lo, hi = N, 0  # the cached keys it sees lie in [lo, hi): the loops skip the rest (weight 0)
            for j in range(N):
                if not blocked[r, s, j]:
                    lo = j
                    break
            for j in range(N - 1, lo - 1, -1):
                if not blocked[r, s, j]:
                    hi = j + 1
                    break
            if lo == N and not blocked[r, s, N + s]:
                _attend_new(qq, qs, nk, nks, nv, blocked, table, last, out, r, s, N, sc, w)
                continue
            for h in range(H):
                g = h // rep
                q = qs[r, s, h]
                if hi - lo == N:  # the whole cache: whole rows (contiguous) vectorize best
                    dots[:] = 0
                    for d in range(DH):  # q . k for every cached key at once: vector steps
                        qd = np.int32(qq[r, s, h, d])
                        kd = ck[r, g, d]
                        for j in range(N):
                            dots[j] += qd * np.int32(kd[j])
                else:  # the span it sees
                    seen = dots[lo:hi]
                    seen[:] = 0
                    for d in range(DH):
                        qd = np.int32(qq[r, s, h, d])
                        kd = ck[r, g, d, lo:hi]
                        for j in range(hi - lo):
                            seen[j] += qd * np.int32(kd[j])
                top = neg
                for j in range(lo, hi):
                    if blocked[r, s, j]:
                        sc[j] = neg
                        continue
                    x = (np.float32(dots[j]) * q) * cks[r, g, j]
                    sc[j] = x
                    if x > top:
                        top = x
                for j in range(N, N + S):
                    if blocked[r, s, j]:
                        sc[j] = neg
                        continue
                    acc = np.int32(0)
                    for d in range(DH):
                        acc += np.int32(qq[r, s, h, d]) * np.int32(nk[r, g, j - N, d])
                    x = (np.float32(acc) * q) * nks[r, g, j - N]
                    sc[j] = x
                    if x > top:
                        top = x
                top = top + half
                den = _weigh(sc, w, table, top, last, lo, hi) + _weigh(sc, w, table, top, last, N, N + S)
                for d in range(DH):  # integer weights and values: exact in int64 (< 2^51), and an integer
                    acc64 = np.int64(0)  # reduction vectorizes (a float one may not be reordered)
                    if hi - lo == N:
                        vd = cv[r, g, d]
                        for j in range(N):
                            acc64 += np.int64(w[j]) * np.int64(vd[j])
                    else:
                        vd, ws = cv[r, g, d, lo:hi], w[lo:hi]
                        for j in range(hi - lo):
                            acc64 += np.int64(ws[j]) * np.int64(vd[j])
                    for j in range(S):
                        acc64 += np.int64(w[N + j]) * np.int64(nv[r, g, j, d])
                    out[r, s, h, d] = np.float64(acc64) / np.float64(den) * VALUE_SCALE_DOWN


@njit(cache=True, nogil=True)
def _weigh(sc, w, table, top, last, a, b):
    """Attention weights w[a:b] of the scores sc[a:b] under the row's top (the exp table's integer
    weights); returns their sum."""
    den = np.int64(0)
    for j in range(a, b):
        x = top - sc[j]
        if x > last:
            x = last
        w[j] = table[np.int64(x)]
        den += w[j]
    return den


@njit(cache=True, nogil=True)
def _attend_new(qq, qs, nk, nks, nv, blocked, table, last, out, r, s, N, sc, w):
    """attend() for query (r, s) over the new keys only (it sees none of the cache): the
    same operations in the same order, less the keys whose weight is 0."""
    S, H, DH = qq.shape[1], qq.shape[2], qq.shape[3]
    rep = H // nk.shape[1]
    neg = np.float32(-1e30)
    half = np.float32(0.5)
    for h in range(H):
        g = h // rep
        q = qs[r, s, h]
        top = neg
        for j in range(S):
            if blocked[r, s, N + j]:
                sc[j] = neg
                continue
            acc = np.int32(0)
            for d in range(DH):
                acc += np.int32(qq[r, s, h, d]) * np.int32(nk[r, g, j, d])
            x = (np.float32(acc) * q) * nks[r, g, j]
            sc[j] = x
            if x > top:
                top = x
        top = top + half
        den = np.int64(0)
        for j in range(S):
            x = top - sc[j]
            if x > last:
                x = last
            w[j] = table[np.int64(x)]
            den += w[j]
        for d in range(DH):
            acc64 = np.int64(0)
            for j in range(S):
                acc64 += np.int64(w[j]) * np.int64(nv[r, g, j, d])
            out[r, s, h, d] = np.float64(acc64) / np.float64(den) * VALUE_SCALE_DOWN
