"""Command line: `codeseed pack|unpack|info|test`. Exit codes are listed in README.md."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

import codeseed
from codeseed import archive
from codeseed.errors import CodeseedError
from codeseed.packing import DEFAULT_BUDGET, DEFAULT_MIN_SIMILARITY, DEFAULT_MIN_TEXT_SIMILARITY
from codeseed.unpacking import check_paths, decode_entries, load_model_for


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def cmd_pack(args: argparse.Namespace) -> int:
    mode = "classical" if args.classical else "exact" if args.exact else "seeded"
    if args.test_cmd and mode != "seeded":
        raise CodeseedError("--test-cmd checks seeded reconstructions: use it with --seeded")
    report = codeseed.pack(args.src, args.output, mode=mode, model=args.model, budget=args.budget,
                           min_similarity=args.min_similarity, min_text_similarity=args.min_text_similarity,
                           test_cmd=args.test_cmd, test_timeout=args.test_timeout,
                           lossy_code=args.lossy_code,
                           allow_failing_tests=args.allow_failing_tests, verify=not args.no_verify,
                           no_ignore=args.no_ignore, force=args.force, quiet=args.quiet)
    if args.json:
        print(json.dumps({"archive": str(report.archive), "archive_bytes": report.archive_bytes,
                          "raw_bytes": report.raw_bytes, "test_runs": report.test_runs,
                          **({"xz_bytes": report.xz_bytes, "exact_estimate_bytes": round(report.exact_estimate),
                              "text_chrf": report.text_chrf, "regenerated_texts": len(report.texts),
                              "kept_text": report.kept_text}
                             if report.xz_bytes is not None else {}),
                          "files": [f.__dict__ for f in report.files]}, indent=2))
    elif mode == "seeded" and not args.quiet:
        _pack_table(report)
    if not args.quiet:
        print(f"{args.src} -> {report.archive}: {len(report.files)} files, {_human(report.raw_bytes)} -> "
              f"{_human(report.archive_bytes)} ({100 * report.ratio:.1f}%)"
              + (f", {report.test_runs} test runs" if report.test_runs else ""), file=sys.stderr)
    return 0


def _pack_table(report) -> None:
    table = Table(title="seeded pack", title_justify="left")
    for col in ("path", "fidelity", "budget", "text chrF", "bytes", "stored"):
        table.add_column(col, justify="left" if col in ("path", "fidelity") else "right")
    counts: dict[str, int] = {}
    for f in report.files:
        counts[f.fidelity] = counts.get(f.fidelity, 0) + 1
        table.add_row(f.path, f.fidelity + (f" ({f.note})" if f.note else ""),
                      "" if f.budget is None else f"{f.budget:.2f}",
                      "" if f.text_chrf is None else f"{f.text_chrf:.1f}", str(f.size), str(f.stored_bytes))
    Console(stderr=True).print(table)
    print("fidelity: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())), file=sys.stderr)
    if report.texts:
        kept = ", ".join(f"{k} {v}" for k, v in sorted(report.kept_text.items()))
        print(f"regenerated text: {len(report.texts)} comments and docstrings, chrF {report.text_chrf:.1f} "
              f"against the originals" + (f"; kept as written: {kept}" if kept else ""), file=sys.stderr)
    est, xz = report.exact_estimate, report.xz_bytes
    print(f"archive {report.archive_bytes:,} bytes = {report.archive_bytes / est:.3f}x exact mode (~{est:,.0f}, "
          f"estimated: this archive plus the model's bits of the dropped text) = "
          f"{report.archive_bytes / xz:.3f}x xz -9e ({xz:,}, all files as one stream)", file=sys.stderr)


def cmd_unpack(args: argparse.Namespace) -> int:
    report = codeseed.unpack(args.archive, args.output, model=args.model, force=args.force, quiet=args.quiet)
    if not args.quiet:
        print(f"{args.archive} -> {report.dest}: {report.files} files, {_human(report.bytes)}", file=sys.stderr)
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    with archive.Archive(args.archive) as arc:
        entries, header, size = arc.entries, arc.header, arc.size
    if args.json:
        print(json.dumps({"archive": str(args.archive), "archive_bytes": size, "model": header.model,
                          "flags": header.flags, "settings": header.settings,
                          "entries": [{"path": e.path, "size": e.size, "stored_bytes": e.length, "codec": e.codec,
                                       "fidelity": e.fidelity, "executable": e.executable, "symlink": e.is_symlink,
                                       "sha256": e.sha256.hex(), **({"meta": e.meta} if e.meta else {})}
                                      for e in entries]}, indent=2))
        return 0
    table = Table(title=f"{args.archive}", title_justify="left")
    for col, just in (("path", "left"), ("size", "right"), ("stored", "right"), ("codec", "left"),
                      ("fidelity", "left")):
        table.add_column(col, justify=just)
    for e in entries:
        name = e.path + (" -> (link)" if e.is_symlink else "") + (" *" if e.executable else "")
        fid = e.fidelity
        if "budget" in e.meta:
            fid += f" (budget {e.meta['budget']:.2f}, AST sim {e.meta['similarity']:.2f}"
            fid += f", {e.meta['judge']}" if "judge" in e.meta else ""
            fid += f", text chrF {e.meta['chrf']:.1f})" if "chrf" in e.meta else ")"
        table.add_row(name, str(e.size), str(e.length), e.codec, fid)
    raw = sum(e.size for e in entries)
    table.add_section()
    table.add_row(f"{len(entries)} entries", str(raw), str(size), "", f"{100 * size / raw:.1f}%" if raw else "")
    Console(width=max(100, Console().width)).print(table)
    if header.model:
        print(f"model: {header.model.get('id')} sha256 {header.model.get('sha256', '')[:16]}...")
    return 0


def cmd_test(args: argparse.Namespace) -> int:
    """Decode every entry and check it, writing nothing (like `zstd -t`)."""
    with archive.Archive(args.archive) as arc:
        check_paths(arc.entries)
        decode_entries(arc, load_model_for(arc, args.model))
        n = len(arc.entries)
    if not args.quiet:
        print(f"{args.archive}: OK ({n} entries)", file=sys.stderr)
    return 0


AUDIT_FAILED = 9


def cmd_audit(args: argparse.Namespace) -> int:
    from codeseed.audit import audit
    if not args.paths and not args.staged:
        raise CodeseedError("audit: name files to audit, or use --staged")
    report = audit(args.paths, staged=args.staged, model=args.model)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
        return AUDIT_FAILED if report.failed else 0
    table = Table(title="codeseed audit", title_justify="left")
    for col in ("path", "bytes", "zstd", "information", "bits/byte", "added", "flags"):
        table.add_column(col, justify="left" if col in ("path", "flags") else "right")
    for f in report.files:
        table.add_row(f.path, f"{f.raw_bytes:,}", f"{f.zstd_bytes:,}", f"{f.info_bytes:,.0f}" + ("" if f.scored else "~"),
                      f"{f.bits_per_byte:.2f}", f"{f.added_info_bytes:,.0f}", ", ".join(sorted({x.kind for x in f.flags})))
    Console(width=max(110, Console().width)).print(table)
    for f in report.files:
        for flag in f.flags:
            print(f"{f.path}:{flag.line or 0}: {flag.kind}: {flag.message}")
    for flag in report.flags:
        print(f"(change): {flag.kind}: {flag.message}")
    total = sum(f.added_info_bytes for f in report.files)
    print(f"{len(report.files)} files, {total:,.0f} bytes of information added; "
          + ("FAILED" if report.failed else "ok"), file=sys.stderr)
    return AUDIT_FAILED if report.failed else 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Unpack into a temporary folder and run the tests there."""
    import tempfile

    from codeseed.errors import VerificationError
    from codeseed.verify import SuiteRunner
    with tempfile.TemporaryDirectory(prefix="codeseed-verify-") as tmp:
        codeseed.unpack(args.archive, Path(tmp) / "tree", model=args.model, quiet=args.quiet)
        if not SuiteRunner(args.test_cmd, args.test_timeout).passes(Path(tmp) / "tree"):
            raise VerificationError(f"{args.archive}: the test command fails on the unpacked tree")
    if not args.quiet:
        print(f"{args.archive}: tests pass on the unpacked tree", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="codeseed", description="Predictive compression of source code.")
    p.add_argument("--version", action="version", version=f"codeseed {codeseed.__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("-q", "--quiet", action="store_true", help="no progress or summary on stderr")
        sp.add_argument("--model", type=Path, help="local Hugging Face model folder (default: the bundled model)")

    sp = sub.add_parser("pack", help="pack a source tree into an archive")
    sp.add_argument("src", type=Path, help="folder to pack")
    sp.add_argument("-o", "--output", type=Path, required=True, help="archive to write (.cseed)")
    sp.add_argument("-f", "--force", action="store_true", help="overwrite an existing archive")
    how = sp.add_mutually_exclusive_group()
    how.add_argument("--exact", action="store_true", help="lossless: LM range coding or the best classical codec "
                                                        "per file")
    how.add_argument("--classical", action="store_true", help="lossless with zstd/xz only: no model, fast")
    how.add_argument("--seeded", action="store_true", help="the default: keep a seed of each source file and let "
                                                          "the model regenerate the rest, checked by parsing, AST "
                                                          "similarity and --test-cmd")
    sp.add_argument("--budget", type=float, default=DEFAULT_BUDGET,
                    help=f"seeded mode: seed size as a fraction of the exact size (default {DEFAULT_BUDGET})")
    sp.add_argument("--min-similarity", type=float, default=DEFAULT_MIN_SIMILARITY,
                    help=f"seeded mode: least AST similarity of a reconstruction (default {DEFAULT_MIN_SIMILARITY})")
    sp.add_argument("--min-text-similarity", type=float, default=DEFAULT_MIN_TEXT_SIMILARITY,
                    help="seeded mode: least chrF / 100 of a regenerated comment or docstring against the "
                         f"original; text below it is kept as written (default {DEFAULT_MIN_TEXT_SIMILARITY})")
    sp.add_argument("--lossy-code", action="store_true",
                    help="seeded mode: also let code come back different where it still parses and reaches "
                         "--min-similarity (default: only comments, docstrings and code the model regenerates "
                         "exactly are left out)")
    sp.add_argument("--test-cmd", help="seeded mode: shell command that must pass in the reconstructed tree")
    sp.add_argument("--test-timeout", type=float, default=300.0, help="seconds per test run (default 300)")
    sp.add_argument("--allow-failing-tests", action="store_true",
                    help="pack even when the test command fails on the original tree (tests then check nothing)")
    sp.add_argument("--json", action="store_true", help="print the pack report as JSON")
    sp.add_argument("--no-verify", action="store_true", help="skip decoding the LM stream again after encoding")
    sp.add_argument("--no-ignore", action="store_true", help="pack every file: no .gitignore, no git index "
                                                            "(.git itself is never packed)")
    common(sp)
    sp.set_defaults(func=cmd_pack)

    sp = sub.add_parser("unpack", help="unpack an archive into a folder")
    sp.add_argument("archive", type=Path)
    sp.add_argument("-o", "--output", type=Path, required=True, help="folder to write into")
    sp.add_argument("-f", "--force", action="store_true", help="overwrite existing files")
    common(sp)
    sp.set_defaults(func=cmd_unpack)

    sp = sub.add_parser("info", aliases=["list"], help="list an archive's entries without decoding them")
    sp.add_argument("archive", type=Path)
    sp.add_argument("--json", action="store_true", help="machine-readable output")
    sp.set_defaults(func=cmd_info)

    sp = sub.add_parser("audit", help="information and surprise audit of files or staged changes (pre-commit)")
    sp.add_argument("paths", nargs="*", type=Path, help="files to audit")
    sp.add_argument("--staged", action="store_true", help="audit the staged changes of the git repository here")
    sp.add_argument("--json", action="store_true", help="machine-readable output")
    sp.add_argument("--model", type=Path, help="local Hugging Face model folder (default: the bundled model)")
    sp.set_defaults(func=cmd_audit)

    sp = sub.add_parser("verify", help="unpack to a temporary folder and run the project's tests there")
    sp.add_argument("archive", type=Path)
    sp.add_argument("--test-cmd", required=True, help="shell command run in the unpacked tree")
    sp.add_argument("--test-timeout", type=float, default=300.0)
    common(sp)
    sp.set_defaults(func=cmd_verify)

    sp = sub.add_parser("test", help="decode and check every entry, writing nothing")
    sp.add_argument("archive", type=Path)
    common(sp)
    sp.set_defaults(func=cmd_test)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except CodeseedError as e:
        print(f"codeseed: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("codeseed: interrupted", file=sys.stderr)
        return 130
    except OSError as e:
        print(f"codeseed: error: {e.filename or ''}: {e.strerror or e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
