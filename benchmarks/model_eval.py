"""Evaluate a model on projects it never saw: held-out bits/byte and fill-in-the-middle quality.

    python benchmarks/model_eval.py ../shared/eval-public/sdist [--model DIR] [--fims 50] [--json OUT] [--no-bpb]
                                    [--cases OUT.jsonl]

bits/byte: the model alone (full forward passes, 256-token windows with half overlap) over every
.py file of every sdist, total bits / total bytes. FIM: `--fims` function bodies and as many
docstrings, drawn with a fixed seed; each is removed and filled greedily on its own (cap: twice the
true token count + 16; the prompt gets the model's context less the cap), twice: as codeseed fills
(greedy, never repeating a 6-token sequence within the middle) and by plain greedy decoding
(keys ending in `_greedy`). Reported: the share of fills that stop by themselves (a stop token
before the cap), the share of filled files that parse, and the median probability of a stop token
right after the true middle (teacher-forced). `--cases` writes one JSON line per fill (file, hole,
true and filled middle, whether it stopped and parsed) for reading the failures.
"""
from __future__ import annotations

import argparse
import ast
import json
import random
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from codeseed.model import NO_REPEAT, CodeModel  # noqa: E402


def py_files(sdists: Path) -> dict[str, str]:
    out = {}
    for sdist in sorted(sdists.glob("*.tar.gz")):
        with tarfile.open(sdist) as tf:
            for m in tf.getmembers():
                if m.isfile() and m.name.endswith(".py"):
                    out[m.name] = tf.extractfile(m).read().decode("utf-8")
    return out


def offsets(text: str):
    starts = [0]
    for line in text.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    lines = text.splitlines(keepends=True)
    return lambda ln, col: starts[ln - 1] + len(lines[ln - 1].encode()[:col].decode("utf-8", "ignore"))


def holes(files: dict[str, str], n: int, seed: int = 0) -> dict[str, list[tuple[str, int, int]]]:
    bodies, docs = [], []
    for name, text in files.items():
        try:
            tree = ast.parse(text)
        except SyntaxError:
            continue
        off = offsets(text)
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                body = node.body
                if (isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant)
                        and isinstance(body[0].value.value, str)):
                    d = body[0].value
                    docs.append((name, off(d.lineno, d.col_offset), off(d.end_lineno, d.end_col_offset)))
                    body = body[1:]
                if body:
                    a, b = off(body[0].lineno, body[0].col_offset), off(body[-1].end_lineno, body[-1].end_col_offset)
                    if b - a <= 600:
                        bodies.append((name, a, b))
    rng = random.Random(seed)
    return {"body": rng.sample(bodies, min(n, len(bodies))), "docstring": rng.sample(docs, min(n, len(docs)))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sdists", type=Path)
    ap.add_argument("--model", type=Path)
    ap.add_argument("--fims", type=int, default=50)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--no-bpb", action="store_true", help="FIM measures only (bits/byte takes ~10 min on 1 core)")
    ap.add_argument("--cases", type=Path, help="write every fill as a JSON line here")
    args = ap.parse_args()
    model = CodeModel(args.model)
    files = py_files(args.sdists)
    cases = []
    result = {"model": model.id.to_dict(), "py_files": len(files)}
    if not args.no_bpb:
        t = time.perf_counter()
        bits = sum(float(b.sum()) for b in model.score(list(files.values())))
        nbytes = sum(len(v.encode()) for v in files.values())
        result.update(py_bytes=nbytes, bits_per_byte=bits / nbytes, score_s=time.perf_counter() - t)
        print(f"bits/byte {result['bits_per_byte']:.4f} on {len(files)} files, {nbytes:,} bytes "
              f"({result['score_s']:.0f} s)", flush=True)
    for kind, items in holes(files, args.fims).items():
        truths = [model.encode(files[n][a:b]) for n, a, b in items]
        p_stop = [model.stop_probability(files[n][:a], files[n][b:], t) for (n, a, b), t in zip(items, truths)]
        for decoding, no_repeat in (("", NO_REPEAT), ("_greedy", 0)):
            stopped = parsed = 0
            for (n, a, b), truth in zip(items, truths):  # one at a time, as seeded mode fills
                pre, suf = files[n][:a], files[n][b:]
                mid = model.fill([pre], [suf], 2 * len(truth) + 16, no_repeat=no_repeat)[0]
                stopped += model.last_fill_stopped[0]
                try:
                    ast.parse(pre + mid + suf)
                    ok = True
                except (SyntaxError, ValueError):
                    ok = False
                parsed += ok
                cases.append({"kind": kind, "no_repeat": no_repeat, "file": n, "start": a, "end": b,
                              "true_tokens": len(truth), "stopped": bool(model.last_fill_stopped[0]),
                              "parses": ok, "truth": files[n][a:b], "fill": mid})
            result[f"fim_{kind}{decoding}"] = {"n": len(items), "no_repeat": no_repeat, "stop_rate": stopped / len(items),
                                               "parse_rate": parsed / len(items),
                                               "p_stop_at_end_median": float(np.median(p_stop))}
            print(f"FIM {kind}, no_repeat {no_repeat}: {len(items)} holes, stops by itself {stopped}/{len(items)}, "
                  f"parses {parsed}/{len(items)}, median P(stop) after the true middle {np.median(p_stop):.3f}",
                  flush=True)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    if args.cases:
        args.cases.write_text("".join(json.dumps(c) + "\n" for c in cases))


if __name__ == "__main__":
    main()
