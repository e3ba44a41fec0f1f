"""The fuzz harness (benchmarks/fuzz.py) in the suite: a short campaign finds nothing, and every input
kept from earlier campaigns (benchmarks/fuzz-findings/, found on codeseed before format 3 and since)
runs clean: info, test and unpack end with codeseed's own errors, in time, within memory, writing
nothing outside the output folder."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FINDINGS = sorted((ROOT / "benchmarks" / "fuzz-findings").glob("*.cseed"))


@pytest.fixture(scope="module")
def fuzz():
    spec = importlib.util.spec_from_file_location("codeseed_fuzz", ROOT / "benchmarks" / "fuzz.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["codeseed_fuzz"] = module
    spec.loader.exec_module(module)
    saved = module.unpacking.load_model_for, module.codeseed.cli.build_parser
    module._patch_model_step()
    yield module
    module.unpacking.load_model_for, module.codeseed.cli.build_parser = saved


def test_short_fuzz_campaign_finds_nothing(fuzz, tmp_path):
    campaign = fuzz.run(fuzz.make_campaign(tmp_path, keep=False, big=False), cases=1500, seed=14, quiet=True)
    assert campaign.cases == 1500
    assert campaign.outcomes == {}, campaign.outcomes


@pytest.mark.skipif(not FINDINGS, reason="no findings kept")
def test_kept_fuzz_findings_run_clean(fuzz, tmp_path):
    results = fuzz.replay(FINDINGS, tmp_path)
    assert {name: fails for name, fails in results.items() if fails} == {}
