"""The exact-arithmetic model engine: a Llama-family causal LM whose every output is the same on every machine.

Range decoding fails on any difference between the probabilities the encoder and the decoder compute
(one ulp is enough), and float inference differs with the batch shape, the thread count, the BLAS
kernel, the CPU and the GPU. This engine runs the model so that each number it produces is defined
by the model file and the input alone (after Ballé, Johnston and Minnen, "Integer Networks for Data
Compression with Latent-Variable Models", ICLR 2019):

- Every matrix product multiplies integer-valued tensors whose products and partial sums are exact
  integers (int8 x int8 in float32 while K x 127 x 127 < 2^24; attention's value sums in float64,
  below 2^53), so the order of summation (blocking, threads, SIMD width, split-K on a GPU) cannot
  change a bit.
- Every other operation is one IEEE-754 operation (+, -, x, /, sqrt, conversion, round, max), each
  correctly rounded by the standard, applied elementwise in a fixed order: float64 and no fused
  multiply-add, no reduction over non-integer values.
- Functions that libm would compute (exp, sigmoid, cos, sin) come from tables built with integer
  arithmetic from Python's decimal module, never from libm.

Quantization: linear weights are int8 per output channel (the RMSNorm gain folded in first);
linear inputs are int8 per row (the row's RMS cancels out of the quantized values and only scales
the output); attention queries and keys are int8 per head; values sit on a fixed 2^-16 grid; the
residual stream is held in int64 units of 2^-16. Attention is a sliding window: each position sees
the last `window` positions of its segment (itself included) at its absolute rotary position. On
eval-public Python this context policy cost 0.9587 bits/byte in float64 against 0.9696 for the
rebuild-at-half policy of the float codec (benchmarks/RESULTS.md), and it needs each token once.

Shapes: R rows (independent segments coded in lockstep), S new tokens per row per call, D model
width, H heads of DH, V vocabulary.
"""
from __future__ import annotations

import json
import math
from contextlib import contextmanager
from decimal import Decimal, localcontext
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from codeseed import engine_cpu as kernels
from codeseed.errors import InputError

RESID_BITS = 16       # residual stream: int64 units of 2^-16
VALUE_BITS = 16       # attention values: integers in units of 2^-16, |v| < 2^31 units
VALUE_LIMIT = float(2 ** 31 - 1)
assert kernels.VALUE_SCALE_DOWN == 2.0 ** -VALUE_BITS
ATT_SCALE_BITS = 12   # attention weights are integers 1..2^12 (0 outside the window)
ATT_STEPS = 128       # attention scores are resolved to 1/128 before the exp table
SIGMOID_STEPS = 256   # SiLU's sigmoid is tabulated every 1/256 ...
SIGMOID_RANGE = 16    # ... over [-16, 16], and clamped outside
OUT_SCALE_BITS = 24   # the LM distribution: integer frequencies 1..2^24 ...
OUT_STEPS = 1024      # ... from logits resolved to 1/1024 below the row's maximum
ROPE_BITS = 30        # rotary cos/sin: integer recurrence at 2^-30, then float64


@contextmanager
def pinned_threads(n: int):
    """Run torch with n intra-op threads (the result does not depend on n; the speed does: small
    batches run faster on one thread, and on a busy machine far faster)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# ---------------------------------------------------------------- tables (integer arithmetic only)

def _exp_fixed(x: Decimal, bits: int) -> int:
    """round(exp(x) * 2^bits) through decimal (a software implementation: the same on every machine)."""
    with localcontext() as ctx:
        ctx.prec = 60
        return int((x.exp() * (Decimal(2) ** bits)).to_integral_value())


def _powers(ratio_fixed: int, bits: int):
    """ratio^k * 2^bits for k = 0, 1, ..., by exact integer multiplication and rounding at each step."""
    v, half = 1 << bits, 1 << (bits - 1)
    while True:
        yield v
        v = (v * ratio_fixed + half) >> bits


@lru_cache(maxsize=None)
def decay_table(steps: int, scale_bits: int, floor: int) -> np.ndarray:
    """T[k] = max(floor, round(2^scale_bits * exp(-k / steps))) until it reaches the floor (int64)."""
    bits = 64
    r = _exp_fixed(Decimal(-1) / Decimal(steps), bits)
    out = []
    for p in _powers(r, bits):
        v = (p + (1 << (bits - scale_bits - 1))) >> (bits - scale_bits)
        out.append(max(v, floor))
        if v <= floor:
            break
    return np.array(out, dtype=np.int64)


@lru_cache(maxsize=None)
def sigmoid_table() -> np.ndarray:
    """sigmoid(k / SIGMOID_STEPS - SIGMOID_RANGE) for k = 0 .. 2 * SIGMOID_RANGE * SIGMOID_STEPS (float64)."""
    bits = 64
    n = SIGMOID_RANGE * SIGMOID_STEPS
    powers = _powers(_exp_fixed(Decimal(1) / Decimal(SIGMOID_STEPS), bits), bits)
    up = [next(powers) for _ in range(n + 1)]  # e^(k/steps) * 2^64
    one = 1 << bits
    # sigmoid(x) = 1 / (1 + e^-x); int / int true division is correctly rounded in Python
    neg = [one / (one + up[k]) for k in range(n, 0, -1)]   # x = -k/steps: e^-x = e^(k/steps)
    pos = [up[k] / (up[k] + one) for k in range(0, n + 1)]  # x = +k/steps: multiply through by e^x
    return np.array(neg + pos, dtype=np.float64)


def _cos_sin_fixed(theta: Decimal, bits: int) -> tuple[int, int]:
    """cos and sin of theta (|theta| <= 1) as round(x * 2^bits), by Taylor series in decimal."""
    with localcontext() as ctx:
        ctx.prec = 60
        c, s, term, k = Decimal(0), Decimal(0), Decimal(1), 0
        while True:
            if k % 4 == 0:
                c += term
            elif k % 4 == 1:
                s += term
            elif k % 4 == 2:
                c -= term
            else:
                s -= term
            k += 1
            term = term * theta / k
            if abs(term) < Decimal(10) ** -40:
                break
        scale = Decimal(2) ** bits
        return int((c * scale).to_integral_value()), int((s * scale).to_integral_value())


@lru_cache(maxsize=None)
def _rope_angles(base: float, head_dim: int) -> tuple[tuple[int, int], ...]:
    """(cos, sin) of each rotary frequency theta_i = base^(-2i/head_dim), at 2^-ROPE_BITS."""
    out = []
    with localcontext() as ctx:
        ctx.prec = 60
        for i in range(head_dim // 2):
            theta = (Decimal(repr(base)).ln() * Decimal(-2 * i) / Decimal(head_dim)).exp()
            out.append(_cos_sin_fixed(theta, ROPE_BITS))
    return tuple(out)


def rope_table(base: float, head_dim: int, positions: int) -> tuple[np.ndarray, np.ndarray]:
    """cos(p theta_i), sin(p theta_i) for p < positions, shape (positions, head_dim // 2) float64.

    Built by the angle-addition recurrence in int64 fixed point (2^-30): exact integer arithmetic,
    rounding error below 2^-30 per step, identical everywhere."""
    one = 1 << ROPE_BITS
    half = one >> 1
    c1 = np.array([c for c, _ in _rope_angles(base, head_dim)], dtype=np.int64)
    s1 = np.array([s for _, s in _rope_angles(base, head_dim)], dtype=np.int64)
    cos = np.empty((positions, head_dim // 2), dtype=np.int64)
    sin = np.empty_like(cos)
    cos[0], sin[0] = one, 0
    n = 1  # rows [0, n) are known
    while n < positions:
        # (cos, sin) at position n: row n - 1 rotated by theta; rows [n, n + m) = rows [0, m) rotated by that
        cn = (cos[n - 1] * c1 - sin[n - 1] * s1 + half) >> ROPE_BITS
        sn = (sin[n - 1] * c1 + cos[n - 1] * s1 + half) >> ROPE_BITS
        m = min(n, positions - n)
        cos[n:n + m] = (cos[:m] * cn - sin[:m] * sn + half) >> ROPE_BITS
        sin[n:n + m] = (sin[:m] * cn + cos[:m] * sn + half) >> ROPE_BITS
        n += m
    return cos.astype(np.float64) / one, sin.astype(np.float64) / one


# ---------------------------------------------------------------- the model

def _quantize_weight(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """int8 per output channel: (values int8 (out, in), scales float32 (out,))."""
    w = w.double()
    scale = w.abs().amax(dim=1) / 127.0
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = torch.round(w / scale[:, None]).clamp(-127, 127)
    return q.to(torch.int8).contiguous(), scale.float()


def _has_int_mm(device: torch.device) -> bool:
    """Whether torch's int8 GEMM (a private API, present since torch 2.2) works here, exactly."""
    try:
        a = torch.arange(-60, 60, dtype=torch.int8, device=device).view(3, 40)
        b = torch.arange(-40, 40, dtype=torch.int8, device=device).view(40, 2)
        return bool(torch.equal(torch._int_mm(a, b).cpu().double(), a.cpu().double() @ b.cpu().double()))
    except (AttributeError, RuntimeError, NotImplementedError):
        return False


class ExactLM:
    """A Llama-family model (Llama, Qwen2-style biases, grouped-query attention) run exactly.

    `forward` is the only way in: the same call serves teacher-forced scoring (S tokens a row at
    once) and stepwise decoding (S = 1), and gives the same numbers for a position either way.
    Elementwise work is float32 where the values allow it (each op is still one IEEE operation),
    float64 where exactness needs the width (attention's value sums) and int64 for the residual.
    """

    SUPPORTED = ("llama", "qwen2", "mistral")

    def __init__(self, path: str | Path, device: str = "cpu"):
        from safetensors.torch import load_file
        path = Path(path)
        cfg = json.loads((path / "config.json").read_text())
        if cfg.get("model_type") not in self.SUPPORTED or cfg.get("hidden_act", "silu") != "silu":
            raise InputError(f"{path}: the exact engine runs Llama-family models ({', '.join(self.SUPPORTED)}, "
                             f"SiLU), not {cfg.get('model_type')!r}")
        rope = cfg.get("rope_parameters") or cfg.get("rope_scaling") or {}
        if rope.get("rope_type", rope.get("type", "default")) not in ("default", None):
            raise InputError(f"{path}: rotary scaling {rope.get('rope_type')!r} is not supported by the exact engine")
        self.device = torch.device(device)
        if self.device.type == "cuda":  # float32 products must stay float32: no TF32 anywhere
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
        self.d = int(cfg["hidden_size"])
        self.heads = int(cfg["num_attention_heads"])
        self.kv_heads = int(cfg.get("num_key_value_heads") or self.heads)
        self.head_dim = int(cfg.get("head_dim") or self.d // self.heads)
        self.layers = int(cfg["num_hidden_layers"])
        self.vocab = int(cfg["vocab_size"])
        self.eps = float(cfg.get("rms_norm_eps", 1e-6))
        self.rope_base = float(rope.get("rope_theta", cfg.get("rope_theta", 10000.0)))
        files = sorted(path.glob("*.safetensors"))
        if not files:
            raise InputError(f"{path}: the exact engine needs weights in safetensors format")
        w: dict[str, torch.Tensor] = {}
        for f in files:
            w.update(load_file(str(f)))
        if max(self.d, int(cfg["intermediate_size"]), self.heads * self.head_dim) * 127 * 127 >= 2 ** 24:
            raise InputError(f"{path}: layers too wide for exact int8 products in float32")
        dev = self.device

        def lin(name: str, gain: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
            wt = w[name + ".weight"].double()
            if gain is not None:  # fold the RMSNorm gain into the input columns: exact (float32 x float32)
                wt = wt * gain.double()[None, :]
            q, s = _quantize_weight(wt)
            b = w.get(name + ".bias")
            return q.to(dev), s.to(dev), None if b is None else b.float().to(dev)

        self.embed = w["model.embed_tokens.weight"].float().to(dev)    # (V, D)
        self.blocks = []
        for i in range(self.layers):
            p = f"model.layers.{i}."
            g1, g2 = w[p + "input_layernorm.weight"], w[p + "post_attention_layernorm.weight"]
            q, k, v = (lin(p + f"self_attn.{n}_proj", g1) for n in "qkv")
            bias = None if q[2] is None else torch.cat([q[2], k[2], v[2]])
            gate, up = lin(p + "mlp.gate_proj", g2), lin(p + "mlp.up_proj", g2)
            self.blocks.append({"qkv": (torch.cat([q[0], k[0], v[0]]), torch.cat([q[1], k[1], v[1]]), bias),
                                "o": lin(p + "self_attn.o_proj"),
                                "gate_up": (torch.cat([gate[0], up[0]]), torch.cat([gate[1], up[1]]), None),
                                "down": lin(p + "mlp.down_proj")})
        head = w.get("lm_head.weight", w["model.embed_tokens.weight"])
        hq, hs = _quantize_weight(head.double() * w["model.norm.weight"].double()[None, :])
        self.head = (hq.to(dev), hs.to(dev), None)
        self.vocab = hq.shape[0]  # the head's rows: what every distribution covers
        table = decay_table(ATT_STEPS, ATT_SCALE_BITS, 0)
        self.att_table = torch.tensor(table, dtype=torch.float64, device=dev)
        self.att_table_int = np.ascontiguousarray(table, dtype=np.int64)  # the CPU kernel's copy
        self.att_last = float(len(table) - 1)
        self.sigmoid = torch.tensor(sigmoid_table(), device=dev).float()
        # one factor per query: the 1/sqrt(head_dim) of attention and the exp table's steps
        self.score_factor = ATT_STEPS / math.sqrt(self.head_dim)
        self.int_mm = _has_int_mm(self.device)
        self.cpu_kernel = self.device.type == "cpu"  # _forward_cpu (engine_cpu kernels), else _forward_torch
        self._rope: tuple[torch.Tensor, torch.Tensor] | None = None

    # ------------------------------------------------------------ pieces

    def _rope_at(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        need = int(positions.max()) + 1 if positions.numel() else 1
        if self._rope is None or self._rope[0].shape[0] < need:
            n = max(need, 2 * (self._rope[0].shape[0] if self._rope else 512))
            c, s = rope_table(self.rope_base, self.head_dim, n)
            self._rope = (torch.from_numpy(c).float().to(self.device), torch.from_numpy(s).float().to(self.device))
        return self._rope[0][positions], self._rope[1][positions]

    @staticmethod
    def _quant_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """int8 per row of the last axis of float32 x: (values, row maxima m (..., 1) float64);
        x ~ values * m / 127. Divisions are on the row maxima, in float64."""
        m = x.abs().amax(dim=-1, keepdim=True).double()
        m = torch.where(m > 0, m, torch.ones_like(m))
        return (x * (127.0 / m).float()).round_(), m

    def _linear(self, xq: torch.Tensor, scale: torch.Tensor, layer) -> torch.Tensor:
        """(..., K) int8-valued float32 x (N, K) -> (..., N) float32: exact integer sums, then the row
        scale (..., 1) and the channel scales. The sums come from torch's int8 GEMM (int32
        accumulation; 4x faster than float32 here, with VNNI) where it exists, else float32."""
        wq, ws, b = layer
        if self.int_mm:
            shape = xq.shape
            acc = torch._int_mm(xq.reshape(-1, shape[-1]).to(torch.int8), wq.t()).view(*shape[:-1], wq.shape[0])
            y = acc.float().mul_(scale).mul_(ws)
        else:
            y = torch.matmul(xq, wq.t().float()).mul_(scale).mul_(ws)
        return y if b is None else y.add_(b)

    def _norm_quant(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """RMSNorm (gain folded into the next weights) then int8 per row: (values, row scale float32).
        h: int64 in units of 2^-16; the row's RMS cancels from the values and only scales the output."""
        ss = (h * h).sum(dim=-1, keepdim=True)                      # exact in int64
        unit = float(2 ** -RESID_BITS)
        rms = torch.sqrt(ss.double() / self.d + self.eps / (unit * unit))  # in units of 2^-16
        xq, m = self._quant_rows(h.float())
        return xq, (m / 127.0 / rms).float()

    def _rotate(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """Rotary embedding, rotate-half layout. x (..., DH) float32, cos/sin (..., DH/2)."""
        half = self.head_dim // 2
        x1, x2 = x[..., :half], x[..., half:]
        return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)

    # ------------------------------------------------------------ forward

    def new_cache(self, rows: int, window: int) -> dict:
        """Keys and values of the last `window - 1` positions of each row, per layer: a ring buffer
        indexed by position mod (window - 1), empty (position -1) at first. The order of keys does not
        matter: attention sums are exact. Keys are int8 with a float32 scale, values int32 in units of
        2^-VALUE_BITS, both (R, KV, DH, W-1): the decoder reads the whole cache every step, so its size
        and a layout the kernel's inner loops run along are its speed."""
        n, dev, kv, dh = window - 1, self.device, self.kv_heads, self.head_dim
        return {"window": window, "pos": torch.full((rows, n), -1, dtype=torch.int64, device=dev),
                "seg": torch.full((rows, n), -1, dtype=torch.int64, device=dev),
                "k": [torch.zeros(rows, kv, dh, n, dtype=torch.int8, device=dev) for _ in self.blocks],
                "ks": [torch.ones(rows, kv, n, dtype=torch.float32, device=dev) for _ in self.blocks],
                "v": [torch.zeros(rows, kv, dh, n, dtype=torch.int32, device=dev) for _ in self.blocks]}

    @torch.no_grad()
    def forward(self, tokens: torch.Tensor, pos: torch.Tensor, seg: torch.Tensor, cache: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Feed S tokens to each of R rows; return the head's integer sums and row scales.

        tokens, pos, seg: (R, S) int64: token ids, their positions in their segment (0 at the
        segment's first token) and a segment id (positions of another segment are never attended;
        -1 marks padding). cache: from new_cache(), updated in place. Returns acc (R, S, V) float32
        holding integers and scale (R, S, 1) float32; the logit of token v is, in float64,
        (acc * scale) * head_scale[v] (logits()).
        """
        if self.cpu_kernel:
            return self._forward_cpu(tokens, pos, seg, cache)
        return self._forward_torch(tokens, pos, seg, cache)

    def _plan(self, pos: torch.Tensor, seg: torch.Tensor, cache: dict) -> tuple[torch.Tensor, ...]:
        """What a call may attend and where its keys go: blocked (R, S, W-1+S) bool, True where
        query i may not see key j (cached keys first, then the S new ones); and the ring slots
        (rr, jj, slot), each (P,) int64, of the new positions that stay in the cache."""
        win = cache["window"]
        slots = win - 1
        R, S = pos.shape
        # query i sees key j of its own segment with pos_i - win < pos_j <= pos_i: cached keys, then new ones
        kpos = torch.cat([cache["pos"], pos], dim=1)                                 # (R, W-1+S)
        kseg = torch.cat([cache["seg"], seg], dim=1)
        blocked = ~((kseg[:, None, :] == seg[:, :, None]) & (seg[:, :, None] >= 0)
                    & (kpos[:, None, :] <= pos[:, :, None]) & (kpos[:, None, :] > pos[:, :, None] - win))
        # after this call, the last W-1 positions of each row's last segment go to their ring slots
        # (position mod W-1: distinct within one segment, so no two writes meet)
        cols = torch.arange(S, device=self.device).expand(R, S)
        last = torch.where(seg >= 0, cols, -1).amax(dim=1)                          # (R,) last real column
        cur_seg = torch.where(last >= 0, seg.gather(1, last.clamp(min=0)[:, None])[:, 0], -2)
        cur_pos = pos.gather(1, last.clamp(min=0)[:, None])
        rr, jj = ((seg == cur_seg[:, None]) & (pos > cur_pos - slots)).nonzero(as_tuple=True)
        return blocked, rr, jj, pos[rr, jj] % slots

    def _forward_cpu(self, tokens: torch.Tensor, pos: torch.Tensor, seg: torch.Tensor, cache: dict):
        """forward() on the CPU: the int8 GEMMs in torch, every other stage of a layer one compiled
        kernel (engine_cpu), the same numbers as _forward_torch."""
        R, S = tokens.shape
        M, D, H, KV, DH = R * S, self.d, self.heads, self.kv_heads, self.head_dim
        eps = self.eps / float(2 ** -RESID_BITS) ** 2
        h = torch.round(self.embed[tokens] * float(2 ** RESID_BITS)).long().view(M, D).numpy()
        cos, sin = (t.numpy() for t in self._rope_at(pos.clamp(min=0)))             # (R, S, DH/2)
        plan = self._plan(pos, seg, cache)
        blocked, rr, jj, slot = (t.numpy() for t in plan)
        xq, xs = np.empty((M, D), np.int8), np.empty(M, np.float32)
        qq, qs = np.empty((R, S, H, DH), np.int8), np.empty((R, S, H), np.float32)
        kq, ks = np.empty((R, KV, S, DH), np.int8), np.empty((R, KV, S), np.float32)
        vi = np.empty((R, KV, S, DH), np.int32)
        att = np.empty((R, S, H, DH), np.float64)
        xa, sa = np.empty((M, H * DH), np.int8), np.empty(M, np.float32)
        xf, sf = np.empty((M, self.blocks[0]["gate_up"][0].shape[0] // 2), np.int8), np.empty(M, np.float32)
        kernels.norm_quant(h, eps, xq, xs)
        for li, blk in enumerate(self.blocks):
            ck, cks, cv = (cache[n][li].numpy() for n in ("k", "ks", "v"))
            (_, ws, b) = blk["qkv"]
            kernels.qkv_post(self._gemm(xq, blk["qkv"]).reshape(R, S, -1), xs.reshape(R, S), ws.numpy(),
                             self._bias(b), cos, sin, H, KV, DH, self.score_factor, VALUE_LIMIT, qq, qs, kq, ks, vi)
            kernels.attend(qq, qs, kq, ks, vi, ck, cks, cv, blocked, self.att_table_int, np.float32(self.att_last), att)
            kernels.store(ck, cks, cv, kq, ks, vi, rr, jj, slot)
            kernels.att_post(att, xa, sa)
            (_, ws, b) = blk["o"]
            kernels.residual_norm(h, self._gemm(xa, blk["o"]), sa, ws.numpy(), self._bias(b), eps, xq, xs)
            (_, ws, _) = blk["gate_up"]
            kernels.swiglu(self._gemm(xq, blk["gate_up"]), xs, ws.numpy(), self.sigmoid.numpy(), SIGMOID_STEPS,
                           SIGMOID_RANGE * SIGMOID_STEPS, xf, sf)
            (_, ws, b) = blk["down"]
            kernels.residual_norm(h, self._gemm(xf, blk["down"]), sf, ws.numpy(), self._bias(b), eps, xq, xs)
        self._store(cache["pos"], pos, *plan[1:])
        self._store(cache["seg"], seg, *plan[1:])
        acc = torch.from_numpy(self._gemm(xq, self.head)).view(R, S, -1).float()
        return acc, torch.from_numpy(xs).view(R, S, 1)

    _NO_BIAS = np.zeros(0, np.float32)

    def _bias(self, b: torch.Tensor | None) -> np.ndarray:
        return self._NO_BIAS if b is None else b.numpy()

    def _gemm(self, xq: np.ndarray, layer) -> np.ndarray:
        """Integer sums of int8 xq (M, K) and a layer's int8 weights (N, K): (M, N) int32 by torch's
        int8 GEMM, else float32 holding the same integers (|sum| < 2^24: exact)."""
        wq = layer[0]
        if self.int_mm:
            return torch._int_mm(torch.from_numpy(xq), wq.t()).numpy()
        return torch.matmul(torch.from_numpy(xq).float(), wq.t().float()).numpy()

    def _forward_torch(self, tokens: torch.Tensor, pos: torch.Tensor, seg: torch.Tensor, cache: dict):
        """forward() as torch tensor operations (what a GPU runs)."""
        R, S = tokens.shape
        H, KV, DH = self.heads, self.kv_heads, self.head_dim
        h = torch.round(self.embed[tokens] * float(2 ** RESID_BITS)).long()          # (R, S, D)
        cos, sin = self._rope_at(pos.clamp(min=0))                                   # (R, S, DH/2)
        cos, sin = cos[:, :, None, :], sin[:, :, None, :]
        blocked, rr, jj, slot = self._plan(pos, seg, cache)
        blocked = blocked[:, None]                                                   # (R, 1, S, W-1+S)
        for li, blk in enumerate(self.blocks):
            xq, s = self._norm_quant(h)
            qkv = self._linear(xq, s, blk["qkv"])                                    # (R, S, (H+2KV) DH)
            # queries and keys rotated and quantized (int8 per head) together
            qk, m = self._quant_rows(self._rotate(qkv[..., :(H + KV) * DH].view(R, S, H + KV, DH), cos, sin))
            v = qkv[..., (H + KV) * DH:].view(R, S, KV, DH)
            qq, mq, kq, mk = qk[:, :, :H], m[:, :, :H], qk[:, :, H:], m[:, :, H:]   # (R, S, H|KV, DH), (..., 1)
            qs = (mq / 127.0 * self.score_factor).float().transpose(1, 2)            # (R, H, S, 1)
            kq, ks = kq.transpose(1, 2), (mk / 127.0).float()[..., 0].transpose(1, 2)  # (R, KV, S, DH), (R, KV, S)
            vi = (v * float(2 ** VALUE_BITS)).round_().clamp_(-VALUE_LIMIT, VALUE_LIMIT).transpose(1, 2)  # (R, KV, S, DH)
            k8, v32 = kq.to(torch.int8), vi.to(torch.int32)
            att = self._attend(qq, qs, kq, ks, vi, cache["k"][li], cache["ks"][li], cache["v"][li], blocked)
            self._store(cache["k"][li], k8, rr, jj, slot)
            self._store(cache["ks"][li], ks, rr, jj, slot)
            self._store(cache["v"][li], v32, rr, jj, slot)
            xq, m = self._quant_rows(att.transpose(1, 2).reshape(R, S, H * DH))
            h = h + self._linear(xq, (m / 127.0).float(), blk["o"]).mul_(float(2 ** RESID_BITS)).round_().long()
            xq, s = self._norm_quant(h)
            gu = self._linear(xq, s, blk["gate_up"])
            g, u = gu[..., :gu.shape[-1] // 2], gu[..., gu.shape[-1] // 2:]
            k_sig = (g * float(SIGMOID_STEPS)).add_(SIGMOID_RANGE * SIGMOID_STEPS).round_()
            k_sig = k_sig.clamp_(0, 2 * SIGMOID_RANGE * SIGMOID_STEPS).long()
            xq, m = self._quant_rows(self.sigmoid[k_sig].mul_(g).mul_(u))
            h = h + self._linear(xq, (m / 127.0).float(), blk["down"]).mul_(float(2 ** RESID_BITS)).round_().long()
        self._store(cache["pos"], pos, rr, jj, slot)
        self._store(cache["seg"], seg, rr, jj, slot)
        xq, s = self._norm_quant(h)
        acc = self._linear(xq, torch.ones_like(s), (self.head[0], torch.ones_like(self.head[1]), None))
        return acc, s                                                               # (R, S, V) integers, (R, S, 1)

    def _attend(self, qq, qs, kq, ks, vi, ck, cks, cv, blocked) -> torch.Tensor:
        """Attention of S queries a row over the cached keys and the S new ones, (R, H, S, DH) float32.
        Scores in steps of the exp table: (integer q.k * query scale) * key scale, float32; weights
        table[(top + 0.5) - score] (float64 integers, 0 far below the top or outside the window);
        output (sum of weight * value, exact in float64) / (sum of weights) * 2^-VALUE_BITS."""
        slots = ck.shape[3]
        H, KV, DH = self.heads, self.kv_heads, self.head_dim
        rep = H // KV
        ones = torch.ones(*vi.shape[:-1], 1, dtype=torch.float64, device=vi.device)
        cv = cv.transpose(-1, -2).double()                                          # (R, KV, W-1, DH)
        cv = torch.cat([cv, torch.ones(*cv.shape[:-1], 1, dtype=torch.float64, device=cv.device)], dim=-1)
        parts = []
        for K, Ks, V, mask in ((ck.transpose(-1, -2).float(), cks, cv, blocked[..., :slots]),
                               (kq, ks, torch.cat([vi.double(), ones], dim=-1), blocked[..., slots:])):
            if rep > 1:  # grouped-query attention: each key head serves H/KV query heads
                K, Ks, V = (t.repeat_interleave(rep, dim=1) for t in (K, Ks, V))
            sc = torch.matmul(qq.transpose(1, 2), K.transpose(-1, -2))              # exact: |sum| < 2^24
            parts.append((sc.mul_(qs).mul_(Ks[:, :, None, :]).masked_fill_(mask, -1e30), V))
        top = torch.maximum(parts[0][0].amax(dim=-1, keepdim=True), parts[1][0].amax(dim=-1, keepdim=True))
        top = top + 0.5                                                             # round half up, below
        num = None
        for sc, V in parts:
            idx = torch.sub(top, sc, out=sc).clamp_(max=self.att_last).long()
            wgt = self.att_table.gather(0, idx.view(-1)).view(idx.shape)           # integers <= 2^12
            part = torch.matmul(wgt, V)                                             # exact: |sum| < 2^51
            num = part if num is None else num.add_(part)
        return (num[..., :DH] / num[..., DH:] * float(2 ** -VALUE_BITS)).float()

    @staticmethod
    def _store(buf: torch.Tensor, new: torch.Tensor, rr: torch.Tensor, jj: torch.Tensor, slot: torch.Tensor) -> None:
        """buf[r, ..., slot] = new[r, ..., j] for each (r, j, slot): buf (R, W-1), (R, KV, W-1) or
        (R, KV, DH, W-1); new (R, S), (R, KV, S) or (R, KV, S, DH)."""
        if buf.dim() == 2:
            buf[rr, slot] = new[rr, jj]
        elif buf.dim() == 3:
            buf.transpose(1, 2)[rr, slot] = new.transpose(1, 2)[rr, jj]
        else:
            buf.permute(0, 3, 1, 2)[rr, slot] = new.permute(0, 2, 1, 3)[rr, jj]

    def logits(self, acc: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """Logits in nats, float64: (acc * scale) * head_scale, the values the entropy model reads."""
        return acc.double() * scale.double() * self.head[1].double()
