"""`codeseed audit` on staged changes: planted secret, generated blob, ordinary change."""
from __future__ import annotations

import json
import random
import shutil
import string
import subprocess

import pytest

from codeseed.audit import AuditConfig, audit
from codeseed.cli import AUDIT_FAILED, main
from tests.test_archive import FIXTURE


def git(repo, *args):
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path):
    r = tmp_path / "repo"
    shutil.copytree(FIXTURE, r)
    git(r, "init", "-q")
    git(r, "-c", "user.email=t@t", "-c", "user.name=t", "add", ".")
    git(r, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "base")
    return r


def stage_three_changes(repo):
    rng = random.Random(7)
    token = "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(40))
    models = (repo / "inventory" / "models.py").read_text().splitlines(keepends=True)
    models.insert(4, f'API_TOKEN = "{token}"\n')  # line 5
    (repo / "inventory" / "models.py").write_text("".join(models))
    rows = "".join(f"    ({i}, {i * i}, {i * 3 % 7}),\n" for i in range(80000))
    (repo / "inventory" / "table.py").write_text("TABLE = [\n" + rows + "]\n")
    store = (repo / "inventory" / "store.py").read_text()
    (repo / "inventory" / "store.py").write_text(store.replace("REORDER_POINT = 5", "REORDER_POINT = 6"))
    git(repo, "add", ".")
    return token


def test_staged_audit_flags_secret_and_blob_passes_ordinary_change(repo, tiny_model, monkeypatch, capsys):
    token = stage_three_changes(repo)
    assert (repo / "inventory" / "table.py").stat().st_size > 2_000_000
    monkeypatch.chdir(repo)
    report = audit(staged=True, model=tiny_model)
    by = {f.path: f for f in report.files}
    assert set(by) == {"inventory/models.py", "inventory/table.py", "inventory/store.py"}
    secret = [f for f in by["inventory/models.py"].flags if f.kind == "surprising_line"]
    assert [f.line for f in secret] == [5]
    assert {f.kind for f in by["inventory/table.py"].flags} >= {"too_large"}
    assert by["inventory/store.py"].flags == []
    assert 0 < by["inventory/store.py"].added_info_bytes < 0.2 * by["inventory/store.py"].info_bytes
    assert report.failed
    code = main(["audit", "--staged", "--json", "--model", str(tiny_model.path)])
    out = capsys.readouterr().out
    assert code == AUDIT_FAILED
    assert token not in out  # the suspicious value itself is never printed
    assert json.loads(out)["failed"] is True


def test_ordinary_change_passes(repo, tiny_model, monkeypatch):
    store = (repo / "inventory" / "store.py").read_text()
    (repo / "inventory" / "store.py").write_text(store.replace("REORDER_POINT = 5", "REORDER_POINT = 6"))
    git(repo, "add", ".")
    monkeypatch.chdir(repo)
    assert main(["audit", "--staged", "--model", str(tiny_model.path)]) == 0


def test_config_from_pyproject(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[tool.codeseed.audit]\nmax_file_bytes = 10\nignore = ['*.lock']\n")
    cfg = AuditConfig.from_pyproject(tmp_path)
    assert cfg.max_file_bytes == 10 and cfg.ignore == ["*.lock"]
    (tmp_path / "pyproject.toml").write_text("[tool.codeseed.audit]\nmax_fil_bytes = 10\n")
    with pytest.raises(Exception, match="unknown"):
        AuditConfig.from_pyproject(tmp_path)
