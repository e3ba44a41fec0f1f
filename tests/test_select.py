"""Seed selection: the exact DP against brute force, the greedy against the exact DP."""
from __future__ import annotations

import itertools
import random

import pytest

from codeseed.select import Problem, evaluate, exact, greedy


def random_problem(rng: random.Random, n: int) -> Problem:
    values = [rng.choice([0.0, rng.uniform(0, 50)]) for _ in range(n)]
    costs = [float(rng.randint(1, 60)) for _ in range(n)]
    total = sum(costs) + 12 * n
    return Problem(values, costs, budget=float(rng.randint(12, int(total))), hole_bits=12.0,
                   overlap=rng.choice([0.0, 0.3, 0.8]))


def brute_force(p: Problem):
    best = None
    for kept in itertools.product([False, True], repeat=len(p.values)):
        s = evaluate(p, kept)
        if s.cost <= p.budget and (best is None or s.value > best.value + 1e-9):
            best = s
    return best


@pytest.mark.parametrize("seed", range(40))
def test_exact_matches_brute_force(seed):
    rng = random.Random(seed)
    p = random_problem(rng, rng.randint(1, 10))
    want, got = brute_force(p), exact(p)
    assert got.cost <= p.budget
    assert got.value == pytest.approx(want.value)


def test_greedy_is_feasible_and_close_to_optimal():
    rng = random.Random(123)
    ratios = []
    for _ in range(200):
        p = random_problem(rng, rng.randint(2, 14))
        g, e = greedy(p), exact(p)
        assert g.cost <= p.budget + 1e-9
        assert g.value <= e.value + 1e-9           # the DP is optimal
        if e.value > 0:
            ratios.append(g.value / e.value)
    mean = sum(ratios) / len(ratios)
    assert mean > 0.97, mean  # measured 0.995
    assert min(ratios) > 0.75, min(ratios)  # measured 0.84


def test_budget_below_one_hole_keeps_nothing():
    p = Problem([5.0, 3.0], [4.0, 4.0], budget=5.0, hole_bits=12.0)
    assert exact(p).kept == greedy(p).kept == (False, False)


def test_budget_zero_keeps_nothing_and_big_budget_keeps_all_valuable():
    p = Problem([5.0, 0.0, 7.0], [10.0, 10.0, 10.0], budget=0.0)
    assert greedy(p).kept == (False, False, False)
    p = Problem([5.0, 0.0, 7.0], [10.0, 10.0, 10.0], budget=1000.0, overlap=0.0)
    assert greedy(p).kept == (True, False, True) == exact(p).kept


@pytest.mark.parametrize("seed", range(20))
def test_fixed_pieces_are_always_kept_and_the_dp_stays_optimal(seed):
    """Directives and legal text are fixed: both solvers keep them at any budget, and the DP is
    still optimal among the selections that keep them (brute force over those)."""
    rng = random.Random(1000 + seed)
    p = random_problem(rng, rng.randint(1, 9))
    fixed = tuple(rng.random() < 0.3 for _ in p.values)
    p = Problem(p.values, p.costs, p.budget, p.hole_bits, p.overlap, fixed)
    g, e = greedy(p), exact(p)
    for sel in (g, e):
        assert all(k for k, f in zip(sel.kept, fixed) if f)
    best = None
    for kept in itertools.product([False, True], repeat=len(p.values)):
        s = evaluate(p, kept)
        if all(k for k, f in zip(kept, fixed) if f) and s.cost <= p.budget and (best is None or s.value > best.value):
            best = s
    if best is not None:  # the fixed pieces alone fit the budget
        assert e.value == pytest.approx(best.value) and g.cost <= p.budget + 1e-9
