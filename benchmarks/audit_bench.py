"""Planted-secret benchmark for `codeseed audit`: recall and false flags, codeseed and detect-secrets.

Secrets of 14 real formats are generated at run time from a seeded RNG (nothing secret-looking is
committed), planted at random lines of the eval-public trees and written as whole new files of
secrets (`.env` files and settings modules). Then, in the same run:

- codeseed in change mode (`audit --staged` on a git repository whose last commit is the clean tree:
  what the pre-commit hook sees) and in full mode (`audit TREE`, every line of every file);
- detect-secrets 1.5.0 with its default plugins and filters (`scan_file` on every file);
- codeseed's detectors one by one and without the model (an ablation, full mode).

A planted secret counts as found when a flag (a reported line) falls on one of its lines. False
flags are flags on the clean trees in full mode, per 100 clean files.

Held-out split: every file of the trees falls in `dev` or `test` by a hash of its path; secrets for
a split are planted only in its files, with its own RNG seed (dev 1, test 2), and the false flags
of a split are counted on its files only. Thresholds were chosen looking at `--split dev` only;
report `--split test`.

    python benchmarks/audit_bench.py ../shared/eval-public/sdist --split test --json benchmarks/results/audit_bench.json \
        [--clean-extra /tmp/unseen]   # more clean code the model never saw (see RESULTS.md)
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import random
import shutil
import string
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

ALNUM = string.ascii_letters + string.digits
B64 = ALNUM + "+/"
UPPER_DIGITS = string.ascii_uppercase + string.digits
WORDS = ["summer", "dragon", "monkey", "shadow", "master", "harbor", "violet", "falcon", "orange", "silver",
         "winter", "castle", "rocket", "garden", "pepper", "tiger", "coffee", "marble", "planet", "breeze"]


def rs(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def password(rng: random.Random) -> str:
    """Passwords people use: random with symbols, or words with digits and a symbol."""
    if rng.random() < 0.5:
        return rs(rng, ALNUM + "!#%&*+-.:?@^_~", rng.randint(10, 22))
    w = rng.sample(WORDS, 2)
    return w[0].capitalize() + rng.choice(["", "-", "_", "."]) + w[1] + str(rng.randint(10, 9999)) + \
        rng.choice("!#$%&*?@")


# Each format: (name, make(rng) -> (value, names it is usually assigned to)). The value is what
# is planted; a few are multi-line (private keys).
def _aws_id(rng):
    return "AKIA" + rs(rng, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16), ["AWS_ACCESS_KEY_ID", "aws_access_key_id"]


def _aws_secret(rng):
    return rs(rng, B64, 40), ["AWS_SECRET_ACCESS_KEY", "aws_secret_access_key"]


def _github(rng):
    return rng.choice(["ghp_", "gho_", "ghs_"]) + rs(rng, ALNUM, 36), ["GITHUB_TOKEN", "GH_TOKEN", "github_token"]


def _slack(rng):
    return f"xoxb-{rng.randint(10**10, 10**11)}-{rng.randint(10**12, 10**13)}-{rs(rng, ALNUM, 24)}", \
        ["SLACK_BOT_TOKEN", "slack_token"]


def _stripe(rng):
    return rng.choice(["sk_live_", "rk_live_"]) + rs(rng, ALNUM, rng.choice([24, 34, 99])), \
        ["STRIPE_SECRET_KEY", "stripe_api_key"]


def _sendgrid(rng):
    return f"SG.{rs(rng, ALNUM + '-_', 22)}.{rs(rng, ALNUM + '-_', 43)}", ["SENDGRID_API_KEY", "sendgrid_key"]


def _openai(rng):
    return f"sk-{rs(rng, ALNUM, 20)}T3BlbkFJ{rs(rng, ALNUM, 20)}", ["OPENAI_API_KEY", "openai_api_key"]


def _jwt(rng):
    head = b64url(json.dumps({"alg": rng.choice(["HS256", "RS256"]), "typ": "JWT"}).encode())
    body = b64url(json.dumps({"sub": str(rng.randint(1, 10**9)), "name": rng.choice(WORDS),
                              "iat": rng.randint(1_500_000_000, 1_800_000_000)}).encode())
    return f"{head}.{body}.{b64url(rng.randbytes(32))}", ["AUTH_TOKEN", "jwt", "bearer_token", "SESSION_TOKEN"]


def _private_key(rng):
    kind = rng.choice(["RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY"])
    body = base64.b64encode(rng.randbytes(rng.choice([121, 270, 600, 1190]))).decode()
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return "\n".join([f"-----BEGIN {kind}-----", *lines, f"-----END {kind}-----"]), ["PRIVATE_KEY", "private_key"]


def _url_password(rng):
    scheme = rng.choice(["postgres", "postgresql", "mysql", "redis", "amqp", "mongodb", "https"])
    user = rng.choice(["admin", "app", "deploy", "root", "svc_" + rng.choice(WORDS)])
    host = rng.choice(WORDS) + rng.choice([".internal", ".example.net", "-db.prod.local", ".cache.svc"])
    pw = password(rng).replace("@", "A").replace(":", "c").replace("/", "s")
    return f"{scheme}://{user}:{pw}@{host}:{rng.randint(1000, 9999)}/{rng.choice(WORDS)}", \
        ["DATABASE_URL", "BROKER_URL", "CACHE_URL", "dsn"]


def _config_password(rng):
    return password(rng), ["DB_PASSWORD", "password", "SMTP_PASSWORD", "admin_pass", "ldap_bind_password"]


def _random_token(rng):
    return rs(rng, ALNUM + rng.choice(["", "-_"]), rng.randint(20, 64)), \
        ["API_TOKEN", "SECRET_KEY", "api_key", "client_secret", "WEBHOOK_SECRET"]


def _base64_blob(rng):
    return base64.b64encode(rng.randbytes(rng.randint(24, 180))).decode(), \
        ["SIGNING_KEY", "ENCRYPTION_KEY", "license_blob", "FERNET_KEY"]


def _hex_key(rng):
    return rs(rng, "0123456789abcdef", rng.choice([32, 40, 64])), ["MAILGUN_API_KEY", "DATADOG_API_KEY", "secret"]


FORMATS = {"aws_access_key_id": _aws_id, "aws_secret_access_key": _aws_secret, "github_token": _github,
           "slack_token": _slack, "stripe_key": _stripe, "sendgrid_key": _sendgrid, "openai_key": _openai,
           "jwt": _jwt, "private_key_block": _private_key, "url_with_password": _url_password,
           "config_password": _config_password, "random_token": _random_token, "base64_blob": _base64_blob,
           "hex_api_key": _hex_key}
# Passwords in config assignments (the words) and hex keys only appear under their names:
# a bare password is a short human string, and bare hex is a hash as often as a key (a limitation).
ASSIGNED_ONLY = {"config_password", "hex_api_key"}
# names with no credential word: the value must stand out by itself
NEUTRAL_NAMES = ["DEFAULT_ID", "value", "ref", "data", "PAYLOAD", "fixture", "CONFIG_B", "item"]


@dataclass
class Planted:
    path: str            # relative to the tree
    first: int           # 1-based line range in the planted file
    last: int
    fmt: str
    placement: str       # assignment, neutral, prose, env_file, settings_file


def split_of(path: str) -> str:
    return "dev" if hashlib.sha256(path.encode()).digest()[0] % 2 == 0 else "test"


def _is_text(p: Path) -> bool:
    try:
        data = p.read_bytes()
        data.decode("utf-8")
        return b"\0" not in data
    except (OSError, UnicodeDecodeError):
        return False


def plant_line(rng: random.Random, fmt: str, path: str, indent: str) -> tuple[list[str], str]:
    """Lines to insert for one secret of format `fmt` in a file like `path`, and the placement."""
    value, names = FORMATS[fmt](rng)
    py = path.endswith(".py")
    if "\n" in value:  # a key block: as a string constant in code, as is elsewhere
        if py:
            return [f'{indent}{rng.choice(names)} = """{value.splitlines()[0]}', *value.splitlines()[1:-1],
                    f'{value.splitlines()[-1]}"""'], "assignment"
        return value.splitlines(), "prose"
    r = rng.random()
    if fmt in ASSIGNED_ONLY or r < 0.55:
        name, placement = rng.choice(names), "assignment"
    elif r < 0.8:
        name, placement = rng.choice(NEUTRAL_NAMES), "neutral"
    else:
        placement = "prose"
    if placement == "prose":
        if py:
            return [f"{indent}# e.g. {value}"], placement
        return [f"{indent}{rng.choice(['Use ', 'see ', 'value: ', ''])}{value}"], placement
    if py:
        return [f'{indent}{name} = "{value}"'], placement
    if path.endswith((".toml", ".cfg", ".ini")):
        return [f'{name} = "{value}"'], placement
    if path.endswith((".yaml", ".yml", ".cff")):
        return [f"{indent}{name.lower()}: {value}"], placement
    return [f"{indent}{name}={value}"], placement


def env_file(rng: random.Random) -> tuple[list[str], list[tuple[int, int, str]]]:
    lines, spans = ["# production environment"], []
    for fmt in rng.sample([f for f in FORMATS if f != "private_key_block"], 10):
        value, names = FORMATS[fmt](rng)
        lines.append(f"{rng.choice(names).upper()}={value}")
        spans.append((len(lines), len(lines), fmt))
        if rng.random() < 0.3:
            lines.append(rng.choice(["DEBUG=false", "LOG_LEVEL=info", "PORT=8080", "WORKERS=4", ""]))
    return lines, spans


def settings_file(rng: random.Random) -> tuple[list[str], list[tuple[int, int, str]]]:
    lines = ['"""Production settings."""', "import os", "", "DEBUG = False",
             'ALLOWED_HOSTS = ["app.example.net"]', ""]
    spans = []
    for fmt in rng.sample(list(FORMATS), 12):
        value, names = FORMATS[fmt](rng)
        if "\n" in value:
            block = value.splitlines()
            lines.append(f'{rng.choice(names).upper()} = """{block[0]}')
            lines += block[1:-1] + [f'{block[-1]}"""']
            spans.append((len(lines) - len(block) + 1, len(lines), fmt))
        else:
            lines.append(f'{rng.choice(names).upper()} = "{value}"')
            spans.append((len(lines), len(lines), fmt))
    lines += ["", 'TIME_ZONE = "UTC"', "USE_TZ = True"]
    return lines, spans


def plant_tree(tree: Path, split: str, rng: random.Random, per_tree: int) -> list[Planted]:
    """Plant `per_tree` secrets at random lines of the tree's text files of `split`, and add a .env
    file and a settings module; edit the files in place."""
    files = sorted(p for p in tree.rglob("*") if p.is_file() and ".git" not in p.parts and _is_text(p)
                   and split_of(p.relative_to(tree).as_posix()) == split)
    inserts: dict[Path, list[tuple[int, list[str], str, str]]] = {}
    fmts = list(FORMATS)
    for k in range(per_tree):
        p = rng.choice(files)
        n = len(p.read_text("utf-8").splitlines())
        fmt = fmts[k % len(fmts)]
        at = rng.randint(0, n)
        lines = p.read_text("utf-8").splitlines()
        nxt = lines[at] if at < n else ""
        indent = nxt[:len(nxt) - len(nxt.lstrip())] if p.suffix == ".py" else ""
        new, placement = plant_line(rng, fmt, p.name, indent)
        inserts.setdefault(p, []).append((at, new, fmt, placement))
    planted = []
    for p, ins in inserts.items():
        text = p.read_text("utf-8")
        lines = text.splitlines()
        offset = 0
        for at, new, fmt, placement in sorted(ins, key=lambda x: x[0]):
            pos = at + offset
            lines[pos:pos] = new
            planted.append(Planted(p.relative_to(tree).as_posix(), pos + 1, pos + len(new), fmt, placement))
            offset += len(new)
        p.write_text("\n".join(lines) + ("\n" if text.endswith("\n") or not text else ""), "utf-8")
    for name, make, placement in ((f"deploy/{split}.env", env_file, "env_file"),
                                  (f"deploy/settings_{split}_prod.py", settings_file, "settings_file")):
        lines, spans = make(rng)
        (tree / name).parent.mkdir(exist_ok=True)
        (tree / name).write_text("\n".join(lines) + "\n", "utf-8")
        planted += [Planted(name, a, b, fmt, placement) for a, b, fmt in spans]
    return planted


# ---------------------------------------------------------------- detectors under test

def codeseed_flags(result_files) -> dict[str, list[tuple[int, int, str]]]:
    out: dict[str, list[tuple[int, int, str]]] = {}
    for f in result_files:
        for fl in f.flags:
            if fl.line:
                out.setdefault(f.path, []).append((fl.line, fl.end_line or fl.line, fl.kind))
    return out


def detect_secrets_flags(tree: Path, rels: list[str]) -> dict[str, list[tuple[int, int, str]]]:
    from detect_secrets.core.scan import scan_file
    from detect_secrets.settings import default_settings
    out: dict[str, list[tuple[int, int, str]]] = {}
    with default_settings():
        for rel in rels:
            seen = set()  # one finding per secret and type in a file, as detect-secrets' own baseline counts
            for s in scan_file(str(tree / rel)):
                if (s.type, s.secret_hash) not in seen:
                    seen.add((s.type, s.secret_hash))
                    out.setdefault(rel, []).append((s.line_number, s.line_number, s.type))
    return out


def score(planted: list[Planted], flags: dict[str, list[tuple[int, int, str]]], prefix: str = "") -> dict:
    found = []
    for s in planted:
        hit = any(a <= s.last and s.first <= b for a, b, _ in flags.get(prefix + s.path, []))
        found.append(hit)
    by_fmt: dict[str, list[int]] = {}
    by_place: dict[str, list[int]] = {}
    for s, hit in zip(planted, found):
        by_fmt.setdefault(s.fmt, [0, 0])[0] += hit
        by_fmt[s.fmt][1] += 1
        by_place.setdefault(s.placement, [0, 0])[0] += hit
        by_place[s.placement][1] += 1
    return {"found": sum(found), "planted": len(planted), "recall": sum(found) / max(1, len(planted)),
            "by_format": by_fmt, "by_placement": by_place,
            "missed": [f"{s.path}:{s.first} {s.fmt} ({s.placement})" for s, hit in zip(planted, found) if not hit]}


class CachedModel:
    """The CodeModel with char_bits memoized: the ablations score the same texts again."""

    def __init__(self, model):
        self.model, self.cache, self.calls = model, {}, 0

    def char_bits(self, text):
        key = hashlib.sha256(text.encode("utf-8", "surrogateescape")).digest()
        if key not in self.cache:
            self.calls += 1
            self.cache[key] = self.model.char_bits(text)
        return self.cache[key]


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), "-c", "user.email=b@b", "-c", "user.name=b", *args], check=True,
                   capture_output=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sdist_dir", type=Path)
    ap.add_argument("--split", choices=["dev", "test"], default="test")
    ap.add_argument("--per-tree", type=int, default=60, help="secrets planted in each tree's files (default 60)")
    ap.add_argument("--model", type=Path)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--no-ablation", action="store_true")
    ap.add_argument("--clean-extra", type=Path, action="append", default=[],
                    help="another clean tree for false flags (its files split like the others), e.g. "
                         "packages the model never saw")
    args = ap.parse_args()
    from codeseed.audit import AuditConfig, OneThread, audit
    from codeseed.model import CodeModel
    from codeseed.walk import discover
    seed = {"dev": 1, "test": 2}[args.split]
    rng = random.Random(seed)
    work = Path(tempfile.mkdtemp(prefix="audit-bench-"))
    model = CachedModel(OneThread(CodeModel(args.model)))
    base_cfg = AuditConfig(disable=["binary", "generated", "too_large", "too_much_information"])
    result: dict = {"split": args.split, "seed": seed, "trees": {}}
    all_planted_staged, all_planted_full = [], []
    staged_flags, full_flags, ds_flags, clean_full, clean_ds = {}, {}, {}, {}, {}
    n_clean = 0
    t_cs = t_ds = 0.0
    clean_trees = []
    try:
        for tgz in sorted(args.sdist_dir.glob("*.tar.gz")):
            with tarfile.open(tgz) as tf:
                tf.extractall(work / "clean", filter="data")
            name = tgz.name[:-len(".tar.gz")]
            clean = work / "clean" / name
            clean_trees.append(clean)
            rels = sorted(f.path for f in discover(clean) if not f.is_symlink)  # what `codeseed audit TREE` reads
            mine = [r for r in rels if split_of(r) == args.split]
            n_clean += len(mine)
            # clean tree, full mode: every flag on this split's files is a false flag
            t0 = time.perf_counter()
            rep = audit([clean], model=model, cfg=base_cfg, root=work / "clean")
            t_cs += time.perf_counter() - t0
            for path, fl in codeseed_flags(rep.files).items():
                if split_of(path[len(name) + 1:]) == args.split:
                    clean_full[path] = fl
            t0 = time.perf_counter()
            ds = detect_secrets_flags(clean, mine)
            t_ds += time.perf_counter() - t0
            clean_ds.update({f"{name}/{k}": v for k, v in ds.items()})
            # planted: a git repository whose HEAD is the clean tree, the secrets staged
            repo = work / "planted" / name
            shutil.copytree(clean, repo)
            git(repo, "init", "-q")
            git(repo, "add", "-A", "-f")
            git(repo, "commit", "-qm", "clean", "--no-verify")
            planted = plant_tree(repo, args.split, rng, args.per_tree)
            git(repo, "add", "-A", "-f")
            cwd = os.getcwd()
            os.chdir(repo)
            try:
                rep = audit(staged=True, model=model, cfg=base_cfg, root=repo)
            finally:
                os.chdir(cwd)
            staged_flags.update({f"{name}/{k}": v for k, v in codeseed_flags(rep.files).items()})
            rep = audit([repo], model=model, cfg=base_cfg, root=repo)
            full_flags.update({f"{name}/{k}": v for k, v in codeseed_flags(rep.files).items()})
            touched = sorted({s.path for s in planted})
            ds_flags.update({f"{name}/{k}": v for k, v in detect_secrets_flags(repo, touched).items()})
            for s in planted:
                s.path = f"{name}/{s.path}"
            all_planted_staged += planted
            result["trees"][name] = {"files_in_split": len(mine), "planted": len(planted)}
        per100 = 100 / max(1, n_clean)
        extra_files = 0
        extra_cs, extra_ds = {}, {}
        for tree in args.clean_extra:
            mine = [f.path for f in discover(tree) if not f.is_symlink and split_of(f.path) == args.split]
            extra_files += len(mine)
            rep = audit([tree], model=model, cfg=base_cfg, root=tree)
            extra_cs.update({f"{tree.name}/{p}": v for p, v in codeseed_flags(rep.files).items() if split_of(p) == args.split})
            extra_ds.update({f"{tree.name}/{p}": v for p, v in detect_secrets_flags(tree, mine).items()})

        def false_flags(flags):
            return sum(len(v) for v in flags.values())

        def falses_listed(flags):
            return [f"{p}:{a} {k}" for p, v in sorted(flags.items()) for a, _, k in v]

        result["clean_files"] = n_clean
        result["planted"] = len(all_planted_staged)
        result["formats"] = len({s.fmt for s in all_planted_staged})
        result["codeseed_staged"] = score(all_planted_staged, staged_flags)
        result["codeseed_full"] = score(all_planted_staged, full_flags)
        result["detect_secrets"] = score(all_planted_staged, ds_flags)
        result["codeseed_false_flags"] = {"count": false_flags(clean_full), "per_100_files": false_flags(clean_full) * per100,
                                          "flags": falses_listed(clean_full), "seconds": round(t_cs, 1)}
        result["detect_secrets_false_flags"] = {"count": false_flags(clean_ds), "per_100_files": false_flags(clean_ds) * per100,
                                                "flags": falses_listed(clean_ds), "seconds": round(t_ds, 1)}
        if args.clean_extra:
            e100 = 100 / max(1, extra_files)
            result["extra_clean"] = {"trees": [str(t) for t in args.clean_extra], "files": extra_files,
                                     "codeseed": {"count": false_flags(extra_cs), "per_100_files": false_flags(extra_cs) * e100,
                                                  "flags": falses_listed(extra_cs)},
                                     "detect_secrets": {"count": false_flags(extra_ds),
                                                        "per_100_files": false_flags(extra_ds) * e100,
                                                        "flags": falses_listed(extra_ds)}}
        if not args.no_ablation:
            variants = {
                "known formats only (detect-secrets plugins)": {"disable": ["secret_assignment", "surprising_string"]},
                "secret_assignment only": {"disable": ["known_secret", "surprising_string"]},
                "surprising_string only (model)": {"disable": ["known_secret", "secret_assignment"]},
                "all but known formats": {"disable": ["known_secret"]},
                "all but secret_assignment": {"disable": ["secret_assignment"]},
                "all but surprising_string": {"disable": ["surprising_string"]},
                "no model (assignments kept whatever their surprisal)": {"disable": ["surprising_string"],
                                                                        "assignment_bits_per_char": 0.0},
                "all, strings at 5.0 bits/char (floor 4.5)": {"string_bits_per_char": 5.0},
                "all, strings at 7.0 bits/char (floor 4.5)": {"string_bits_per_char": 7.0},
                "all, strings with no floor (mean alone)": {"string_floor_bits_per_char": 0.0},
            }
            result["ablation"] = {}
            for label, change in variants.items():
                cfg = replace(base_cfg, **{**change, "disable": base_cfg.disable + change.get("disable", [])})
                fl, cl = {}, {}
                for name in result["trees"]:
                    rep = audit([work / "planted" / name], model=model, cfg=cfg, root=work / "planted" / name)
                    fl.update({f"{name}/{k}": v for k, v in codeseed_flags(rep.files).items()})
                    rep = audit([work / "clean" / name], model=model, cfg=cfg, root=work / "clean")
                    cl.update({p: v for p, v in codeseed_flags(rep.files).items()
                               if split_of(p[len(name) + 1:]) == args.split})
                ex = {}
                for tree in args.clean_extra:
                    rep = audit([tree], model=model, cfg=cfg, root=tree)
                    ex.update({f"{tree.name}/{p}": v for p, v in codeseed_flags(rep.files).items()
                               if split_of(p) == args.split})
                sc = score(all_planted_staged, fl)
                result["ablation"][label] = {"recall": sc["recall"], "found": sc["found"],
                                             "false_flags": false_flags(cl), "per_100_files": false_flags(cl) * per100,
                                             "extra_false_flags": false_flags(ex)}
        result["model_calls"] = model.calls
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


def print_report(r: dict) -> None:
    print(f"split {r['split']} (seed {r['seed']}): {r['planted']} planted secrets of {r['formats']} formats, "
          f"{r['clean_files']} clean files")
    for key, label in (("codeseed_staged", "codeseed audit --staged"), ("codeseed_full", "codeseed audit TREE"),
                       ("detect_secrets", "detect-secrets (defaults)")):
        s = r[key]
        print(f"  {label:28s} recall {s['found']}/{s['planted']} = {100 * s['recall']:.1f}%")
    for key, label in (("codeseed_false_flags", "codeseed"), ("detect_secrets_false_flags", "detect-secrets")):
        f = r[key]
        print(f"  false flags on clean files, {label}: {f['count']} ({f['per_100_files']:.2f} per 100 files, "
              f"{f['seconds']} s)")
        for x in f["flags"]:
            print(f"      {x}")
    print("  recall by format (codeseed --staged / codeseed full / detect-secrets):")
    for fmt in sorted(r["codeseed_staged"]["by_format"]):
        a, b, c = (r[k]["by_format"][fmt] for k in ("codeseed_staged", "codeseed_full", "detect_secrets"))
        print(f"    {fmt:24s} {a[0]:3d}/{a[1]:<3d} {b[0]:3d}/{b[1]:<3d} {c[0]:3d}/{c[1]:<3d}")
    print("  recall by placement (codeseed --staged / codeseed full / detect-secrets):")
    for pl in sorted(r["codeseed_staged"]["by_placement"]):
        a, b, c = (r[k]["by_placement"][pl] for k in ("codeseed_staged", "codeseed_full", "detect_secrets"))
        print(f"    {pl:24s} {a[0]:3d}/{a[1]:<3d} {b[0]:3d}/{b[1]:<3d} {c[0]:3d}/{c[1]:<3d}")
    for key in ("codeseed_staged", "codeseed_full"):
        if r[key]["missed"]:
            print(f"  missed by {key}: " + "; ".join(r[key]["missed"]))
    if "extra_clean" in r:
        x = r["extra_clean"]
        print(f"  extra clean trees {', '.join(x['trees'])}: {x['files']} files of this split")
        for key in ("codeseed", "detect_secrets"):
            print(f"    false flags, {key}: {x[key]['count']} ({x[key]['per_100_files']:.2f} per 100 files)")
            for f in x[key]["flags"]:
                print(f"      {f}")
    if "ablation" in r:
        print("  ablation (full mode; false flags on the eval-public files of the split, then on the extra trees):")
        for label, a in r["ablation"].items():
            print(f"    {label:52s} recall {100 * a['recall']:5.1f}%  false flags {a['false_flags']} "
                  f"({a['per_100_files']:.2f} per 100 files), extra {a['extra_false_flags']}")


if __name__ == "__main__":
    sys.exit(main())
