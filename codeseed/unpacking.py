"""Unpack a .cseed archive: check every entry, decode and verify everything into a staging folder,
which becomes the output only when complete.

Order: the index is checked when the archive opens (archive.py); link targets are decoded and every
entry is checked by the rules pack applies too (safety.py); the output is checked (it exists, a
parent is a file, a path is too long); the model, if any, is checked against the header; then each
file streams from its payload (decoded no further than its declared size) into a staging folder
next to the output (inside it, when it exists), hashed on the way and checked against its
SHA-256, and the whole tree against the tree digest; only then is the staging folder renamed into
place. So a corrupt, truncated or malicious archive leaves the output untouched, and an unpack
stopped at any moment (SIGINT, SIGTERM, SIGKILL) leaves either no output folder or the complete
tree (a SIGKILL can leave the hidden staging folder). Into an existing folder, the staged entries
are moved in at the very end, a rename each: that last step is not atomic as a whole.
"""
from __future__ import annotations

import errno
import hashlib
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


def _unsafe_message(found: list[safety.Problem]) -> str:
    more = f" (and {len(found) - 1} more; --skip-unsafe extracts the rest)" if len(found) > 1 else \
        " (--skip-unsafe extracts the rest)"
    return f"unsafe entry in archive: {found[0]}{more}"


def checked_entries(arc: archive.Archive, skip_unsafe: bool = False, outside=None
                    ) -> tuple[list[int], list[safety.Problem]]:
    """The indexes of the entries to write, and the unsafe ones left out: every rule of safety.py,
    on the names and the *decoded* link targets. UnsafeArchiveError (exit 7) on any problem
    unless `skip_unsafe`. `outside(path)` gives symlinks already in the output folder."""
    items, blocks = [], _Blocks(arc, None)
    try:
        for k, e in enumerate(arc.entries):
            target = None
            if e.is_symlink:  # too long to be a target: not decoded, and reported as too long
                target = b"x" * safety.PATH_MAX if e.size >= safety.PATH_MAX else b"".join(blocks.chunks(e))
            items.append(safety.Item(e.path, target, k))
    finally:
        blocks.close()
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
    """The model an archive needs (checked against its header), or None when it needs none: `model`
    (a CodeModel or folder) where given, else the bundled model the header names, else the default.
    Raises ModelMismatchError when it is not the one the archive was packed with."""
    if not arc.header.model:
        return None
    from codeseed import exact
    from codeseed.model import CodeModel, bundled_for
    if model is None:
        model = bundled_for(arc.header.model.get("id"))
    lm = model if isinstance(model, CodeModel) else CodeModel(model, device=device)
    exact.check_model(arc.header.model, lm)
    return lm


BLOCK_IN_MEMORY = 64 << 20  # a shared payload (solid block) decoded once is held in memory up to this; beyond, in a file


def _needs_model(arc: archive.Archive) -> bool:
    return any(e.codec == "lm" or e.fidelity != "exact" for e in arc.entries)


def _held(arc: archive.Archive) -> set[int]:
    """Entries decoded into memory: link targets, seeds, and what the LM stream needs (its entries'
    known text); everything else streams from its payload to its file."""
    lm_stream = any(e.codec == "lm" for e in arc.entries)
    return {k for k, e in enumerate(arc.entries)
            if (e.is_symlink and e.size < safety.PATH_MAX) or e.fidelity != "exact" or e.codec not in codecs.CLASSICAL
            or (lm_stream and "n" in e.meta)}  # (archive.py bounds the size of the last three)


class _Blocks:
    """Payloads that several entries slice (solid blocks), each decoded once, up to the last byte an
    entry uses; in memory up to BLOCK_IN_MEMORY, else in a temporary file (`spill`)."""

    def __init__(self, arc: archive.Archive, spill: Path | None):
        self.arc, self.spill, self.open = arc, spill, {}
        users: dict[int, list[archive.Entry]] = {}
        for e in arc.entries:
            if e.codec in codecs.CLASSICAL and e.fidelity == "exact":
                users.setdefault(e.payload_id, []).append(e)
        self.shared = {pid: max(x.start + x.size for x in es) for pid, es in users.items()
                       if len(es) > 1 or es[0].start or es[0].size != es[0].decoded_size()}

    def chunks(self, e: archive.Entry):
        if e.payload_id not in self.shared:
            exact_size = self.arc.version >= 3 or e.fidelity == "exact"  # formats 1-2 did not record a seed's size
            yield from codecs.decode_chunks(e.codec, self.arc.payload(e), e.decoded_size(), exact_size)
            return
        block = self.open.get(e.payload_id)
        if block is None:
            block = self.open[e.payload_id] = self._decode(e)
        if isinstance(block, bytearray):
            yield block[e.start:e.start + e.size]
            return
        block.seek(e.start)
        left = e.size
        while left:
            chunk = block.read(min(left, 1 << 20))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk

    def _decode(self, e: archive.Entry):
        """The block up to the last byte its entries use (its tail, if any, is never read)."""
        need = self.shared[e.payload_id]
        out = bytearray() if need <= BLOCK_IN_MEMORY else tempfile.TemporaryFile(dir=self.spill)
        done = 0
        for chunk in codecs.decode_chunks(e.codec, self.arc.payload(e), e.decoded_size(), exact_size=False):
            if isinstance(out, bytearray):
                out += chunk[:need - done]
            else:
                out.write(chunk[:need - done])
            done += len(chunk)
            if done >= need:
                break
        return out

    def close(self) -> None:
        for block in self.open.values():
            if not isinstance(block, bytearray):
                block.close()
        self.open.clear()


def check_all(arc: archive.Archive, model=None, progress=None, jobs: int = 2, device: str = "cpu") -> None:
    """Decode and check every entry as unpack does, writing nothing (`codeseed test`, `pack --verify`)."""
    _decode_into(arc, None, set(), model, progress, jobs=jobs, device=device)


def _decode_into(arc: archive.Archive, root: Path | None, write: set[int], model, progress,
                 umask: int = 0o022, jobs: int = 2, device: str = "cpu") -> int:
    """Decode every entry and check its size and SHA-256, and the tree digest; write the entries in
    `write` under `root` as they pass (files stream from their payloads, never whole in memory).
    ArchiveError on a mismatch, VerificationError where a seeded file's reconstruction is not the
    one pack verified (another model or machine). Returns the bytes written."""
    entries = arc.entries
    lm = load_model_for(arc, model, device) if _needs_model(arc) else None  # refused before any decoding
    held = _held(arc)
    memory: dict[int, bytes] = {}
    digests: list[bytes] = [b""] * len(entries)
    blocks = _Blocks(arc, root)
    task = progress.add_task("decode", total=len(entries)) if progress else None
    total = 0
    try:
        for k, e in enumerate(entries):
            if e.codec not in codecs.CLASSICAL:
                if e.codec != "lm":
                    raise ArchiveError(f"{arc.path}: unknown codec {e.codec!r} (archive from a newer codeseed?)")
            elif k in held:
                memory[k] = b"".join(blocks.chunks(e))
            else:
                target = root / e.path if root is not None and k in write else None
                size, digests[k] = _stream(blocks.chunks(e), target, e.permissions() & ~umask)
                if size != e.size or digests[k][:len(e.sha256)] != e.sha256:
                    raise ArchiveError(f"{arc.path}: corrupt archive ({e.path!r} does not match its SHA-256)")
                total += size if target else 0
            if progress:
                progress.advance(task)
    finally:
        blocks.close()
    _decode_model_entries(arc, memory, lm, progress, jobs)
    differs = []
    for k in sorted(memory):
        e, data = entries[k], memory[k]
        ok, digests[k] = arc.matches(e, data)
        if e.fidelity == "exact" and (len(data) != e.size or not ok):
            why = (f"; format {arc.version} LM streams decode only where the float engine gives the packing "
                   "machine's bits") if e.codec == "lm" and arc.version < 3 else ""
            raise ArchiveError(f"{arc.path}: corrupt archive ({e.path!r} does not match its SHA-256{why})")
        if not ok:  # a seeded file: not the reconstruction pack verified
            differs.append(e.path)
    if differs:
        raise VerificationError(f"{arc.path}: this machine's model output differs from the reconstruction pack "
                                f"verified for {len(differs)} file(s): {', '.join(differs[:5])}"
                                + (" ..." if len(differs) > 5 else ""))
    arc.check_tree(digests)
    for k in sorted(memory):
        if root is not None and k in write:
            e = entries[k]
            if e.is_symlink:
                _parent(root / e.path)
                os.symlink(memory[k], root / e.path)
            else:
                _stream([memory[k]], root / e.path, e.permissions() & ~umask)
            total += len(memory[k])
    return total


def _parent(target: Path) -> None:
    if not target.parent.is_dir():
        target.parent.mkdir(parents=True, exist_ok=True)


def _stream(chunks, target: Path | None, mode: int) -> tuple[int, bytes]:
    """Hash the chunks, writing them to the new file `target` (None: nowhere): (size, SHA-256)."""
    h, size = hashlib.sha256(), 0
    if target is None:
        for chunk in chunks:
            h.update(chunk)
            size += len(chunk)
        return size, h.digest()
    _parent(target)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    with os.fdopen(fd, "wb") as fh:
        for chunk in chunks:
            h.update(chunk)
            size += len(chunk)
            fh.write(chunk)
    os.chmod(target, mode)  # the stored permission bits under the umask, as tar does
    return size, h.digest()


def _decode_model_entries(arc: archive.Archive, memory: dict[int, bytes], lm, progress, jobs: int = 2) -> None:
    """The LM stream's entries and the seeded reconstructions, into `memory` (checked by the caller)."""
    entries = arc.entries
    if any(e.codec == "lm" for e in entries):
        from codeseed import exact
        if lm is None:
            raise ArchiveError(f"{arc.path}: corrupt archive (LM entries but no model in the header)")
        out = [memory.get(k, b"") for k in range(len(entries))]  # the held classical entries: the stream's known text
        exact.decode(arc, out, lm, progress, jobs=jobs)
        for k, e in enumerate(entries):
            if e.codec == "lm":
                memory[k] = out[k]
    seeded_ks = [k for k, e in enumerate(entries) if e.fidelity != "exact"]
    if seeded_ks:
        _reconstruct(arc, seeded_ks, memory, lm, progress)


def _reconstruct(arc: archive.Archive, ks: list[int], memory: dict[int, bytes], lm, progress) -> None:
    """Regenerate the seeded entries `ks` from their seeds (in `memory`), in place."""
    from codeseed import seeded
    if lm is None:
        raise ArchiveError(f"{arc.path}: corrupt archive (seeded entries but no model in the header)")
    entries = [arc.entries[k] for k in ks]
    try:
        seeds = [seeded.Seed.parse(memory[k], [int(h) for h in e.meta["holes"]], str(e.meta.get("stops", "")))
                 for k, e in zip(ks, entries)]
    except (KeyError, ValueError, TypeError):
        raise ArchiveError(f"{arc.path}: corrupt archive (bad seed)") from None
    # archives from before the fill settings were recorded filled by plain greedy (archive.py checked the type)
    no_repeat = int(arc.header.settings.get("fill", {}).get("no_repeat", 0))
    if arc.version < 3:  # seeds of formats 1-2 were filled by the float engine (legacy.py)
        from codeseed.legacy import FloatModel
        lm = FloatModel(lm.path)
    for k, recon in zip(ks, seeded.reconstruct(lm, seeds, progress, no_repeat)):
        memory[k] = recon


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


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
    VerificationError (8). The output appears only once everything has been decoded and checked."""
    src, dest = Path(src), Path(dst)
    with archive.Archive(src) as arc:
        try:
            outside = _disk_links(dest) if dest.is_dir() else None
            keep, skipped = checked_entries(arc, skip_unsafe, outside)
            _check_output(dest, [arc.entries[k] for k in keep], force)
            with bars(not quiet if progress is None else progress) as bar:
                total = _write_staged(arc, dest, set(keep), model, bar, jobs, device)
        except OSError as e:
            if e.errno == errno.ENAMETOOLONG:
                raise InputError(f"{e.filename or dest}: path too long for this system") from None
            raise
        return UnpackReport(dest, len(keep), total, skipped)


def _write_staged(arc: archive.Archive, dest: Path, keep: set[int], model, bar, jobs: int = 2,
                  device: str = "cpu") -> int:
    exists = dest.is_dir()
    if not exists:
        _make_parents(dest)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=dest if exists else dest.parent))
    try:
        umask = current_umask()
        total = _decode_into(arc, staging, keep, model, bar, umask, jobs, device)
        if exists:
            _merge(staging, dest)
            staging.rmdir()
        else:
            os.chmod(staging, 0o777 & ~umask)  # mkdtemp made it 0700; a new folder gets the umask's mode
            os.rename(staging, dest)        # atomic: the output appears complete, or not at all
        return total
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
