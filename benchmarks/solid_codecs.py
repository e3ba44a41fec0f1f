"""Solid-block codecs on real trees: size, pack and unpack time of each candidate, in one run.

    python benchmarks/solid_codecs.py SDIST_OR_DIR... [--files all|classical|archive] [--json OUT]
    python benchmarks/solid_codecs.py SDIST_OR_DIR... --files-from SPEED_JSON   # the files speed.py's archives
                                                                               # stored outside the LM stream

For each project (an sdist .tar.gz, an npm .tgz, or an unpacked folder), the files are put back to
back in one block, in the order codeseed's solid blocks use (codeseed.packing.block_order), and
every codec below codes the block; each is decoded back and checked. `--files classical`: only the
files codeseed would not give the model (candidates.model_candidate false); `--files archive`:
the files an exact archive of the tree stores outside the LM stream (packs the tree first: slow).

Codecs: codeseed's block codecs (codecs.BLOCK_CODECS), and for reference xz with text-tuned
literal coding, zstd --ultra -22, brotli -q 11 (24-bit window), PPMd variants H and I at several
orders, the `zpaq` wheel (a ZPAQ binding: no bounded decoder, so not adoptable) and the zpaq CLI
(-method 5, the benchmark peer). pyppmd and zpaq are measured when installed (`pip install pyppmd zpaq`);
codeseed does not depend on them. Benchmarks are not tests: they print, they do not assert. State
the machine's load when you record a time.
"""
from __future__ import annotations

import argparse
import json
import lzma
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from codeseed import codecs  # noqa: E402
from codeseed.candidates import model_candidate  # noqa: E402
from codeseed.packing import block_order, solid_candidate  # noqa: E402
from codeseed.walk import scan  # noqa: E402
from benchmarks.speed import tree_of  # noqa: E402


ORDER = "ext"


def _ppmd(variant: int, order: int, mem: int):
    import pyppmd

    def enc(data: bytes) -> bytes:
        e = pyppmd.Ppmd7Encoder(order, mem) if variant == 7 else pyppmd.Ppmd8Encoder(order, mem, 0)
        return e.encode(data) + e.flush(endmark=True)

    def dec(data: bytes, n: int) -> bytes:
        d = pyppmd.Ppmd7Decoder(order, mem) if variant == 7 else pyppmd.Ppmd8Decoder(order, mem, 0)
        return d.decode(data, n + 1)
    return enc, dec


def _xz_text(data: bytes) -> bytes:
    f = [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME, "dict_size": max(4096, len(data)),
          "lc": 4, "lp": 0, "pb": 0}]
    return lzma.compress(data, format=lzma.FORMAT_RAW, filters=f)


def _xz_text_dec(data: bytes, n: int) -> bytes:
    f = [{"id": lzma.FILTER_LZMA2, "dict_size": max(4096, n), "lc": 4, "lp": 0, "pb": 0}]
    return lzma.decompress(data, format=lzma.FORMAT_RAW, filters=f)


def candidates() -> dict:
    import brotli
    import zstandard
    out = {name: (codecs.CLASSICAL[name].encode, lambda d, n, name=name: codecs.decode_classical(name, d, n))
           for name in codecs.BLOCK_CODECS}
    out["xz lc4 pb0"] = (_xz_text, _xz_text_dec)
    out["zstd -22"] = (lambda d: zstandard.ZstdCompressor(level=22).compress(d),
                       lambda d, n: zstandard.ZstdDecompressor().decompress(d, max_output_size=n))
    out["brotli -q 11"] = (lambda d: brotli.compress(d, quality=11, lgwin=24), lambda d, n: brotli.decompress(d))
    try:
        import pyppmd  # noqa: F401
        for variant, order in ((7, 6), (7, 16), (7, 32), (8, 16)):
            out[f"ppmd{variant} o{order}"] = _ppmd(variant, order, 256 << 20)
    except ImportError:
        pass
    try:
        import zpaq
        for level in (3, 4, 5):
            out[f"zpaq wheel {level}"] = (lambda d, level=level: zpaq.compress(d, level=level, threads=1),
                                          lambda d, n: zpaq.decompress(d, threads=1))
    except ImportError:
        pass
    return out


def zpaq_cli(block: bytes, work: Path) -> tuple[int, float, float] | None:
    if not shutil.which("zpaq"):
        return None
    (work / "b").write_bytes(block)
    z = work / "b.zpaq"
    z.unlink(missing_ok=True)
    t = time.perf_counter()
    subprocess.run(["zpaq", "add", str(z), "b", "-method", "5"], cwd=work, check=True, capture_output=True)
    t_pack = time.perf_counter() - t
    shutil.rmtree(work / "x", ignore_errors=True)
    t = time.perf_counter()
    subprocess.run(["zpaq", "extract", str(z), "-to", str(work / "x")], cwd=work, check=True, capture_output=True)
    return z.stat().st_size, t_pack, time.perf_counter() - t


def block_files(root: Path, which: str, work: Path, outside: set[str] | None = None) -> list:
    files = scan(root, True, False).files
    if outside is not None:
        return [f for f in files if f.path in outside and not f.is_symlink]
    if which == "all":
        return [f for f in files if solid_candidate(f)]
    if which == "classical":
        return [f for f in files if solid_candidate(f) and not model_candidate(f)]
    import codeseed
    from codeseed import archive
    arc = work / "a.cseed"
    codeseed.pack(root, arc, mode="exact", no_ignore=True, force=True)
    with archive.Archive(arc) as a:
        outside = {e.path for e in a.entries if e.codec != "lm"}
    return [f for f in files if f.path in outside and not f.is_symlink]


def measure(src: Path, which: str, only: list[str] | None, outside: dict[str, set[str]] | None = None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        root = tree_of(src, work)
        files = block_files(root, which, work, None if outside is None else outside.get(root.name, set()))
        seen, block = set(), bytearray()
        for f in (block_order(files) if ORDER == "ext" else files):
            if f.data not in seen:
                seen.add(f.data)
                block += f.data
        block = bytes(block)
        row = {"project": root.name, "files": len(files), "bytes": len(block), "codecs": {}}
        for name, (enc, dec) in candidates().items():
            if only and name not in only:
                continue
            t = time.perf_counter()
            payload = enc(block)
            t_pack = time.perf_counter() - t
            t = time.perf_counter()
            try:
                back = dec(payload, len(block))
            except Exception as err:  # noqa: BLE001 - a benchmark records a codec's failure and goes on
                print(f"{root.name}: {name}: {err}", file=sys.stderr)
                back = b""
            t_unpack = time.perf_counter() - t
            row["codecs"][name] = {"bytes": len(payload), "pack_s": t_pack, "unpack_s": t_unpack,
                                   "ok": bytes(back) == block}
        z = zpaq_cli(block, work) if not only or "zpaq -m5 (CLI)" in only else None
        if z:
            row["codecs"]["zpaq -m5 (CLI)"] = {"bytes": z[0], "pack_s": z[1], "unpack_s": z[2], "ok": True}
        print(json.dumps(row), file=sys.stderr, flush=True)
        return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sources", type=Path, nargs="+")
    ap.add_argument("--files", choices=("all", "classical", "archive"), default="classical")
    ap.add_argument("--only", help="comma-separated codec names")
    ap.add_argument("--files-from", type=Path, help="speed.py --json output: the files its archives stored outside "
                                                    "the LM stream")
    ap.add_argument("--order", choices=("ext", "path"), default="ext", help="block order: by extension, or by path")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    global ORDER
    ORDER = args.order
    outside = None
    if args.files_from:
        outside = {r["project"]: {f["path"] for f in r["codeseed exact"]["files"] if f["codec"] != "lm"}
                   for r in json.loads(args.files_from.read_text())}
    rows = [measure(s, args.files, args.only.split(",") if args.only else None, outside) for s in args.sources]
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    print(f"load average: {os.getloadavg()[0]:.2f}; cores {len(os.sched_getaffinity(0))}; files: "
          f"{args.files_from or args.files}\n")
    names = list(rows[0]["codecs"])
    print("| codec | " + " | ".join(f"{r['project']} ({r['bytes']:,} B) bytes, pack/unpack s" for r in rows)
          + " | total bytes |")
    print("|---" * (len(rows) + 2) + "|")
    for n in names:
        cells = []
        for r in rows:
            c = r["codecs"].get(n)
            cells.append("" if c is None else f"{c['bytes']:,} ({c['pack_s']:.2f}/{c['unpack_s']:.2f})"
                         + ("" if c["ok"] else " **DIFFERS**"))
        total = sum(r["codecs"][n]["bytes"] for r in rows if n in r["codecs"])
        print(f"| {n} | " + " | ".join(cells) + f" | {total:,} |")


if __name__ == "__main__":
    main()
