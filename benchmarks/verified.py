"""Verified seeded packing on real projects: pack with the project's own tests, unpack, test again.

    python benchmarks/verified.py ../shared/eval-public [--projects tinydb] [--budget 0.6]
        [--exact-from benchmarks/results/compare_tree.json] [--keep DIR]

For each project of manifest.tsv: unpack its sdist, make its test venv (make_venv.sh), pack
`--seeded --test-cmd <recorded command>` (without pack's own decode check: the unpack that follows
checks every SHA-256), unpack into a new folder, run run_tests.sh there, and pack `--exact` for
the size comparison, or take that size from a compare.py JSON of the same tree and code.
Prints fidelities, sizes and test runs. `--keep DIR` keeps each seeded archive as DIR/NAME.cseed (for
benchmarks/text_fidelity.py). `--lint-baseline` puts flake8 in the test command, as README says for
projects that are not lint-clean: flake8's findings on the reconstruction (the project's own
configuration; path, code and message, line numbers left out) must equal the original's.
`--min-text-similarity F` passes that floor to pack (default: pack's).
"""
from __future__ import annotations

import argparse
import csv
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import codeseed  # noqa: E402
from codeseed.model import CodeModel  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("eval_dir", type=Path, help="folder with manifest.tsv, sdist/, make_venv.sh, run_tests.sh")
    ap.add_argument("--projects", help="comma list of names (default: all)")
    ap.add_argument("--budget", type=float, default=0.6)
    ap.add_argument("--model", type=Path)
    ap.add_argument("--exact-from", type=Path, help="compare.py --json output holding the exact sizes")
    ap.add_argument("--keep", type=Path, help="folder to keep the seeded archives in (NAME.cseed)")
    ap.add_argument("--lint-baseline", action="store_true", help="flake8 findings must equal the original's")
    ap.add_argument("--min-text-similarity", type=float)
    args = ap.parse_args()
    known = {}
    if args.exact_from:
        import json
        known = {r["project"]: r["codeseed exact"]["bytes"] for r in json.loads(args.exact_from.read_text())}
    model = CodeModel(args.model)
    with open(args.eval_dir / "manifest.tsv") as fh:
        manifest = list(csv.DictReader(fh, delimiter="\t"))
    wanted = set(args.projects.split(",")) if args.projects else None
    print("| project | files seeded+tests / exact | seeded archive | exact archive | ratio | test runs | "
          "tests after unpack | pack s |\n|---|---|---|---|---|---|---|---|")
    for row in manifest:
        if wanted and row["name"] not in wanted:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            with tarfile.open(args.eval_dir / "sdist" / row["sdist_filename"]) as tf:
                tf.extractall(work / "src", filter="data")
            src = next((work / "src").iterdir())
            venv = work / "venv"
            subprocess.run(["bash", str(args.eval_dir / "make_venv.sh"), row["name"], str(venv)], check=True,
                           capture_output=True)
            root = row["import_root"].rstrip("/") or "."
            cmd = f"PYTHONPATH={root} {venv}/bin/python " + row["test_command"].split(" ", 1)[1]
            if args.lint_baseline:
                lint = (f"{sys.executable} -m flake8 . --exit-zero --format='%(path)s %(code)s %(text)s' "
                        "| LC_ALL=C sort")
                subprocess.run(f"{lint} > {work}/lint-baseline.txt", shell=True, cwd=src, check=True)
                cmd = f"{lint} | diff -q - {work}/lint-baseline.txt && {cmd}"
            floor = {} if args.min_text_similarity is None else {"min_text_similarity": args.min_text_similarity}
            t = time.perf_counter()
            rep = codeseed.pack(src, work / "s.cseed", mode="seeded", model=model, budget=args.budget, test_cmd=cmd,
                                no_ignore=True, verify=False, **floor)
            pack_s = time.perf_counter() - t
            exact_bytes = known.get(src.name) or codeseed.pack(src, work / "e.cseed", mode="exact", model=model,
                                                               no_ignore=True, verify=False).archive_bytes
            if args.keep:
                args.keep.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(work / "s.cseed", args.keep / f"{row['name']}.cseed")
            out = work / row["sdist_filename"].removesuffix(".tar.gz")
            codeseed.unpack(work / "s.cseed", out, model=model)
            r = subprocess.run(["bash", str(args.eval_dir / "run_tests.sh"), str(out), str(venv)],
                               capture_output=True, text=True)
            tail = (r.stdout.strip().splitlines() or ["?"])[-1]
            seeded_n = sum(f.fidelity == "seeded+tests" for f in rep.files)
            print(f"| {row['name']} | {seeded_n} / {len(rep.files) - seeded_n} | {rep.archive_bytes:,} | "
                  f"{exact_bytes:,} | {rep.archive_bytes / exact_bytes:.3f} | {rep.test_runs} | "
                  f"exit {r.returncode}: {tail} | {pack_s:.0f} |", flush=True)
            for f in rep.files:
                if f.fidelity != "exact":
                    print(f"    {f.path}: {f.fidelity}, budget {f.budget}, {f.size:,} -> {f.stored_bytes:,} bytes, "
                          f"~{f.saved_bytes_est:.0f} bytes saved (model estimate)", flush=True)


if __name__ == "__main__":
    main()
