"""Command line: `codeseed pack|unpack|info|test`. Exit codes are listed in README.md.

Imports are light: nothing here loads torch, transformers or the model until a command needs
them (`--help`, `info` and the classical mode never do).
"""
from __future__ import annotations

import argparse
import errno
import json
import os
import signal
import sys
import unicodedata
from pathlib import Path

import codeseed
from codeseed.errors import CodeseedError, InputError
from codeseed.packing import DEFAULT_BUDGET, DEFAULT_MIN_SIMILARITY, DEFAULT_MIN_TEXT_SIMILARITY


def display(name: str) -> str:
    """A name as `ls` and `tar -t` print it: bytes that are not UTF-8, control characters and
    backslashes escaped (\\ooo octal, \\n, \\t, \\\\), so any name prints on any terminal and
    cannot move the cursor or fake other lines."""
    try:
        raw = name.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate no file name holds (from JSON): printed as its bytes
        raw = name.encode("utf-8", "surrogatepass")
    text = raw.decode("utf-8", "surrogateescape")
    out = []
    for ch in text:
        if "\udc80" <= ch <= "\udcff":
            out.append(f"\\{ord(ch) - 0xdc00:03o}")
        elif ch == "\\":
            out.append("\\\\")
        elif ch in "\n\t\r":
            out.append({"\n": "\\n", "\t": "\\t", "\r": "\\r"}[ch])
        elif unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            out.append("".join(f"\\{b:03o}" for b in ch.encode("utf-8", "surrogatepass")))
        else:
            out.append(ch)
    return "".join(out)


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def _show_progress(args: argparse.Namespace) -> bool:
    """--progress forces progress output (bars on a terminal, a line every few seconds otherwise),
    --no-progress silences it; by default it follows -q."""
    return not args.quiet if args.progress is None else args.progress


def default_jobs() -> int:
    """The cores this process may use (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def cmd_pack(args: argparse.Namespace) -> int:
    mode = "classical" if args.classical else "exact" if args.exact else "seeded"
    if args.test_cmd and mode != "seeded":
        raise CodeseedError("--test-cmd checks seeded reconstructions: use it with --seeded")
    report = codeseed.pack(args.src, args.output, mode=mode, model=args.model, budget=args.budget,
                           min_similarity=args.min_similarity, min_text_similarity=args.min_text_similarity,
                           test_cmd=args.test_cmd, test_timeout=args.test_timeout,
                           lossy_code=args.lossy_code,
                           allow_failing_tests=args.allow_failing_tests, verify=args.verify,
                           no_ignore=args.no_ignore, ignore_unreadable=args.ignore_unreadable, force=args.force,
                           quiet=args.quiet, progress=_show_progress(args), jobs=args.jobs, device=args.device)
    if args.json:
        print(json.dumps({"archive": str(report.archive), "archive_bytes": report.archive_bytes,
                          "raw_bytes": report.raw_bytes, "test_runs": report.test_runs,
                          **({"xz_bytes": report.xz_bytes, "exact_estimate_bytes": round(report.exact_estimate),
                              "text_chrf": report.text_chrf, "regenerated_texts": len(report.texts),
                              "kept_text": report.kept_text}
                             if report.xz_bytes is not None else {}),
                          "files": [f.__dict__ for f in report.files],
                          "left_out": [x.__dict__ for x in report.left_out],
                          "left_out_counts": _counts(report.left_out)}, indent=2))
    elif mode == "seeded" and not args.quiet:
        _pack_table(report)
    if not args.quiet:
        for x in report.left_out:
            if x.reason != "ignored" or args.verbose:
                print(f"codeseed: {'warning: ' if x.reason != 'ignored' else ''}left out {display(x.path)}: "
                      f"{x.reason}" + (f" ({x.detail})" if x.detail else ""), file=sys.stderr)
        counts = _counts(report.left_out)
        left = (f"; left out {', '.join(f'{n} {why}' for why, n in counts.items())}"
                + ("" if args.verbose else " (-v lists them)")) if counts else ""
        print(f"{args.src} -> {report.archive}: {len(report.files)} files, {_human(report.raw_bytes)} -> "
              f"{_human(report.archive_bytes)} ({100 * report.ratio:.1f}%)"
              + (f", {report.test_runs} test runs" if report.test_runs else "") + left, file=sys.stderr)
    return 0


def _counts(left_out) -> dict[str, int]:
    """How many were left out, by reason; a folder counts once (its files are not listed)."""
    counts: dict[str, int] = {}
    for x in left_out:
        key = x.reason + (" folders" if x.path.endswith("/") else "")
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


def _pack_table(report) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text
    table = Table(title="seeded pack", title_justify="left")
    for col in ("path", "fidelity", "budget", "text chrF", "bytes", "stored"):
        table.add_column(col, justify="left" if col in ("path", "fidelity") else "right")
    counts: dict[str, int] = {}
    for f in report.files:
        counts[f.fidelity] = counts.get(f.fidelity, 0) + 1
        table.add_row(Text(display(f.path)), f.fidelity + (f" ({f.note})" if f.note else ""),
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
    report = codeseed.unpack(args.archive, args.output, model=args.model, force=args.force, quiet=args.quiet,
                             skip_unsafe=args.skip_unsafe, progress=_show_progress(args), jobs=args.jobs,
                             device=args.device)
    if not args.quiet:
        for p in report.skipped:
            print(f"codeseed: warning: skipped unsafe entry {display(p.path)}: {display(p.reason)}", file=sys.stderr)
        print(f"{args.archive} -> {report.dest}: {report.files} files, {_human(report.bytes)}"
              + (f"; skipped {len(report.skipped)} unsafe" if report.skipped else ""), file=sys.stderr)
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from codeseed import archive
    from codeseed.packing import placement
    with archive.Archive(args.archive) as arc:
        entries, header, size = arc.entries, arc.header, arc.size
    if args.json:
        print(json.dumps({"archive": str(args.archive), "archive_bytes": size, "model": header.model,
                          "flags": header.flags, "settings": header.settings,
                          "entries": [{"path": e.path, "size": e.size, "stored_bytes": e.stored_share(),
                                       "codec": e.codec, "solid": e.in_block() and e.codec != "lm",
                                       "fidelity": e.fidelity, "mode": oct(e.permissions()) if not e.is_symlink else None,
                                       "executable": e.executable, "symlink": e.is_symlink,
                                       "sha256": e.sha256.hex(), "why": placement(e, bool(header.model)),
                                       **({"meta": e.meta} if e.meta else {})}
                                      for e in entries]}, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text
    table = Table(title=Text(display(str(args.archive))), title_justify="left")
    for col, just in (("path", "left"), ("size", "right"), ("stored", "right"), ("codec", "left"),
                      ("fidelity", "left"), ("why", "left")):
        table.add_column(col, justify=just)
    for e in entries:
        name = display(e.path) + (" -> (link)" if e.is_symlink else "") + (" *" if e.executable else "")
        fid = e.fidelity
        if "budget" in e.meta and "similarity" in e.meta:
            fid += f" (budget {e.meta['budget']:.2f}, AST sim {e.meta['similarity']:.2f}"
            fid += f", {e.meta['judge']}" if "judge" in e.meta else ""
            fid += f", text chrF {e.meta['chrf']:.1f})" if "chrf" in e.meta else ")"
        solid = e.in_block() and e.codec != "lm"  # a slice of a solid block (the LM stream is not one)
        table.add_row(Text(name), str(e.size), str(e.stored_share()), Text(display(e.codec) + (" solid" if solid else "")),
                      Text(display(fid)), Text(display(placement(e, bool(header.model)))))
    raw = sum(e.size for e in entries)
    table.add_section()
    table.add_row(f"{len(entries)} entries", str(raw), str(size), "", f"{100 * size / raw:.1f}%" if raw else "")
    Console(width=max(100, Console().width)).print(table)
    if header.model:
        print(f"model: {display(header.model['id'])} sha256 {display(header.model['sha256'][:16])}...")
    return 0


def cmd_test(args: argparse.Namespace) -> int:
    """Decode every entry and check it as unpack would (every rule, every checksum), writing nothing,
    like `zstd -t`."""
    from codeseed import archive
    from codeseed.progress import bars
    from codeseed.unpacking import check_all, checked_entries
    with archive.Archive(args.archive) as arc:
        checked_entries(arc)
        with bars(_show_progress(args)) as bar:
            check_all(arc, args.model, bar, jobs=args.jobs, device=args.device)
        n = len(arc.entries)
    if not args.quiet:
        print(f"{args.archive}: OK ({n} entries)", file=sys.stderr)
    return 0


AUDIT_FAILED = 9


def cmd_audit(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from codeseed.audit import audit, read_baseline, write_baseline
    if not args.paths and not args.staged and args.diff is None:
        raise CodeseedError("audit: name files or folders to audit, or use --staged or --diff REV")
    if args.update_baseline and args.baseline is None:
        raise CodeseedError("audit: --update-baseline needs --baseline FILE")
    report = audit(args.paths, staged=args.staged, diff=args.diff, model=args.model,
                   baseline=None if args.update_baseline else args.baseline, measure=args.measure)
    if args.update_baseline:
        # findings of files not audited now stay accepted (all of them after a change: its old lines were not read)
        old = read_baseline(args.baseline) if args.baseline.exists() else set()
        audited = {f.path for f in report.files}
        keep = old if (args.staged or args.diff is not None) else {k for k in old if k[0] not in audited}
        n = write_baseline(args.baseline, report, keep)
        if not args.quiet:
            print(f"{args.baseline}: {n} accepted findings written", file=sys.stderr)
        return 0
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
        return AUDIT_FAILED if report.failed else 0
    change = args.staged or args.diff is not None
    if not args.quiet:
        table = Table(title="codeseed audit", title_justify="left")
        for col in ("path", "bytes", "zstd", "information", "bits/byte", "added" if change else "", "flags"):
            if col:
                table.add_column(col, justify="left" if col in ("path", "flags") else "right")
        for f in report.files:
            est = "" if f.scored else "~"
            row = [display(f.path), f"{f.raw_bytes:,}", f"{f.zstd_bytes:,}", f"{f.info_bytes:,.0f}{est}",
                   f"{f.bits_per_byte:.2f}{est}"]
            if change:
                row.append(f"{f.added_info_bytes:,.0f}" + ("" if f.added_scored else "~"))
            table.add_row(*row, ", ".join(sorted({x.kind for x in f.flags})))
        Console(width=max(110, Console().width), stderr=True).print(table)
    for f in report.files:
        for flag in f.flags:
            print(f"{display(f.path)}:{flag.line or 0}: {flag.kind}: {flag.message}")
    for flag in report.flags:
        print(f"(change): {flag.kind}: {flag.message}")
    if not args.quiet:
        n = sum(len(f.flags) for f in report.files) + len(report.flags)
        total = sum(f.added_info_bytes for f in report.files)
        what = f"{total:,.0f} bytes of information added" if change else \
            f"{sum(f.info_bytes for f in report.files):,.0f} bytes of information"
        print(f"{len(report.files)} files, {what} (~: zstd estimate); {n} flags"
              + (f", {report.accepted} accepted by the baseline" if report.accepted else "") + "; "
              + ("FAILED" if report.failed else "ok"), file=sys.stderr)
    return AUDIT_FAILED if report.failed else 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Unpack into a temporary folder and run the tests there."""
    import tempfile

    from codeseed.errors import VerificationError
    from codeseed.verify import SuiteRunner
    with tempfile.TemporaryDirectory(prefix="codeseed-verify-") as tmp:
        codeseed.unpack(args.archive, Path(tmp) / "tree", model=args.model, quiet=args.quiet,
                        progress=_show_progress(args), jobs=args.jobs, device=args.device)
        if not SuiteRunner(args.test_cmd, args.test_timeout).passes(Path(tmp) / "tree"):
            raise VerificationError(f"{args.archive}: the test command fails on the unpacked tree")
    if not args.quiet:
        print(f"{args.archive}: tests pass on the unpacked tree", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="codeseed", description="Predictive compression of source code.")
    p.add_argument("--version", action="version", version=f"codeseed {codeseed.__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp: argparse.ArgumentParser, model: bool = True) -> None:
        sp.add_argument("-q", "--quiet", action="store_true", help="no progress or summary on stderr")
        sp.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="show progress on stderr even with -q (bars on a terminal, otherwise a line every "
                             "few seconds), or never (default: unless -q)")
        if model:
            sp.add_argument("--model", type=Path, help="local Hugging Face model folder (default: the bundled model)")
            sp.add_argument("--device", default="cpu", help="where the model runs: cpu (default), cuda, cuda:N or "
                            "auto; an archive decodes the same on any of them")
            sp.add_argument("-j", "--jobs", type=int, default=default_jobs(), metavar="N",
                            help=f"threads that run the model (default {default_jobs()}: this machine's cores; "
                                 "the archive does not depend on it)")

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
    sp.add_argument("--verify", action="store_true", help="decode the archive again after writing it, as `codeseed "
                                                         "test` does (exact arithmetic makes this a check, not a need)")
    sp.add_argument("--no-ignore", action="store_true", help="pack every file: no .gitignore, no git index "
                                                            "(.git itself is never packed)")
    sp.add_argument("--ignore-unreadable", action="store_true",
                    help="leave out files and folders that cannot be read, and say which (default: stop, exit 3)")
    sp.add_argument("-v", "--verbose", action="store_true",
                    help="list every file and folder left out (ignored ones are otherwise only counted)")
    common(sp)
    sp.set_defaults(func=cmd_pack)

    sp = sub.add_parser("unpack", help="unpack an archive into a folder")
    sp.add_argument("archive", type=Path)
    sp.add_argument("-o", "--output", type=Path, required=True, help="folder to write into")
    sp.add_argument("-f", "--force", action="store_true", help="overwrite existing files")
    sp.add_argument("--skip-unsafe", action="store_true",
                    help="leave out entries that would be refused (absolute or '..' paths, links leading out of "
                         "the folder, ...) and extract the rest (default: refuse the archive, exit 7)")
    common(sp)
    sp.set_defaults(func=cmd_unpack)

    sp = sub.add_parser("info", aliases=["list"], help="list an archive's entries without decoding them")
    sp.add_argument("archive", type=Path)
    sp.add_argument("--json", action="store_true", help="machine-readable output")
    sp.set_defaults(func=cmd_info)

    sp = sub.add_parser("audit", help="flag secrets and encoded data a change adds, and measure its information "
                                      "(pre-commit)")
    sp.add_argument("paths", nargs="*", type=Path,
                    help="files and folders to audit (folders honour .gitignore); with --staged or --diff, "
                         "only these of the changed files")
    what = sp.add_mutually_exclusive_group()
    what.add_argument("--staged", action="store_true", help="audit the lines the staged changes add")
    what.add_argument("--diff", metavar="REV", help="audit the lines added since revision REV (git diff REV: "
                                                   "commits and working tree)")
    sp.add_argument("--baseline", type=Path, metavar="FILE",
                    help="accepted findings (JSON): those in it do not fail the audit")
    sp.add_argument("--update-baseline", action="store_true",
                    help="write every current finding to --baseline FILE as accepted, and exit 0")
    sp.add_argument("--measure", action="store_true",
                    help="score every text file with the model (default: only where a finding or a limit needs it; "
                         "zstd estimates, marked ~, elsewhere)")
    sp.add_argument("--json", action="store_true", help="machine-readable output")
    sp.add_argument("-q", "--quiet", action="store_true", help="print only the flags")
    sp.add_argument("--model", type=Path, help="local Hugging Face model folder (default: the bundled model)")
    sp.set_defaults(func=cmd_audit)

    sp = sub.add_parser("verify", help="unpack to a temporary folder and run the project's tests there")
    sp.add_argument("archive", type=Path)
    sp.add_argument("--test-cmd", required=True, help="shell command run in the unpacked tree")
    sp.add_argument("--test-timeout", type=float, default=300.0)
    common(sp)
    sp.set_defaults(func=cmd_verify)

    sp = sub.add_parser("test", help="decode and check every entry as unpack would, writing nothing")
    sp.add_argument("archive", type=Path)
    common(sp)
    sp.set_defaults(func=cmd_test)
    return p


def _terminate(signum, frame):
    raise KeyboardInterrupt  # SIGTERM cleans up as Ctrl-C does (the staging folder of an unpack)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _terminate) if argv is None else None
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
        return InputError.exit_code if e.errno == errno.ENAMETOOLONG else 1  # a path too long for the system
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
