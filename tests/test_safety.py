"""The entry rules (safety.py), with the operating system as the oracle for link resolution, and the
property that makes pack and unpack agree: pack never writes an archive that unpack refuses."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import codeseed
from codeseed import safety
from codeseed.cli import main


@pytest.mark.parametrize("path,ok", [
    ("a.py", True), ("pkg/mod.py", True), ("caf\udce9.txt", True), ("sp ace/x y", True), ("a" * 255, True),
    ("", False), ("/abs", False), ("a//b", False), ("a/./b", False), ("../x", False), ("a/..", False),
    ("a\\b", False), ("c:x", False), ("a\0b", False), ("a" * 256, False), ("d/" + "a" * 256, False),
    ("x/" * 2047 + "x", True), ("x/" * 2048 + "x", False), ("a/", False),
])
def test_names(path, ok):
    assert (safety.name_problem(path) is None) == ok


@pytest.mark.parametrize("links,escaping", [
    ({"l": b"a/b"}, set()),
    ({"l": b".."}, {"l"}),
    ({"d/l": b".."}, set()),
    ({"d/x": b"..", "y": b"d/x/.."}, {"y"}),
    ({"a": b"b", "b": b"a"}, set()),                       # a loop that stays a loop
    ({"a": b"b/..", "b": b"a/.."}, {"a", "b"}),            # read on as folders, both climb out
    ({"s": b"s/../.."}, {"s"}),                            # a loop (ELOOP) read on as folders: leads out
    ({"d/l": b"../missing/../.."}, {"d/l"}),               # a missing folder is taken as a folder
    ({"d/l": b"../d/../../x"}, {"d/l"}),
    ({"p": b"q", "q": b"r/..", "r": b"/etc"}, {"p", "q", "r"}),
])
def test_links_resolved_as_the_system_does(links, escaping):
    items = [safety.Item(p, t) for p, t in links.items()]
    assert {p.path for p in safety.problems(items)} == escaping


NAMES = st.sampled_from(["a", "b", "c", "d"])
COMPONENTS = st.one_of(NAMES, st.just(".."), st.just("."))


@st.composite
def link_trees(draw):
    """A few folders and files and links among them, targets made of names, '.' and '..'."""
    folders = draw(st.lists(st.lists(NAMES, min_size=1, max_size=2).map("/".join), max_size=3))
    links = {}
    for _ in range(draw(st.integers(1, 5))):
        where = draw(st.sampled_from([""] + folders))
        name = draw(st.sampled_from(["l1", "l2", "l3", "a", "b"]))
        path = f"{where}/{name}" if where else name
        links[path] = "/".join(draw(st.lists(COMPONENTS, min_size=1, max_size=5)))
    return folders, links


def _build(root: Path, folders: list[str], links: dict[str, str]) -> dict[str, str]:
    made = {}
    for f in folders:
        (root / f).mkdir(parents=True, exist_ok=True)
        (root / f / "file.txt").write_text(f)
    for path, target in links.items():
        p = root / path
        if p.is_symlink() or p.exists() or not p.parent.is_dir() or p.parent.is_symlink():
            continue  # taken, or under a link: not a tree a walk can produce
        os.symlink(target, p)
        made[path] = target
    return made


def _leads_out(root: Path, path: str) -> bool:
    real, top = os.path.realpath(root / path), os.path.realpath(root)
    return real != top and not real.startswith(top + os.sep)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(link_trees())
def test_pack_never_writes_what_unpack_refuses(tmp_path_factory, tree):
    """Any tree of folders, files and links: what pack stores, `codeseed test` accepts and unpack
    writes; every link the system resolves outside the tree is left out (the rules are never
    laxer than the system), and no unpacked link leads out of the output folder."""
    folders, links = tree
    tmp = tmp_path_factory.mktemp("tree")
    src = tmp / "src"
    src.mkdir()
    (src / "keep.txt").write_text("k")
    made = _build(src, folders, links)
    report = codeseed.pack(src, tmp / "a.cseed", mode="classical")
    packed = {f.path for f in report.files}
    for path in made:
        if _leads_out(src, path):
            assert path not in packed, (path, made[path])
    assert main(["test", str(tmp / "a.cseed"), "-q"]) == 0
    codeseed.unpack(tmp / "a.cseed", tmp / "out")
    for path in packed & set(made):
        assert not _leads_out(tmp / "out", path), (path, made[path])
    shutil.rmtree(tmp)
