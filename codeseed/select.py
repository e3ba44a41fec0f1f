"""Seed selection: keep the pieces with the most predictive potential per bit, under a budget.

The file is a chain of pieces (spans.segments). Keeping piece i costs its text bits c_i; every hole
(a maximal run of dropped pieces) costs `hole_bits` for its position and length hint. Its value is
its predictive potential v_i (assess.py), reduced when a neighbour is kept too: a piece whose
neighbour is already in the seed is easier for the model to regenerate, so keeping both is worth
less than the sum. With k_i the number of kept neighbours of a kept piece i:

    value(S) = sum_{i in S} v_i * (1 - overlap * k_i / 2)
    cost(S)  = sum_{i in S} c_i + hole_bits * holes(S)

Both are sums over adjacent pairs, so the exact optimum is a dynamic programme along the chain
(`exact`, for small instances and tests); `greedy` picks by marginal value per marginal bit and
re-evaluates the neighbours of each pick (their marginals change), then compares the result with
the best single piece, the usual guard for greedy knapsack.

Pieces marked `fixed` are kept whatever they cost (directives, legal text, text the language's
parser reads as code): both solvers start from them, and their cost counts against the budget.
"""
from __future__ import annotations

import heapq
import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    values: list[float]
    costs: list[float]
    budget: float
    hole_bits: float = 12.0
    overlap: float = 0.3
    fixed: tuple[bool, ...] = ()  # pieces that must be kept (empty: none)

    def must_keep(self) -> list[bool]:
        return list(self.fixed) if self.fixed else [False] * len(self.values)


@dataclass(frozen=True)
class Selection:
    kept: tuple[bool, ...]
    value: float
    cost: float


def evaluate(p: Problem, kept: list[bool] | tuple[bool, ...]) -> Selection:
    n = len(kept)
    value = cost = 0.0
    for i in range(n):
        if kept[i]:
            k = (i > 0 and kept[i - 1]) + (i + 1 < n and kept[i + 1])
            value += p.values[i] * (1 - p.overlap * k / 2)
            cost += p.costs[i]
        elif i == 0 or kept[i - 1]:
            cost += p.hole_bits
    return Selection(tuple(kept), value, cost)


def _marginal(p: Problem, kept: list[bool], i: int) -> tuple[float, float]:
    before = evaluate_local(p, kept, i)
    kept[i] = True
    after = evaluate_local(p, kept, i)
    kept[i] = False
    return after[0] - before[0], after[1] - before[1]


def evaluate_local(p: Problem, kept: list[bool], i: int) -> tuple[float, float]:
    """Value and cost of the window i-2..i+2: all that keeping piece i can change."""
    n = len(kept)
    value = cost = 0.0
    for j in range(max(0, i - 1), min(n, i + 2)):
        if kept[j]:
            k = (j > 0 and kept[j - 1]) + (j + 1 < n and kept[j + 1])
            value += p.values[j] * (1 - p.overlap * k / 2)
            cost += p.costs[j]
    for j in range(max(0, i - 1), min(n, i + 3)):  # hole starts at j: j dropped and j-1 kept (or j == 0)
        if j < n and not kept[j] and (j == 0 or kept[j - 1]):
            cost += p.hole_bits
    return value, cost


def greedy(p: Problem) -> Selection:
    n = len(p.values)
    kept = p.must_keep()
    used = evaluate(p, kept).cost

    def ratio(dv: float, dc: float) -> float:
        return math.inf if dc <= 0 else dv / dc

    heap = []
    for i in range(n):
        if not kept[i]:  # _marginal tries piece i in and out again: never on a fixed piece
            dv, dc = _marginal(p, kept, i)
            heapq.heappush(heap, (-ratio(dv, dc), i))
    while heap:
        neg, i = heapq.heappop(heap)
        if kept[i]:
            continue
        dv, dc = _marginal(p, kept, i)
        if -neg != ratio(dv, dc):          # stale: its neighbours changed since it was pushed
            heapq.heappush(heap, (-ratio(dv, dc), i))
            continue
        if dv <= 0 or used + dc > p.budget:
            continue
        kept[i] = True
        used += dc
        for j in (i - 1, i + 1):            # their marginals just changed
            if 0 <= j < n and not kept[j]:
                djv, djc = _marginal(p, kept, j)
                heapq.heappush(heap, (-ratio(djv, djc), j))
    best = evaluate(p, kept)
    for i in range(n):                       # guard: the best single piece alone (with the fixed ones)
        single = p.must_keep()
        single[i] = True
        s = evaluate(p, single)
        if s.cost <= p.budget and s.value > best.value:
            best = s
    return best


def exact(p: Problem, resolution: float = 1.0) -> Selection:
    """Optimal selection by dynamic programming over (piece, previous kept?, cost in `resolution` units).

    Costs are rounded up to the grid, so the result is optimal for the rounded costs; with integer
    costs and resolution 1 it is exactly optimal. Pseudo-polynomial: for small instances.
    """
    n = len(p.values)
    fixed = p.must_keep()
    c = [math.ceil(x / resolution) for x in p.costs]
    h = math.ceil(p.hole_bits / resolution)
    cap = math.floor(p.budget / resolution + 1e-9)
    # state after deciding pieces 0..i: (kept_i, kept_{i-1}?) is needed for the neighbour term,
    # which we settle when piece i+1 is decided: add piece i's value once its right neighbour is known.
    # key: (prev2 kept, prev kept, cost) -> best (value so far, choices)
    states: dict[tuple[bool, bool, int], tuple[float, tuple[bool, ...]]] = {(False, False, 0): (0.0, ())}
    for i in range(n + 1):
        nxt: dict[tuple[bool, bool, int], tuple[float, tuple[bool, ...]]] = {}
        for (pp, prev, cost), (val, ch) in states.items():
            for keep in (((True,) if fixed[i] else (False, True)) if i < n else (False,)):
                new_cost = cost + (c[i] if keep and i < n else 0)
                if i < n and not keep and (i == 0 or prev):
                    new_cost += h
                if new_cost > cap:
                    continue
                new_val = val
                if i > 0 and prev:            # settle piece i-1 now that both its neighbours are known
                    k = (i - 1 > 0 and pp) + (i < n and keep)
                    new_val += p.values[i - 1] * (1 - p.overlap * k / 2)
                key = (prev, keep, new_cost)
                if key not in nxt or new_val > nxt[key][0]:
                    nxt[key] = (new_val, ch + ((keep,) if i < n else ()))
        states = nxt
    if not states:  # even the empty seed (one hole, or the fixed pieces) exceeds the budget
        return evaluate(p, fixed)
    best_val, best_choice = max(states.values(), key=lambda t: t[0])
    return evaluate(p, best_choice)
