"""Pack a source tree into a .cseed archive: walk -> check the entry rules -> choose a codec per file
(small classical files share solid blocks) -> write the archive.

The classical mode imports no model code (torch, transformers): those are imported when a mode
needs them, so `--classical`, `info` and `--help` start fast.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from codeseed import archive, codecs, safety
from codeseed.errors import InputError, OutputExistsError
from codeseed.progress import bars
from codeseed.walk import LeftOut, SourceFile, scan

if TYPE_CHECKING:
    from codeseed.lmcodec import StreamSettings
    from codeseed.model import CodeModel

SOLID_FILE_MAX = 256 << 10   # files up to this size share solid blocks (bytes)
SOLID_BLOCK_MAX = 4 << 20    # a block is cut once it holds this much (bytes): memory and random access


@dataclass(frozen=True)
class FileReport:
    path: str
    size: int
    stored_bytes: int
    codec: str
    fidelity: str
    budget: float | None = None
    saved_bytes_est: float = 0.0  # seeded: the model's estimate of what the holes saved against exact
    why: str = ""                 # where it went and why (placement())
    judge: str | None = None      # seeded: the parser that checked the reconstruction
    text_chrf: float | None = None  # seeded: chrF (0-100) of its regenerated comments and docstrings
    note: str = ""                # a source file stored exact by seeded mode: why


def placement(e: archive.Entry, model: bool = True) -> str:
    """Why an entry is stored as it is, from the index alone: for a file the LM scored, the two
    measured sizes that decided (meta "lm" and "alt": bytes in the LM stream, and alone or in a
    solid block, whichever was smaller)."""
    solid = e.fidelity == "exact" and e.codec != "lm" and e.decoded_size() > e.size
    where = f"solid block ({e.codec})" if solid else f"{e.codec}"
    if e.is_symlink:
        return "symlink: its target, stored"
    if e.fidelity != "exact":
        return f"{e.fidelity}: a seed, coded by {e.codec}"
    if e.codec == "lm" and "n" not in e.meta:
        return "the same content as another file in the LM stream (stored once)"
    if "lm" in e.meta and "alt" in e.meta:
        if e.codec == "lm":
            return f"LM stream: {e.meta['lm']:,} bytes there, {e.meta['alt']:,} outside it"
        return f"{where}: {e.meta['alt']:,} bytes outside the LM stream, {e.meta['lm']:,} in it"
    if e.codec == "lm":
        return "LM stream: smaller there than its measured cost outside it"
    if "n" in e.meta:
        return f"{where} (scored by the LM; sizes not recorded: an older archive)"
    from codeseed.candidates import MODEL_MAX_BYTES
    if e.size == 0:
        return "empty"
    if not model:
        return f"{where}: no model in this archive (classical mode, or an older archive)"
    if e.size > MODEL_MAX_BYTES:
        return f"{where}: over {MODEL_MAX_BYTES:,} bytes, not given to the LM"
    return f"{where}: not text the LM takes (binary, not UTF-8, minified, or its tokens do not give it back)"


@dataclass
class PackReport:
    archive: Path
    archive_bytes: int
    files: list[FileReport] = field(default_factory=list)
    test_runs: int = 0
    xz_bytes: int | None = None  # seeded mode: xz -9e of all files as one stream, for the report
    left_out: list[LeftOut] = field(default_factory=list)  # not packed, and why
    texts: list[tuple[str, str]] = field(default_factory=list)  # seeded: (original, regenerated) free text
    kept_text: dict[str, int] = field(default_factory=dict)     # seeded: free text kept, by why

    @property
    def text_chrf(self) -> float | None:
        """chrF (0-100) of all regenerated free text against the originals (corpus-level)."""
        if not self.texts:
            return None
        from codeseed.fidelity import chrf
        return chrf([r for _, r in self.texts], [o for o, _ in self.texts])

    @property
    def exact_estimate(self) -> float:
        """The exact-mode archive size, estimated (seeded mode): this archive plus what holes saved."""
        return self.archive_bytes + sum(f.saved_bytes_est for f in self.files)

    @property
    def raw_bytes(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def ratio(self) -> float:
        return self.archive_bytes / self.raw_bytes if self.raw_bytes else 0.0


def _check_destination(dst: Path, force: bool) -> None:
    if dst.exists() and not force:
        raise OutputExistsError(f"{dst}: already exists (use --force to overwrite)")
    if dst.is_dir():
        raise OutputExistsError(f"{dst}: is a directory")
    if dst.parent.exists() and not dst.parent.is_dir():
        raise OutputExistsError(f"{dst.parent}: exists and is not a folder")
    if not dst.parent.is_dir():
        raise InputError(f"{dst.parent}: output folder does not exist")


def entry_for(f: SourceFile, codec: str, fidelity: str = "exact", meta: dict | None = None,
              sha256: bytes | None = None) -> archive.Entry:
    """An index entry; size is the original's, sha256 that of what unpack writes (for a seeded file,
    the reconstruction pack verified)."""
    return archive.Entry(path=f.path, size=len(f.data), sha256=sha256 or hashlib.sha256(f.data).digest(), codec=codec,
                         fidelity=fidelity, executable=f.executable, is_symlink=f.is_symlink, meta=meta or {},
                         mode=f.mode)


def safe_files(files: list[SourceFile]) -> tuple[list[SourceFile], list[LeftOut]]:
    """The files that pass the entry rules unpack applies (safety.py), and the rest as left out:
    pack never writes an archive that unpack refuses."""
    items = [safety.Item(f.path, f.data if f.is_symlink else None, k) for k, f in enumerate(files)]
    keep, found = safety.safe_subset(items)
    return [files[it.key] for it in keep], [LeftOut(p.path, "unsafe", p.reason) for p in found]


@dataclass
class Coded:
    """A file's payload as pack writes it: `start` and `raw_size` place it in a solid block."""
    codec: str
    payload: bytes
    meta: dict = field(default_factory=dict)
    start: int = 0
    raw_size: int | None = None
    share: int | None = None  # bytes of its block accounted to it in the report (None: by size)


def classical(f: SourceFile) -> Coded:
    """The best classical encoding of one file; a symlink's target is stored as is."""
    name, payload = ("stored", f.data) if f.is_symlink else codecs.best_classical(f.data)
    return Coded(name, payload)


def solid_candidate(f: SourceFile) -> bool:
    """Files that go into solid blocks: small regular files (lock files full of hex digests keep
    the hex codec, on their own)."""
    return not f.is_symlink and 0 < len(f.data) <= SOLID_FILE_MAX and not codecs.hex_eligible(f.data)


def block_order(files: list[SourceFile]) -> list[SourceFile]:
    """The order files take in solid blocks: by extension, then name, then path (like kinds
    together, as 7-Zip orders a solid archive), so that a block's codec sees like text in a row."""
    def key(f: SourceFile) -> tuple[str, str, str]:
        name = f.path.rsplit("/", 1)[-1]
        return (name.rsplit(".", 1)[-1].lower() if "." in name.lstrip(".") else "", name, f.path)
    return sorted(files, key=key)


def is_text(data: bytes) -> bool:
    """UTF-8 text (solid blocks keep text and binary contents apart)."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def solid_blocks(datas: list[bytes], progress=None) -> list[Coded]:
    """Code `datas` as solid blocks: contents back to back (each distinct content once), text and
    binary contents in blocks of their own (a text model is wasted on compressed or image data),
    each block at most SOLID_BLOCK_MAX bytes and coded by the smallest of codecs.BLOCK_CODECS
    (measured per block). Returns each data's place: its block's codec and payload, start, and
    the block size."""
    blocks: list[bytearray] = []
    where: dict[bytes, tuple[int, int]] = {}
    for text in (True, False):
        new = True
        for d in datas:
            if d in where or is_text(d) != text:
                continue
            if new or len(blocks[-1]) + len(d) > SOLID_BLOCK_MAX:
                blocks.append(bytearray())
                new = False
            where[d] = (len(blocks) - 1, len(blocks[-1]))
            blocks[-1] += d
    task = progress.add_task("solid blocks", total=len(blocks)) if progress else None
    coded = []
    for b in blocks:
        coded.append(codecs.best_classical(bytes(b), codecs.BLOCK_CODECS))
        if progress:
            progress.advance(task)
    return [Coded(coded[k][0], coded[k][1], {}, start, len(blocks[k])) for k, start in (where[d] for d in datas)]


def block_costs(files: list[SourceFile], only: set[int] | None = None) -> dict[int, float]:
    """What each solid candidate's text would cost inside a solid block of all of them (or of those
    whose indexes are in `only`): `files` indexes -> bytes, its bits under the block codec "cm",
    coded after the files before it in block order, as solid blocks place them (a repeated content
    costs nothing). A measured size, so that exact mode can weigh the LM stream against the block
    and not against the file alone."""
    from codeseed import bytecm
    order = block_order([f for i, f in enumerate(files)
                         if solid_candidate(f) and is_text(f.data) and (only is None or i in only)])
    at = {id(f): i for i, f in enumerate(files)}
    seen: dict[bytes, int] = {}
    block = bytearray()
    cuts = [0]
    for f in order:
        if f.data not in seen:
            seen[f.data] = at[id(f)]
            block += f.data
            cuts.append(len(block))
    costs = bytecm.segment_costs(bytes(block), cuts)
    first = dict(zip(seen.values(), costs))
    return {at[id(f)]: first.get(at[id(f)], 0.0) for f in order}


def group_small_files(files: list[SourceFile], coded: list[Coded], progress=None) -> list[Coded]:
    """Move the small files stored exact with a classical codec (not the LM codec, not a seed) into
    solid blocks, if the blocks come out smaller than those files coded one by one."""
    members = [i for i, (f, c) in enumerate(zip(files, coded))
               if solid_candidate(f) and c.codec in codecs.CLASSICAL and c.raw_size is None]
    if len(members) < 2:
        return coded
    at = {id(files[i]): i for i in members}
    members = [at[id(f)] for f in block_order([files[i] for i in members])]
    placed = solid_blocks([files[i].data for i in members], progress)
    block_bytes = sum(len(p) for p in {id(c.payload): c.payload for c in placed}.values())
    alone = sum(len(p) for _, p in {(coded[i].codec, coded[i].payload) for i in members})  # equal ones once
    if block_bytes >= alone:
        return coded
    out = list(coded)
    for i, c in zip(members, placed):  # each file is accounted its part of the saving: less than alone
        out[i] = replace(c, meta=coded[i].meta, share=len(coded[i].payload) * block_bytes // alone)
    return out


MODES = ("seeded", "exact", "classical")
DEFAULT_BUDGET = 0.6
DEFAULT_MIN_SIMILARITY = 0.7
DEFAULT_MIN_TEXT_SIMILARITY = 0.15  # about the chrF of an unrelated comment of the same project (RESULTS.md, issue 16)


def pack(src: str | Path, dst: str | Path, *, mode: str = "seeded", model: str | Path | CodeModel | None = None,
         budget: float = DEFAULT_BUDGET, min_similarity: float = DEFAULT_MIN_SIMILARITY,
         min_text_similarity: float = DEFAULT_MIN_TEXT_SIMILARITY,
         test_cmd: str | None = None, test_timeout: float = 300.0, allow_failing_tests: bool = False,
         lossy_code: bool = False, verify: bool = False, settings: StreamSettings | None = None,
         no_ignore: bool = False, ignore_unreadable: bool = False, force: bool = False, quiet: bool = True,
         progress: bool | None = None, jobs: int = 2, device: str = "cpu") -> PackReport:
    """Pack the tree at `src` into the archive `dst`.

    mode "seeded": source files the tree-sitter grammars know keep a seed of at most `budget` (a
    fraction of their exact-mode bits) and are regenerated by the FIM model at unpack. By default
    the code comes back as it was (a code hole is dropped only where the model regenerates it
    exactly) and comments and docstrings are regenerated; `lossy_code` also drops code holes whose
    fill differs but parses. Pack checks each reconstruction with the language's own parser
    (CPython for Python: strict, the AST outside docstrings equals the original's), that it reaches
    `min_similarity` (AST), and with `test_cmd` that the reconstructed tree passes the tests,
    re-planning failing files strict, then exact. Directive and legal comments are never
    regenerated, and regenerated comment or docstring text scoring under `min_text_similarity`
    (chrF / 100) against the original is kept instead.
    mode "exact": every file byte for byte, each with the smaller of the LM codec (the bundled model,
    or `model`, a folder or a loaded CodeModel) and the best classical codec. mode "classical":
    zstd/xz/stored only, no model needed. In every mode, small files stored classically share
    solid blocks. `no_ignore` packs every file, .gitignore or not.

    What is not packed is listed in the report's `left_out` (ignored, unreadable with
    `ignore_unreadable`, special files, and entries unpack would refuse: safety.py). Raises
    InputError (exit 3: missing, empty or unreadable input), OutputExistsError (5).
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r} (choose from {', '.join(MODES)})")
    src, dst = Path(src), Path(dst)
    _check_destination(dst, force)
    found = scan(src, no_ignore, ignore_unreadable)
    files, unsafe = safe_files(_without_archive(src, found.files, dst))
    left_out = found.left_out + unsafe
    if not files:
        raise InputError(f"{src}: no files to pack (all left out: " + ", ".join(
            sorted({x.reason for x in left_out})) + ")")
    header = archive.Header()
    fidelity = ["exact"] * len(files)
    digest: dict[int, bytes] = {}  # seeded files: SHA-256 of the reconstruction
    test_runs = 0
    plan: dict = {}
    with bars(not quiet if progress is None else progress) as bar:
        if mode == "classical":
            small = [i for i, f in enumerate(files) if solid_candidate(f)]
            at = {id(files[i]): i for i in small}
            small = [at[id(f)] for f in block_order([files[i] for i in small])]
            task = bar.add_task("compress", total=len(files) - len(small))
            coded: list[Coded | None] = [None] * len(files)
            for i, c in zip(small, solid_blocks([files[i].data for i in small], bar)):
                coded[i] = c
            for i, f in enumerate(files):
                if coded[i] is None:
                    coded[i] = classical(f)
                    bar.advance(task)
        else:
            from codeseed import exact, seeded
            from codeseed import verify as verify_mod
            lm = load_model(model, device)
            if mode == "seeded":
                runner = verify_mod.SuiteRunner(test_cmd, test_timeout) if test_cmd else None
                tests_usable = runner is not None and verify_mod.check_original(files, runner, allow_failing_tests)
                planner = seeded.Planner(files, lm, min_similarity, bar, min_text_similarity=min_text_similarity,
                                         jobs=jobs)
                plan = planner.plan({i: budget for i in planner.langs}, strict=not lossy_code)
                if tests_usable:
                    plan = verify_mod.escalate_until_tests_pass(files, planner, plan, runner, bar)
                label = "seeded+tests" if tests_usable else "seeded+similarity"
                test_runs = runner.runs if runner else 0

            def assemble(plan: dict) -> tuple[archive.Header, list[Coded], list[str], dict[int, bytes]]:
                """The LM stream and the other payloads with `plan`'s seeds in place of their files."""
                fid, dig = ["exact"] * len(files), {}
                coded_files = [replace(f, data=plan[i].seed.text()) if i in plan else f for i, f in enumerate(files)]
                encoded, used = exact.encode(coded_files, lm, settings, progress=bar, jobs=jobs)
                coded = [Coded(e.codec, e.payload, e.meta, e.start, e.raw_size) for e in encoded]
                for i, s in plan.items():
                    coded[i].meta.update(s.meta())
                    if coded[i].codec != exact.LM_CODEC:
                        coded[i].raw_size = len(coded_files[i].data)  # the seed, alone in its payload
                    fid[i] = label
                    dig[i] = hashlib.sha256(s.reconstruction).digest()
                coded = group_small_files(files, coded, bar)
                hdr = archive.Header(model=lm.id.to_dict(), settings=exact.header_settings(used))
                if plan:  # how pack filled the holes, so that unpack fills them the same way (none: no holes)
                    hdr.settings["fill"] = {"no_repeat": planner.no_repeat}
                return hdr, coded, fid, dig

            header, coded, fidelity, digest = assemble(plan)
            if plan:  # seeds are chosen by the model's bits alone; the archive mixes in n-gram and match
                # models, which code some text (a file copied elsewhere in the tree) nearly free: keep
                # the seeds only if the archive they make is smaller than the exact one
                exact_one = assemble({})
                if not seeds_pay(_archive_size(dst, files, header, coded, fidelity, digest),
                                 _archive_size(dst, files, *exact_one)):
                    header, coded, fidelity, digest = exact_one
                    for i in plan:
                        planner.exact_reasons[i] = "seeded, the archive was no smaller than exact"
                    plan = {}
    entries = _entries(files, coded, fidelity, digest)
    report = write_report(dst, header, entries, [c.payload for c in coded])
    if verify and mode != "classical":
        _verify_written(dst, lm, jobs)
    report.files = [replace(r, stored_bytes=c.share) if c.share is not None else r for r, c in zip(report.files, coded)]
    report.test_runs = test_runs
    report.left_out = left_out
    if mode == "seeded":
        report.files = [replace(r, saved_bytes_est=plan[i].saved_bits / 8, judge=plan[i].judge,
                                text_chrf=plan[i].text_chrf) if i in plan
                        else replace(r, note=planner.exact_reasons.get(i, "")) for i, r in enumerate(report.files)]
        report.texts = [t for s in plan.values() for t in s.texts]
        for s in plan.values():
            for why, n in s.kept_text.items():
                report.kept_text[why] = report.kept_text.get(why, 0) + n
        report.xz_bytes = len(codecs.xz_encode(b"".join(f.data for f in files)))
    return report


def seeds_pay(seeded_bytes: int, exact_bytes: int) -> bool:
    """Whether an archive with seeds is worth writing (sizes in bytes): smaller than the exact one."""
    return seeded_bytes < exact_bytes


def _entries(files: list[SourceFile], coded: list[Coded], fidelity: list[str], digest: dict[int, bytes]) -> list:
    entries = []
    for i, (f, c, fid) in enumerate(zip(files, coded, fidelity)):
        e = entry_for(f, c.codec, fid, c.meta, digest.get(i))
        e.start, e.raw_size = c.start, c.raw_size
        entries.append(e)
    return entries


def _archive_size(dst: Path, files: list[SourceFile], header: archive.Header, coded: list[Coded],
                  fidelity: list[str], digest: dict[int, bytes]) -> int:
    """Bytes of the archive these would make (written beside dst, then removed)."""
    with tempfile.TemporaryDirectory(prefix=".cseed-size-", dir=dst.parent) as tmp:
        return archive.write(Path(tmp) / "a.cseed", header, _entries(files, coded, fidelity, digest),
                             [c.payload for c in coded])


def _without_archive(src: Path, files: list[SourceFile], dst: Path) -> list[SourceFile]:
    """`files` less the archive being written (an older one, with force), found by its inode, never
    by resolving symlinks (a link is stored as a link; resolving one in a loop raised RuntimeError)."""
    try:
        st = os.stat(dst)
    except OSError:
        return files
    def same(f: SourceFile) -> bool:
        try:
            s = os.lstat(src / f.path)
        except OSError:
            return False
        return (s.st_dev, s.st_ino) == (st.st_dev, st.st_ino)
    return [f for f in files if f.is_symlink or not same(f)]


def _verify_written(dst: Path, lm, jobs: int) -> None:
    """Decode the archive just written, as `codeseed test` does; remove it and raise
    VerificationError (exit 8) if anything does not decode back."""
    from codeseed.errors import CodeseedError, VerificationError
    from codeseed.unpacking import check_all
    try:
        with archive.Archive(dst) as arc:
            check_all(arc, lm, jobs=jobs)
    except CodeseedError as e:
        dst.unlink(missing_ok=True)
        raise VerificationError(f"{dst}: the archive did not decode back, and was removed ({e})") from None


def load_model(model: str | Path | CodeModel | None, device: str = "cpu") -> CodeModel:
    from codeseed.model import CodeModel
    return model if isinstance(model, CodeModel) else CodeModel(model, device=device)


def write_report(dst: Path, header: archive.Header, entries: list[archive.Entry], payloads: list[bytes]) -> PackReport:
    size = archive.write(dst, header, entries, payloads)
    return PackReport(dst, size, [FileReport(e.path, e.size, e.stored_share(), e.codec, e.fidelity, e.meta.get("budget"),
                                             why=placement(e, bool(header.model))) for e in entries])
