"""`codeseed audit`: how much information a change really adds, and what looks out of place.

A file's bits under the model are its true size. A stretch of characters the model found far
more surprising than the rest of its file (a pasted key, a hash, an encoded blob) is flagged by
file and line, never printed. Very low bits per byte means generated or vendored code.

Limits come from `[tool.codeseed.audit]` in the repository's pyproject.toml (AuditConfig below).
"""
from __future__ import annotations

import fnmatch
import statistics
import subprocess
import tomllib
from dataclasses import asdict, dataclass, field
from difflib import SequenceMatcher
from pathlib import Path

import numpy as np

from codeseed.codecs import CLASSICAL
from codeseed.errors import InputError


@dataclass
class AuditConfig:
    max_file_bytes: int = 1_000_000          # flag files larger than this
    max_added_info_bytes: int = 200_000      # flag a change adding more information than this
    max_score_bytes: int = 256_000           # larger files are estimated with zstd, not scored
    surprise_window: int = 24                # characters in the sliding window
    surprise_bits_per_char: float = 4.5      # a window must exceed this (random alphanumerics: ~6) ...
    surprise_ratio: float = 2.5              # ... and this many times the file's median line
    generated_bits_per_byte: float = 0.25    # flag files below this (with at least 4 KB)
    ignore: list[str] = field(default_factory=list)

    @classmethod
    def from_pyproject(cls, root: Path) -> AuditConfig:
        p = root / "pyproject.toml"
        if not p.is_file():
            return cls()
        try:
            data = tomllib.loads(p.read_text("utf-8")).get("tool", {}).get("codeseed", {}).get("audit", {})
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise InputError(f"{p}: cannot read [tool.codeseed.audit] ({e})") from None
        known = {k: v for k, v in data.items() if k.replace("-", "_") in cls.__dataclass_fields__}
        unknown = set(data) - set(known)
        if unknown:
            raise InputError(f"{p}: unknown [tool.codeseed.audit] keys: {', '.join(sorted(unknown))}")
        return cls(**{k.replace("-", "_"): v for k, v in known.items()})


@dataclass
class Flag:
    kind: str            # too_large, surprising_line, generated, binary, too_much_information
    message: str
    line: int | None = None
    score: float | None = None


@dataclass
class FileAudit:
    path: str
    raw_bytes: int
    zstd_bytes: int
    info_bytes: float            # bits under the model / 8 (zstd estimate where not scored)
    bits_per_byte: float
    added_info_bytes: float      # information in lines added relative to the previous version
    scored: bool
    flags: list[Flag] = field(default_factory=list)


@dataclass
class AuditReport:
    files: list[FileAudit]
    flags: list[Flag]            # commit-level flags

    @property
    def failed(self) -> bool:
        return bool(self.flags) or any(f.flags for f in self.files)

    def to_dict(self) -> dict:
        return {"failed": self.failed, "files": [asdict(f) for f in self.files], "flags": [asdict(f) for f in self.flags],
                "added_info_bytes": sum(f.added_info_bytes for f in self.files)}


def _surprising_lines(text: str, per_char: np.ndarray, cfg: AuditConfig) -> list[Flag]:
    flags = []
    lines = text.splitlines(keepends=True)
    pos, line_bpc = 0, []
    spans = []
    for line in lines:
        spans.append((pos, pos + len(line.rstrip("\r\n"))))
        pos += len(line)
    for s, e in spans:
        if e - s >= 8:
            line_bpc.append(float(per_char[s:e].mean()))
    if not line_bpc:
        return flags
    median = statistics.median(line_bpc)
    w = cfg.surprise_window
    for i, (s, e) in enumerate(spans):
        if e - s < w:
            continue
        c = np.cumsum(np.concatenate([[0.0], per_char[s:e]]))
        best = float(((c[w:] - c[:-w]) / w).max())
        if best >= cfg.surprise_bits_per_char and best >= cfg.surprise_ratio * median:
            flags.append(Flag("surprising_line", f"line {i + 1}: {best:.1f} bits/char over {w} characters "
                                                 f"(file median {median:.1f}); a secret, key, hash or encoded data?",
                              i + 1, round(best, 2)))
    return flags


def _added_mask(old: str | None, new: str) -> np.ndarray:
    """Characters of `new` that are not in `old` (by line diff); all of them for a new file."""
    mask = np.ones(len(new), dtype=bool)
    if old is None:
        return mask
    old_lines, new_lines = old.splitlines(keepends=True), new.splitlines(keepends=True)
    starts = np.cumsum([0] + [len(x) for x in new_lines])
    for tag, _, _, j1, j2 in SequenceMatcher(None, old_lines, new_lines, autojunk=False).get_opcodes():
        if tag == "equal":
            mask[starts[j1]:starts[j2]] = False
    return mask


def audit_file(path: str, data: bytes, old: bytes | None, model, cfg: AuditConfig) -> FileAudit:
    zstd_bytes = len(CLASSICAL["zstd"].encode(data)) if data else 0
    fa = FileAudit(path, len(data), zstd_bytes, float(zstd_bytes), 0.0, 0.0, False)
    if len(data) > cfg.max_file_bytes:
        fa.flags.append(Flag("too_large", f"{len(data):,} bytes (limit {cfg.max_file_bytes:,})"))
    text = None
    if b"\0" not in data[:8192]:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            pass
    if text is None:
        fa.flags.append(Flag("binary", "binary or not UTF-8 text"))
    if text is not None and 0 < len(data) <= cfg.max_score_bytes:
        per_char = model.char_bits(text)
        fa.scored = True
        fa.info_bytes = float(per_char.sum()) / 8
        try:
            old_text = old.decode("utf-8") if old is not None else None
        except UnicodeDecodeError:
            old_text = None
        fa.added_info_bytes = float(per_char[_added_mask(old_text, text)].sum()) / 8
        fa.flags += _surprising_lines(text, per_char, cfg)
    elif old is None:
        fa.added_info_bytes = fa.info_bytes
    else:  # not scored: what zstd needs for the new version once it has seen the old one
        zstd = CLASSICAL["zstd"].encode
        fa.added_info_bytes = float(max(0, len(zstd(old + data)) - len(zstd(old))))
    fa.bits_per_byte = 8 * fa.info_bytes / len(data) if data else 0.0
    if len(data) >= 4096 and fa.bits_per_byte < cfg.generated_bits_per_byte:
        how = "" if fa.scored else " (zstd estimate)"
        fa.flags.append(Flag("generated", f"{fa.bits_per_byte:.2f} bits/byte{how}: generated, vendored or repetitive?"))
    return fa


def _git(root: Path, *args: str) -> bytes | None:
    r = subprocess.run(["git", "-C", str(root), *args], capture_output=True)
    return r.stdout if r.returncode == 0 else None


def git_root(start: Path) -> Path | None:
    out = _git(start, "rev-parse", "--show-toplevel")
    return Path(out.decode().strip()) if out else None


def staged_changes(root: Path) -> list[tuple[str, bytes, bytes | None]]:
    """(path, staged contents, HEAD contents or None) of every added, copied or modified file."""
    out = _git(root, "diff", "--cached", "--name-only", "--diff-filter=ACM", "-z")
    if out is None:
        raise InputError(f"{root}: not a git repository (needed for --staged)")
    changes = []
    for path in [p for p in out.decode("utf-8", "surrogateescape").split("\0") if p]:
        staged = _git(root, "show", f":{path}")
        if staged is None:
            continue
        changes.append((path, staged, _git(root, "show", f"HEAD:{path}")))
    return changes


def audit(paths: list[Path] | None = None, *, staged: bool = False, model=None, cfg: AuditConfig | None = None,
          root: Path | None = None) -> AuditReport:
    """Audit files (their previous version from git's HEAD when there is one) or the staged changes."""
    from codeseed.model import CodeModel
    cwd = Path.cwd()
    root = root or git_root(cwd) or cwd
    cfg = cfg or AuditConfig.from_pyproject(root)
    if staged:
        changes = staged_changes(root)
    else:
        changes = []
        for p in paths or []:
            if not p.is_file():
                raise InputError(f"{p}: no such file")
            rel = p.resolve().relative_to(root.resolve()).as_posix() if root.resolve() in p.resolve().parents \
                else p.as_posix()
            old = _git(root, "show", f"HEAD:{rel}") if (root / ".git").exists() else None
            changes.append((rel, p.read_bytes(), old))
    changes = [c for c in changes if not any(fnmatch.fnmatch(c[0], pat) for pat in cfg.ignore)]
    lm = None
    if changes:
        lm = model if isinstance(model, CodeModel) else CodeModel(model)
    files = [audit_file(path, data, old, lm, cfg) for path, data, old in changes]
    flags = []
    added = sum(f.added_info_bytes for f in files)
    if added > cfg.max_added_info_bytes:
        flags.append(Flag("too_much_information", f"the change adds {added:,.0f} bytes of information "
                                                  f"(limit {cfg.max_added_info_bytes:,})"))
    return AuditReport(files, flags)
