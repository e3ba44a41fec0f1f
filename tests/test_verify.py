"""Verified packing: bisection for the files that break the tests, escalation until they pass."""
from __future__ import annotations

import shutil

import pytest

import codeseed
from codeseed import seeded
from codeseed.errors import VerificationError
from codeseed.verify import SuiteRunner, check_original, culprits, escalate_until_tests_pass
from codeseed.walk import discover
from tests.test_archive import FIXTURE

CONSTANT = FIXTURE.parent / "constant-body"
TEST_CMD = "python -m pytest -q -p no:cacheprovider tests"


@pytest.mark.parametrize("bad", [set(), {3}, {0, 7}, {1, 2, 3}, set(range(8))])
def test_bisection_finds_exactly_the_failing_items(bad):
    calls = []

    def fails(subset):
        calls.append(subset)
        return bool(bad & set(subset))

    items = list(range(8))
    if not bad:
        return
    assert sorted(culprits(items, fails)) == sorted(bad)
    if len(bad) == 1:
        assert len(calls) <= 2 * 3  # two runs per level of an 8-item bisection


def test_only_a_combination_fails_escalates_all():
    assert culprits([1, 2], lambda s: set(s) == {1, 2}) == [1, 2]


def test_failing_suite_on_original_stops_before_packing(tmp_path):
    src = tmp_path / "p"
    shutil.copytree(CONSTANT, src)
    files = discover(src)
    with pytest.raises(VerificationError, match="fails on the original tree"):
        check_original(files, SuiteRunner("exit 3"), allow_failing=False)
    assert check_original(files, SuiteRunner("exit 3"), allow_failing=True) is False
    assert check_original(files, SuiteRunner(TEST_CMD), allow_failing=False) is True


def test_escalation_stores_the_breaking_file_exact_and_keeps_the_harmless_one(tmp_path, tiny_model):
    src = tmp_path / "p"
    shutil.copytree(FIXTURE, src)
    files = discover(src)
    idx = {f.path: i for i, f in enumerate(files)}
    store, models = idx["inventory/store.py"], idx["inventory/models.py"]
    breaking = files[store].data.replace(b"REORDER_POINT = 5", b"REORDER_POINT = 4")
    harmless = files[models].data.replace(b'"""Something we sell', b'"""An item we sell')
    plan = {i: seeded.SeededFile(seeded.Seed([b""], []), data, 0.9, 1.0)
            for i, data in ((store, breaking), (models, harmless))}
    runner = SuiteRunner(TEST_CMD)
    planner = seeded.Planner(files, tiny_model)
    final = escalate_until_tests_pass(files, planner, plan, runner)
    assert models in final and not final[models].strict
    # the breaking file comes back strict (its code as it was) or exact
    assert store not in final or (final[store].strict and b"REORDER_POINT = 5" in final[store].reconstruction)
    assert 2 <= runner.runs <= 5


def test_verify_command_runs_tests_on_the_unpacked_tree(tmp_path, capsys):
    from codeseed.cli import main
    codeseed.pack(CONSTANT, tmp_path / "c.cseed", mode="classical")
    assert main(["verify", str(tmp_path / "c.cseed"), "--test-cmd", TEST_CMD, "-q"]) == 0
    assert main(["verify", str(tmp_path / "c.cseed"), "--test-cmd", "exit 1", "-q"]) == VerificationError.exit_code


@pytest.mark.parametrize("lossy_code", [False, True])
def test_seeded_pack_with_tests_unpacks_to_a_passing_tree(tmp_path, tiny_model, lossy_code, prose_fills):
    """End to end on the fixture whose tests depend on constants inside a function body: whatever
    the (poor) tiny model regenerates, the unpacked tree passes the tests and keeps those bodies."""
    import subprocess
    import sys
    src = tmp_path / "src"
    shutil.copytree(CONSTANT, src)
    # a sentence in every free-text hole is far from any original: no text floor, the tests check
    report = codeseed.pack(src, tmp_path / "c.cseed", mode="seeded", model=tiny_model, budget=0.3,
                           min_similarity=0.0, min_text_similarity=0.0, lossy_code=lossy_code, test_cmd=TEST_CMD)
    assert report.test_runs >= 2  # the original tree, then each reconstruction tried
    codeseed.unpack(tmp_path / "c.cseed", tmp_path / "out", model=tiny_model)
    pricing = (tmp_path / "out" / "pricing.py").read_bytes()
    assert b"return 0.0725" in pricing and b"return 0.0415" in pricing
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
                       cwd=tmp_path / "out", capture_output=True)
    assert r.returncode == 0, r.stdout.decode()[-500:]
