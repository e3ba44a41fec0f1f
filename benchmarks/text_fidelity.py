"""What a seeded archive of an eval-public project gives back: regenerated text, lint findings, ASTs.

    python benchmarks/text_fidelity.py ../shared/eval-public ARCHIVE_DIR [--projects tinydb,...]
        [--json OUT] [--flake8 "python -m flake8"]

ARCHIVE_DIR holds NAME.cseed per project (benchmarks/verified.py --keep writes them), packed from
the project's sdist with --no-ignore. For each one: the sdist is unpacked (the original), the
archive is unpacked with the bundled model (the reconstruction), and:
  - regenerated text: every hole with a stop rule (a comment's or docstring's text) is aligned in
    both trees (the seed's kept runs in order; a stop hole's text cannot hold the run after it, a
    code hole's token count is its hint), then chrF (sacrebleu, corpus-level, 0-100) of the
    regenerated against the original text, and the share of regenerated pieces that are junk
    (empty, quote runs or code fragments where the original was prose: fidelity.junk_kind);
  - flake8 with the project's own configuration (the tree's setup.cfg / tox.ini / .flake8; none:
    flake8's defaults), run in both trees: findings compared exactly (path, line, column, code,
    message) and up to line shifts (path, code, message, the source line's text);
  - CPython: every .py file's AST (ast.dump, docstrings' text blanked, comments are not in it) of
    the reconstruction against the original's.
Works for archives of any codeseed version that share the seed format (lower- and upper-case stop
rules), so archives made before a change can be measured the same way.
"""
from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import shlex
import subprocess
import sys
import tarfile
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path and "codeseed" not in sys.modules:
    sys.path.insert(0, str(ROOT))
import codeseed  # noqa: E402
from codeseed import archive, codecs, exact, seeded, spans  # noqa: E402
from codeseed.model import CodeModel  # noqa: E402

# the metrics are this checkout's, even where text_rd.py measures another checkout's codeseed
_spec = importlib.util.spec_from_file_location("codeseed_fidelity_metrics", ROOT / "codeseed" / "fidelity.py")
fidelity = sys.modules[_spec.name] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fidelity)


def seeds_of(arc: archive.Archive, lm: CodeModel) -> dict[str, seeded.Seed]:
    """The seed of every seeded entry (its payload decoded, before reconstruction)."""
    from codeseed.unpacking import _Blocks
    blocks = _Blocks(arc, None)
    try:
        out = [b"".join(blocks.chunks(e)) if e.codec in codecs.CLASSICAL else b"" for e in arc.entries]
    finally:
        blocks.close()
    if any(e.codec == "lm" for e in arc.entries):
        exact.decode(arc, out, lm)
    return {e.path: seeded.Seed.parse(out[k], [int(h) for h in e.meta["holes"]], str(e.meta.get("stops", "")))
            for k, e in enumerate(arc.entries) if e.fidelity != "exact"}


def aligned_holes(seed: seeded.Seed, original: bytes, recon: bytes, lm: CodeModel) -> list[tuple[str, bytes, bytes]]:
    """(rule, original text, regenerated text) of every hole."""
    out, po, pr = [], len(seed.kept[0]), len(seed.kept[0])
    for j, hint in enumerate(seed.hints):
        run = seed.kept[j + 1]
        rule = seed.rule(j)
        end_o = original.find(run, po) if run else len(original)
        if rule == ".":  # the first place after which the hole's text has the hint's token count
            while run and end_o >= 0 and len(lm.encode(original[po:end_o].decode("utf-8", "replace"))) != hint:
                end_o = original.find(run, end_o + 1)
        end_r = recon.find(run, pr) if run else len(recon)
        if rule == "." and original[po:end_o] == recon[pr:pr + end_o - po]:
            end_r = pr + end_o - po  # a strict code hole came back as it was
        if end_o < 0 or end_r < 0:
            raise ValueError("seed does not align with the trees")
        out.append((rule, original[po:end_o], recon[pr:end_r]))
        po, pr = end_o + len(run), end_r + len(run)
    return out


def flake8(tree: Path, cmd: str) -> list[dict]:
    fmt = "%(path)s\t%(row)d\t%(col)d\t%(code)s\t%(text)s"
    r = subprocess.run(shlex.split(cmd) + ["--format", fmt, "."], cwd=tree, capture_output=True, text=True)
    if r.returncode not in (0, 1):
        raise RuntimeError(f"flake8 failed in {tree}: {r.stderr[-500:]}")
    rows = []
    for line in r.stdout.splitlines():
        path, row, col, code, text = line.split("\t", 4)
        src = (tree / path).read_text("utf-8", "replace").splitlines()
        rows.append({"path": path, "row": int(row), "col": int(col), "code": code, "text": text,
                     "line": src[int(row) - 1].strip() if 0 < int(row) <= len(src) else ""})
    return rows


def code_view(data: bytes) -> str | None:
    return fidelity.CPythonJudge().code_view(data)


def measure(name: str, sdist: Path, arc_path: Path, lm: CodeModel, flake8_cmd: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with tarfile.open(sdist) as tf:
            tf.extractall(work / "orig", filter="data")
        orig = next((work / "orig").iterdir())
        codeseed.unpack(arc_path, work / "recon", model=lm)
        recon = work / "recon"
        with archive.Archive(arc_path) as arc:
            seeds = seeds_of(arc, lm)
            meta = {e.path: e.meta for e in arc.entries}
        files, pairs, junk = {}, [], Counter()
        for path, seed in sorted(seeds.items()):
            lang_f = spans.load(spans.language_for(path))
            holes = aligned_holes(seed, (orig / path).read_bytes(), (recon / path).read_bytes(), lm)
            texts = [(o.decode("utf-8"), r.decode("utf-8")) for rule, o, r in holes if rule != "."]
            kinds = [fidelity.junk_kind(lang_f, r) for o, r in texts]
            bad = [k for (o, r), k in zip(texts, kinds) if k and k != fidelity.junk_kind(lang_f, o)]
            junk.update(bad)
            pairs += texts
            files[path] = {"regenerated": len(texts), "junk": len(bad),
                           "chrf": fidelity.chrf([r for _, r in texts], [o for o, _ in texts]) if texts else None,
                           "judge": meta[path].get("judge", "tree-sitter (not recorded)")}
        ast_same, ast_diff = 0, []
        for p in sorted(orig.rglob("*.py")):
            rel = p.relative_to(orig)
            a, b = code_view(p.read_bytes()), code_view((recon / rel).read_bytes())
            if a == b:
                ast_same += 1
            else:
                ast_diff.append(str(rel))
        f_orig, f_recon = flake8(orig, flake8_cmd), flake8(recon, flake8_cmd)
    exact_key = lambda f: (f["path"], f["row"], f["col"], f["code"], f["text"])  # noqa: E731
    shift_key = lambda f: (f["path"], f["code"], f["text"], f["line"])  # noqa: E731
    only_o = Counter(map(shift_key, f_orig)) - Counter(map(shift_key, f_recon))
    only_r = Counter(map(shift_key, f_recon)) - Counter(map(shift_key, f_orig))
    return {
        "project": name, "archive_bytes": arc_path.stat().st_size, "seeded_files": len(seeds),
        "regenerated": len(pairs), "chrf": fidelity.chrf([r for _, r in pairs], [o for o, _ in pairs]),
        "junk": sum(junk.values()), "junk_kinds": dict(junk),
        "junk_share": sum(junk.values()) / len(pairs) if pairs else 0.0,
        "py_files": ast_same + len(ast_diff), "ast_equal": ast_same, "ast_differs": ast_diff,
        "flake8_original": len(f_orig), "flake8_reconstruction": len(f_recon),
        "flake8_same_exact": sorted(map(exact_key, f_orig)) == sorted(map(exact_key, f_recon)),
        "flake8_same_up_to_line_shifts": not only_o and not only_r,
        "flake8_only_original": [list(k) for k in only_o.elements()],
        "flake8_only_reconstruction": [list(k) for k in only_r.elements()],
        "files": files, "pairs": pairs,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("eval_dir", type=Path)
    ap.add_argument("archives", type=Path)
    ap.add_argument("--projects")
    ap.add_argument("--model", type=Path)
    ap.add_argument("--flake8", default=f"{sys.executable} -m flake8", help="flake8 command (default: this Python's)")
    ap.add_argument("--json", type=Path, help="write every measure, and every (original, regenerated) pair")
    args = ap.parse_args()
    lm = CodeModel(args.model)
    with open(args.eval_dir / "manifest.tsv") as fh:
        manifest = list(csv.DictReader(fh, delimiter="\t"))
    wanted = set(args.projects.split(",")) if args.projects else None
    results = []
    print("| project | archive bytes | seeded files | regenerated pieces | chrF | junk pieces | .py ASTs equal | "
          "flake8 findings orig / recon | same (exact) | same (up to line shifts) |\n" + "|---" * 10 + "|")
    for row in manifest:
        arc = args.archives / f"{row['name']}.cseed"
        if (wanted and row["name"] not in wanted) or not arc.exists():
            continue
        r = measure(row["name"], args.eval_dir / "sdist" / row["sdist_filename"], arc, lm, args.flake8)
        results.append(r)
        print(f"| {r['project']} | {r['archive_bytes']:,} | {r['seeded_files']} | {r['regenerated']} | "
              f"{r['chrf']:.1f} | {r['junk']} ({100 * r['junk_share']:.1f}%) {r['junk_kinds'] or ''} | "
              f"{r['ast_equal']}/{r['py_files']} | "
              f"{r['flake8_original']} / {r['flake8_reconstruction']} | {r['flake8_same_exact']} | "
              f"{r['flake8_same_up_to_line_shifts']} |", flush=True)
    for r in results:
        for what in ("ast_differs", "flake8_only_original", "flake8_only_reconstruction"):
            for item in r[what]:
                print(f"  {r['project']}: {what}: {item}")
        for path, f in r["files"].items():
            chrf = "-" if f["chrf"] is None else f"{f['chrf']:.1f}"
            print(f"  {r['project']}: {path}: {f['regenerated']} regenerated, chrF {chrf}, junk {f['junk']}, "
                  f"judge {f['judge']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
