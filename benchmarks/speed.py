"""Exact-mode speed on real trees, beside xz -9e and zpaq -method 5, in one run.

    python benchmarks/speed.py ../shared/eval-public/sdist [MORE_DIRS...] [--repeat 2] [--jobs 2] [--json OUT]
                               [--no-unpack]

For each sdist (.tar.gz, or an npm package .tgz): unpack it, then time `codeseed pack --exact` and `codeseed unpack` as a user runs
them (the CLI in a fresh process: imports, model load and all), check the round trip byte for byte,
and time xz -9e and zpaq -method 5 on a tar of the same tree. Throughput is the raw tree's bytes
(every file, whatever codec it ends in) per wall second; the best of --repeat runs. Also printed:
where the archive's bytes go (payloads, index, header and footer), per file. Benchmarks are not
tests: they print, they do not assert. State the machine's load when you record a figure.
"""
from __future__ import annotations

import argparse
import json
import lzma
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.compare import make_tar, tree_digest  # noqa: E402
from codeseed import archive  # noqa: E402

CLI = [sys.executable, "-m", "codeseed"]


def best_of(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


KINDS = {"python": (".py", ".pyi"), "markdown/rest": (".md", ".rst", ".txt", "PKG-INFO", "README", "CHANGES"),
         "json/yaml/toml": (".json", ".yaml", ".yml", ".toml", ".cfg", ".ini", ".json5")}


def kind_of(path: str) -> str:
    """Python, prose (Markdown/reST/plain text, PKG-INFO's long description), data, or other."""
    name = path.rsplit("/", 1)[-1]
    for kind, ends in KINDS.items():
        if name.endswith(ends) or name in ends:
            return kind
    return "other"


def by_kind(path: Path) -> dict:
    """Raw and stored bytes by kind of file (stored: each entry's payload, or its share of a shared
    payload by size), and where each file went (its codec and, for exact mode, both measured sizes)."""
    with archive.Archive(path) as arc:
        out: dict[str, dict] = {}
        files = []
        for e in arc.entries:
            k = out.setdefault(kind_of(e.path), {"raw": 0, "stored": 0, "files": 0})
            k["raw"] += e.size
            k["stored"] += e.stored_share()
            k["files"] += 1
            files.append({"path": e.path, "size": e.size, "codec": e.codec, "stored": e.stored_share(),
                          **({"why": e.meta["why"]} if "why" in e.meta else {})})
    return {"kinds": out, "files": files}


def archive_split(path: Path) -> dict:
    """Bytes of payloads by codec, and of the index, header and footer (what is not file content)."""
    with archive.Archive(path) as arc:
        payloads: dict[int, tuple[str, int]] = {e.payload_id: (e.codec, e.length) for e in arc.entries}
        by_codec: dict[str, int] = {}
        for codec, length in payloads.values():
            by_codec[codec] = by_codec.get(codec, 0) + length
        footer = archive.FOOTERS[arc.version].size
        index = arc.size - arc.payload_end - footer
        header = arc.payload_start
        files = len(arc.entries)
    return {"files": files, "payloads": by_codec, "index": index, "header": header, "footer": footer,
            "overhead_per_file": (index + header + footer) / files}


def tree_of(src: Path, work: Path) -> Path:
    """The project's folder: `src` itself, or the one folder its sdist (.tar.gz) or npm .tgz holds,
    unpacked under `work`."""
    if src.is_dir():
        return src
    with tarfile.open(src) as tf:
        tf.extractall(work / "src", filter="data")
    return next((work / "src").iterdir())


def measure(sdist: Path, repeat: int, jobs: int, unpack_too: bool = True) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        root = tree_of(sdist, work)
        raw = sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())
        tar_path = work / f"{root.name}.tar"
        tar = make_tar(root, tar_path)
        row = {"project": root.name, "raw_bytes": raw}
        xz = lzma.compress(tar, preset=9 | lzma.PRESET_EXTREME)
        row["xz -9e"] = {"bytes": len(xz), "s": best_of(repeat, lambda: lzma.compress(tar, preset=9 | lzma.PRESET_EXTREME))}
        if shutil.which("zpaq"):
            z = work / "t.zpaq"

            def zpaq() -> None:
                z.unlink(missing_ok=True)
                subprocess.run(["zpaq", "add", str(z), tar_path.name, "-method", "5"], cwd=work, check=True,
                               capture_output=True)
            row["zpaq -m5"] = {"bytes": None, "s": best_of(repeat, zpaq)}
            row["zpaq -m5"]["bytes"] = z.stat().st_size
        arc, out = work / "a.cseed", work / "out"
        jobs_arg = ["--jobs", str(jobs)]
        t_pack = best_of(repeat, lambda: subprocess.run(
            CLI + ["pack", str(root), "-o", str(arc), "--exact", "--no-ignore", "-f", "-q"] + jobs_arg, check=True))

        def unpack() -> None:
            shutil.rmtree(out, ignore_errors=True)
            subprocess.run(CLI + ["unpack", str(arc), "-o", str(out), "-q"] + jobs_arg, check=True)
        t_unpack = best_of(repeat, unpack) if unpack_too else float("nan")
        row["codeseed exact"] = {"bytes": arc.stat().st_size, "pack_s": t_pack, "unpack_s": t_unpack,
                                 "pack_KBps": raw / 1000 / t_pack, "unpack_KBps": raw / 1000 / t_unpack,
                                 "roundtrip": tree_digest(out) == tree_digest(root) if unpack_too else None,
                                 "split": archive_split(arc), **by_kind(arc)}
        print(json.dumps(row), file=sys.stderr, flush=True)
        return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sdists", type=Path, nargs="+", help="folders of .tar.gz sdists and .tgz npm packages")
    ap.add_argument("--no-unpack", action="store_true", help="sizes only: pack, and skip the unpack and round trip")
    ap.add_argument("--repeat", type=int, default=2, help="runs of each command; the best is kept")
    ap.add_argument("--jobs", type=int, default=len(os.sched_getaffinity(0)), help="codeseed --jobs")
    ap.add_argument("--json", type=Path, help="write all figures here")
    args = ap.parse_args()
    found = sorted(p for d in args.sdists for p in [*d.glob("*.tar.gz"), *d.glob("*.tgz")])
    rows = [measure(s, args.repeat, args.jobs, not args.no_unpack) for s in found]
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    print(f"load average before/after: {os.getloadavg()[0]:.2f}; cores {len(os.sched_getaffinity(0))}; "
          f"--jobs {args.jobs}; best of {args.repeat}\n")
    print("| project | raw KB | xz -9e bytes (s) | zpaq -m5 bytes (s) | codeseed exact bytes | x zpaq "
          "| pack s (KB/s) | unpack s (KB/s) | round trip |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        c, z = r["codeseed exact"], r.get("zpaq -m5", {"bytes": float("nan"), "s": float("nan")})
        print(f"| {r['project']} | {r['raw_bytes'] / 1000:.0f} | {r['xz -9e']['bytes']:,} ({r['xz -9e']['s']:.2f}) "
              f"| {z['bytes']:,} ({z['s']:.2f}) | {c['bytes']:,} | {c['bytes'] / z['bytes']:.3f} "
              f"| {c['pack_s']:.1f} ({c['pack_KBps']:.1f}) | {c['unpack_s']:.1f} ({c['unpack_KBps']:.1f}) "
              f"| {'-' if c['roundtrip'] is None else 'identical' if c['roundtrip'] else '**DIFFERS**'} |")
    print("\n| project | files | LM stream | other payloads | index | header + footer | not content, per file |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        sp = r["codeseed exact"]["split"]
        lm = sp["payloads"].get("lm", 0)
        print(f"| {r['project']} | {sp['files']} | {lm:,} | {sum(sp['payloads'].values()) - lm:,} | {sp['index']:,} "
              f"| {sp['header'] + sp['footer']} | {sp['overhead_per_file']:.1f} |")
    print("\n| project | " + " | ".join(f"{k}: files, raw, stored, bits/byte" for k in [*KINDS, "other"]) + " |")
    print("|---" * (len(KINDS) + 2) + "|")
    for r in rows:
        ks = r["codeseed exact"]["kinds"]
        print(f"| {r['project']} | " + " | ".join(
            f"{ks[k]['files']}, {ks[k]['raw']:,}, {ks[k]['stored']:,}, {8 * ks[k]['stored'] / max(ks[k]['raw'], 1):.3f}"
            if k in ks else "" for k in [*KINDS, "other"]) + " |")


if __name__ == "__main__":
    main()
