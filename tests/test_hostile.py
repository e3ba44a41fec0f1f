"""Hostile and unusual input (issue 14): one test per kind of failure, named for the kind.

Each of these failed on the code before the change (checked by running this file against it).
Archives are crafted in format 2 by hand where a test needs a field pack would never write, so that
the same bytes reach the old reader and the new one.
"""
from __future__ import annotations

import hashlib
import json
import lzma
import os
import stat
import struct
import subprocess
import sys
import tarfile
import time
import zlib
from pathlib import Path

import pytest
import zstandard

import codeseed
from codeseed import archive, codecs
from codeseed.cli import main
from codeseed.errors import ArchiveError, InputError, OutputExistsError, UnsafeArchiveError

ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------- crafting archives

def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def raw_v2(dst: Path, rows: list[dict], header: bytes = b'{"flags":[],"model":null,"settings":{}}') -> Path:
    """A format-2 archive from raw fields, none checked: each row has path (bytes), payload, data (what
    it decodes to, for the digests) and optionally codec, fidelity, meta (bytes), flags (1 symlink, 2 exec)."""
    body = bytearray(archive.MAGIC + struct.pack("<HI", 2, len(header)) + header + struct.pack("<I", zlib.crc32(header)))
    offsets = []
    for r in rows:
        offsets.append(len(body))
        body += r["payload"]
    idx = bytearray(_varint(len(rows)))
    for key, default in (("path", None), ("codec", b"stored"), ("fidelity", b"exact"), ("meta", b"")):
        for r in rows:
            v = r.get(key, default)
            idx += _varint(len(v)) + v
    idx += bytes(r.get("flags", 0) for r in rows)
    for r, off in zip(rows, offsets):
        idx += _varint(r.get("size", len(r["data"]))) + _varint(off) + _varint(len(r["payload"]))
    fulls = [hashlib.sha256(r["data"]).digest() for r in rows]
    for r, full in zip(rows, fulls):
        idx += full[:8] + struct.pack("<I", zlib.crc32(r["payload"]))
    idx += hashlib.sha256(b"".join(fulls)).digest()
    index = lzma.compress(bytes(idx), format=lzma.FORMAT_RAW, filters=[{"id": lzma.FILTER_LZMA2, "preset": 6}])
    ioff = len(body)
    body += index + struct.pack("<QQI8s", ioff, len(index), zlib.crc32(index), archive.END_MAGICS[2])
    dst.write_bytes(bytes(body))
    return dst


def stored(path: str | bytes, data: bytes, **kw) -> dict:
    return {"path": path if isinstance(path, bytes) else path.encode(), "payload": data, "data": data, **kw}


def link(path: str, target: bytes) -> dict:
    return stored(path, target, flags=1)


def zstd_bytes(data: bytes) -> bytes:
    return zstandard.ZstdCompressor(level=3).compress(data)


def run_cli(*argv: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "codeseed", *argv], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})


def one_line_error(r: subprocess.CompletedProcess) -> bool:
    return "Traceback" not in r.stderr and r.stderr.count("\n") == 1 and r.stderr.startswith("codeseed: error: ")


def listing(root: Path) -> dict[str, tuple]:
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_symlink():
            out[rel] = ("link", os.readlink(p))
        elif p.is_file():
            out[rel] = ("file", hashlib.sha256(p.read_bytes()).hexdigest(), stat.S_IMODE(p.lstat().st_mode))
    return out


# ---------------------------------------------------------------- 1-3 security

@pytest.mark.parametrize("coder", [zstd_bytes, codecs.xz_encode], ids=["zstd", "xz"])
@pytest.mark.parametrize("target", [b"/etc", b"../../.."])
def test_link_target_checked_after_decoding(tmp_path, coder, target):
    """1. The stored bytes of a link are not its target: the decoded target is what is checked."""
    codec = b"zstd" if coder is zstd_bytes else b"xz"
    row = {"path": b"link", "payload": coder(target), "data": target, "codec": codec, "flags": 1}
    arc = raw_v2(tmp_path / "a.cseed", [stored("ok.txt", b"fine\n"), row])
    with pytest.raises(UnsafeArchiveError, match="link"):
        codeseed.unpack(arc, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "out").is_symlink()
    assert main(["test", str(arc), "-q"]) == UnsafeArchiveError.exit_code


@pytest.mark.parametrize("links", [
    [("d/x", b".."), ("y", b"d/x/..")],                      # d/x is the root; y -> root/.. : outside
    [("a/b/up2", b"../.."), ("c", b"a/b/up2/..")],          # a/b/up2 is the root; c -> root/..
    [("s/t", b"u/.."), ("s/u", b"..")],                      # s/u is the root; s/t -> root/..
    [("deep/l1", b"../l2"), ("l2", b"deep/l3/../.."), ("deep/l3", b"..")],
])
def test_links_resolved_through_other_links(tmp_path, links):
    """2. Each link is harmless read alone; resolved as the system does, one leads out."""
    arc = raw_v2(tmp_path / "a.cseed", [stored("ok.txt", b"fine\n")] + [link(p, t) for p, t in links])
    with pytest.raises(UnsafeArchiveError, match="leads out"):
        codeseed.unpack(arc, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert main(["test", str(arc), "-q"]) == UnsafeArchiveError.exit_code


BOMB_CHILD = """
import re, sys
import codeseed
from codeseed.errors import CodeseedError
try:
    codeseed.unpack(sys.argv[1], sys.argv[2])
    print("unpacked")
except CodeseedError as e:
    print(type(e).__name__)
# this process's peak memory (ru_maxrss would count the parent's at fork time)
print(int(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)) // 1024)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the peak memory from /proc")
@pytest.mark.parametrize("codec", ["zstd", "xz"])
def test_decompression_bomb_bounded_by_declared_size(tmp_path, codec):
    """3. A 5-byte entry whose payload decodes to 512 MiB: refused without decoding past its size."""
    bomb = b"\0" * (512 << 20)
    payload = zstd_bytes(bomb) if codec == "zstd" else codecs.xz_encode(bomb)
    assert len(payload) < 100_000
    row = {"path": b"small.txt", "payload": payload, "data": b"hello", "codec": codec.encode(), "size": 5}
    arc = raw_v2(tmp_path / "bomb.cseed", [row])
    r = subprocess.run([sys.executable, "-c", BOMB_CHILD, str(arc), str(tmp_path / "out")], capture_output=True,
                       text=True)
    outcome, peak_mb = r.stdout.split()
    assert outcome == "ArchiveError" and int(peak_mb) < 200, r.stdout + r.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("n", [0, 6, 10 ** 12])
def test_lm_token_count_bounded_by_size(tmp_path, n):
    """3. An LM entry's token count is checked against its size (a token is a byte at least) on read."""
    header = json.dumps({"flags": [], "model": {"id": "m", "sha256": "0" * 64}, "settings": {}}).encode()
    row = {"path": b"a.py", "payload": b"\x01\x02", "data": b"x = 1", "codec": b"lm",
           "meta": json.dumps({"n": n}).encode()}
    arc = raw_v2(tmp_path / "lm.cseed", [row], header)
    for cmd in (["info", str(arc)], ["test", str(arc)], ["unpack", str(arc), "-o", str(tmp_path / "out")]):
        assert main(cmd) == ArchiveError.exit_code


# ---------------------------------------------------------------- 4-6 nothing lost, nothing half-written

@pytest.mark.parametrize("bad", [link("z-link", b"a\0b"), stored("z" * 256, b"long name\n"),
                                 stored("sub/" + "y" * 256 + "/f", b"long folder\n")], ids=["nul-target", "long-name",
                                                                                            "long-folder"])
def test_unwritable_entries_refused_before_writing(tmp_path, bad):
    """4. What the system would refuse while writing is refused before anything is written, and by test."""
    arc = raw_v2(tmp_path / "a.cseed", [stored("a.txt", b"first\n"), stored("b/c.txt", b"second\n"), bad])
    r = run_cli("unpack", str(arc), "-o", str(tmp_path / "out"))
    assert r.returncode == UnsafeArchiveError.exit_code and one_line_error(r), r.stderr
    assert not (tmp_path / "out").exists()
    assert main(["test", str(arc), "-q"]) == UnsafeArchiveError.exit_code
    codeseed.unpack(arc, tmp_path / "rest", skip_unsafe=True)
    assert sorted(listing(tmp_path / "rest")) == ["a.txt", "b/c.txt"]


def test_write_failure_leaves_no_output(tmp_path, monkeypatch):
    """4. A failure while writing (disk full, here) leaves no output folder and no staging folder."""
    src = tmp_path / "src"
    src.mkdir()
    for i in range(20):
        (src / f"f{i:02d}.txt").write_text(f"file {i}\n")
    codeseed.pack(src, tmp_path / "a.cseed", mode="classical")
    real_write, calls = os.fdopen, []

    def failing_fdopen(fd, *a, **k):
        calls.append(fd)
        if len(calls) == 10:
            os.close(fd)
            raise OSError(28, "No space left on device")
        return real_write(fd, *a, **k)

    monkeypatch.setattr(os, "fdopen", failing_fdopen)
    with pytest.raises(OSError):
        codeseed.unpack(tmp_path / "a.cseed", tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.cseed", "src"]


def test_pack_never_writes_what_unpack_refuses(tmp_path):
    """5. Legal Linux names and links that unpack refuses are left out at pack time, and said so."""
    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "ok.py").write_text("x = 1\n")
    (src / "back\\slash.txt").write_text("a Windows folder separator\n")
    (src / "c:drive.txt").write_text("a Windows drive\n")
    os.symlink("/etc/passwd", src / "abs-link")
    os.symlink("../outside", src / "out-link")
    os.symlink("pkg/ok.py", src / "good-link")
    os.symlink("..", src / "pkg" / "up")            # the tree's root: fine alone
    os.symlink("pkg/up/..", src / "sneaky")          # through pkg/up: outside
    report = codeseed.pack(src, tmp_path / "a.cseed", mode="classical")
    assert sorted(f.path for f in report.files) == ["good-link", "pkg/ok.py", "pkg/up"]
    assert {x.path: x.reason for x in report.left_out} == {p: "unsafe" for p in (
        "back\\slash.txt", "c:drive.txt", "abs-link", "out-link", "sneaky")}
    assert main(["test", str(tmp_path / "a.cseed"), "-q"]) == 0
    codeseed.unpack(tmp_path / "a.cseed", tmp_path / "out")
    assert os.readlink(tmp_path / "out" / "good-link") == "pkg/ok.py"


def test_skip_unsafe_extracts_the_rest(tmp_path):
    """5. An archive from elsewhere with unsafe entries: refused as a whole, or the rest with --skip-unsafe."""
    arc = raw_v2(tmp_path / "a.cseed", [stored("a.txt", b"a\n"), stored("../evil.txt", b"x"), link("l", b"/etc"),
                                        stored("l/x", b"y"), stored("b/c.txt", b"c\n"), stored("a.txt", b"again")])
    assert main(["unpack", str(arc), "-o", str(tmp_path / "out"), "-q"]) == UnsafeArchiveError.exit_code
    assert not (tmp_path / "out").exists()
    r = run_cli("unpack", str(arc), "-o", str(tmp_path / "out"), "--skip-unsafe")
    assert r.returncode == 0, r.stderr
    assert listing(tmp_path / "out").keys() == {"a.txt", "b", "b/c.txt"} - {"b"}
    assert (tmp_path / "out" / "a.txt").read_bytes() == b"a\n"
    assert r.stderr.count("skipped unsafe entry") == 4 and "Traceback" not in r.stderr
    assert not (tmp_path / "evil.txt").exists()


@pytest.mark.parametrize("umask", [0o077, 0o022, 0o002])
def test_file_modes_restored_under_umask(tmp_path, umask):
    """6. Permission bits are stored and come back under the umask, as tar does."""
    src = tmp_path / "src"
    src.mkdir()
    modes = {"private.txt": 0o600, "group.txt": 0o640, "tool.sh": 0o755, "mine.sh": 0o700, "ro.txt": 0o444,
             "shared.txt": 0o664}
    for name, m in modes.items():
        (src / name).write_text(name)
        os.chmod(src / name, m)
    codeseed.pack(src, tmp_path / "a.cseed", mode="classical")
    old = os.umask(umask)
    try:
        codeseed.unpack(tmp_path / "a.cseed", tmp_path / "out")
    finally:
        os.umask(old)
    got = {name: stat.S_IMODE((tmp_path / "out" / name).stat().st_mode) for name in modes}
    assert got == {name: m & ~umask for name, m in modes.items()}
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o777 & ~umask


def test_special_mode_bits_not_stored(tmp_path):
    """6. setuid, setgid and sticky bits are not restored."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "suid").write_text("x")
    os.chmod(src / "suid", 0o4755)
    codeseed.pack(src, tmp_path / "a.cseed", mode="classical")
    codeseed.unpack(tmp_path / "a.cseed", tmp_path / "out")
    assert not (tmp_path / "out" / "suid").stat().st_mode & (stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX)


# ---------------------------------------------------------------- 7-11 one-line errors, documented exit codes

SEEDED_HEADER = json.dumps({"flags": [], "model": {"id": "m", "sha256": "0" * 64}, "settings": {}}).encode()
ONE_TB_ZSTD = (struct.pack("<I", 0xFD2FB528) + bytes([(3 << 6) | (1 << 5)]) + struct.pack("<Q", 1 << 40)
               + bytes([1 | (5 << 3), 0, 0]) + b"hello")


@pytest.mark.parametrize("rows,header", [
    ([stored("a.txt", b"a", meta=b"{not json")], None),
    ([stored("a.txt", b"a", meta=b"[1, 2]")], None),
    ([stored("a.txt", b"a", meta=b'{"n": "many"}')], None),
    ([stored("a.txt", b"a", codec=b"\xff\xfe")], None),
    ([stored("a.txt", b"a", fidelity=b"\xc3(")], None),
    ([stored("a.py", b"a", fidelity=b"seeded+similarity",
             meta=b'{"holes": [1], "budget": "high", "similarity": 0.9}')], SEEDED_HEADER),
    ([stored("a.py", b"a", fidelity=b"seeded+similarity", meta=b'{"holes": "1", "budget": 0.5, "similarity": 0.9}')],
     SEEDED_HEADER),
    ([stored("a.txt", b"a", meta=b"[" * 100_000)], None),
    ([{"path": b"a.txt", "payload": ONE_TB_ZSTD, "data": b"hello", "codec": b"zstd"}], "payload"),
    ([stored("a.txt", b"a")], b'{"flags": "x", "model": null, "settings": {}}'),
    ([stored("a.txt", b"a")], b'{"flags": [], "model": {"id": 5}, "settings": {}}'),
    ([stored("a.txt", b"a")], b'{"flags": [], "model": null, "settings": {"fill": {"no_repeat": "6"}}}'),
    ([stored("a.txt", b"a")], b'{"flags": [], "model": null, "settings": []}'),
    ([stored("a.txt", b"a")], b'\xff{"flags": [], "model": null, "settings": {}}'),
    ([stored("a.txt", b"a")], b'{"flags": [NaN], "model": null, "settings": {}}'),
], ids=["meta-not-json", "meta-not-object", "n-not-int", "codec-not-utf8", "fidelity-not-utf8", "budget-string",
        "holes-string", "meta-deep-nesting", "zstd-claims-1TB", "flags-string", "model-id-int", "fill-string",
        "settings-list", "header-not-utf8", "header-nan"])
def test_wrong_index_values_are_archive_errors(tmp_path, rows, header):
    """7. Well framed but wrong values: one line, exit 4, for info, test and unpack alike (a payload's
    contents only for test and unpack: info reads no payload)."""
    payload_only = header == "payload"
    arc = raw_v2(tmp_path / "a.cseed", rows, b'{"flags":[],"model":null,"settings":{}}' if header in (None, "payload")
                 else header)
    if payload_only:
        assert main(["info", str(arc)]) == 0
    for argv in ([] if payload_only else [["info", str(arc)], ["info", str(arc), "--json"]]) + [
            ["test", str(arc)], ["unpack", str(arc), "-o", str(tmp_path / "out")]]:
        r = run_cli(*argv)
        assert r.returncode == ArchiveError.exit_code and one_line_error(r), (argv, r.stderr[-500:])
    assert not (tmp_path / "out").exists()


def test_symlink_loop_in_input(tmp_path):
    """8. Links in a loop are stored as links (never followed), not a RuntimeError."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("a\n")
    os.symlink("loop2", src / "loop1")
    os.symlink("loop1", src / "loop2")
    os.symlink("self", src / "self")
    r = run_cli("pack", str(src), "-o", str(tmp_path / "a.cseed"), "--classical")
    assert r.returncode == 0, r.stderr
    codeseed.unpack(tmp_path / "a.cseed", tmp_path / "out")
    assert os.readlink(tmp_path / "out" / "loop1") == "loop2" and os.readlink(tmp_path / "out" / "self") == "self"


def test_non_utf8_names_listed_escaped(tmp_path):
    """9. info prints any name on a strict UTF-8 stdout, escaped as ls and tar -t do."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "plain.txt").write_text("x")
    with open(os.path.join(os.fsencode(src), b"caf\xe9.txt"), "wb") as fh:  # Latin-1, not UTF-8
        fh.write(b"latin-1 name\n")
    (src / "two\nlines [red]x.txt").write_text("y")
    codeseed.pack(src, tmp_path / "a.cseed", mode="classical")
    env = {"PYTHONIOENCODING": "utf-8:strict", "LC_ALL": "C.UTF-8", "COLUMNS": "200"}
    r = run_cli("info", str(tmp_path / "a.cseed"), env=env)
    assert r.returncode == 0, r.stderr
    assert "caf\\351.txt" in r.stdout and "two\\nlines [red]x.txt" in r.stdout
    r = run_cli("info", str(tmp_path / "a.cseed"), "--json", env=env)
    assert r.returncode == 0, r.stderr
    names = {e["path"] for e in json.loads(r.stdout)["entries"]}
    assert os.fsdecode(b"caf\xe9.txt") in names
    codeseed.unpack(tmp_path / "a.cseed", tmp_path / "out")
    assert (Path(os.fsdecode(os.path.join(os.fsencode(tmp_path / "out"), b"caf\xe9.txt")))).read_bytes() == \
        b"latin-1 name\n"


def _deny_folder(monkeypatch, name: str) -> None:
    """Make the folder `name` unreadable: for real as a normal user; root reads anything, so there
    os.scandir (what os.walk lists folders with) is made to fail for it as the system would."""
    real = os.scandir

    def scandir(path="."):
        if os.path.basename(os.fspath(path)) == name:
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real(path)
    monkeypatch.setattr(os, "scandir", scandir)


def test_unreadable_folder_reported_like_unreadable_file(tmp_path, monkeypatch):
    """10. A folder that cannot be read stops pack (exit 3) as an unreadable file does; --ignore-unreadable
    packs the rest and lists it."""
    src = tmp_path / "src"
    (src / "secret").mkdir(parents=True)
    (src / "secret" / "key.txt").write_text("k")
    (src / "a.txt").write_text("a")
    _deny_folder(monkeypatch, "secret")
    with pytest.raises(InputError, match="secret"):
        codeseed.pack(src, tmp_path / "a.cseed", mode="classical")
    assert main(["pack", str(src), "-o", str(tmp_path / "a.cseed"), "--classical", "-q"]) == InputError.exit_code
    report = codeseed.pack(src, tmp_path / "a.cseed", mode="classical", ignore_unreadable=True)
    assert [f.path for f in report.files] == ["a.txt"]
    assert [(x.path, x.reason) for x in report.left_out] == [("secret/", "unreadable")]


def test_unreadable_folder_in_git_work_tree(tmp_path, monkeypatch):
    """10. git skips a folder it cannot open with only a warning: that warning is an unreadable folder."""
    from codeseed import walk
    src = tmp_path / "repo"
    (src / "secret").mkdir(parents=True)
    (src / "a.txt").write_text("a")
    subprocess.run(["git", "-C", str(src), "init", "-q"], check=True)
    real = walk._git

    def git(root, *args, timeout=300):
        r = real(root, *args, timeout=timeout)
        if args[:1] == ("ls-files",) and "--ignored" not in args and os.geteuid() == 0:
            r.stderr += b"warning: could not open directory 'secret/': Permission denied\n"  # what git prints
        return r
    if os.geteuid() != 0:
        os.chmod(src / "secret", 0)
    monkeypatch.setattr(walk, "_git", git)
    try:
        with pytest.raises(InputError, match="secret"):
            codeseed.pack(src, tmp_path / "a.cseed", mode="classical")
        report = codeseed.pack(src, tmp_path / "a.cseed", mode="classical", ignore_unreadable=True)
        assert ("secret/", "unreadable") in [(x.path, x.reason) for x in report.left_out]
    finally:
        os.chmod(src / "secret", 0o755)


def test_output_path_errors_have_their_exit_codes(tmp_path):
    """11. An output path too long for the system: exit 3; an output under a file: exit 5."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("a")
    arc = tmp_path / "a.cseed"
    assert main(["pack", str(src), "-o", str(arc), "--classical", "-q"]) == 0
    (tmp_path / "somefile").write_text("x")
    for argv, code in ((["unpack", str(arc), "-o", str(tmp_path / "somefile" / "sub")], OutputExistsError.exit_code),
                       (["unpack", str(arc), "-o", str(tmp_path / "somefile")], OutputExistsError.exit_code),
                       (["unpack", str(arc), "-o", str(tmp_path / ("x" * 300))], InputError.exit_code),
                       (["unpack", str(arc), "-o", str(tmp_path / "/".join(["y" * 200] * 25))], InputError.exit_code),
                       (["pack", str(src), "-o", str(tmp_path / "somefile" / "b.cseed"), "--classical"],
                        OutputExistsError.exit_code)):
        r = run_cli(*argv)
        assert r.returncode == code and one_line_error(r), (argv, r.stderr)
    assert not any(p.name.startswith(".cseed") for p in tmp_path.rglob("*"))


def test_left_out_files_are_reported(tmp_path):
    """12. Files a .gitignore leaves out are counted in the summary, listed with -v and in --json."""
    src = tmp_path / "pkg-1.0"
    (src / "pkg").mkdir(parents=True)
    (src / "build").mkdir()
    (src / ".gitignore").write_text("_version.py\nbuild/\n")
    (src / "pkg" / "__init__.py").write_text("from pkg._version import v\n")
    (src / "pkg" / "_version.py").write_text("v = '1.0'\n")
    (src / "build" / "x.o").write_text("o")
    report = codeseed.pack(src, tmp_path / "a.cseed", mode="classical")
    assert sorted((x.path, x.reason) for x in report.left_out) == [("build/", "ignored"), ("pkg/_version.py", "ignored")]
    r = run_cli("pack", str(src), "-o", str(tmp_path / "b.cseed"), "--classical")
    assert r.returncode == 0 and "left out 1 ignored, 1 ignored folders" in r.stderr, r.stderr
    assert "_version.py" not in r.stderr
    r = run_cli("pack", str(src), "-o", str(tmp_path / "c.cseed"), "--classical", "-v")
    assert "left out pkg/_version.py: ignored" in r.stderr and "left out build/: ignored" in r.stderr
    r = run_cli("pack", str(src), "-o", str(tmp_path / "d.cseed"), "--classical", "--json", "-q")
    got = json.loads(r.stdout)
    assert {x["path"] for x in got["left_out"]} == {"build/", "pkg/_version.py"}
    assert got["left_out_counts"] == {"ignored": 1, "ignored folders": 1}
    subprocess.run(["git", "-C", str(src), "init", "-q"], check=True)  # the same through git ls-files
    report = codeseed.pack(src, tmp_path / "e.cseed", mode="classical")
    assert sorted((x.path, x.reason) for x in report.left_out) == [("build/", "ignored"), ("pkg/_version.py", "ignored")]


# ---------------------------------------------------------------- 13-14 speed on unusual trees

def _tiny_tree(root: Path, n: int) -> None:
    for i in range(n):
        d = root / f"d{i // 100:03d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:05d}.txt").write_text(f"value_{i} = {i * 7919 % 10007}\n")


def test_many_tiny_files_share_solid_blocks(tmp_path):
    """13. 1,000 files of ~20 bytes: a solid block, smaller than tar | zstd -19 of the same tree."""
    src = tmp_path / "src"
    _tiny_tree(src, 1000)
    t = time.perf_counter()
    report = codeseed.pack(src, tmp_path / "a.cseed", mode="classical")
    seconds = time.perf_counter() - t
    with tarfile.open(tmp_path / "t.tar", "w") as tf:
        tf.add(src, arcname="src")
    tar_zstd = len(zstandard.ZstdCompressor(level=19).compress((tmp_path / "t.tar").read_bytes()))
    assert report.archive_bytes < tar_zstd, (report.archive_bytes, tar_zstd)
    assert seconds < 20, seconds  # 33 ms a file before: over 30 s
    with archive.Archive(tmp_path / "a.cseed") as arc:
        assert len({e.payload_id for e in arc.entries}) == 1
    codeseed.unpack(tmp_path / "a.cseed", tmp_path / "out")
    assert listing(tmp_path / "out") == listing(src)


def test_minified_files_never_go_to_the_model(tmp_path, tiny_model):
    """14. A minified one-line file is stored classically in seeded mode too (one rule, every mode)."""
    from codeseed import seeded
    from codeseed.candidates import model_candidate
    from codeseed.walk import SourceFile
    src = tmp_path / "src"
    src.mkdir()
    minified = b"".join(b"function f%d(a,b){return a*%d+b}" % (i, i) for i in range(900)) + b"\n"  # 30 KB, one line
    (src / "app.min.js").write_bytes(minified)
    (src / "util.py").write_text("def add(a, b):\n    return a + b\n")
    f = SourceFile("app.min.js", minified, False)
    assert not model_candidate(f) and seeded.seedable(f) is None
    t = time.perf_counter()
    report = codeseed.pack(src, tmp_path / "a.cseed", mode="seeded", model=tiny_model)
    by_path = {r.path: r for r in report.files}
    assert by_path["app.min.js"].fidelity == "exact" and by_path["app.min.js"].codec in codecs.CLASSICAL
    assert time.perf_counter() - t < 60
    exact_report = codeseed.pack(src, tmp_path / "b.cseed", mode="exact", model=tiny_model)
    assert {r.path: r.codec for r in exact_report.files}["app.min.js"] in codecs.CLASSICAL


# ---------------------------------------------------------------- user experience

MODEL_MODULES = ("torch", "transformers", "codeseed.model", "codeseed.lmcodec", "codeseed.exact")


def _imported(argv: list[str], cwd: Path) -> set[str]:
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "codeseed", *argv], capture_output=True, text=True,
                       cwd=cwd)
    assert r.returncode == 0, r.stderr[-2000:]
    return {line.split("|")[-1].strip() for line in r.stderr.splitlines() if line.startswith("import time:")}


def test_help_info_and_classical_load_no_model(tmp_path):
    """--help, info, test and the classical mode never import torch, transformers or the model."""
    src = tmp_path / "src"
    _tiny_tree(src, 100)
    arc = tmp_path / "a.cseed"
    for argv in (["--help"], ["pack", str(src), "-o", str(arc), "--classical", "-q"], ["info", str(arc)],
                 ["info", str(arc), "--json"], ["test", str(arc), "-q"], ["unpack", str(arc), "-o", str(tmp_path / "o")]):
        loaded = _imported(argv, tmp_path)
        assert not loaded & set(MODEL_MODULES), (argv, loaded & set(MODEL_MODULES))


def test_progress_lines_when_stderr_is_not_a_terminal(capsys):
    """Not a terminal (a CI log): a plain line every few seconds; disabled (-q): nothing."""
    from codeseed.progress import bars
    with bars(True, interval=0.05) as p:
        t = p.add_task("compress", total=200)
        for _ in range(100):
            p.advance(t)
        time.sleep(0.3)
    err = capsys.readouterr().err
    assert "codeseed: compress 100/200 (50%)" in err and len(err.splitlines()) >= 2
    with bars(False, interval=0.05) as p:
        p.add_task("compress", total=10)
        time.sleep(0.2)
    assert capsys.readouterr().err == ""


def test_staging_folder_never_left_behind_on_refusal(tmp_path):
    """An archive refused at any check leaves neither the output nor a staging folder."""
    arc = raw_v2(tmp_path / "a.cseed", [stored("a.txt", b"a\n"), stored("b.txt", b"b\n", size=3)])
    assert main(["unpack", str(arc), "-o", str(tmp_path / "out"), "-q"]) == ArchiveError.exit_code
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.cseed"]


def test_model_entry_bound_covers_what_pack_gives_the_model():
    """archive.py refuses model-coded entries over MAX_MODEL_ENTRY (held in memory): pack's own stay under it."""
    from codeseed.candidates import MODEL_MAX_BYTES
    assert MODEL_MAX_BYTES <= archive.MAX_MODEL_ENTRY
