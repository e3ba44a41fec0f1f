"""An interrupted unpack (SIGINT, SIGTERM or SIGKILL at any moment) leaves either no output folder or the
complete tree: a real `codeseed unpack` is killed before it writes, at several points while it writes
its staging folder (watched from here), and after."""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import codeseed
from codeseed.unpacking import STAGING_PREFIX

FOLDERS, FILES = 30, 3000


def tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def packed(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("interrupt")
    src = root / "src"
    for i in range(FILES):
        d = src / f"d{i % FOLDERS:02d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:04d}.txt").write_bytes(hashlib.sha256(b"%d" % i).hexdigest().encode() * 10)
    codeseed.pack(src, root / "a.cseed", mode="classical")
    return root / "a.cseed", tree(src)


def _staging(parent: Path) -> list[Path]:
    return [p for p in parent.iterdir() if p.name.startswith(STAGING_PREFIX)]


def _kill_when(arc: Path, out: Path, sig: int, folders_written: int | None, delay: float = 0.0) -> int | None:
    """Start `codeseed unpack`; send `sig` once its staging folder holds `folders_written` folders (None:
    after `delay` seconds, whatever it is doing). Returns the exit status, or None if it ended first."""
    # SIGINT as a terminal delivers it, whatever the runner's disposition: a suite started in the
    # background by a non-interactive shell ignores SIGINT, and so would the child (exit 0, not 130)
    p = subprocess.Popen([sys.executable, "-m", "codeseed", "unpack", str(arc), "-o", str(out), "-q"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    start = time.monotonic()
    while p.poll() is None and time.monotonic() - start < 60:
        if folders_written is None:
            if time.monotonic() - start >= delay:
                break
        else:
            staged = _staging(out.parent)
            if staged and sum(1 for _ in os.scandir(staged[0])) >= folders_written:
                break
        time.sleep(0.001)
    ended_first = p.poll() is not None
    if not ended_first:
        p.send_signal(sig)
    p.wait(timeout=60)
    p.stderr.close()
    return None if ended_first else p.returncode


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT, signal.SIGTERM], ids=["KILL", "INT", "TERM"])
def test_interrupted_unpack_leaves_nothing_or_the_complete_tree(packed, tmp_path, sig):
    arc, expected = packed
    points = [(None, 0.2), (None, 0.5), (1, 0), (FOLDERS // 3, 0), (2 * FOLDERS // 3, 0), (FOLDERS, 0), (None, 30)]
    outcomes = []
    for n, (folders, delay) in enumerate(points):
        work = tmp_path / f"run{n}"
        work.mkdir()
        out = work / "out"
        status = _kill_when(arc, out, sig, folders, delay)
        if out.exists():
            assert tree(out) == expected, (n, len(tree(out)))  # complete, never partial
        leftovers = _staging(work)
        if sig == signal.SIGKILL:
            assert all(p.is_dir() for p in leftovers)  # a hidden staging folder is all a SIGKILL can leave
        else:
            assert leftovers == [], (n, leftovers)      # cleaned up on SIGINT and SIGTERM
            if folders is not None:                     # stopped while writing: codeseed's own exit
                assert status in (None, 130), (n, status)
        outcomes.append("complete" if out.exists() else "nothing")
    assert "nothing" in outcomes and outcomes[-1] == "complete", outcomes
