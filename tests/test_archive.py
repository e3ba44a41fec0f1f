"""Container format, pack/unpack round trips and every kind of bad input (classical codecs only)."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import codeseed
from codeseed import archive, cm, codecs
from codeseed.cli import main
from codeseed.errors import ArchiveError, InputError, OutputExistsError, UnsafeArchiveError

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "sample-py"


def tree_digest(root: Path) -> dict[str, tuple[str, bool, bool]]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_symlink():
            out[p.relative_to(root).as_posix()] = (os.readlink(p), False, True)
        elif p.is_file():
            out[p.relative_to(root).as_posix()] = (hashlib.sha256(p.read_bytes()).hexdigest(),
                                                   os.access(p, os.X_OK), False)
    return out


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    dst = tmp_path / "sample"
    shutil.copytree(FIXTURE, dst, symlinks=True)
    return dst


def test_round_trip_keeps_bytes_modes_and_empty_files(sample, tmp_path):
    report = codeseed.pack(sample, tmp_path / "a.cseed", mode="classical")
    assert report.archive_bytes < report.raw_bytes
    codeseed.unpack(tmp_path / "a.cseed", tmp_path / "out")
    assert tree_digest(tmp_path / "out") == tree_digest(sample)
    assert os.access(tmp_path / "out" / "scripts" / "report.sh", os.X_OK)
    assert not os.access(tmp_path / "out" / "README.md", os.X_OK)
    assert (tmp_path / "out" / "inventory" / "py.typed").read_bytes() == b""
    assert (tmp_path / "out" / "assets" / "prices.csv").read_bytes().count(b"\r\n") == 3


def test_same_input_gives_same_bytes(sample, tmp_path):
    codeseed.pack(sample, tmp_path / "a.cseed", mode="classical")
    codeseed.pack(sample, tmp_path / "b.cseed", mode="classical")
    assert (tmp_path / "a.cseed").read_bytes() == (tmp_path / "b.cseed").read_bytes()


def test_identical_contents_stored_once(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    blob = os.urandom(5000)  # incompressible: a second copy would double the archive
    (src / "one.bin").write_bytes(blob)
    (src / "two.bin").write_bytes(blob)
    report = codeseed.pack(src, tmp_path / "a.cseed", mode="classical")
    assert report.archive_bytes < 5000 + 1000
    codeseed.unpack(tmp_path / "a.cseed", tmp_path / "out")
    assert (tmp_path / "out" / "two.bin").read_bytes() == blob


def test_symlinks_stored_as_links_not_followed(tmp_path):
    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "real.py").write_text("x = 1\n")
    os.symlink("real.py", src / "pkg" / "alias.py")
    os.symlink("pkg", src / "pkglink")
    codeseed.pack(src, tmp_path / "a.cseed", mode="classical")
    with archive.Archive(tmp_path / "a.cseed") as arc:
        kinds = {e.path: e.is_symlink for e in arc.entries}
    assert kinds == {"pkg/real.py": False, "pkg/alias.py": True, "pkglink": True}
    codeseed.unpack(tmp_path / "a.cseed", tmp_path / "out")
    assert os.readlink(tmp_path / "out" / "pkg" / "alias.py") == "real.py"
    assert os.readlink(tmp_path / "out" / "pkglink") == "pkg"


def test_gitignore_honoured_outside_git(tmp_path):
    src = tmp_path / "src"
    (src / "build").mkdir(parents=True)
    (src / "sub").mkdir()
    (src / ".gitignore").write_text("build/\n*.log\n")
    (src / "sub" / ".gitignore").write_text("secret.txt\n")
    for rel in ("a.py", "x.log", "build/out.py", "sub/secret.txt", "sub/keep.txt"):
        (src / rel).write_text(rel)
    (src / ".git").mkdir()  # not a real repository: must still never be entered
    (src / ".git" / "config").write_text("x")
    report = codeseed.pack(src, tmp_path / "a.cseed", mode="classical")
    assert sorted(f.path for f in report.files) == [".gitignore", "a.py", "sub/.gitignore", "sub/keep.txt"]
    everything = codeseed.pack(src, tmp_path / "b.cseed", mode="classical", no_ignore=True)
    assert sorted(f.path for f in everything.files) == [".gitignore", "a.py", "build/out.py", "sub/.gitignore",
                                                        "sub/keep.txt", "sub/secret.txt", "x.log"]


def test_git_ls_files_used_in_work_tree(tmp_path):
    src = tmp_path / "repo"
    src.mkdir()
    (src / ".gitignore").write_text("ignored.txt\n")
    (src / "tracked.py").write_text("a = 1\n")
    (src / "untracked.py").write_text("b = 2\n")
    (src / "ignored.txt").write_text("no\n")
    os.system(f"git -C {src} init -q && git -C {src} add tracked.py .gitignore")
    report = codeseed.pack(src, tmp_path / "a.cseed", mode="classical")
    assert sorted(f.path for f in report.files) == [".gitignore", "tracked.py", "untracked.py"]


# ---------------------------------------------------------------- bad input

def test_missing_and_empty_input(tmp_path):
    with pytest.raises(InputError):
        codeseed.pack(tmp_path / "nope", tmp_path / "a.cseed", mode="classical")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError):
        codeseed.pack(tmp_path / "empty", tmp_path / "a.cseed", mode="classical")
    assert not (tmp_path / "a.cseed").exists()


def test_unreadable_file(sample, tmp_path, monkeypatch):
    real = Path.read_bytes

    def deny(self):
        if self.name == "store.py":
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", deny)
    with pytest.raises(InputError, match="store.py"):
        codeseed.pack(sample, tmp_path / "a.cseed", mode="classical")
    assert list(tmp_path.glob("*.cseed")) == [] and list(tmp_path.glob(".cseed-*")) == []


def test_existing_archive_needs_force(sample, tmp_path):
    (tmp_path / "a.cseed").write_bytes(b"keep me")
    with pytest.raises(OutputExistsError):
        codeseed.pack(sample, tmp_path / "a.cseed", mode="classical")
    assert (tmp_path / "a.cseed").read_bytes() == b"keep me"
    codeseed.pack(sample, tmp_path / "a.cseed", mode="classical", force=True)
    assert (tmp_path / "a.cseed").read_bytes().startswith(archive.MAGIC)


def test_unpack_never_overwrites_without_force(sample, tmp_path):
    codeseed.pack(sample, tmp_path / "a.cseed", mode="classical")
    out = tmp_path / "out"
    (out / "inventory").mkdir(parents=True)
    (out / "inventory" / "store.py").write_text("mine")
    with pytest.raises(OutputExistsError):
        codeseed.unpack(tmp_path / "a.cseed", out)
    assert sorted(p.name for p in out.rglob("*")) == ["inventory", "store.py"]  # nothing else written
    assert (out / "inventory" / "store.py").read_text() == "mine"
    codeseed.unpack(tmp_path / "a.cseed", out, force=True)
    assert (out / "inventory" / "store.py").read_bytes() == (sample / "inventory" / "store.py").read_bytes()


def test_every_flipped_byte_is_detected(sample, tmp_path):
    codeseed.pack(sample, tmp_path / "a.cseed", mode="classical")
    good = (tmp_path / "a.cseed").read_bytes()
    bad = tmp_path / "bad.cseed"
    for i in range(len(good)):
        bad.write_bytes(good[:i] + bytes([good[i] ^ 0x10]) + good[i + 1:])
        with pytest.raises(ArchiveError):
            codeseed.unpack(bad, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("keep", [0, 5, 8, 20, 100, -29, -1])
def test_truncated_archive(sample, tmp_path, keep):
    codeseed.pack(sample, tmp_path / "a.cseed", mode="classical")
    data = (tmp_path / "a.cseed").read_bytes()
    (tmp_path / "t.cseed").write_bytes(data[:keep] if keep >= 0 else data[:len(data) + keep])
    with pytest.raises(ArchiveError):
        codeseed.unpack(tmp_path / "t.cseed", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_wrong_magic_and_newer_version(sample, tmp_path):
    codeseed.pack(sample, tmp_path / "a.cseed", mode="classical")
    data = (tmp_path / "a.cseed").read_bytes()
    (tmp_path / "m.cseed").write_bytes(b"PK\x03\x04" + data[4:])
    with pytest.raises(ArchiveError, match="not a codeseed archive"):
        codeseed.unpack(tmp_path / "m.cseed", tmp_path / "out")
    (tmp_path / "v.cseed").write_bytes(data[:8] + struct.pack("<H", archive.FORMAT_VERSION + 1) + data[10:])
    with pytest.raises(ArchiveError, match="newer"):
        codeseed.unpack(tmp_path / "v.cseed", tmp_path / "out")


# What tests/data/format1.cseed and format2.cseed hold: written by archive.write(..., version=1 and 2) at
# commit 60c3893 (before format 3), each entry with codecs.best_classical (zstd, xz, hex, stored).
OLD_FORMAT_FILES = {  # path: (data, executable, symlink)
    "README.md": (b"# old archive\n\nkept to check that old formats still unpack.\n" * 3, False, False),
    "pkg/__init__.py": (b"", False, False),
    "pkg/core.py": (b"def add(a, b):\n    return a + b\n\n" * 20, False, False),
    "pkg/alias.py": (b"core.py", False, True),
    "bin/run.sh": (b"#!/bin/sh\necho run\n", True, False),
    "data/blob.bin": (bytes(range(256)) * 4, False, False),
    "uv.lock": (b"".join(b'hash = "sha256:%s"\n' % hashlib.sha256(bytes([i])).hexdigest().encode() for i in range(8)),
                False, False),
}


@pytest.mark.parametrize("version", [1, 2])
def test_older_format_versions_still_unpack(tmp_path, version):
    src = Path(__file__).resolve().parent / "data" / f"format{version}.cseed"
    with archive.Archive(src) as arc:
        assert struct.unpack("<H", src.read_bytes()[8:10])[0] == version
        assert {e.codec for e in arc.entries} == {"stored", "zstd", "xz", "hex"}
    assert main(["test", str(src), "-q"]) == 0
    out = tmp_path / "out"
    codeseed.unpack(src, out)
    for path, (data, executable, link) in OLD_FORMAT_FILES.items():
        if link:
            assert os.readlink(out / path) == data.decode()
        else:
            assert (out / path).read_bytes() == data
            assert os.access(out / path, os.X_OK) == executable
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if not p.is_dir()) == sorted(OLD_FORMAT_FILES)


def test_tree_digest_catches_what_the_short_digests_miss(tmp_path):
    # two entries whose 8-byte digest prefixes match their data, but one full digest is forged:
    # only the tree digest over full SHA-256s can tell
    files = [("a.py", b"print(1)\n"), ("b.txt", b"hello\n")]
    ents = [archive.Entry(p, len(d), hashlib.sha256(d).digest(), "stored") for p, d in files]
    ents[1].sha256 = ents[1].sha256[:8] + bytes(24)
    archive.write(tmp_path / "f.cseed", archive.Header(), ents, [d for _, d in files])
    with pytest.raises(ArchiveError, match="tree digest"):
        codeseed.unpack(tmp_path / "f.cseed", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def craft(tmp_path: Path, entries: list[tuple[str, bytes, bool]]) -> Path:
    """An archive holding exactly these (path, data, is_symlink) entries, paths unchecked."""
    ents = [archive.Entry(p, len(d), hashlib.sha256(d).digest(), "stored", is_symlink=link) for p, d, link in entries]
    dst = tmp_path / "crafted.cseed"
    archive.write(dst, archive.Header(), ents, [d for _, d, _ in entries])
    return dst


@pytest.mark.parametrize("entries", [
    [("ok.txt", b"fine", False), ("../evil", b"x", False)],
    [("ok.txt", b"fine", False), ("a/../../evil", b"x", False)],
    [("ok.txt", b"fine", False), ("/abs/path", b"x", False)],
    [("ok.txt", b"fine", False), ("link", b"/tmp", True), ("link/evil", b"x", False)],
    [("ok.txt", b"fine", False), ("link", b"../..", True)],
    [("ok.txt", b"fine", False), ("link", b"/etc/passwd", True)],
    [("ok.txt", b"fine", False), ("ok.txt", b"again", False)],
    [("ok.txt", b"fine", False), ("ok.txt/inner", b"x", False)],
])
def test_unsafe_archives_write_nothing(tmp_path, entries):
    crafted = craft(tmp_path, entries)
    out = tmp_path / "out"
    with pytest.raises(UnsafeArchiveError):
        codeseed.unpack(crafted, out)
    assert not out.exists()
    assert main(["unpack", str(crafted), "-o", str(out), "-q"]) == UnsafeArchiveError.exit_code
    assert not out.exists()


def test_existing_symlink_in_output_is_not_followed(sample, tmp_path):
    codeseed.pack(sample, tmp_path / "a.cseed", mode="classical")
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    os.symlink(elsewhere, out / "inventory")
    with pytest.raises(UnsafeArchiveError):
        codeseed.unpack(tmp_path / "a.cseed", out, force=True)
    assert list(elsewhere.iterdir()) == []


# ---------------------------------------------------------------- CLI

def test_cli_exit_codes_and_one_line_errors(sample, tmp_path, capsys):
    arc = tmp_path / "a.cseed"
    assert main(["pack", str(sample), "-o", str(arc), "-q", "--classical"]) == 0
    assert main(["pack", str(sample), "-o", str(arc), "-q", "--classical"]) == OutputExistsError.exit_code
    assert main(["pack", str(tmp_path / "missing"), "-o", str(tmp_path / "b.cseed"), "--classical"]) == InputError.exit_code
    (tmp_path / "junk.cseed").write_bytes(b"hello world, not an archive at all")
    assert main(["unpack", str(tmp_path / "junk.cseed"), "-o", str(tmp_path / "o")]) == ArchiveError.exit_code
    assert main(["test", str(arc), "-q"]) == 0
    assert main(["info", str(arc), "--json"]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert all(line.startswith("codeseed: error: ") for line in err.strip().splitlines())


def test_cli_entry_point_runs(sample, tmp_path):
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-m", "codeseed", "info", str(tmp_path / "none.cseed")],
                       capture_output=True, text=True)
    assert r.returncode == ArchiveError.exit_code
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


@pytest.mark.parametrize("codec", ["cm", "xz"])
def test_a_small_index_cannot_claim_a_large_one(tmp_path, codec):
    """An index decodes to at most INDEX_MAX_RATIO bytes a coded byte, or (xz) INDEX_FREE_BYTES: a
    44 KB archive whose xz index claimed 300 MB took 880 MB of memory, and cm decodes ~0.3 MB/s, so
    a cm index of a few KB claiming hundreds of MB would hold `info` for minutes."""
    import lzma
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("hello\n")
    dst = tmp_path / "a.cseed"
    codeseed.pack(src, dst, mode="classical")
    data = dst.read_bytes()
    version, ioff, raw = archive._index_of(data)
    if codec == "cm":
        coded = bytes([archive.INDEX_CM]) + bytes(8000)
    else:  # 300 MB of spaces after the real index: xz codes them to a few KB
        coded = bytes([archive.INDEX_XZ]) + lzma.compress(raw + b" " * (300 << 20), format=lzma.FORMAT_RAW,
                                                          filters=[{"id": lzma.FILTER_LZMA2, "preset": 1}])
    claim = max(archive._index_bound(len(coded) - 1, coded[0]) + 1, len(raw) + (300 << 20) if codec == "xz" else 0)
    (tmp_path / "bad.cseed").write_bytes(data[:ioff] + archive._frame_index(version, raw, ioff, coded=coded,
                                                                           raw_len=claim))
    t = time.perf_counter()
    with pytest.raises(ArchiveError, match="index"):
        archive.Archive(tmp_path / "bad.cseed")
    assert time.perf_counter() - t < 5


def test_an_index_that_codes_smaller_than_the_reader_allows_is_stored_as_is(tmp_path, monkeypatch):
    """Pack never writes what unpack refuses: an index xz and cm code past INDEX_MAX_RATIO (here,
    with no free allowance, a 50 KB run in one entry's meta) is stored as is, and reads back."""
    monkeypatch.setattr(archive, "INDEX_FREE_BYTES", 0)
    e = archive.Entry("a.txt", 2, hashlib.sha256(b"hi").digest(), "stored", meta={"note": "a" * 50_000})
    archive.write(tmp_path / "a.cseed", archive.Header(), [e], [b"hi"])
    data = (tmp_path / "a.cseed").read_bytes()
    assert data[archive._index_of(data)[1] + 3] == archive.INDEX_STORED  # after the 3-byte varint length
    with archive.Archive(tmp_path / "a.cseed") as arc:
        assert arc.entries[0].meta == {"note": "a" * 50_000}


def test_an_archive_of_no_entries_reads_back(tmp_path):
    archive.write(tmp_path / "a.cseed", archive.Header(), [], [])
    with archive.Archive(tmp_path / "a.cseed") as arc:
        assert arc.entries == []


def _front_coded_index(shared: list[int], rest: list[bytes]) -> bytes:
    """A format-6 decoded index of empty stored files with these front-coded paths, nothing checked."""
    v, n = codecs.varint, len(shared)
    joined = b"\0".join(rest)
    return (v(2) + b"\0\0" + v(1) + v(6) + b"stored" + v(0) + struct.pack("<I", 0) + v(n)
            + b"".join(v(k) for k in shared) + v(len(joined)) + joined + (v(5) + b"exact") * n + v(0) * n
            + bytes([archive.NO_DIGEST]) * n + v(0o644) * n + v(0) * (6 * n) + v(0)
            + archive.tree_digest([hashlib.sha256(b"").digest()] * n))


@pytest.mark.parametrize("shape", ["growing", "long"])
def test_front_coded_paths_cannot_grow_past_a_path_or_their_index(tmp_path, shape):
    """Each path may share the whole path before it: 44,000 paths each a byte longer than the last
    made a 20 KB archive decode to 1 GB of paths (6 GB of memory for `info --json`). A path over
    safety's PATH_MAX, or paths adding up to more than path_budget() of their index, are a corrupt
    index, found before they take memory."""
    if shape == "growing":  # each a byte longer: refused at the first path over MAX_PATH_BYTES
        n, shared, rest = 5000, list(range(5000)), [b"a"] * 5000
    else:  # each 4,000 bytes: refused once they add up past the budget's 64 MiB
        n = archive.MIN_PATH_BUDGET // 4000 + 10
        shared, rest = [0] + [3999] * (n - 1), [b"d" * 4000] + [b"x"] * (n - 1)
    raw = _front_coded_index(shared, rest)
    assert archive.path_budget(len(raw)) == archive.MIN_PATH_BUDGET
    (tmp_path / "bomb.cseed").write_bytes(archive.MAGIC + struct.pack("<H", 6) + archive._frame_index(6, raw, 10))
    assert (tmp_path / "bomb.cseed").stat().st_size < 100_000
    t = time.perf_counter()
    with pytest.raises(ArchiveError, match="path"):
        archive.Archive(tmp_path / "bomb.cseed")
    assert time.perf_counter() - t < 10
    ok = _front_coded_index([0, 2, 2], [b"d/a", b"b", b"c"])
    (tmp_path / "ok.cseed").write_bytes(archive.MAGIC + struct.pack("<H", 6) + archive._frame_index(6, ok, 10))
    with archive.Archive(tmp_path / "ok.cseed") as arc:
        assert [e.path for e in arc.entries] == ["d/a", "d/b", "d/c"]


@pytest.mark.parametrize("meta", [{"chrf": "x"}, {"chrf": float("nan")}, {"judge": "[bold]x\n"}, {"judge": 3}])
def test_a_seed_report_field_of_the_wrong_type_is_a_corrupt_index(tmp_path, meta):
    """`info` formats a seeded entry's chrF as a number and its judge as text: a string chrF ended
    in a traceback (a fresh review)."""
    e = archive.Entry("a.txt", 2, hashlib.sha256(b"hi").digest(), "stored", meta={"budget": 0.5, "similarity": 0.5, **meta})
    archive.write(tmp_path / "a.cseed", archive.Header(), [e], [b"hi"])
    with pytest.raises(ArchiveError, match="meta"):
        archive.Archive(tmp_path / "a.cseed")


FOLDERS = ["", "a/", "a/b/", "ab/", "a/bc/\u00e9/", "a/b/c/"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 40), st.integers(0, 2), st.booleans(),
                          st.sampled_from(FOLDERS), st.integers(0, 40)), min_size=1, max_size=12))
def test_format6_index_gives_back_every_field(tmp_path_factory, rows):
    """Starts and decoded sizes stored as differences from back-to-back entries, front-coded paths,
    token counts as differences from a guess, no digest for empty files: every field reads back as
    written, whatever the layout (entries of a payload out of order, overlapping copies, gaps, a
    payload longer than its entries, as seeds; paths sharing folders or not, in any order)."""
    tmp = tmp_path_factory.mktemp("f6")
    payloads = [bytes([65 + i]) * 100 for i in range(4)]
    ents, datas = [], []
    for k, (i, size, start_step, mode_x, folder, n) in enumerate(rows):
        start = min(100 - size, start_step * 30)
        data = payloads[i][start:start + size]
        e = archive.Entry(f"{folder}f{k}.txt", size, hashlib.sha256(data).digest(), "stored", executable=mode_x,
                          start=start, raw_size=100, meta={"n": min(n, size)} if n and size else {})
        ents.append(e)
        datas.append(payloads[i])
    archive.write(tmp / "a.cseed", archive.Header(), ents, datas)
    with archive.Archive(tmp / "a.cseed") as arc:
        assert arc.version == 6
        got = [(e.path, e.size, e.start, e.decoded_size(), e.executable, e.payload_id, e.sha256, e.meta)
               for e in arc.entries]
    want = [(e.path, e.size, e.start, 100, e.executable, e.payload_id,
             b"" if e.size == 0 or e.in_block() else e.sha256[:8], e.meta) for e in ents]
    assert got == want


def test_paths_share_only_whole_folders():
    paths = [b"a/b/x.py", b"a/b/y.py", b"a/bc/z.py", b"a/bc/z.py2", b"b.txt", b"", b"a/b/c/d"]
    assert archive.shared_folders(paths) == [0, 4, 2, 5, 0, 0, 0]


@pytest.mark.parametrize("header", [
    archive.Header(),
    archive.Header(["x"], {"id": "m", "sha256": "ab" * 32},
                   {"engine": "exact-1", "lm": {"window": 256, "rows": 3, "chunk": 1024,
                                                "mix": {"ngram_orders": [2, 3], "ngram_alpha": [6, 3], "match": True,
                                                        "adaptive": True}}, "fill": {"no_repeat": 6}}),
    archive.Header([], {"id": "m\u00e9", "sha256": "cd" * 32},
                   {"engine": "exact-2", "lm": {"window": 512, "rows": 1, "chunk": 8,
                                                "mix": {"ngram_orders": [4], "ngram_alpha": [1], "match": False,
                                                        "adaptive": False}}}),
    archive.Header([], None, {"lm": {"window": 256, "rows": "3", "chunk": 1024, "mix": {}}}),  # not binary: JSON
    archive.Header([], None, {"lm": {"rows": 2, "chunk": 0, "mix": {"extra": 1}}, "other": [1, {"a": None}]}),
])
def test_format6_header_leaves_out_only_what_its_defaults_give_back(header):
    """The binary header gives back every field (the model's SHA-256 as its first 8 bytes), whatever
    is left to its JSON part; an exact archive's header is the 26 bytes the docstring says."""
    compact = archive.compact_header(header)
    back = archive.expand_header(compact)
    full = json.loads(header.to_bytes())
    if full["model"]:
        assert back["model"]["sha256"] == full["model"]["sha256"][:16]
        back["model"]["sha256"] = full["model"]["sha256"]
    if header.settings.get("other"):  # not an exact archive's: only what was written comes back
        full["settings"]["lm"].update(window=256, mix={**archive.HEADER_MIX, "extra": 1})
        full["settings"]["engine"] = archive.HEADER_ENGINE
    assert back == full
    assert len(compact) < len(header.to_bytes())


def test_an_exact_archives_header_is_26_bytes():
    """The LM stream's defaults (cm.MixSettings) are the format's: nothing of them is stored."""
    header = archive.Header(model={"id": "codeseed-small", "sha256": "f4" * 32}, settings={
        "engine": archive.HEADER_ENGINE, "lm": {"window": 256, "rows": 45, "chunk": 1024, "mix": cm.MixSettings().to_dict()}})
    assert len(archive.compact_header(header)) == 26
