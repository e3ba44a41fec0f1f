"""The entry rules: which paths and symlinks an archive may hold. Pack and unpack (and `test`) call
the same function, on what will be written: final names and decoded link targets, so pack can
never write an archive that its own unpack refuses.

A tree of entries is safe when every entry

- has a relative POSIX path of at most PATH_MAX - 1 bytes: not empty, not absolute, no NUL, no
  backslash and no drive prefix (`c:`, a folder separator and a drive on Windows), no empty, `.`
  or `..` component, no component longer than NAME_MAX (255) bytes;
- appears once, and not inside a file or through a symlink of the tree;
- if a symlink: has a target of 1 to PATH_MAX - 1 bytes, no NUL, not absolute, which stays
  inside the tree when resolved as the operating system resolves it, through every symlink of the
  tree (and, when unpacking into an existing folder, through the symlinks already there). Where
  the system would stop (a name that does not exist, a file used as a folder) the resolution goes
  on as if it were a folder, so a link that only dangles today cannot lead out once its missing
  folders exist. Likewise in a loop (more than MAX_HOPS links, where the system gives ELOOP), the
  names still to resolve are read as folders: `a -> a/../..` leads out (as os.path.realpath says),
  `a -> b`, `b -> a` does not.

Names that are not UTF-8 are fine (they are stored as bytes and printed escaped).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable, Iterable

NAME_MAX = 255      # bytes in one path component (Linux, macOS, Windows)
PATH_MAX = 4096     # bytes in a path, its terminating NUL included (Linux)
MAX_HOPS = 40       # symlinks followed in one resolution before the system gives up (Linux: ELOOP)


@dataclass(frozen=True)
class Item:
    """What the rules look at: a path, and for a symlink its target (what will be written)."""
    path: str
    target: bytes | None = None  # None: a regular file
    key: int = field(default=-1, compare=False)  # the caller's number for it (an entry's index)


@dataclass(frozen=True)
class Problem:
    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path!r}: {self.reason}"


def _fs(text: str) -> bytes | None:
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return None


def name_problem(path: str) -> str | None:
    """Why `path` cannot be an entry's name, or None."""
    raw = _fs(path)
    if raw is None:
        return "name cannot be encoded"
    if not raw:
        return "empty name"
    if b"\0" in raw:
        return "NUL byte in name"
    if raw.startswith(b"/"):
        return "absolute path"
    if b"\\" in raw:
        return "backslash in name (a folder separator on Windows)"
    if len(raw) > 1 and raw[1:2] == b":" and raw[:1].isalpha():
        return "drive prefix (absolute on Windows)"
    if len(raw) >= PATH_MAX:
        return f"path longer than {PATH_MAX - 1} bytes"
    for part in raw.split(b"/"):
        if part in (b"", b".", b".."):
            return "empty, '.' or '..' component"
        if len(part) > NAME_MAX:
            return f"a name longer than {NAME_MAX} bytes"
    return None


def target_problem(target: bytes) -> str | None:
    """Why `target` cannot be a symlink's target on its own, or None."""
    if not target:
        return "empty link target"
    if b"\0" in target:
        return "NUL byte in link target"
    if target.startswith(b"/"):
        return "link target is absolute"
    if len(target) >= PATH_MAX:
        return f"link target longer than {PATH_MAX - 1} bytes"
    if any(len(part) > NAME_MAX for part in target.split(b"/")):
        return f"link target has a name longer than {NAME_MAX} bytes"
    return None


def escapes(link: str, lookup: Callable[[str], bytes | None]) -> bool:
    """Whether the symlink `link` leads out of the tree; `lookup(path)` gives the target of the
    symlink at `path` (None for anything else, or nothing)."""
    pos = link.split("/")[:-1]           # the folder the link is in
    pending = _parts(lookup(link) or b"")
    hops = 0
    while pending:
        part = pending.pop(0)
        if part in (b"", b"."):
            continue
        if part == b"..":
            if not pos:
                return True
            pos.pop()
            continue
        name = "/".join(pos + [os.fsdecode(part)])
        target = lookup(name) if hops <= MAX_HOPS else None  # past MAX_HOPS (a loop): names as folders
        if target is None:
            pos.append(os.fsdecode(part))  # a file, a folder, or nothing yet: taken as a folder
            continue
        hops += 1
        if target.startswith(b"/"):
            return True
        pending = _parts(target) + pending  # resolved from the folder that link is in (pos)
    return False


def _parts(target: bytes) -> list[bytes]:
    return target.split(b"/")


def problems(items: Iterable[Item], outside: Callable[[str], bytes | None] | None = None) -> list[Problem]:
    """Every rule broken by the tree `items` (empty: safe), in item order."""
    items = list(items)
    found: list[Problem] = []
    kinds: dict[str, bool] = {}  # path -> is a symlink (first occurrence)
    for it in items:
        reason = name_problem(it.path)
        if reason is None and it.path in kinds:
            reason = "appears twice"
        if reason is None and it.target is not None:
            reason = target_problem(it.target)
        if reason:
            found.append(Problem(it.path, reason))
        kinds.setdefault(it.path, it.target is not None)
    bad = {p.path for p in found}
    links: dict[str, bytes] = {}  # every link of the tree as given (the first of a name), broken or not
    for it in items:
        if it.target is not None and kinds.get(it.path):
            links.setdefault(it.path, it.target)
    for it in items:
        if it.path in bad:
            continue
        parts = it.path.split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            if parent in kinds:
                found.append(Problem(it.path, f"inside the {'symlink' if kinds[parent] else 'file'} {parent!r}"))
                bad.add(it.path)
                break

    def lookup(name: str) -> bytes | None:
        if name in links:
            return links[name]
        return None if name in kinds or outside is None else outside(name)

    for path in links:
        if path not in bad and escapes(path, lookup):
            found.append(Problem(path, f"link target {os.fsdecode(links[path])!r} leads out of the folder"))
    return found


def safe_subset(items: list[Item], outside: Callable[[str], bytes | None] | None = None
                ) -> tuple[list[Item], list[Problem]]:
    """The items that remain safe once every unsafe one is left out (leaving one out can change how
    a link resolves, so this repeats until nothing more falls out), and the problems found."""
    keep, found = list(items), []
    while True:
        new = problems(keep, outside)
        if not new:
            return keep, found
        found += new
        drop = {p.path for p in new}
        # a duplicate name drops the later copies only; other problems drop the entry
        dup_paths = {p.path for p in new if p.reason == "appears twice"}
        seen: set[str] = set()
        kept = []
        for it in keep:
            if it.path in drop and it.path not in dup_paths:
                continue
            if it.path in dup_paths and it.path in seen:
                continue
            seen.add(it.path)
            kept.append(it)
        keep = kept
