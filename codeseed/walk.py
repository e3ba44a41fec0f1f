"""Find the files of a repository: `git ls-files` in a work tree, else a walk that honours .gitignore.

Everything not packed is accounted for (`Scan.left_out`, with a reason): files and folders a
.gitignore leaves out, unreadable files and folders (an error unless `ignore_unreadable`), and what
is not a regular file or a symlink (sockets, fifos, devices).
"""
from __future__ import annotations

import os
import re
import stat
import subprocess
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import pathspec

from codeseed.errors import InputError


@dataclass(frozen=True)
class SourceFile:
    """One file or symlink of the input tree, read into memory."""
    path: str          # relative POSIX path
    data: bytes        # contents, or the link target for a symlink
    executable: bool
    is_symlink: bool = False
    mode: int | None = None  # permission bits (st_mode & 0o777); None: 0o755 if executable else 0o644


@dataclass(frozen=True)
class LeftOut:
    path: str          # a folder ends with "/"
    reason: str        # "ignored", "unreadable", "special" (not a file or symlink) or "unsafe"
    detail: str = ""   # e.g. the system's error, or the rule broken


@dataclass
class Scan:
    files: list[SourceFile] = field(default_factory=list)
    left_out: list[LeftOut] = field(default_factory=list)


def _git(root: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, timeout=timeout,
                              env={**os.environ, "LC_ALL": "C"})  # git's warnings in English: they are parsed
    except (OSError, subprocess.TimeoutExpired):
        return None


_GIT_UNREADABLE = re.compile(r"^warning: could not open directory '(.*)': (.*)$", re.M)


def _git_files(root: Path) -> tuple[list[str], list[LeftOut]] | None:
    inside = _git(root, "rev-parse", "--is-inside-work-tree", timeout=60)
    if inside is None or inside.returncode != 0 or inside.stdout.strip() != b"true":
        return None
    out = _git(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    if out is None or out.returncode != 0:
        return None
    # git skips a folder it cannot open with a warning (exit 0): those are unreadable, not absent
    left = [LeftOut(m.group(1).rstrip("/") + "/", "unreadable", m.group(2))
            for m in _GIT_UNREADABLE.finditer(out.stderr.decode("utf-8", "surrogateescape"))]
    # --directory: an ignored folder is one line, not entered (a .venv can hold 100,000 files); not with
    # --no-empty-directory, which also drops ignored files in untracked folders (git 2.39)
    ignored = _git(root, "ls-files", "-z", "--others", "--ignored", "--exclude-standard", "--directory")
    if ignored is not None and ignored.returncode == 0:
        left += [LeftOut(p, "ignored") for p in _split(ignored.stdout) if PurePosixPath(p).parts[:1] != (".git",)]
    return _split(out.stdout), left


def _split(stdout: bytes) -> list[str]:
    return [p for p in stdout.decode("utf-8", "surrogateescape").split("\0") if p]


def _walk_files(root: Path, honour_ignores: bool = True) -> tuple[list[str], list[LeftOut]]:
    found: list[str] = []
    left: list[LeftOut] = []
    specs: list[tuple[str, pathspec.GitIgnoreSpec]] = []  # (dir relative to root, spec of its .gitignore)

    def ignored(rel: str, is_dir: bool) -> bool:
        for base, spec in specs:
            if base and not rel.startswith(base + "/"):
                continue
            sub = rel[len(base) + 1:] if base else rel
            if spec.match_file(sub + ("/" if is_dir else "")):
                return True
        return False

    def unreadable(err: OSError) -> None:
        rel = Path(err.filename).relative_to(root).as_posix()
        left.append(LeftOut("./" if rel == "." else rel + "/", "unreadable", err.strerror or ""))

    for dirpath, dirnames, filenames in os.walk(root, topdown=True, onerror=unreadable, followlinks=False):
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        rel_dir = "" if rel_dir == "." else rel_dir
        ignore_file = Path(dirpath) / ".gitignore"
        if honour_ignores and ignore_file.is_file():
            try:
                lines = ignore_file.read_text("utf-8", "replace").splitlines()
            except OSError:
                lines = []  # reported as an unreadable file when it is read for packing
            specs.append((rel_dir, pathspec.GitIgnoreSpec.from_lines(lines)))
        keep = []
        for d in sorted(dirnames):
            rel = f"{rel_dir}/{d}" if rel_dir else d
            if d == ".git":
                continue
            if (Path(dirpath) / d).is_symlink():
                if ignored(rel, False):
                    left.append(LeftOut(rel, "ignored"))
                else:
                    found.append(rel)  # a link to a folder is stored as a link, never followed
                continue
            if ignored(rel, True):
                left.append(LeftOut(rel + "/", "ignored"))
            else:
                keep.append(d)
        dirnames[:] = keep
        for f in sorted(filenames):
            rel = f"{rel_dir}/{f}" if rel_dir else f
            if ignored(rel, False):
                left.append(LeftOut(rel, "ignored"))
            else:
                found.append(rel)
    return found, left


def sort_key(path: str) -> tuple[str, str, str]:
    """Related files next to each other: same folder, then same extension."""
    p = PurePosixPath(path)
    return (str(p.parent), p.suffix, p.name)


def scan(root: Path, no_ignore: bool = False, ignore_unreadable: bool = False) -> Scan:
    """Read every file of the tree under `root`, and list what is left out and why.

    By default git decides (tracked + untracked-not-ignored) or, outside a work tree, .gitignore
    files do; `no_ignore` takes every file (an sdist, say, whose .gitignore names files it ships).
    Raises InputError (exit 3) if `root` is missing or not a folder, if nothing is left to pack, or
    if a file or folder cannot be read (unless `ignore_unreadable`: then it is left out and listed).
    """
    if not root.exists():
        raise InputError(f"{root}: no such directory")
    if not root.is_dir():
        raise InputError(f"{root}: not a directory")
    listed = None if no_ignore else _git_files(root)
    paths, left = listed if listed is not None else _walk_files(root, honour_ignores=not no_ignore)
    result = Scan(left_out=left)
    for rel in sorted(set(paths), key=sort_key):
        full = root / rel
        parts = PurePosixPath(rel).parts
        if ".git" in parts:
            continue
        try:
            st = os.lstat(full)
        except FileNotFoundError:
            continue  # tracked by git but deleted in the work tree
        except OSError as e:
            result.left_out.append(LeftOut(rel, "unreadable", e.strerror or ""))
            continue
        try:
            if stat.S_ISLNK(st.st_mode):
                result.files.append(SourceFile(rel, os.fsencode(os.readlink(full)), False, True))
            elif stat.S_ISREG(st.st_mode):
                result.files.append(SourceFile(rel, full.read_bytes(), bool(st.st_mode & 0o111),
                                               mode=stat.S_IMODE(st.st_mode) & 0o777))
            else:
                result.left_out.append(LeftOut(rel, "special", "a folder (git submodule)" if stat.S_ISDIR(st.st_mode)
                                               else "not a regular file or symlink"))
        except OSError as e:
            result.left_out.append(LeftOut(rel, "unreadable", e.strerror or ""))
    unreadable = [x for x in result.left_out if x.reason == "unreadable"]
    if unreadable and not ignore_unreadable:
        first = unreadable[0]
        raise InputError(f"{root / first.path}: cannot read ({first.detail or 'error'})"
                         + (f" and {len(unreadable) - 1} more" if len(unreadable) > 1 else "")
                         + "; --ignore-unreadable packs the rest")
    if not result.files:
        raise InputError(f"{root}: no files to pack (empty or all ignored)")
    return result


def discover(root: Path, no_ignore: bool = False) -> list[SourceFile]:
    """The files scan() finds (what it leaves out is not reported)."""
    return scan(root, no_ignore).files
