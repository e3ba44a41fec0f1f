"""Context mixing and range coding in integer arithmetic, compiled with numba.

The entropy model turns the exact engine's head sums into integer token frequencies and mixes them
with two adaptive models that learn the repository while it is coded:

1. the LM: frequency exp_table[round((max_logit - logit) * OUT_STEPS)], 1 .. 2^24;
2. an n-gram cache per order (2 and 3 tokens of context): with counts c over n observations of the
   context, p <- (alpha p + c) / (n + alpha), the LM as prior (a hash table of slots, up to
   NGRAM_WAYS next tokens a context, the rarest replaced when full). With adaptive blending
   (MixSettings.adaptive), each order and count bucket uses the alpha among ALPHAS whose running
   code length (what each would have given the tokens so far, with decay) is the smallest: the LM
   prior weighs less where the file's own statistics predict better (prose, data), more where the
   LM does;
3. a match model (as in lpaq): the token that followed the latest earlier occurrence of the last
   MATCH_MIN tokens gets probability q from an online logistic mixer of stretch(p) and the hit
   rate at this match length, everything else is scaled by (1 - q) / (1 - p).

Every step is integer arithmetic (stretch and squash are tables built with decimal), so encoder
and decoder compute the same frequencies on every machine. The state is shared by all rows of a
stream: rows are coded in lockstep and each row, in row order, predicts, codes its token and
updates the state, so a file learns from every file coded beside it.

The range coder (Schindler-style, carry propagated into the output) keeps a 64-bit low and a
range of at least 2^56, so totals up to 2^50 code with a loss below 2^-6 bits a million symbols.
`run` is the one driver: encode and decode make the same calls in the same order.

Arrays are int64 unless said otherwise. Shapes: R rows, V vocabulary.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from codeseed.engine import OUT_SCALE_BITS, OUT_STEPS, decay_table
from codeseed.logistic import squash_table, stretch_table  # noqa: F401 (used by State)
from codeseed.tables import table

NGRAM_WAYS = 8        # next tokens remembered per context
MATCH_MIN = 5         # tokens of context that start a match
MATCH_BUCKETS = 16    # mixer weight sets, by match length
FIX = 24              # fixed-point bits of the dense scale factor
MIX_LR = 1311         # mixer learning rate: 0.02 * 2^16 / 16 in the units of _update_mixer (>> 20)
RC_TOP = np.uint64(1) << np.uint64(56)
ALPHAS = (1, 2, 3, 6, 12, 24, 48)  # adaptive blending: the prior weights an n-gram order chooses among
ALPHA_BUCKETS = 4     # ... chosen per order and per count bucket of the context: 1, 2-3, 4-7, 8+ observations
ALPHA_DECAY = 6       # the running code length of each choice forgets with weight 2^-6 a token

SCORE, DECODE = 0, 1   # run() modes: record each token's frequencies (the encoder), or range-decode


@dataclass(frozen=True)
class MixSettings:
    """Numeric settings of the entropy model; stored with the stream and required to decode it."""
    ngram_orders: tuple[int, ...] = (2, 3)
    ngram_alpha: tuple[int, ...] = (6, 3)
    match: bool = True
    adaptive: bool = True    # each order picks its alpha among ALPHAS by the code length each would have given
                             # (issue 18: -2.6% on Python, -0.5% on prose, -0.9% on data; RESULTS.md)

    def to_dict(self) -> dict:
        """Every field (archive format 5 and before wrote no "adaptive" for fixed alphas: from_dict's default)."""
        return {"ngram_orders": list(self.ngram_orders), "ngram_alpha": list(self.ngram_alpha), "match": self.match,
                "adaptive": self.adaptive}

    @classmethod
    def from_dict(cls, d: dict) -> MixSettings:
        orders, alpha, flags = d["ngram_orders"], d["ngram_alpha"], (d["match"], d.get("adaptive", False))
        if not (isinstance(orders, list) and isinstance(alpha, list) and all(type(x) is int for x in orders + alpha)
                and all(type(f) is bool for f in flags)):
            raise TypeError("mixing settings of the wrong type")
        if (len(orders) != len(alpha) or len(orders) > 8 or any(not 1 <= o <= 8 for o in orders)
                or any(not 1 <= a <= 1 << 16 for a in alpha)):
            raise ValueError("bad mixing settings")
        return cls(tuple(orders), tuple(alpha), *flags)


class State:
    """The adaptive state of one stream: n-gram tables, match table, mixer, row histories."""

    def __init__(self, settings: MixSettings, rows: int, row_len: int, total_tokens: int):
        self.s = settings
        nbits = min(22, max(12, (max(total_tokens, 1)).bit_length()))
        k = len(settings.ngram_orders)
        self.orders = np.array(settings.ngram_orders, dtype=np.int64)
        self.alpha = np.array(settings.ngram_alpha, dtype=np.int64)
        self.ng_check = np.full((k, 1 << nbits), -1, dtype=np.int64)
        self.ng_tok = np.zeros((k, 1 << nbits, NGRAM_WAYS), dtype=np.int32)
        self.ng_cnt = np.zeros((k, 1 << nbits, NGRAM_WAYS), dtype=np.int32)
        mbits = min(24, max(12, (max(total_tokens, 1)).bit_length() + 1))
        self.match_on = settings.match
        self.mt = np.full(1 << mbits, -1, dtype=np.int64)
        self.hist = np.zeros((rows, row_len + 1), dtype=np.int32)
        self.hlen = np.zeros(rows, dtype=np.int64)
        self.mrow = np.zeros(rows, dtype=np.int64)
        self.mpos = np.zeros(rows, dtype=np.int64)
        self.mlen = np.zeros(rows, dtype=np.int64)
        self.weights = np.tile(np.array([19661, 65536, 0], dtype=np.int64), (MATCH_BUCKETS, 1))  # 0.3, 1.0, 0
        self.hits = np.zeros((MATCH_BUCKETS, 2), dtype=np.int64)
        self.exp_table = decay_table(OUT_STEPS, OUT_SCALE_BITS, 1)
        self.squash = squash_table()
        self.stretch = stretch_table()
        self.adaptive = settings.adaptive
        self.alphas = np.array(ALPHAS, dtype=np.int64)
        # running code length of each alpha choice, per order and count bucket (2^-16 bits); ties go to the
        # configured alpha (the candidate nearest to it starts a little ahead)
        self.alpha_loss = np.zeros((k, ALPHA_BUCKETS, len(ALPHAS)), dtype=np.int64)
        for i, a in enumerate(settings.ngram_alpha):
            self.alpha_loss[i, :, int(np.argmin([abs(x - a) for x in ALPHAS]))] = -1
        self.log2_table = log2_table()

    def arrays(self) -> tuple:
        return (self.orders, self.alpha, self.ng_check, self.ng_tok, self.ng_cnt, self.match_on, self.mt,
                self.hist, self.hlen, self.mrow, self.mpos, self.mlen, self.weights, self.hits,
                self.exp_table, self.squash, self.stretch, self.adaptive, self.alphas, self.alpha_loss,
                self.log2_table)


@table("cm.log2")
def log2_table() -> np.ndarray:
    """log2(1 + i / 4096) in units of 2^-16, i = 0 .. 4096, exact decimals (for _log2)."""
    from decimal import Decimal, localcontext
    out = []
    with localcontext() as ctx:
        ctx.prec = 40
        ln2 = Decimal(2).ln()
        for i in range(4097):
            out.append(int(((1 + Decimal(i) / 4096).ln() / ln2 * 65536).to_integral_value()))
    return np.array(out, dtype=np.int64)


# ---------------------------------------------------------------- the entropy model

@njit(cache=True, inline="always")
def _ctx_hash(hist, r, n, order):
    h = np.uint64(0x9E3779B97F4A7C15) * np.uint64(order + 1)
    for i in range(order):
        h = (h ^ np.uint64(hist[r, n - 1 - i] + 1)) * np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(29)
    return h


@njit(cache=True, inline="always")
def _ngram_slot(hist, r, n, order, size):
    """Row r's context of `order` tokens in an n-gram table of `size` slots (a power of two): its
    slot and the check value that names the context there (predict, learn and update agree)."""
    h = _ctx_hash(hist, r, n, order)
    return np.int64(h & np.uint64(size - 1)), np.int64(h >> np.uint64(33))


@njit(cache=True, inline="always")
def _log2(x, table):
    """log2(x) for x >= 1, in units of 2^-16 (12 bits of mantissa, from table)."""
    e = 0
    while (x >> e) >= 2:
        e += 1
    m = (x << 12 >> e) - 4096 if e <= 12 else (x >> (e - 12)) - 4096
    return (e << 16) + table[m]


@njit(cache=True, inline="always")
def _alpha_bucket(total):
    return 0 if total < 2 else (1 if total < 4 else (2 if total < 8 else 3))


@njit(cache=True, inline="always")
def _alpha_of(k, total, alpha, adaptive, alphas, alpha_loss):
    """The alpha order k uses for a context seen `total` times: fixed, or the best so far."""
    if not adaptive:
        return alpha[k]
    b = _alpha_bucket(total)
    best = 0
    for i in range(1, alphas.shape[0]):
        if alpha_loss[k, b, i] < alpha_loss[k, b, best]:
            best = i
    return alphas[best]


@njit(cache=True)
def _predict(r, acc, scale, head_scale, F, sp_tok, sp_mass, orders, alpha, ng_check, ng_tok, ng_cnt, match_on,
             mt, hist, hlen, mrow, mpos, mlen, weights, hits, exp_table, squash, stretch, mix, adaptive, alphas,
             alpha_loss, zmax_out):
    """Fill F (V,) with row r's integer frequencies; return their total. `mix` (6,) receives what
    _update needs of the match model: predicted token (-1: none), bucket, the two stretched inputs, q;
    and the LM's total t0 (mix[5]); zmax_out (1,) the largest logit (to recompute a token's LM frequency)."""
    V = F.shape[0]
    zmax = -np.inf
    for v in range(V):
        z = (np.float64(acc[v]) * scale) * head_scale[v]
        if z > zmax:
            zmax = z
    zmax_out[0] = zmax
    last = exp_table.shape[0] - 1
    t0 = np.int64(0)
    for v in range(V):
        z = (np.float64(acc[v]) * scale) * head_scale[v]
        d = np.int64(math.floor((zmax - z) * OUT_STEPS + 0.5)) - last
        # min(k, last) without a branch: a sharp model puts ~40% of the vocabulary at the table's end,
        # and branches on that mispredicted (cm.run 1.5 -> 2.4 s in tinydb's unpack, codeseed-small-2)
        F[v] = exp_table[last + (d & (d >> 63))]
        t0 += F[v]
    mix[5] = t0
    # n-gram stages: a dense factor A (2^-FIX) on the LM mass plus sparse additions (sp_tok, sp_mass)
    A = np.int64(1) << FIX
    nsp = 0
    n = hlen[r]
    for k in range(orders.shape[0]):
        order = orders[k]
        if n < order:
            continue
        slot, chk = _ngram_slot(hist, r, n, order, ng_check.shape[1])
        if ng_check[k, slot] != chk:
            continue
        total = np.int64(0)
        for j in range(ng_tok.shape[2]):
            total += ng_cnt[k, slot, j]
        if total == 0:
            continue
        al = _alpha_of(k, total, alpha, adaptive, alphas, alpha_loss)
        a = (al << FIX) // (total + al)
        A = (A * a) >> FIX
        for i in range(nsp):
            sp_mass[i] = (sp_mass[i] * a) >> FIX
        for j in range(ng_tok.shape[2]):
            c = ng_cnt[k, slot, j]
            if c == 0:
                continue
            add = (c * t0) // (total + al)
            t = ng_tok[k, slot, j]
            found = False
            for i in range(nsp):
                if sp_tok[i] == t:
                    sp_mass[i] += add
                    found = True
                    break
            if not found:
                sp_tok[nsp] = t
                sp_mass[nsp] = add
                nsp += 1
    # match stage
    mix[0] = -1
    pred = np.int64(-1)
    if match_on and mlen[r] > 0 and mpos[r] < hlen[mrow[r]]:
        pred = np.int64(hist[mrow[r], mpos[r]])
        # current mass of pred: dense part from its LM frequency, plus its sparse part
        mass = (np.int64(F[pred]) * A) >> FIX
        for i in range(nsp):
            if sp_tok[i] == pred:
                mass += sp_mass[i]
        p12 = (mass * 4096) // t0
        p12 = min(max(p12, 1), 4095)
        b = min(mlen[r], MATCH_BUCKETS - 1)
        h12 = ((2 * hits[b, 0] + 1) * 4096) // (2 * hits[b, 1] + 2)
        h12 = min(max(h12, 1), 4095)
        x0, x1 = stretch[p12], stretch[h12]
        dot = (weights[b, 0] * x0 + weights[b, 1] * x1 + weights[b, 2] * 256) >> 16
        dot = min(max(dot, -2047), 2047)
        q12 = squash[dot + 2047]
        m = ((4096 - q12) << 20) // (4096 - p12)
        A = (A * m) >> 20
        for i in range(nsp):
            sp_mass[i] = (sp_mass[i] * m) >> 20
        mix[0], mix[1], mix[2], mix[3], mix[4] = pred, b, x0, x1, q12
    total = np.int64(0)
    for v in range(V):
        d = ((np.int64(F[v]) * A) >> FIX) - 1
        F[v] = 1 + (d & ~(d >> 63))  # max(f, 1) without a branch, as above
    for i in range(nsp):
        F[sp_tok[i]] += sp_mass[i]
    if pred >= 0:
        f = (mix[4] * t0) >> 12
        F[pred] = f if f > 1 else 1
    for v in range(V):
        total += F[v]
    return total


@njit(cache=True)
def _learn_alphas(r, token, f0, t0, orders, alpha, ng_check, ng_tok, ng_cnt, hist, hlen, alphas, alpha_loss, log2t):
    """Adaptive blending: charge each candidate alpha of each order the code length it would have
    given `token` at that stage (its mass before the stage followed as _predict moved it, f0 its LM
    frequency, t0 the LM total), then forget a little. Runs before the counts learn the token."""
    n = hlen[r]
    A = np.int64(1) << FIX
    m_sp = np.int64(0)   # the token's sparse mass so far
    for k in range(orders.shape[0]):
        order = orders[k]
        if n < order:
            continue
        slot, chk = _ngram_slot(hist, r, n, order, ng_check.shape[1])
        if ng_check[k, slot] != chk:
            continue
        total = np.int64(0)
        c_tok = np.int64(0)
        for j in range(ng_tok.shape[2]):
            c = ng_cnt[k, slot, j]
            total += c
            if c > 0 and ng_tok[k, slot, j] == token:
                c_tok = c
        if total == 0:
            continue
        m = ((f0 * A) >> FIX) + m_sp            # the token's mass before this stage
        used = _alpha_of(k, total, alpha, True, alphas, alpha_loss)  # what _predict used: chosen before this update
        b = _alpha_bucket(total)
        for i in range(alphas.shape[0]):
            al = alphas[i]
            num = al * m + c_tok * t0             # p = num / ((total + al) t0)
            cost = _log2((total + al) * t0, log2t) - _log2(max(num, 1), log2t)
            alpha_loss[k, b, i] += cost - (alpha_loss[k, b, i] >> ALPHA_DECAY)
        a = (used << FIX) // (total + used)
        A = (A * a) >> FIX
        m_sp = ((m_sp * a) >> FIX) + (c_tok * t0) // (total + used)


@njit(cache=True)
def _update(r, token, orders, alpha, ng_check, ng_tok, ng_cnt, match_on, mt, hist, hlen, mrow, mpos, mlen,
            weights, hits, mix):
    """Learn row r's token: mixer, n-gram counts, match state and tables; append it to the history."""
    if mix[0] >= 0:
        b = mix[1]
        hit = 1 if token == mix[0] else 0
        err = (hit << 12) - mix[4]
        weights[b, 0] += (mix[2] * err * MIX_LR) >> 20
        weights[b, 1] += (mix[3] * err * MIX_LR) >> 20
        weights[b, 2] += (256 * err * MIX_LR) >> 20
        hits[b, 0] += hit
        hits[b, 1] += 1
    n = hlen[r]
    for k in range(orders.shape[0]):
        order = orders[k]
        if n < order:
            continue
        slot, chk = _ngram_slot(hist, r, n, order, ng_check.shape[1])
        if ng_check[k, slot] != chk:  # empty, or another context: take the slot over
            ng_check[k, slot] = chk
            for j in range(ng_tok.shape[2]):
                ng_cnt[k, slot, j] = 0
        at, low = -1, 0
        for j in range(ng_tok.shape[2]):
            if ng_cnt[k, slot, j] > 0 and ng_tok[k, slot, j] == token:
                at = j
                break
        if at < 0:
            for j in range(ng_tok.shape[2]):  # an empty way, else the rarest (first of equals)
                if ng_cnt[k, slot, j] < ng_cnt[k, slot, low]:
                    low = j
            ng_tok[k, slot, low] = token
            ng_cnt[k, slot, low] = 0
            at = low
        ng_cnt[k, slot, at] += 1
        if ng_cnt[k, slot, at] > 65535:
            for j in range(ng_tok.shape[2]):
                ng_cnt[k, slot, j] >>= 1
    # match model
    if match_on:
        if mlen[r] > 0 and mpos[r] < hlen[mrow[r]] and hist[mrow[r], mpos[r]] == token:
            mlen[r] += 1
            mpos[r] += 1
        else:
            mlen[r] = 0
    hist[r, n] = token
    hlen[r] = n + 1
    n += 1
    if match_on and n >= MATCH_MIN:
        h = _ctx_hash(hist, r, n, MATCH_MIN)
        slot = np.int64(h & np.uint64(mt.shape[0] - 1))
        if mlen[r] == 0 and mt[slot] >= 0:
            sr, sp = mt[slot] >> 32, mt[slot] & 0xFFFFFFFF
            same = sp >= MATCH_MIN
            for i in range(1, MATCH_MIN + 1):
                if same and hist[sr, sp - i] != hist[r, n - i]:
                    same = False
            if same:
                mrow[r], mpos[r], mlen[r] = sr, sp, MATCH_MIN
        mt[slot] = (r << 32) | n


# ---------------------------------------------------------------- the range coder

@njit(cache=True)
def _rc_encode(coder, out, cum, freq, total):
    """coder: uint64 (low, range, bytes written). Encode [cum, cum + freq) of total."""
    low, rng, at = coder[0], coder[1], np.int64(coder[2])
    r = rng // np.uint64(total)
    new = low + r * np.uint64(cum)
    carry = new < low
    low = new
    rng = r * np.uint64(freq)
    if carry:  # ripple into the bytes already written
        i = at - 1
        while i >= 0:
            if out[i] == 255:
                out[i] = 0
                i -= 1
            else:
                out[i] += 1
                break
    while rng < RC_TOP:
        out[at] = np.uint8(low >> np.uint64(56))
        at += 1
        low = low << np.uint64(8)
        rng = rng << np.uint64(8)
    coder[0], coder[1], coder[2] = low, rng, np.uint64(at)


@njit(cache=True)
def _rc_decode(coder, data, F, total):
    """coder: uint64 (code - low, range, bytes read). Decode one symbol of the frequencies F."""
    x, rng, at = coder[0], coder[1], np.int64(coder[2])
    if at > data.shape[0] + 8:  # past the end and its flush: a damaged or cut stream
        return -1
    r = rng // np.uint64(total)
    target = x // r
    if target >= np.uint64(total):
        return -1
    t = np.int64(target)
    cum = np.int64(0)
    s = 0
    while cum + F[s] <= t:
        cum += F[s]
        s += 1
    x -= r * np.uint64(cum)
    rng = r * np.uint64(F[s])
    while rng < RC_TOP:
        b = np.uint64(data[at]) if at < data.shape[0] else np.uint64(0)
        x = (x << np.uint64(8)) | b
        at += 1
        rng = rng << np.uint64(8)
    coder[0], coder[1], coder[2] = x, rng, np.uint64(at)
    return s


def encoder_start() -> np.ndarray:
    return np.array([0, (1 << 64) - 1, 0], dtype=np.uint64)


@njit(cache=True)
def encoder_finish(coder, out):
    """Flush: the 8 bytes of low. Returns the stream length."""
    low, at = coder[0], np.int64(coder[2])
    for _ in range(8):
        out[at] = np.uint8(low >> np.uint64(56))
        low = low << np.uint64(8)
        at += 1
    return at


def decoder_start(data: np.ndarray) -> np.ndarray:
    x = 0
    for i in range(8):
        x = (x << 8) | (int(data[i]) if i < len(data) else 0)
    return np.array([x, (1 << 64) - 1, 8], dtype=np.uint64)


# ---------------------------------------------------------------- the driver

@njit(cache=True, nogil=True)
def run(mode, acc, scale, head_scale, tokens, known, active, sym_cum, sym_freq, sym_total, coder, stream,
        orders, alpha, ng_check, ng_tok, ng_cnt, match_on, mt, hist, hlen, mrow, mpos, mlen, weights, hits,
        exp_table, squash, stretch, adaptive, alphas, alpha_loss, log2t):
    """Code S steps of R rows. acc (R, S, V) float32 head sums, scale (R, S) float32, head_scale (V,).

    tokens (S, R) int64: the tokens (SCORE, and rows with known[s, r]); DECODE writes the decoded
    ones there. active (S, R) bool: the row has a token at this step (else it is padding). Rows
    with known[s, r] are not coded, only learnt from. Each coded token's symbol (cum, freq, total)
    goes to sym_* (S, R) (encode_symbols() codes them); DECODE range-decodes `stream` (uint8)
    through `coder` (decoder_start). The entropy model makes the same calls in both modes. Returns
    0, or -1 - r where row r's decode fell outside the frequencies or the stream (a damaged stream).
    """
    R, S, V = acc.shape
    F = np.empty(V, dtype=np.int64)
    sp_tok = np.empty(2 * orders.shape[0] * ng_tok.shape[2] + 1, dtype=np.int64)
    sp_mass = np.empty_like(sp_tok)
    mix = np.zeros(6, dtype=np.int64)
    zmax = np.zeros(1, dtype=np.float64)
    last = exp_table.shape[0] - 1
    for s in range(S):
        for r in range(R):
            if not active[s, r]:
                continue
            total = _predict(r, acc[r, s], scale[r, s], head_scale, F, sp_tok, sp_mass, orders, alpha, ng_check,
                             ng_tok, ng_cnt, match_on, mt, hist, hlen, mrow, mpos, mlen, weights, hits, exp_table,
                             squash, stretch, mix, adaptive, alphas, alpha_loss, zmax)
            if known[s, r]:
                tok = tokens[s, r]
            else:
                if mode == DECODE:
                    tok = _rc_decode(coder, stream, F, total)
                    if tok < 0:
                        return -1 - r
                    tokens[s, r] = tok
                else:
                    tok = tokens[s, r]
                cum = np.int64(0)
                for v in range(tok):
                    cum += F[v]
                sym_cum[s, r], sym_freq[s, r], sym_total[s, r] = cum, F[tok], total
            if adaptive:  # the token's LM frequency, as _predict computed it
                z = (np.float64(acc[r, s, tok]) * scale[r, s]) * head_scale[tok]
                kk = np.int64(math.floor((zmax[0] - z) * OUT_STEPS + 0.5))
                _learn_alphas(r, tok, exp_table[min(kk, last)], mix[5], orders, alpha, ng_check, ng_tok, ng_cnt,
                              hist, hlen, alphas, alpha_loss, log2t)
            _update(r, tok, orders, alpha, ng_check, ng_tok, ng_cnt, match_on, mt, hist, hlen, mrow, mpos, mlen,
                    weights, hits, mix)
    return 0


@njit(cache=True)
def encode_symbols(coder, stream, cum, freq, total):
    """Range-code recorded symbols in order (cum, freq, total: (N,) int64)."""
    for i in range(cum.shape[0]):
        _rc_encode(coder, stream, cum[i], freq[i], total[i])
