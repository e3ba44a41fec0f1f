"""Many tiny files (issue 14): `codeseed pack --classical` time and size against `tar | zstd -19`, and
the time of `codeseed --help` and `codeseed info` on a 100-entry archive.

    python benchmarks/tiny_files.py --files 10000 --repeat 3

The tree: N files of ~20 bytes (`value_<i> = <i * 7919 % 10007>`), 100 a folder. Each command runs
as a subprocess, timed by wall clock; the best and the median of --repeat runs are reported, and
`tar -xf` of the same tree is timed between the unpacks (creating files is most of both).
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CODESEED = [sys.executable, "-m", "codeseed"]


def make_tree(root: Path, n: int) -> int:
    total = 0
    for i in range(n):
        d = root / f"d{i // 100:03d}"
        d.mkdir(parents=True, exist_ok=True)
        data = f"value_{i} = {i * 7919 % 10007}\n".encode()
        (d / f"f{i:05d}.txt").write_bytes(data)
        total += len(data)
    return total


def timed(cmd: list[str] | str, repeat: int, **kw) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, **kw)
        out.append(time.perf_counter() - t)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="codeseed-tiny-") as tmp:
        tmp = Path(tmp)
        raw = make_tree(tmp / "tree", args.files)
        arc = tmp / "a.cseed"
        pack = timed(CODESEED + ["pack", str(tmp / "tree"), "-o", str(arc), "--classical", "-q", "-f"], args.repeat)
        subprocess.run(["tar", "-C", str(tmp), "-cf", str(tmp / "t.tar"), "tree"], check=True)
        unpack, tar_x = [], []
        for k in range(args.repeat):  # interleaved: file creation here varies with the other jobs' load
            out = tmp / f"out{k}"
            unpack += timed(CODESEED + ["unpack", str(arc), "-o", str(out), "-q"], 1)
            shutil.rmtree(out)
            out.mkdir()
            tar_x += timed(["tar", "-xf", str(tmp / "t.tar"), "-C", str(out)], 1)
            shutil.rmtree(out)
        tar_zstd = subprocess.run(f"tar -C {tmp} -cf - tree | zstd -19 -q -c", shell=True, check=True,
                                  capture_output=True).stdout
        tar_xz = subprocess.run(f"tar -C {tmp} -cf - tree | xz -9e -c", shell=True, check=True,
                                capture_output=True).stdout
        small = tmp / "small"
        make_tree(small, 100)
        arc100 = tmp / "a100.cseed"
        subprocess.run(CODESEED + ["pack", str(small), "-o", str(arc100), "--classical", "-q"], check=True)
        helps = timed(CODESEED + ["--help"], max(args.repeat, 5))
        infos = timed(CODESEED + ["info", str(arc100)], max(args.repeat, 5))
        result = {
            "files": args.files, "raw_bytes": raw, "archive_bytes": arc.stat().st_size,
            "tar_zstd19_bytes": len(tar_zstd), "tar_xz9e_bytes": len(tar_xz),
            "pack_s": {"best": round(min(pack), 2), "median": round(statistics.median(pack), 2)},
            "unpack_s": {"best": round(min(unpack), 2), "median": round(statistics.median(unpack), 2)},
            "tar_x_s": {"best": round(min(tar_x), 2), "median": round(statistics.median(tar_x), 2)},
            "help_s": {"best": round(min(helps), 3), "median": round(statistics.median(helps), 3)},
            "info_100_entries_s": {"best": round(min(infos), 3), "median": round(statistics.median(infos), 3)},
        }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
