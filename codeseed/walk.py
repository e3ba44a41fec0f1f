"""Find the files of a repository: `git ls-files` in a work tree, else a walk that honours .gitignore."""
from __future__ import annotations

import os
import stat
import subprocess
from dataclasses import dataclass
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


def _git_files(root: Path) -> list[str] | None:
    try:
        inside = subprocess.run(["git", "-C", str(root), "rev-parse", "--is-inside-work-tree"],
                                capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if inside.returncode != 0 or inside.stdout.strip() != "true":
        return None
    out = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         capture_output=True, timeout=300)
    if out.returncode != 0:
        return None
    return [p for p in out.stdout.decode("utf-8", "surrogateescape").split("\0") if p]


def _walk_files(root: Path, honour_ignores: bool = True) -> list[str]:
    found: list[str] = []
    specs: list[tuple[str, pathspec.GitIgnoreSpec]] = []  # (dir relative to root, spec of its .gitignore)

    def ignored(rel: str, is_dir: bool) -> bool:
        for base, spec in specs:
            if base and not rel.startswith(base + "/"):
                continue
            sub = rel[len(base) + 1:] if base else rel
            if spec.match_file(sub + ("/" if is_dir else "")):
                return True
        return False

    for dirpath, dirnames, filenames in os.walk(root, topdown=True, followlinks=False):
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        rel_dir = "" if rel_dir == "." else rel_dir
        ignore_file = Path(dirpath) / ".gitignore"
        if honour_ignores and ignore_file.is_file():
            specs.append((rel_dir, pathspec.GitIgnoreSpec.from_lines(
                                                                 ignore_file.read_text("utf-8", "replace").splitlines())))
        keep = []
        for d in sorted(dirnames):
            rel = f"{rel_dir}/{d}" if rel_dir else d
            if d == ".git":
                continue
            if (Path(dirpath) / d).is_symlink():
                if not ignored(rel, False):
                    found.append(rel)  # a link to a folder is stored as a link, never followed
                continue
            if not ignored(rel, True):
                keep.append(d)
        dirnames[:] = keep
        for f in sorted(filenames):
            rel = f"{rel_dir}/{f}" if rel_dir else f
            if not ignored(rel, False):
                found.append(rel)
    return found


def sort_key(path: str) -> tuple[str, str, str]:
    """Related files next to each other: same folder, then same extension."""
    p = PurePosixPath(path)
    return (str(p.parent), p.suffix, p.name)


def discover(root: Path, no_ignore: bool = False) -> list[SourceFile]:
    """Read every file of the tree under `root`; raise InputError if it is missing, empty or unreadable.

    By default git decides (tracked + untracked-not-ignored) or, outside a work tree, .gitignore
    files do; `no_ignore` takes every file (an sdist, say, whose .gitignore names files it ships).
    """
    if not root.exists():
        raise InputError(f"{root}: no such directory")
    if not root.is_dir():
        raise InputError(f"{root}: not a directory")
    paths = None if no_ignore else _git_files(root)
    if paths is None:
        paths = _walk_files(root, honour_ignores=not no_ignore)
    files: list[SourceFile] = []
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
            raise InputError(f"{full}: cannot read ({e.strerror})") from None
        if stat.S_ISLNK(st.st_mode):
            files.append(SourceFile(rel, os.readlink(full).encode("utf-8", "surrogateescape"), False, True))
        elif stat.S_ISREG(st.st_mode):
            try:
                data = full.read_bytes()
            except OSError as e:
                raise InputError(f"{full}: cannot read ({e.strerror})") from None
            files.append(SourceFile(rel, data, bool(st.st_mode & 0o111)))
        # sockets, fifos, devices and submodule folders are not source files: skipped
    if not files:
        raise InputError(f"{root}: no files to pack (empty or all ignored)")
    return files
