"""Unpack a .cseed archive: check every path, decode and verify every entry, then write atomically.

Nothing is written until every entry has been decoded and its SHA-256 checked, and every path has
been found safe, so a corrupt, truncated or malicious archive leaves the output untouched.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from codeseed import archive, codecs
from codeseed.errors import ArchiveError, OutputExistsError, UnsafeArchiveError, VerificationError
from codeseed.progress import bars


@dataclass(frozen=True)
class UnpackReport:
    dest: Path
    files: int
    bytes: int


def check_paths(entries: list[archive.Entry]) -> None:
    """Refuse absolute paths, `..`, empty or odd components, duplicates, and paths through a symlink."""
    seen: set[str] = set()
    links = {e.path for e in entries if e.is_symlink}
    files = {e.path for e in entries}
    for e in entries:
        p = e.path
        if not p or p.startswith("/") or "\\" in p or "\0" in p or (len(p) > 1 and p[1] == ":"):
            raise UnsafeArchiveError(f"unsafe path in archive: {p!r} (absolute or not a POSIX relative path)")
        parts = p.split("/")
        if any(part in ("", ".", "..") for part in parts):
            raise UnsafeArchiveError(f"unsafe path in archive: {p!r} (empty, '.' or '..' component)")
        if p in seen:
            raise UnsafeArchiveError(f"unsafe archive: {p!r} appears twice")
        seen.add(p)
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            if parent in links:
                raise UnsafeArchiveError(f"unsafe path in archive: {p!r} passes through the symlink {parent!r}")
            if parent in files:
                raise UnsafeArchiveError(f"unsafe archive: {p!r} is inside the file {parent!r}")


def _check_link_target(path: str, target: str) -> None:
    if target.startswith("/") or not target:
        raise UnsafeArchiveError(f"unsafe symlink in archive: {path!r} -> {target!r} (absolute)")
    depth = len(PurePosixPath(path).parts) - 1
    for part in PurePosixPath(target).parts:
        depth += -1 if part == ".." else (0 if part == "." else 1)
        if depth < 0:
            raise UnsafeArchiveError(f"unsafe symlink in archive: {path!r} -> {target!r} (points outside)")


def _check_disk(dest: Path, entries: list[archive.Entry], force: bool) -> None:
    if dest.exists() and not dest.is_dir():
        raise OutputExistsError(f"{dest}: exists and is not a directory")
    for e in entries:
        target = dest / e.path
        for parent in list(reversed(PurePosixPath(e.path).parents))[1:]:
            d = dest / parent
            if d.is_symlink():
                raise UnsafeArchiveError(f"refusing to write {e.path!r}: {parent} is a symlink in {dest}")
            if d.exists() and not d.is_dir():
                raise OutputExistsError(f"{d}: exists and is not a directory")
        if target.is_symlink() or target.exists():
            if not force:
                raise OutputExistsError(f"{target}: already exists (use --force to overwrite)")
            if target.is_dir() and not target.is_symlink():
                raise OutputExistsError(f"{target}: is a directory")


def load_model_for(arc: archive.Archive, model=None):
    """The model an archive needs (checked against its header), or None when it needs none."""
    if not arc.header.model:
        return None
    from codeseed import exact
    from codeseed.model import CodeModel
    lm = model if isinstance(model, CodeModel) else CodeModel(model)
    exact.check_model(arc.header.model, lm)
    return lm


def decode_entries(arc: archive.Archive, model=None, progress=None) -> dict[str, bytes]:
    """Decode every entry and check its size and SHA-256: ArchiveError on a mismatch, VerificationError
    where a seeded file's reconstruction is not the one pack verified (another model or machine)."""
    out: dict[str, bytes] = {}
    for e in arc.entries:
        if e.codec in codecs.CLASSICAL:
            out[e.path] = codecs.decode_classical(e.codec, arc.payload(e))
        elif e.codec != "lm":
            raise ArchiveError(f"{arc.path}: unknown codec {e.codec!r} (archive from a newer codeseed?)")
    seeded_entries = [e for e in arc.entries if e.fidelity != "exact"]
    lm_entries = any(e.codec == "lm" for e in arc.entries)
    lm = load_model_for(arc, model) if lm_entries or seeded_entries else None  # loaded once, if needed
    if lm_entries:
        from codeseed import exact
        if lm is None:
            raise ArchiveError(f"{arc.path}: corrupt archive (LM entries but no model in the header)")
        out.update(exact.decode(arc, out, lm, progress))
    if seeded_entries:
        _reconstruct(arc, seeded_entries, out, lm, progress)
    digests, differs = [], []
    for e in arc.entries:
        data = out[e.path]
        ok, full = arc.matches(e, data)
        if e.fidelity == "exact" and (len(data) != e.size or not ok):
            raise ArchiveError(f"{arc.path}: corrupt archive ({e.path!r} does not match its SHA-256)")
        if not ok:  # a seeded file: not the reconstruction pack verified
            differs.append(e.path)
        digests.append(full)
    if differs:
        raise VerificationError(f"{arc.path}: this machine's model output differs from the reconstruction pack "
                                f"verified for {len(differs)} file(s): {', '.join(differs[:5])}"
                                + (" ..." if len(differs) > 5 else ""))
    arc.check_tree(digests)
    return out


def _reconstruct(arc: archive.Archive, entries: list[archive.Entry], out: dict[str, bytes], lm, progress) -> None:
    """Regenerate seeded files from their seeds into `out` (decode_entries checks them)."""
    from codeseed import seeded
    if lm is None:
        raise ArchiveError(f"{arc.path}: corrupt archive (seeded entries but no model in the header)")
    try:
        seeds = [seeded.Seed.parse(out[e.path], [int(h) for h in e.meta["holes"]], str(e.meta.get("stops", "")))
                 for e in entries]
    except (KeyError, ValueError, TypeError):
        raise ArchiveError(f"{arc.path}: corrupt archive (bad seed)") from None
    try:  # archives from before the fill settings were recorded filled by plain greedy
        no_repeat = int((arc.header.settings or {}).get("fill", {}).get("no_repeat", 0))
    except (AttributeError, TypeError, ValueError):
        raise ArchiveError(f"{arc.path}: corrupt archive (bad fill settings)") from None
    for e, recon in zip(entries, seeded.reconstruct(lm, seeds, progress, no_repeat)):
        out[e.path] = recon


def _write_atomic(target: Path, data: bytes, executable: bool) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name[:40]}.", suffix=".cseed-tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o755 if executable else 0o644)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_tree(dest: Path, entries: list[archive.Entry], contents: dict[str, bytes], force: bool) -> int:
    """Write decoded entries under `dest`; returns the number of bytes written."""
    total = 0
    for e in entries:
        target = dest / e.path
        data = contents[e.path]
        if e.is_symlink:
            if target.is_symlink() or target.exists():
                target.unlink()  # only reached with force: _check_disk refused otherwise
            target.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(os.fsdecode(data), target)
        else:
            _write_atomic(target, data, e.executable)
        total += len(data)
    return total


def unpack(src: str | Path, dst: str | Path, *, model=None, force: bool = False, quiet: bool = True) -> UnpackReport:
    """Unpack `src` into the folder `dst`; `model` (folder or CodeModel) must be the one that packed it."""
    src, dest = Path(src), Path(dst)
    with archive.Archive(src) as arc:
        check_paths(arc.entries)
        for e in arc.entries:
            if e.is_symlink:
                _check_link_target(e.path, os.fsdecode(arc.payload(e)))
        _check_disk(dest, arc.entries, force)
        lm = load_model_for(arc, model)  # a wrong model is refused here, before any decoding
        with bars(not quiet) as progress:
            contents = decode_entries(arc, lm, progress)
        dest.mkdir(parents=True, exist_ok=True)
        total = write_tree(dest, arc.entries, contents, force)
        return UnpackReport(dest, len(arc.entries), total)
