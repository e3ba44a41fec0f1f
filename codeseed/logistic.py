"""The logistic domain in integers: stretch(p) = ln(p / (1 - p)) and its inverse squash, as tables.

Shared by the token-level entropy model (cm.py) and the byte-level codec (bytecm.py); built with
decimal arithmetic, so every machine gets the same tables. Imports nothing heavy (no torch).
"""
from __future__ import annotations

from decimal import Decimal, localcontext

import numpy as np

from codeseed.tables import table


@table("logistic.squash")
def squash_table() -> np.ndarray:
    """squash(x) = 4096 / (1 + e^(-x/256)) for x = -2047 .. 2047, clamped to 1 .. 4095 (index x + 2047)."""
    out = []
    with localcontext() as ctx:
        ctx.prec = 40
        for x in range(-2047, 2048):
            v = Decimal(4096) / (1 + (Decimal(-x) / 256).exp())
            out.append(min(4095, max(1, int(v.to_integral_value()))))
    return np.array(out, dtype=np.int64)


@table("logistic.stretch")
def stretch_table() -> np.ndarray:
    """stretch(p) = 256 ln(p / (4096 - p)) for p = 0 .. 4095, clamped to -2047 .. 2047."""
    out = []
    with localcontext() as ctx:
        ctx.prec = 40
        for p in range(4096):
            if p == 0:
                out.append(-2047)
                continue
            v = 256 * (Decimal(p) / (4096 - p)).ln()
            out.append(min(2047, max(-2047, int(v.to_integral_value()))))
    return np.array(out, dtype=np.int64)
