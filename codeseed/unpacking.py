"""Unpack a .cseed archive: check every entry, decode and verify everything, then write into a
staging folder that becomes the output only when complete.

Order: the index is checked when the archive opens (archive.py); link targets are decoded and every
entry is checked by the rules pack applies too (safety.py); the output is checked (it exists, a
parent is a file, a path is too long); every entry is decoded, each payload no larger than it
declares, and checked against its SHA-256 and the tree digest; only then is anything written,
into a staging folder next to the output (inside it, when it exists), which is renamed into place.
So a corrupt, truncated or malicious archive leaves the output untouched, and an unpack stopped at
any moment (SIGINT, SIGTERM, SIGKILL) leaves either no output folder or the complete tree. Into an
existing folder, the staged entries are moved in one by one at the very end: that last step (a
rename per top-level name) is not atomic as a whole.
"""
from __future__ import annotations

import errno
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from codeseed import archive, codecs, safety
from codeseed.errors import ArchiveError, InputError, OutputExistsError, UnsafeArchiveError, VerificationError
from codeseed.progress import bars

STAGING_PREFIX = ".cseed-unpack-"


@dataclass(frozen=True)
class UnpackReport:
    dest: Path
    files: int
    bytes: int
    skipped: list[safety.Problem] = field(default_factory=list)  # unsafe entries left out (skip_unsafe)


def check_paths(entries: list[archive.Entry]) -> None:
    """Refuse an archive whose names break the entry rules (link targets need decoding: see
    `checked_entries`, which applies every rule)."""
    found = safety.problems(safety.Item(e.path) for e in entries)
    if found:
        raise UnsafeArchiveError(_unsafe_message(found))


def _unsafe_message(found: list[safety.Problem]) -> str:
    more = f" (and {len(found) - 1} more; --skip-unsafe extracts the rest)" if len(found) > 1 else \
        " (--skip-unsafe extracts the rest)"
    return f"unsafe entry in archive: {found[0]}{more}"


def decode_payload(arc: archive.Archive, e: archive.Entry, cache: dict[int, bytes] | None = None) -> bytes:
    """The decoded data of a classical entry: its slice of its payload, which decodes to no more than
    its declared size; a block is decoded once through `cache` (payload_id -> bytes)."""
    if cache is not None and e.payload_id in cache:
        data = cache[e.payload_id]
    else:
        exact_size = arc.version >= 3 or e.fidelity == "exact"  # formats 1-2 did not record a seed's size
        data = codecs.decode_classical(e.codec, arc.payload(e), e.decoded_size(), exact_size)
        if cache is not None and e.size < len(data):
            cache[e.payload_id] = data
    if e.fidelity != "exact":
        return data
    return data if e.start == 0 and e.size == len(data) else data[e.start:e.start + e.size]


def checked_entries(arc: archive.Archive, skip_unsafe: bool = False, outside=None
                    ) -> tuple[list[int], list[safety.Problem]]:
    """The indexes of the entries to write, and the unsafe ones left out: every rule of safety.py,
    on the names and the *decoded* link targets. UnsafeArchiveError (exit 7) on any problem
    unless `skip_unsafe`. `outside(path)` gives symlinks already in the output folder."""
    items, cache = [], {}
    for k, e in enumerate(arc.entries):
        target = None
        if e.is_symlink:  # too long to be a target: not decoded, and reported as too long
            target = b"x" * safety.PATH_MAX if e.size >= safety.PATH_MAX else decode_payload(arc, e, cache)
        items.append(safety.Item(e.path, target, k))
    if not skip_unsafe:
        found = safety.problems(items, outside)
        if found:
            raise UnsafeArchiveError(_unsafe_message(found))
        return list(range(len(items))), []
    keep, found = safety.safe_subset(items, outside)
    return [it.key for it in keep], found


def _check_output(dest: Path, entries: list[archive.Entry], force: bool) -> None:
    """Refuse to write over anything (without force), through a symlink, onto a folder, or where a
    path is too long: before anything is written."""
    for p in [*reversed(dest.absolute().parents), dest]:
        if (p.exists() or p.is_symlink()) and not p.is_dir():
            raise OutputExistsError(f"{p}: exists and is not a folder")
    base = len(os.fsencode(dest.absolute())) + 1 + len(STAGING_PREFIX) + 16  # room for the staging folder
    for e in entries:
        if base + len(e.path.encode("utf-8", "surrogateescape")) >= safety.PATH_MAX:
            raise InputError(f"{dest}: output path too long for this system: {e.path!r}")
    if not dest.is_dir():
        return
    for e in entries:
        target = dest / e.path
        for parent in list(reversed(PurePosixPath(e.path).parents))[1:]:
            d = dest / parent
            if d.is_symlink():
                raise UnsafeArchiveError(f"refusing to write {e.path!r}: {parent} is a symlink in {dest}")
            if d.exists() and not d.is_dir():
                raise OutputExistsError(f"{d}: exists and is not a folder")
        if target.is_symlink() or target.exists():
            if not force:
                raise OutputExistsError(f"{target}: already exists (use --force to overwrite)")
            if target.is_dir() and not target.is_symlink():
                raise OutputExistsError(f"{target}: is a folder")


def _disk_links(dest: Path):
    """outside(path) for safety.problems: the target of a symlink already in `dest`."""
    def outside(path: str) -> bytes | None:
        p = dest / path
        return os.fsencode(os.readlink(p)) if p.is_symlink() else None
    return outside


def load_model_for(arc: archive.Archive, model=None, device: str = "cpu"):
    """The model an archive needs (checked against its header), or None when it needs none."""
    if not arc.header.model:
        return None
    from codeseed import exact
    from codeseed.model import CodeModel
    lm = model if isinstance(model, CodeModel) else CodeModel(model, device=device)
    exact.check_model(arc.header.model, lm)
    return lm


def decode_entries(arc: archive.Archive, model=None, progress=None) -> dict[str, bytes]:
    """decode_all() by path (an archive holding a path twice is refused before this, or skipped)."""
    return {e.path: data for e, data in zip(arc.entries, decode_all(arc, model, progress))}


def decode_all(arc: archive.Archive, model=None, progress=None, jobs: int = 2) -> list[bytes]:
    """Decode every entry (in index order) and check its size and SHA-256: ArchiveError on a mismatch,
    VerificationError where a seeded file's reconstruction is not the one pack verified (another
    model or machine)."""
    out: list[bytes] = [b""] * len(arc.entries)
    cache: dict[int, bytes] = {}
    task = progress.add_task("decode", total=len(arc.entries)) if progress else None
    for k, e in enumerate(arc.entries):
        if e.codec in codecs.CLASSICAL:
            out[k] = decode_payload(arc, e, cache)
        elif e.codec != "lm":
            raise ArchiveError(f"{arc.path}: unknown codec {e.codec!r} (archive from a newer codeseed?)")
        if progress:
            progress.advance(task)
    cache.clear()
    seeded_entries = [k for k, e in enumerate(arc.entries) if e.fidelity != "exact"]
    lm_entries = any(e.codec == "lm" for e in arc.entries)
    lm = load_model_for(arc, model) if lm_entries or seeded_entries else None  # loaded once, if needed
    if lm_entries:
        from codeseed import exact
        if lm is None:
            raise ArchiveError(f"{arc.path}: corrupt archive (LM entries but no model in the header)")
        exact.decode(arc, out, lm, progress, jobs=jobs)
    if seeded_entries:
        _reconstruct(arc, seeded_entries, out, lm, progress)
    digests, differs = [], []
    for e, data in zip(arc.entries, out):
        ok, full = arc.matches(e, data)
        if e.fidelity == "exact" and (len(data) != e.size or not ok):
            why = (f"; format {arc.version} LM streams decode only where the float engine gives the packing "
                   "machine's bits") if e.codec == "lm" and arc.version < 3 else ""
            raise ArchiveError(f"{arc.path}: corrupt archive ({e.path!r} does not match its SHA-256{why})")
        if not ok:  # a seeded file: not the reconstruction pack verified
            differs.append(e.path)
        digests.append(full)
    if differs:
        raise VerificationError(f"{arc.path}: this machine's model output differs from the reconstruction pack "
                                f"verified for {len(differs)} file(s): {', '.join(differs[:5])}"
                                + (" ..." if len(differs) > 5 else ""))
    arc.check_tree(digests)
    return out


def _reconstruct(arc: archive.Archive, ks: list[int], out: list[bytes], lm, progress) -> None:
    """Regenerate the seeded entries `ks` from their seeds, in `out` (decode_all checks them)."""
    from codeseed import seeded
    if lm is None:
        raise ArchiveError(f"{arc.path}: corrupt archive (seeded entries but no model in the header)")
    entries = [arc.entries[k] for k in ks]
    try:
        seeds = [seeded.Seed.parse(out[k], [int(h) for h in e.meta["holes"]], str(e.meta.get("stops", "")))
                 for k, e in zip(ks, entries)]
    except (KeyError, ValueError, TypeError):
        raise ArchiveError(f"{arc.path}: corrupt archive (bad seed)") from None
    # archives from before the fill settings were recorded filled by plain greedy (archive.py checked the type)
    no_repeat = int(arc.header.settings.get("fill", {}).get("no_repeat", 0))
    if arc.version < 3:  # seeds of formats 1-2 were filled by the float engine (legacy.py)
        from codeseed.legacy import FloatModel
        lm = FloatModel(lm.path)
    for k, recon in zip(ks, seeded.reconstruct(lm, seeds, progress, no_repeat)):
        out[k] = recon


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_tree(root: Path, items: list[tuple[archive.Entry, bytes]], umask: int | None = None) -> int:
    """Write (entry, data) pairs into the new, empty folder `root` (a staging folder): files with
    their stored permission bits under the umask, as tar does; returns the bytes written."""
    umask = current_umask() if umask is None else umask
    made: set[str] = set()
    total = 0
    for e, data in items:
        target = root / e.path
        parent = str(PurePosixPath(e.path).parent)
        if parent != "." and parent not in made:
            target.parent.mkdir(parents=True, exist_ok=True)
            made.add(parent)
        if e.is_symlink:
            os.symlink(data, target)
        else:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.chmod(target, e.permissions() & ~umask)
        total += len(data)
    return total


def _merge(staging: Path, dest: Path) -> None:
    """Move everything staged into the existing folder `dest` (_check_output allowed each name)."""
    for item in sorted(staging.iterdir()):
        there = dest / item.name
        if item.is_dir() and not item.is_symlink() and there.is_dir() and not there.is_symlink():
            _merge(item, there)
            item.rmdir()
        else:
            os.replace(item, there)


def _make_parents(dest: Path) -> None:
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputExistsError(f"{dest.parent}: exists and is not a folder") from None


def unpack(src: str | Path, dst: str | Path, *, model=None, force: bool = False, quiet: bool = True,
           skip_unsafe: bool = False, progress: bool | None = None, jobs: int = 2,
           device: str = "cpu") -> UnpackReport:
    """Unpack `src` into the folder `dst`; `model` (folder or CodeModel) must be the one that packed it.

    Raises ArchiveError (exit 4: corrupt, truncated, a bad field), UnsafeArchiveError (7: an entry
    breaks safety.py's rules; `skip_unsafe` leaves such entries out instead and lists them in the
    report), OutputExistsError (5: something would be overwritten without `force`, or the output is
    not a folder), InputError (3: an output path too long), ModelMismatchError (6),
    VerificationError (8). Nothing is written unless everything checks out."""
    src, dest = Path(src), Path(dst)
    with archive.Archive(src) as arc:
        try:
            outside = _disk_links(dest) if dest.is_dir() else None
            keep, skipped = checked_entries(arc, skip_unsafe, outside)
            entries = [arc.entries[k] for k in keep]
            _check_output(dest, entries, force)
            lm = load_model_for(arc, model, device)  # a wrong model is refused here, before any decoding
            with bars(not quiet if progress is None else progress) as bar:
                datas = decode_all(arc, lm, bar, jobs=jobs)
                total = _write_staged(dest, [(arc.entries[k], datas[k]) for k in keep], bar)
        except OSError as e:
            if e.errno == errno.ENAMETOOLONG:
                raise InputError(f"{e.filename or dest}: path too long for this system") from None
            raise
        return UnpackReport(dest, len(entries), total, skipped)


def _write_staged(dest: Path, items: list[tuple[archive.Entry, bytes]], bar) -> int:
    exists = dest.is_dir()
    if not exists:
        _make_parents(dest)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=dest if exists else dest.parent))
    try:
        task = bar.add_task("write", total=1)
        umask = current_umask()
        total = write_tree(staging, items, umask)
        if exists:
            _merge(staging, dest)
            staging.rmdir()
        else:
            os.chmod(staging, 0o777 & ~umask)  # mkdtemp made it 0700; a new folder gets the umask's mode
            os.rename(staging, dest)        # atomic: the output appears complete, or not at all
        bar.advance(task)
        return total
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
