"""Wall time of `codeseed audit --staged` on one-line changes, this checkout against a commit before.

A copy of fixtures/sample-py becomes a git repository; each trial stages a one-line change and runs
`python -m codeseed audit --staged` with this checkout's code and with the code of `--before`
(extracted with `git archive`, run with the same interpreter and packages), alternating, so both
see the same machine load. Two changes: an ordinary line, and a line with a 40-character random
token under a neutral name (the model must judge it, so it loads).

    python benchmarks/audit_speed.py --before 60c3893 --trials 5
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(cmd, cwd, env=None):
    t = time.perf_counter()
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    return time.perf_counter() - t, r.returncode


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", default="60c3893", help="commit to compare with (default: the code before issue 17)")
    ap.add_argument("--trials", type=int, default=5)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="audit-speed-"))
    try:
        before = tmp / "before"
        before.mkdir()
        arc = subprocess.run(["git", "-C", str(ROOT), "archive", args.before, "codeseed"], capture_output=True,
                             check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(before)], input=arc, check=True)
        shutil.copytree(ROOT / "codeseed" / "models", before / "codeseed" / "models", dirs_exist_ok=True)
        repo = tmp / "repo"
        shutil.copytree(ROOT / "fixtures" / "sample-py", repo)
        git = ["git", "-c", "user.email=s@s", "-c", "user.name=s"]
        subprocess.run(git + ["init", "-q"], cwd=repo, check=True)
        subprocess.run(git + ["add", "."], cwd=repo, check=True)
        subprocess.run(git + ["commit", "-qm", "base"], cwd=repo, check=True)
        store = repo / "inventory" / "store.py"
        original = store.read_text()
        rng = random.Random(1)
        token = "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(40))
        changes = {"ordinary line": original.replace("REORDER_POINT = 5", "REORDER_POINT = 6"),
                   "line with a random token": original.replace("REORDER_POINT = 5",
                                                                f'REORDER_POINT = 5\nDEFAULT_REF = "{token}"')}
        env_after = {**os.environ, "PYTHONPATH": str(ROOT)}
        env_before = {**os.environ, "PYTHONPATH": str(before)}
        cmd = [sys.executable, "-m", "codeseed", "audit", "--staged"]
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start")
        for label, text in changes.items():
            store.write_text(text)
            subprocess.run(git + ["add", "."], cwd=repo, check=True)
            times = {"before": [], "after": []}
            codes = {}
            for _ in range(args.trials):
                for which, env in (("before", env_before), ("after", env_after)):
                    t, rc = run(cmd, repo, env)
                    times[which].append(t)
                    codes[which] = rc
            for which in ("before", "after"):
                ts = times[which]
                print(f"{label:26s} {which:6s} median {statistics.median(ts):6.2f} s  "
                      f"(min {min(ts):.2f}, max {max(ts):.2f}, n={len(ts)}), exit {codes[which]}")
        print(f"load average {os.getloadavg()[0]:.1f} at end")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
