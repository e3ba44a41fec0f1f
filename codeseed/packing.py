"""Pack a source tree into a .cseed archive: walk -> choose a codec per file -> write the archive."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from codeseed import archive, codecs, exact
from codeseed.lmcodec import MixSettings
from codeseed.model import CodeModel
from codeseed.errors import InputError, OutputExistsError
from codeseed.progress import bars
from codeseed.walk import SourceFile, discover


@dataclass(frozen=True)
class FileReport:
    path: str
    size: int
    stored_bytes: int
    codec: str
    fidelity: str


@dataclass
class PackReport:
    archive: Path
    archive_bytes: int
    files: list[FileReport] = field(default_factory=list)

    @property
    def raw_bytes(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def ratio(self) -> float:
        return self.archive_bytes / self.raw_bytes if self.raw_bytes else 0.0


def _check_destination(src: Path, dst: Path, force: bool) -> None:
    if dst.exists() and not force:
        raise OutputExistsError(f"{dst}: already exists (use --force to overwrite)")
    if dst.is_dir():
        raise OutputExistsError(f"{dst}: is a directory")
    if not dst.parent.is_dir():
        raise InputError(f"{dst.parent}: output folder does not exist")


def entry_for(f: SourceFile, codec: str, fidelity: str = "exact", meta: dict | None = None) -> archive.Entry:
    return archive.Entry(path=f.path, size=len(f.data), sha256=hashlib.sha256(f.data).digest(), codec=codec,
                         fidelity=fidelity, executable=f.executable, is_symlink=f.is_symlink, meta=meta or {})


MODES = ("exact", "classical")


def pack(src: str | Path, dst: str | Path, *, mode: str = "exact", model: str | Path | CodeModel | None = None,
         verify: bool = True, settings: MixSettings | None = None, no_ignore: bool = False, force: bool = False,
         quiet: bool = True) -> PackReport:
    """Pack the tree at `src` into the archive `dst`.

    mode "exact": every file byte for byte, each with the smaller of the LM codec (the bundled model,
    or `model`, a folder or a loaded CodeModel) and the best classical codec. mode "classical":
    zstd/xz/stored only, no model needed. `no_ignore` packs every file, .gitignore or not.
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r} (choose from {', '.join(MODES)})")
    src, dst = Path(src), Path(dst)
    _check_destination(src, dst, force)
    files = [f for f in discover(src, no_ignore) if (src / f.path).resolve() != dst.resolve()]
    header = archive.Header()
    with bars(not quiet) as progress:
        if mode == "classical":
            task = progress.add_task("compress", total=len(files))
            encoded = []
            for f in files:
                name, payload = ("stored", f.data) if f.is_symlink else codecs.best_classical(f.data)
                encoded.append(exact.EncodedFile(name, payload, {}))
                progress.advance(task)
        else:
            lm = load_model(model)
            settings = settings or MixSettings(window=lm.context)
            encoded = exact.encode(files, lm, settings, verify=verify, progress=progress)
            header = archive.Header(model=lm.id.to_dict(), settings=exact.header_settings(lm, settings))
    entries = [entry_for(f, e.codec, meta=e.meta) for f, e in zip(files, encoded)]
    return write_report(dst, header, entries, [e.payload for e in encoded])


def load_model(model: str | Path | CodeModel | None) -> CodeModel:
    return model if isinstance(model, CodeModel) else CodeModel(model)


def write_report(dst: Path, header: archive.Header, entries: list[archive.Entry], payloads: list[bytes]) -> PackReport:
    size = archive.write(dst, header, entries, payloads)
    return PackReport(dst, size, [FileReport(e.path, e.size, len(p), e.codec, e.fidelity)
                                  for e, p in zip(entries, payloads)])
