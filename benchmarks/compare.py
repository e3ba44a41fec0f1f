"""Compare codeseed with classical compressors on real projects, side by side in one run.

    python benchmarks/compare.py ../shared/eval-public/sdist --modes classical,exact [--py-only] [--jobs 3]

For each sdist: unpack it, check that codeseed round-trips the tree byte for byte (and modes),
and print sizes: raw tar, gzip -9, xz -9e, zstd -19, brotli -q 11, zpaq -method 5 (of the same
tar; zpaq from Debian's package, skipped if absent), codeseed per mode. Times are wall seconds on
this machine, measured in the same run (codeseed packs with verify=False: the unpack that follows
is the round-trip check). Benchmarks are not tests: they print, they do not assert.
"""
from __future__ import annotations

import argparse
import functools
import gzip
import hashlib
import json
import lzma
import multiprocessing
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import zstandard
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import codeseed  # noqa: E402
from codeseed.cm import MixSettings  # noqa: E402


def tree_digest(root: Path) -> dict[str, tuple[str, bool]]:
    return {p.relative_to(root).as_posix(): (hashlib.sha256(p.read_bytes()).hexdigest(), os.access(p, os.X_OK))
            for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


def make_tar(root: Path, dest: Path) -> bytes:
    subprocess.run(["tar", "--sort=name", "--owner=0", "--group=0", "--numeric-owner", "--mtime=@0", "-cf",
                    str(dest), "-C", str(root.parent), root.name], check=True)
    return dest.read_bytes()


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def classical_sizes(tar: bytes, tar_path: Path) -> dict[str, tuple[int, float]]:
    import brotli
    out = {"raw tar": (len(tar), 0.0)}
    out["gzip -9"] = (lambda r: (len(r[0]), r[1]))(timed(lambda: gzip.compress(tar, 9, mtime=0)))
    out["xz -9e"] = (lambda r: (len(r[0]), r[1]))(timed(lambda: lzma.compress(tar, preset=9 | lzma.PRESET_EXTREME)))
    out["zstd -19"] = (lambda r: (len(r[0]), r[1]))(timed(lambda: zstandard.ZstdCompressor(level=19).compress(tar)))
    out["brotli -q 11"] = (lambda r: (len(r[0]), r[1]))(timed(lambda: brotli.compress(tar, quality=11)))
    if shutil.which("zpaq"):
        z = tar_path.with_suffix(".zpaq")
        _, dt = timed(lambda: subprocess.run(["zpaq", "add", str(z), tar_path.name, "-method", "5"],
                                             cwd=tar_path.parent, check=True, capture_output=True))
        out["zpaq -m5"] = (z.stat().st_size, dt)
    return out


def run_codeseed(root: Path, work: Path, mode: str, model, settings: MixSettings | None) -> dict:
    arc = work / f"{root.name}.{mode}.cseed"
    kind = "classical" if mode == "classical" else "exact"
    # the unpack below is the round-trip check (the tree digest comparison)
    report, t_pack = timed(lambda: codeseed.pack(root, arc, mode=kind, model=model, settings=settings,
                                                 no_ignore=True, force=True))
    out = work / f"out-{mode}"
    shutil.rmtree(out, ignore_errors=True)
    _, t_unpack = timed(lambda: codeseed.unpack(arc, out, model=model))
    ok = tree_digest(out) == tree_digest(root)
    codecs: dict[str, int] = {}
    for f in report.files:
        codecs[f.codec] = codecs.get(f.codec, 0) + 1
    return {"bytes": report.archive_bytes, "pack_s": t_pack, "unpack_s": t_unpack, "roundtrip": ok,
            "raw": report.raw_bytes, "codecs": codecs}


_model = None  # per process: loaded once by _init


def _init(model_path: Path | None, need_model: bool) -> None:
    global _model
    if need_model:
        from codeseed.model import CodeModel
        _model = CodeModel(model_path)


def measure_project(sdist: Path, modes: list[str], py_only: bool) -> dict:
    """One sdist: its classical sizes and every codeseed mode, with a round-trip check."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with tarfile.open(sdist) as tf:
            tf.extractall(work / "src", filter="data")
        root = next((work / "src").iterdir())
        if py_only:
            for p in sorted(root.rglob("*"), reverse=True):
                if p.is_file() and p.suffix != ".py":
                    p.unlink()
                elif p.is_dir() and not any(p.iterdir()):
                    p.rmdir()
        tar = make_tar(root, work / f"{root.name}.tar")
        row = {"project": root.name, "files": len(tree_digest(root)), **{
            k: {"bytes": b, "s": s} for k, (b, s) in classical_sizes(tar, work / f"{root.name}.tar").items()}}
        for mode in modes:
            settings = None
            if mode == "lm-only":
                settings = MixSettings(ngram_orders=(), ngram_alpha=(), match=False)
            print(f"{root.name}: codeseed {mode} ...", file=sys.stderr, flush=True)
            row[f"codeseed {mode}"] = run_codeseed(root, work, mode, _model, settings)
        print(json.dumps(row), flush=True)  # each project as soon as it is done
        return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sdists", type=Path, help="folder of .tar.gz sdists")
    ap.add_argument("--modes", default="classical,exact", help="comma list of classical, exact, lm-only")
    ap.add_argument("--model", type=Path, help="model folder (default: bundled)")
    ap.add_argument("--py-only", action="store_true", help="keep only the .py files of each project")
    ap.add_argument("--jobs", type=int, default=1, help="projects measured at once, one process each")
    ap.add_argument("--json", type=Path, help="write all figures here")
    args = ap.parse_args()
    modes = args.modes.split(",")
    sdists = sorted(args.sdists.glob("*.tar.gz"))
    work = functools.partial(measure_project, modes=modes, py_only=args.py_only)
    init = (args.model, any(m != "classical" for m in modes))
    if args.jobs > 1:
        with multiprocessing.get_context("fork").Pool(args.jobs, _init, init) as pool:
            results = pool.map(work, sdists, chunksize=1)
    else:
        _init(*init)
        results = [work(sdist) for sdist in sdists]
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    cols = [c for c in results[0] if c not in ("project", "files")] if results else []
    table = Table(title="bytes (ratio to xz -9e)" + (" - .py files only" if args.py_only else ""))
    table.add_column("project")
    for c in cols:
        table.add_column(c, justify="right")
    md = ["| project | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for r in results:
        xz = r["xz -9e"]["bytes"]
        cells = [f"{r[c]['bytes']:,} ({r[c]['bytes'] / xz:.2f})" for c in cols]
        table.add_row(r["project"], *cells)
        md.append(f"| {r['project']} | " + " | ".join(cells) + " |")
    if results:
        tot = {c: sum(r[c]["bytes"] for r in results) for c in cols}
        cells = [f"{tot[c]:,} ({tot[c] / tot['xz -9e']:.2f})" for c in cols]
        table.add_row("total", *cells)
        md.append("| **total** | " + " | ".join(cells) + " |")
    Console().print(table)
    times = ["", "| project | raw KB | xz -9e s | zpaq -m5 s | " + " | ".join(
        f"{m} pack s (KB/s) | {m} unpack s (KB/s) | {m} round trip" for m in modes) + " |",
        "|---" * (4 + 3 * len(modes)) + "|"]
    for r in results:
        kb = r["raw tar"]["bytes"] / 1000
        cells = []
        for m in modes:
            c = r[f"codeseed {m}"]
            raw_kb = c["raw"] / 1000
            cells += [f"{c['pack_s']:.1f} ({raw_kb / c['pack_s']:.1f})", f"{c['unpack_s']:.1f} ({raw_kb / c['unpack_s']:.1f})",
                      "identical" if c["roundtrip"] else "**DIFFERS**"]
        times.append(f"| {r['project']} | {kb:.0f} | {r['xz -9e']['s']:.2f} | "
                     f"{r.get('zpaq -m5', {}).get('s', float('nan')):.2f} | " + " | ".join(cells) + " |")
    print("\n".join(md + times))


if __name__ == "__main__":
    main()
