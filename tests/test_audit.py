"""`codeseed audit`: what a change adds is flagged, old lines are not; secrets of known and unknown
formats, a file made of secrets, folders, baselines, inline allows, kinds switched off, no model
load when nothing needs scoring."""
from __future__ import annotations

import base64
import json
import random
import shutil
import string
import subprocess

import pytest

from codeseed.audit import (SECRET_KINDS, AuditConfig, _candidates, assignments, audit, string_candidates,
                            url_passwords)
from codeseed.cli import AUDIT_FAILED, main
from codeseed.errors import InputError
from tests.test_archive import FIXTURE

ALNUM = string.ascii_letters + string.digits


def git(repo, *args):
    subprocess.run(["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t", *args], check=True,
                   capture_output=True)


def rand(rng, alphabet, n):
    return "".join(rng.choice(alphabet) for _ in range(n))


def secrets_module(rng) -> tuple[str, list[int]]:
    """A settings module of a dozen credentials of common formats, one a line (made at run time),
    and the 1-based lines holding them."""
    jwt = ".".join(base64.urlsafe_b64encode(x).decode().rstrip("=") for x in
                   (b'{"alg":"HS256","typ":"JWT"}', b'{"sub":"%d"}' % rng.randint(1, 10**9), rng.randbytes(32)))
    values = [
        ("AWS_ACCESS_KEY_ID", "AKIA" + rand(rng, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)),
        ("AWS_SECRET_ACCESS_KEY", rand(rng, ALNUM + "+/", 40)),
        ("GITHUB_TOKEN", "ghp_" + rand(rng, ALNUM, 36)),
        ("SLACK_BOT_TOKEN", f"xoxb-{rng.randint(10**10, 10**11)}-{rng.randint(10**12, 10**13)}-{rand(rng, ALNUM, 24)}"),
        ("STRIPE_SECRET_KEY", "sk_live_" + rand(rng, ALNUM, 24)),
        ("DATABASE_URL", f"postgres://app:{rand(rng, ALNUM, 14)}@db.internal:5432/app"),
        ("SESSION_TOKEN", jwt),
        ("API_TOKEN", rand(rng, ALNUM, 40)),
        ("SMTP_PASSWORD", rand(rng, ALNUM + "!#%&*", 16)),
        ("SIGNING_KEY", base64.b64encode(rng.randbytes(48)).decode()),
        ("WEBHOOK_SECRET", rand(rng, ALNUM, 32)),
        ("SENDGRID_API_KEY", f"SG.{rand(rng, ALNUM, 22)}.{rand(rng, ALNUM, 43)}"),
    ]
    lines = ['"""Production settings."""', "DEBUG = False"]
    lines += [f'{k} = "{v}"' for k, v in values]
    return "\n".join(lines) + "\n", list(range(3, 3 + len(values)))


@pytest.fixture
def repo(tmp_path):
    r = tmp_path / "repo"
    shutil.copytree(FIXTURE, r)
    git(r, "init", "-q")
    git(r, "add", ".")
    git(r, "commit", "-qm", "base")
    return r


def stage_three_changes(repo):
    rng = random.Random(7)
    token = rand(rng, ALNUM, 40)
    models = (repo / "inventory" / "models.py").read_text().splitlines(keepends=True)
    models.insert(4, f'API_TOKEN = "{token}"\n')  # line 5
    (repo / "inventory" / "models.py").write_text("".join(models))
    rows = "".join(f"    ({i}, {i * i}, {i * 3 % 7}),\n" for i in range(80000))
    (repo / "inventory" / "table.py").write_text("TABLE = [\n" + rows + "]\n")
    store = (repo / "inventory" / "store.py").read_text()
    (repo / "inventory" / "store.py").write_text(store.replace("REORDER_POINT = 5", "REORDER_POINT = 6"))
    git(repo, "add", ".")
    return token


def secret_lines(fa):
    return sorted(f.line for f in fa.flags if f.kind in SECRET_KINDS)


def test_staged_audit_flags_secret_and_blob_passes_ordinary_change(repo, tiny_model, monkeypatch, capsys):
    token = stage_three_changes(repo)
    assert (repo / "inventory" / "table.py").stat().st_size > 2_000_000
    monkeypatch.chdir(repo)
    report = audit(staged=True, model=tiny_model)
    by = {f.path: f for f in report.files}
    assert set(by) == {"inventory/models.py", "inventory/table.py", "inventory/store.py"}
    assert secret_lines(by["inventory/models.py"]) == [5]
    assert {f.kind for f in by["inventory/table.py"].flags} >= {"too_large"}
    assert by["inventory/store.py"].flags == []
    assert 0 < by["inventory/store.py"].added_info_bytes < 0.2 * by["inventory/store.py"].info_bytes
    assert report.failed
    code = main(["audit", "--staged", "--json", "--model", str(tiny_model.path)])
    out = capsys.readouterr().out
    assert code == AUDIT_FAILED
    assert token not in out  # the suspicious value itself is never printed
    assert json.loads(out)["failed"] is True


def test_staged_paths_narrow_the_change(repo, tiny_model, monkeypatch):
    """pre-commit passes the staged files it selected: only those are audited."""
    stage_three_changes(repo)
    monkeypatch.chdir(repo)
    report = audit([repo / "inventory" / "store.py"], staged=True, model=tiny_model)
    assert [f.path for f in report.files] == ["inventory/store.py"] and not report.failed


def test_ordinary_change_passes_without_loading_the_model(repo, tiny_model_path, monkeypatch):
    store = (repo / "inventory" / "store.py").read_text()
    (repo / "inventory" / "store.py").write_text(store.replace("REORDER_POINT = 5", "REORDER_POINT = 6"))
    git(repo, "add", ".")
    monkeypatch.chdir(repo)
    report = audit(staged=True, model=tiny_model_path)
    assert not report.failed and not report.model_loaded  # nothing to judge: no model load at all
    assert main(["audit", "--staged", "--model", str(tiny_model_path)]) == 0


def test_added_line_passes_in_a_file_with_old_flagged_lines(repo, tiny_model, monkeypatch):
    """The changelog case: flags concern only what the change adds, not the file's old lines."""
    rng = random.Random(3)
    old = "# Changelog\n\n" + "".join(f"- release {i}: thanks to contributor token {rand(rng, ALNUM, 32)}\n"
                                      for i in range(5))
    (repo / "CHANGELOG.md").write_text(old)
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "changelog")
    monkeypatch.chdir(repo)
    full = audit([repo / "CHANGELOG.md"], model=tiny_model)
    assert len(secret_lines(full.files[0])) >= 1  # the old lines are flagged when the whole file is audited
    (repo / "CHANGELOG.md").write_text(old.replace("\n\n", "\n\n- fix a typo in the README\n", 1))
    git(repo, "add", ".")
    report = audit(staged=True, model=tiny_model)
    assert [f.path for f in report.files] == ["CHANGELOG.md"] and not report.failed
    assert report.files[0].added_info_bytes > 0


def test_file_made_of_secrets_is_flagged_line_by_line(repo, tiny_model, monkeypatch):
    """A threshold relative to the file's median misses a file whose every line is a secret."""
    text, expected = secrets_module(random.Random(11))
    (repo / "inventory" / "settings_prod.py").write_text(text)
    git(repo, "add", ".")
    monkeypatch.chdir(repo)
    report = audit(staged=True, model=tiny_model)
    assert secret_lines(report.files[0]) == expected
    assert main(["audit", "--staged", "--model", str(tiny_model.path)]) == AUDIT_FAILED


def test_random_strings_under_plain_names_are_judged_by_the_model(tmp_path, tiny_model):
    """No credential name, no known format: only the model's surprisal can flag these, in absolute terms."""
    rng = random.Random(5)
    rows = [f'FIXTURE_{i} = "{base64.b64encode(rng.randbytes(36)).decode()}"' for i in range(6)]
    (tmp_path / "blobs.py").write_text("\n".join(rows) + "\n")
    report = audit([tmp_path / "blobs.py"], model=tiny_model, root=tmp_path, cfg=AuditConfig())
    kinds = [f.kind for f in report.files[0].flags]
    assert report.model_loaded and kinds == ["surprising_string"]  # six consecutive lines: one flag
    assert (report.files[0].flags[0].line, report.files[0].flags[0].end_line) == (1, 6)
    off = audit([tmp_path / "blobs.py"], model=tiny_model, root=tmp_path,
                cfg=AuditConfig(disable=["surprising_string"]))
    assert not off.failed


def test_non_secrets_of_the_issue_never_reach_the_model():
    """Names, addresses, non-ASCII identifiers, glob patterns, prose, hashes and URLs are no candidates."""
    lines = ["* Jane Doe <jane.doe@example.org> (2019-2023)\n",
             "    größenänderung_überschrift = 1\n",
             '    parser.add_argument("--include", help="glob such as src/**/test_*.py or docs/*.rst")\n',
             "    Return the version as a tuple of (major, minor, patch) integers, for comparisons.\n",
             "commit: 3a7680dc436211227c0aeae84c9b45e0b3345b8f\n",
             "   https://github.com/python-semver/python-semver/blob/master/CHANGELOG.rst\n",
             "    def test_should_raise_value_error_for_invalid_value(self):\n",
             "token = os.environ['API_TOKEN']\n",
             'password = "<your password here>"\n']
    assert _candidates(lines, list(range(len(lines))), "x.py", AuditConfig()) == []


def test_assignment_and_string_candidates():
    cfg = AuditConfig()
    line = 'DB_PASSWORD = "n0t-a-Real-one!"  # and cache_key = "user:1234:profile"'
    assert [(n, line[s:e]) for n, s, e in assignments(line, "settings.py", cfg)] == [("DB_PASSWORD", "n0t-a-Real-one!")]
    assert assignments("SECRET_KEY=abcd1234efgh", "app.py", cfg) == []  # unquoted in code: an expression
    assert [line[s:e] for line in ["SECRET_KEY=abcd1234efgh"] for _, s, e in assignments(line, ".env", cfg)] == \
        ["abcd1234efgh"]
    url = "redis://admin:tf.!_FPep+L0@cache.internal:6379/0"  # unescaped ! and +: detect-secrets' regex skips it
    assert [url[s:e] for s, e in url_passwords(url, cfg)] == ["tf.!_FPep+L0"]
    assert url_passwords("postgres://user:password@localhost/db ssh://git@github.com/x", cfg) == []
    assert string_candidates("x = 'Zk3pQ9sLm2Vx8RtY4wNb'", cfg) == [(5, 25)]
    assert string_candidates("x = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'", cfg) == []


def test_folder_honours_gitignore(tmp_path, tiny_model, capsys):
    rng = random.Random(9)
    tree = tmp_path / "proj"
    (tree / "pkg").mkdir(parents=True)
    (tree / ".gitignore").write_text("local_settings.py\n")
    (tree / "pkg" / "app.py").write_text("def main():\n    return 1\n")
    (tree / "pkg" / "keys.py").write_text(f'GITHUB_TOKEN = "ghp_{rand(rng, ALNUM, 36)}"\n')
    (tree / "pkg" / "local_settings.py").write_text(f'GITHUB_TOKEN = "ghp_{rand(rng, ALNUM, 36)}"\n')
    report = audit([tree], model=tiny_model, root=tmp_path)
    assert {f.path for f in report.files} == {"proj/.gitignore", "proj/pkg/app.py", "proj/pkg/keys.py"}
    assert [(f.path, secret_lines(f)) for f in report.files if f.flags] == [("proj/pkg/keys.py", [1])]
    assert main(["audit", str(tmp_path / "missing")]) == InputError.exit_code
    assert "no such file or folder" in capsys.readouterr().err


def test_baseline_accepts_known_findings_and_fails_new_ones(tmp_path, tiny_model, monkeypatch, capsys):
    rng = random.Random(13)
    text, _ = secrets_module(rng)
    (tmp_path / "settings.py").write_text(text)
    monkeypatch.chdir(tmp_path)
    base = tmp_path / ".codeseed-baseline.json"
    args = ["audit", ".", "--model", str(tiny_model.path), "--baseline", str(base)]
    assert main(args + ["--update-baseline"]) == 0
    stored = base.read_text()
    assert "ghp_" not in stored and "AKIA" not in stored  # hashes, never the values
    assert main(args) == 0
    # lines move (one inserted above): still accepted, the match is by value, not line number
    (tmp_path / "settings.py").write_text("import os\n" + text)
    assert main(args) == 0
    (tmp_path / "settings.py").write_text("import os\n" + text + f'NEW_TOKEN = "ghp_{rand(rng, ALNUM, 36)}"\n')
    capsys.readouterr()
    assert main(args) == AUDIT_FAILED
    assert [x.split(":")[1] for x in capsys.readouterr().out.splitlines()] == [str(len(text.splitlines()) + 2)]
    base.write_text("{not json")
    assert main(args) == InputError.exit_code


def test_inline_allow_comment(tmp_path, tiny_model):
    rng = random.Random(17)
    (tmp_path / "t.py").write_text(f'TOKEN = "ghp_{rand(rng, ALNUM, 36)}"  # codeseed: allow (a revoked test token)\n'
                                   f'TOKEN2 = "ghp_{rand(rng, ALNUM, 36)}"\n')
    report = audit([tmp_path / "t.py"], model=tiny_model, root=tmp_path, cfg=AuditConfig())
    assert secret_lines(report.files[0]) == [2]


def test_diff_rev_flags_lines_added_since(repo, tiny_model, monkeypatch):
    rng = random.Random(19)
    store = repo / "inventory" / "store.py"
    store.write_text(store.read_text() + f'\nSTRIPE_KEY = "sk_live_{rand(rng, ALNUM, 24)}"\n')
    git(repo, "commit", "-qam", "key")
    store.write_text(store.read_text() + "# a comment\n")  # uncommitted: part of `git diff REV` too
    monkeypatch.chdir(repo)
    report = audit(diff="HEAD~1", model=tiny_model)
    n = len(store.read_text().splitlines())
    assert [(f.path, secret_lines(f)) for f in report.files] == [("inventory/store.py", [n - 1])]
    assert not audit(diff="HEAD", model=tiny_model).failed
    assert main(["audit", "--diff", "no-such-rev"]) == InputError.exit_code


def test_config_from_pyproject(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[tool.codeseed.audit]\nmax_file_bytes = 10\nignore = ['*.lock']\n"
                                             "disable = ['generated', 'surprising_string']\n")
    cfg = AuditConfig.from_pyproject(tmp_path)
    assert cfg.max_file_bytes == 10 and cfg.ignore == ["*.lock"] and not cfg.on("generated") and cfg.on("binary")
    (tmp_path / "pyproject.toml").write_text("[tool.codeseed.audit]\nmax_fil_bytes = 10\n")
    with pytest.raises(InputError, match="unknown"):
        AuditConfig.from_pyproject(tmp_path)
    (tmp_path / "pyproject.toml").write_text("[tool.codeseed.audit]\ndisable = ['secrets']\n")
    with pytest.raises(InputError, match="unknown flag kinds"):
        AuditConfig.from_pyproject(tmp_path)
