"""`codeseed audit`: secrets and encoded data a change adds, and how much information it adds.

Four detectors look at the lines in scope (the lines a change adds with `--staged`/`--diff`, every
line of the files named otherwise), each a flag kind that configuration can switch off:

- `known_secret`: a known credential format (cloud access keys, service tokens, private key
  blocks, JWTs, URLs with a password), found by detect-secrets' format plugins.
- `secret_assignment`: a literal value given to a name like password/secret/token/credential/
  api_key (`NAME = "..."`, `name: ...`, `NAME=...` outside code), unless it is a placeholder or a
  reference, or the model finds it ordinary text (under `assignment_bits_per_char`).
- `url_password`: the password of `scheme://user:password@host`, on the same terms.
- `surprising_string`: a run of at least `min_string_length` token characters (letters of two
  cases or letters and digits, base64 and URL-safe symbols) that the model finds random: on
  average at least `string_bits_per_char` bits per character *in absolute terms*, and a quarter
  of its characters at most under `string_floor_bits_per_char` (random tokens cost the bundled
  model about 7 bits/char; identifiers, words and most names 1-4; a slug with one unknown name in
  it is cheap elsewhere), so a file made only of secrets is caught as well. Hex-only runs
  (hashes, commit ids, UUIDs) are left to the other detectors.

The model is loaded lazily: only when a candidate needs its surprisal, when `--measure` asks for
the information of every file, or when the cheap zstd estimate says a limit may be crossed. It
scores the changed region of a file with up to `context_chars` of the file before it, so the bits
are those of the change in its context. Values found are never printed: a flag names the file,
the line and, for baselines, the SHA-256 of the value.

Limits and switches come from `[tool.codeseed.audit]` in the repository's pyproject.toml
(AuditConfig below); a line containing `codeseed: allow` is never flagged; `--baseline FILE`
holds accepted findings (path, kind, hash of the value), so only new ones fail.
"""
from __future__ import annotations

import fnmatch
import hashlib
import json
import math
import re
import subprocess
import tomllib
from collections import Counter
from dataclasses import asdict, dataclass, field
from difflib import SequenceMatcher
from pathlib import Path

import numpy as np

from codeseed.codecs import CLASSICAL
from codeseed.errors import InputError

ALLOW_MARK = "codeseed: allow"
BASELINE_VERSION = 1
KINDS = {
    "known_secret": "a known credential format (detect-secrets plugins)",
    "secret_assignment": "a literal value given to a password/secret/token/key name",
    "url_password": "a password in a URL (scheme://user:password@host)",
    "surprising_string": "a run of token characters the model finds random: a key, token or encoded data",
    "too_large": "a file over max_file_bytes",
    "binary": "a binary or non-UTF-8 file",
    "generated": "a file under generated_bits_per_byte: generated, vendored or repetitive",
    "too_much_information": "a change adding more than max_added_info_bytes of information",
}
SECRET_KINDS = ("known_secret", "secret_assignment", "url_password", "surprising_string")


@dataclass
class AuditConfig:
    max_file_bytes: int = 1_000_000          # flag files larger than this
    max_added_info_bytes: int = 200_000      # flag a change adding more information than this
    max_score_bytes: int = 256_000           # larger files: information estimated with zstd, not scored
    min_string_length: int = 20              # surprising_string: shortest run considered
    string_bits_per_char: float = 6.0        # surprising_string: mean model bits/char of the run, at least,
    string_floor_bits_per_char: float = 4.5  # ... and its 25th percentile at least (a name in a slug is not enough)
    assignment_bits_per_char: float = 2.0    # secret_assignment, url_password: the value's bits/char, at least
    min_assignment_length: int = 8           # secret_assignment: shortest value considered
    context_chars: int = 1000                # file text before a scored region (the model sees 256 tokens)
    generated_bits_per_byte: float = 0.25    # flag files below this (with at least 4 KB)
    disable: list[str] = field(default_factory=lambda: ["binary"])  # flag kinds switched off
    ignore: list[str] = field(default_factory=list)                 # fnmatch patterns of paths

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
        cfg = cls(**{k.replace("-", "_"): v for k, v in known.items()})
        bad = set(cfg.disable) - set(KINDS)
        if bad:
            raise InputError(f"{p}: [tool.codeseed.audit] disable: unknown flag kinds {', '.join(sorted(bad))} "
                             f"(known: {', '.join(KINDS)})")
        return cfg

    def on(self, kind: str) -> bool:
        return kind not in self.disable


@dataclass
class Flag:
    kind: str                    # one of KINDS
    message: str
    line: int | None = None      # 1-based; None for file- and change-level flags
    score: float | None = None   # mean bits/char of the value under the model, where measured
    end_line: int | None = None  # last line of a flag over consecutive lines (a key block, a blob)
    secret_hash: str | None = None  # SHA-256 (hex) of the value, for baselines; never the value


@dataclass
class FileAudit:
    path: str
    raw_bytes: int
    zstd_bytes: int
    info_bytes: float            # bits under the model / 8 (zstd estimate where not scored)
    bits_per_byte: float
    added_info_bytes: float      # information in the lines added (model bits in context, or zstd delta)
    scored: bool                 # the model scored the whole file (info_bytes is not an estimate)
    flags: list[Flag] = field(default_factory=list)
    added_scored: bool = False   # added_info_bytes is the model's, not a zstd estimate


@dataclass
class AuditReport:
    files: list[FileAudit]
    flags: list[Flag]            # change-level flags
    model_loaded: bool = False
    accepted: int = 0            # findings dropped because the baseline holds them

    @property
    def failed(self) -> bool:
        return bool(self.flags) or any(f.flags for f in self.files)

    def to_dict(self) -> dict:
        return {"failed": self.failed, "files": [asdict(f) for f in self.files], "flags": [asdict(f) for f in self.flags],
                "added_info_bytes": sum(f.added_info_bytes for f in self.files), "model_loaded": self.model_loaded,
                "accepted_by_baseline": self.accepted}


# ---------------------------------------------------------------- detectors

def _hash(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogateescape")).hexdigest()


_FORMAT_PLUGINS = None
# detect-secrets plugins for known formats. Left out: its two entropy plugins (the model's surprisal
# replaces them), KeywordDetector (secret_assignment, which also asks the model) and IPPublicDetector
# (an address is not a credential).
_NOT_FORMATS = {"Base64HighEntropyString", "HexHighEntropyString", "KeywordDetector", "IPPublicDetector"}


def _format_plugins() -> list:
    global _FORMAT_PLUGINS
    if _FORMAT_PLUGINS is None:
        from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
        _FORMAT_PLUGINS = [cls() for cls in get_mapping_from_secret_type_to_class().values()
                           if cls.__name__ not in _NOT_FORMATS]
    return _FORMAT_PLUGINS


def known_formats(line: str) -> list[tuple[str, str]]:
    """(detect-secrets type, value) of every known credential format in one line. Verification
    (a network call) is never made: only `analyze_string`, the plugins' regular expressions, runs."""
    found = []
    for plugin in _format_plugins():
        for value in plugin.analyze_string(line):
            found.append((plugin.secret_type, value))
    return found


def _confirmed(typ: str, line: str, s: int, e: int, cfg: AuditConfig) -> bool:
    """A format match that is a credential, not a placeholder, a documented example (AWS's
    ...EXAMPLE key, `user:password@host`) or a scanner's own pattern ('BEGIN RSA PRIVATE KEY' in a
    regex): PEM blocks start with five dashes; URL passwords go through url_passwords' checks."""
    if typ == "Private Key":
        return "-----BEGIN" in line
    if typ == "Basic Auth Credentials":
        return bool(url_passwords(line, cfg))
    return not _placeholder(line[s:e])


# A name that says its value is a credential: split into parts at _ - . and camelCase, then
# any part below, or `key` after one of KEY_OWNERS (API_KEY, SECRET_KEY, stripe_key is not enough).
SECRET_WORDS = {"password", "passwd", "pwd", "pass", "passphrase", "secret", "secrets", "token", "tokens",
                "credential", "credentials", "apikey", "privatekey", "accesskey", "secretkey", "auth"}
# parts that make the name describe a credential rather than hold one (token_type, secret_name, AUTH_HEADER)
META_PARTS = {"type", "types", "str", "id", "ids", "name", "names", "url", "uri", "endpoint", "file", "path", "dir",
              "env", "var", "header", "prefix", "suffix", "pattern", "regex", "field", "format", "kind", "cls",
              "class", "count", "len", "length", "size", "label", "param", "arg", "option", "help", "doc",
              "description", "message", "msg", "error", "grant", "scope", "method", "mode", "attr", "column",
              "location", "expiry", "expires", "expiration", "ttl", "timeout", "limit", "max", "min", "hash"}
KEY_OWNERS = {"api", "secret", "private", "access", "auth", "signing", "encryption", "client", "master",
              "app", "account", "service", "consumer", "session", "jwt", "hmac", "license", "webhook", "admin"}
_NAME_PART = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
# NAME = value, NAME: value, "name": value, NAME=value, name := value, name => value; type hints allowed
_ASSIGN = re.compile(r"""(?P<name>[A-Za-z_][\w.\-]*)["']?\s*(?::\s*[A-Za-z_][\w\[\], |.]*\s*)?(?:==?|:=|=>|:)\s*"""
                     r"""(?:(?P<q>["'`])(?P<qv>(?:\\.|(?!(?P=q)).)*)(?P=q)|(?P<uv>[^\s"'`,;#)\]}]+))""")
_PLACEHOLDER = re.compile(r"(?i)^(<.*>|\$\{.*\}|\{\{.*\}\}|%\(.*\)s|\$[A-Za-z_]\w*|\*+|x+|\.+|none|null|true|false)$"
                          r"|example|changeme|change_me|placeholder|dummy|redacted|your[_-]|fake|sample|xxxx|\.\.\.$|…")
# a value without digits that names itself (my-secret, expired_token, fal-ai-api-key): a label, not a credential
_SELF_NAMED = re.compile(r"(?i)secret|token|passw|pwd|key|cred|^my")
_RUN = re.compile(r"[A-Za-z0-9+/_\-]+={0,2}")
_HEX = re.compile(r"^[0-9a-fA-F\-_/]+$")
CODE_SUFFIXES = (".py", ".pyi", ".js", ".jsx", ".ts", ".tsx", ".go", ".rs", ".java", ".kt", ".c", ".h", ".cc",
                 ".cpp", ".hpp", ".cs", ".rb", ".php", ".swift", ".scala")
# an unquoted value that is an expression or a reference: a call, an index, an attribute path, $VAR
_EXPRESSION = re.compile(r"[(\[]|^[$%]|^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$")
# scheme://user:password@host: what RFC 3986 allows and what people write (unescaped ! * # ? +)
_URL_PASSWORD = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://(?P<user>[^\s:/@'\"`<>\[\]{}]*):(?P<pw>[^\s/@'\"`<>\[\]{}]+)@"
                           r"[^\s/@'\"`]")


def _code_file(path: str) -> bool:
    return path.lower().endswith(CODE_SUFFIXES)


def url_passwords(line: str, cfg: AuditConfig) -> list[tuple[int, int]]:
    """(start, end) of each password in a URL of the line, placeholders left out."""
    out = []
    for m in _URL_PASSWORD.finditer(line):
        pw = m.group("pw")
        if len(pw) < 6 or _placeholder(pw):
            continue
        out.append((m.start("pw"), m.end("pw")))
    return out


def secret_name(name: str) -> bool:
    parts = [p.lower() for p in _NAME_PART.findall(name.split(".")[-1])]
    if any(p in META_PARTS for p in parts):
        return False
    if any(p in SECRET_WORDS for p in parts):
        return True
    return any(p in ("key", "keys") and i > 0 and parts[i - 1] in KEY_OWNERS for i, p in enumerate(parts))


def assignments(line: str, path: str, cfg: AuditConfig) -> list[tuple[str, int, int]]:
    """(name, start, end) of each literal value given to a credential-like name in one line."""
    out = []
    for m in _ASSIGN.finditer(line):
        if not secret_name(m.group("name")):
            continue
        quoted = m.group("qv") is not None
        start, end = (m.start("qv"), m.end("qv")) if quoted else (m.start("uv"), m.end("uv"))
        value = line[start:end]
        if len(value) < cfg.min_assignment_length or _placeholder(value) or any(ch.isspace() for ch in value) \
                or _classes(value, symbols=True) < 2:
            continue  # a placeholder, a label, prose, or a single word
        if not quoted and (_code_file(path) or _EXPRESSION.search(value)):
            continue  # in code a literal is quoted: unquoted is an expression (os.environ[...], a call)
        out.append((m.group("name"), start, end))
    return out


def _classes(run: str, symbols: bool = False) -> int:
    """How many of lower case, upper case, digits (and, with `symbols`, anything else) `run` has."""
    n = any(c.islower() for c in run) + any(c.isupper() for c in run) + any(c.isdigit() for c in run)
    return n + (symbols and any(not c.isalnum() for c in run))


def _placeholder(value: str) -> bool:
    return bool(_PLACEHOLDER.search(value)) or len(set(value)) < 4 or \
        (not any(c.isdigit() for c in value) and bool(_SELF_NAMED.search(value)))


def _char_entropy(run: str) -> float:
    n = len(run)
    return -sum(c / n * math.log2(c / n) for c in Counter(run).values())


def string_candidates(line: str, cfg: AuditConfig) -> list[tuple[int, int]]:
    """(start, end) of runs of token characters that could be random: long enough, of at least two
    character classes (lower, upper, digit), not hex-only, not a data URI or the rest of a URL or path,
    and varied (>= 3 bits of character entropy; random runs of 20+ characters have 4 or more). The
    model decides."""
    out = []
    for m in _RUN.finditer(line):
        run = m.group()
        if len(run) < cfg.min_string_length or _HEX.match(run) or _classes(run) < 2:
            continue
        before = line[max(0, m.start() - 7):m.start()]
        if before.endswith(("base64,", ".", "/", "@")) or _char_entropy(run) < 3.0:
            continue  # a data URI; a URL's or a path's continuation (after a domain or a folder)
        out.append((m.start(), m.end()))
    return out


_TOKEN_CHAR = re.compile(r"""[^\s"'`,;=()<>\[\]{}]""")


def _enclosing(line: str, value: str) -> tuple[int, int]:
    """Span of the whole token around `value` in `line`: plugins may report only part of a match
    (a regex group such as `ghp`), and the baseline hashes the whole value."""
    s = line.find(value)
    if s < 0:
        return 0, len(line)
    e = s + len(value)
    while s > 0 and _TOKEN_CHAR.match(line[s - 1]):
        s -= 1
    while e < len(line) and _TOKEN_CHAR.match(line[e]):
        e += 1
    return s, e


@dataclass
class _Candidate:
    kind: str
    line: int                     # 0-based
    start: int                    # offsets in the line
    end: int
    label: str                    # what the message says: a format's type, a name
    bits: float | None = None     # mean bits/char, filled in once scored
    floor: float = 0.0            # 25th percentile of the bits/char


def _candidates(lines: list[str], scope: list[int], path: str, cfg: AuditConfig) -> list[_Candidate]:
    out = []
    for i in scope:
        line = lines[i].rstrip("\r\n")
        if ALLOW_MARK in line or not line.strip():
            continue
        taken: list[tuple[int, int]] = []
        if cfg.on("known_secret"):
            for typ, value in known_formats(line):
                s, e = _enclosing(line, value)
                if not _confirmed(typ, line, s, e, cfg):
                    continue
                out.append(_Candidate("known_secret", i, s, e, typ))
                taken.append((s, e))
        if cfg.on("url_password"):
            for s, e in url_passwords(line, cfg):
                if not any(a < e and s < b for a, b in taken):
                    out.append(_Candidate("url_password", i, s, e, "a URL"))
                    taken.append((s, e))
        if cfg.on("secret_assignment"):
            for name, s, e in assignments(line, path, cfg):
                if not any(a < e and s < b for a, b in taken):
                    out.append(_Candidate("secret_assignment", i, s, e, name))
                    taken.append((s, e))
        if cfg.on("surprising_string"):
            for s, e in string_candidates(line, cfg):
                if not any(a < e and s < b for a, b in taken):
                    out.append(_Candidate("surprising_string", i, s, e, ""))
    return out


def _needs_bits(c: _Candidate) -> bool:
    return c.kind != "known_secret"


def _decide(c: _Candidate, cfg: AuditConfig) -> bool:
    if c.kind == "known_secret":
        return True
    if c.kind in ("secret_assignment", "url_password"):
        return c.bits is None or c.bits >= cfg.assignment_bits_per_char
    return c.bits is not None and c.bits >= cfg.string_bits_per_char and c.floor >= cfg.string_floor_bits_per_char


def _flags_from(cands: list[_Candidate], lines: list[str]) -> list[Flag]:
    """One flag per finding; consecutive surprising lines (a key block, a wrapped blob) are one flag."""
    flags: list[Flag] = []
    for c in sorted(cands, key=lambda c: (c.line, c.start)):
        value = lines[c.line][c.start:c.end]
        bits = None if c.bits is None else round(c.bits, 2)
        how = f", {c.bits:.1f} bits/char under the model" if c.bits is not None else ""
        prev = flags[-1] if flags else None
        if (c.kind == "surprising_string" and prev is not None and prev.kind == c.kind
                and (prev.end_line or prev.line) in (c.line, c.line + 1)):
            prev.end_line = c.line + 1
            prev.secret_hash = _hash(prev.secret_hash + value)  # chained: still no value stored
            prev.message = f"lines {prev.line}-{c.line + 1}: random-looking strings (a key block or encoded data?)"
            continue
        if c.kind == "known_secret":
            msg = f"{c.label} ({len(value)} characters)"
        elif c.kind == "url_password":
            msg = f"a password in a URL ({len(value)} characters{how})"
        elif c.kind == "secret_assignment":
            msg = f"a literal value for `{c.label}` ({len(value)} characters{how})"
        else:
            msg = f"a random-looking string of {len(value)} characters{how}: a key, token or encoded data?"
        flags.append(Flag(c.kind, msg, c.line + 1, bits, None, _hash(value)))
    return flags


# ---------------------------------------------------------------- scoring

class LazyModel:
    """The CodeModel, loaded on first use (importing torch and loading weights take seconds)."""

    def __init__(self, model=None):
        self._spec, self._model = model, None

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def get(self):
        if self._model is None:
            if hasattr(self._spec, "char_bits"):
                self._model = self._spec
            else:
                from codeseed.model import CodeModel
                self._model = OneThread(CodeModel(self._spec))
        return self._model


class OneThread:
    """A model whose scoring runs on one thread: the audit's passes are small, and two threads on a
    busy 2-core machine were 6.5x slower than one (benchmarks/RESULTS.md, issue 17)."""

    def __init__(self, model):
        self.model = model

    def char_bits(self, text: str) -> np.ndarray:
        from codeseed.engine import pinned_threads
        with pinned_threads(1):
            return self.model.char_bits(text)


def _line_starts(lines: list[str]) -> np.ndarray:
    return np.cumsum([0] + [len(x) for x in lines])


def score_region(model, text: str, starts: np.ndarray, first: int, last: int, context_chars: int
                 ) -> tuple[int, np.ndarray]:
    """Bits per character of lines first..last (0-based) of `text` after up to `context_chars`
    characters of the file before them (from a line start). Returns (offset of the scored text in
    `text`, per-character bits of text[offset:end of line `last`])."""
    a = int(starts[first])
    if a > context_chars:
        b = int(np.searchsorted(starts, a - context_chars))  # first line starting inside the context
        a = int(starts[min(b, first)])
    else:
        a = 0
    return a, model.char_bits(text[a:int(starts[last + 1])])


# ---------------------------------------------------------------- one file

def _decode(data: bytes | None) -> str | None:
    if data is None or b"\0" in data[:8192]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def added_lines(old: str | None, new: str) -> list[int]:
    """0-based indices of the lines of `new` that a line diff from `old` marks added (all for a new file)."""
    new_lines = new.splitlines(keepends=True)
    if old is None:
        return list(range(len(new_lines)))
    old_lines = old.splitlines(keepends=True)
    out = []
    for tag, _, _, j1, j2 in SequenceMatcher(None, old_lines, new_lines, autojunk=False).get_opcodes():
        if tag != "equal":
            out.extend(range(j1, j2))
    return out


@dataclass
class _Work:
    """One file in the audit, between the cheap pass and the model pass."""
    fa: FileAudit
    data: bytes
    old: bytes | None
    text: str | None
    lines: list[str]
    scope: list[int]              # lines flags may concern (0-based)
    added: list[int]              # lines whose information counts as added
    cands: list[_Candidate]


def _zstd_added(old: bytes | None, data: bytes, zstd_bytes: int) -> float:
    if old is None:
        return float(zstd_bytes)
    zstd = CLASSICAL["zstd"].encode
    return float(max(0, len(zstd(old + data)) - len(zstd(old))))


def _prepare(path: str, data: bytes, old: bytes | None, change: bool, cfg: AuditConfig) -> _Work:
    zstd_bytes = len(CLASSICAL["zstd"].encode(data)) if data else 0
    fa = FileAudit(path, len(data), zstd_bytes, float(zstd_bytes), 8 * zstd_bytes / len(data) if data else 0.0,
                   0.0, False)
    if len(data) > cfg.max_file_bytes and cfg.on("too_large"):
        fa.flags.append(Flag("too_large", f"{len(data):,} bytes (limit {cfg.max_file_bytes:,})"))
    text = _decode(data)
    if text is None and cfg.on("binary"):
        fa.flags.append(Flag("binary", "binary or not UTF-8 text"))
    old_text = _decode(old) if change else None
    fa.added_info_bytes = _zstd_added(old if change else None, data, zstd_bytes)
    if text is None:
        return _Work(fa, data, old, None, [], [], [], [])
    lines = text.splitlines(keepends=True)
    added = added_lines(old_text if change and old is not None else None, text)
    if change and old is not None and old_text is None:
        added = list(range(len(lines)))  # was binary: everything is new text
    scope = added if change else list(range(len(lines)))
    cands = _candidates(lines, scope, path, cfg) if len(data) <= cfg.max_file_bytes else []
    return _Work(fa, data, old, text, lines, scope, added, cands)


def _clusters(marks: list[int], starts: np.ndarray, gap: int) -> list[tuple[int, int]]:
    """Sorted line indices grouped into (first, last) runs whose lines lie within `gap` characters."""
    out: list[tuple[int, int]] = []
    for i in marks:
        if out and int(starts[i]) - int(starts[out[-1][1] + 1]) < gap:
            out[-1] = (out[-1][0], i)
        else:
            out.append((i, i))
    return out


def _score(w: _Work, model, cfg: AuditConfig, whole: bool, info: bool) -> None:
    """Fill in the candidates' mean bits/char, scoring only the lines around them, each region after
    up to `context_chars` of the file before it (`whole`: the whole file, giving its information);
    with `info`, also the lines added, for the information the change adds."""
    if w.text is None or not w.text:
        return
    if len(w.data) > cfg.max_score_bytes:
        whole = info = False  # only the regions around candidates; the information stays a zstd estimate
    starts = _line_starts(w.lines)
    if whole:
        regions = [(0, len(w.lines) - 1)]
    else:
        marks = {c.line for c in w.cands if _needs_bits(c)} | (set(w.added) if info else set())
        regions = _clusters(sorted(marks), starts, cfg.context_chars)
    added_bits = 0.0
    for first, last in regions:
        off, bits = score_region(model, w.text, starts, first, last, cfg.context_chars)
        for c in w.cands:
            if first <= c.line <= last:
                a = int(starts[c.line]) + c.start - off
                seg = bits[a:a + c.end - c.start]
                c.bits = float(seg.mean()) if len(seg) else None
                c.floor = float(np.quantile(seg, 0.25)) if len(seg) else 0.0
        for i in w.added:
            if first <= i <= last:
                added_bits += float(bits[int(starts[i]) - off:int(starts[i + 1]) - off].sum())
        if whole:
            w.fa.scored = True
            w.fa.info_bytes = float(bits.sum()) / 8
            w.fa.bits_per_byte = 8 * w.fa.info_bytes / len(w.data)
    if whole or info:
        w.fa.added_info_bytes = added_bits / 8
        w.fa.added_scored = True


# ---------------------------------------------------------------- git

def _git(root: Path, *args: str) -> bytes | None:
    r = subprocess.run(["git", "-C", str(root), *args], capture_output=True)
    return r.stdout if r.returncode == 0 else None


def git_root(start: Path) -> Path | None:
    out = _git(start, "rev-parse", "--show-toplevel")
    return Path(out.decode().strip()) if out else None


def _name_status(out: bytes) -> list[tuple[str, str]]:
    """(old path, new path) from `git diff --name-status -z` output (renames and copies give two paths)."""
    fields = [p for p in out.decode("utf-8", "surrogateescape").split("\0") if p]
    pairs, i = [], 0
    while i < len(fields):
        status = fields[i]
        if status[0] in "RC":
            pairs.append((fields[i + 1], fields[i + 2]))
            i += 3
        else:
            pairs.append((fields[i + 1], fields[i + 1]))
            i += 2
    return pairs


def staged_changes(root: Path) -> list[tuple[str, bytes, bytes | None]]:
    """(path, staged contents, HEAD contents or None) of every added, copied, renamed or modified file."""
    out = _git(root, "diff", "--cached", "--name-status", "-z", "-M", "--diff-filter=ACMR")
    if out is None:
        raise InputError(f"{root}: not a git repository (needed for --staged)")
    changes = []
    for old_path, path in _name_status(out):
        staged = _git(root, "show", f":{path}")
        if staged is not None:
            changes.append((path, staged, _git(root, "show", f"HEAD:{old_path}")))
    return changes


def diff_changes(root: Path, rev: str) -> list[tuple[str, bytes, bytes | None]]:
    """(path, working-tree contents, contents at `rev` or None) of every file changed since `rev`
    (committed or not, like `git diff REV`)."""
    if rev.startswith("-") or _git(root, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}") is None:
        raise InputError(f"{rev}: not a revision of the git repository at {root}")
    out = _git(root, "diff", "--name-status", "-z", "-M", "--diff-filter=ACMR", rev, "--")
    if out is None:
        raise InputError(f"{root}: git diff {rev} failed")
    changes = []
    for old_path, path in _name_status(out):
        p = root / path
        if p.is_file() and not p.is_symlink():
            changes.append((path, p.read_bytes(), _git(root, "show", f"{rev}:{old_path}")))
    return changes


def path_files(paths: list[Path], root: Path) -> list[tuple[str, bytes, bytes | None]]:
    """Files named, and the files of folders named (git's list of tracked and untracked-not-ignored
    files in a work tree, else a walk honouring .gitignore: codeseed.walk.discover). No old version:
    every line is in scope."""
    from codeseed.walk import discover
    rroot = root.resolve()
    out: dict[str, bytes] = {}

    def rel(p: Path) -> str:
        r = p.resolve()
        return r.relative_to(rroot).as_posix() if rroot in r.parents else p.as_posix()

    for p in paths:
        if p.is_dir():
            for f in discover(p):
                if not f.is_symlink:
                    out[rel(p / f.path)] = f.data
        elif p.is_file():
            out[rel(p)] = p.read_bytes()
        elif p.exists():
            raise InputError(f"{p}: not a file or folder")
        else:
            raise InputError(f"{p}: no such file or folder")
    return [(k, v, None) for k, v in out.items()]


# ---------------------------------------------------------------- baseline

def _baseline_key(path: str, flag: Flag) -> tuple[str, str, str]:
    return (path, flag.kind, flag.secret_hash or "")


def read_baseline(path: Path) -> set[tuple[str, str, str]]:
    """Accepted findings: {(file path, kind, SHA-256 of the value or '')}. InputError if unreadable."""
    try:
        data = json.loads(path.read_text("utf-8"))
        if data.get("version") != BASELINE_VERSION:
            raise ValueError(f"version {data.get('version')!r}, expected {BASELINE_VERSION}")
        return {(f, r["kind"], r.get("hashed_secret") or "") for f, rows in data["results"].items() for r in rows}
    except FileNotFoundError:
        raise InputError(f"{path}: no such baseline file (write one with --update-baseline)") from None
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise InputError(f"{path}: not a codeseed audit baseline ({e})") from None


def write_baseline(path: Path, report: AuditReport, keep: set[tuple[str, str, str]] = frozenset()) -> int:
    """Write every finding of `report` (plus `keep`) as accepted; return how many. Line numbers are
    written for people; matching uses the path, the kind and the value's hash only."""
    results: dict[str, list[dict]] = {}
    seen = set()
    for f in report.files:
        for flag in f.flags:
            key = _baseline_key(f.path, flag)
            if key not in seen:
                seen.add(key)
                results.setdefault(f.path, []).append({"kind": flag.kind, "line_number": flag.line,
                                                       "hashed_secret": flag.secret_hash})
    for p, kind, h in sorted(keep - seen):
        results.setdefault(p, []).append({"kind": kind, "line_number": None, "hashed_secret": h or None})
    body = {"version": BASELINE_VERSION, "generated_by": "codeseed audit --update-baseline",
            "results": {k: results[k] for k in sorted(results)}}
    path.write_text(json.dumps(body, indent=2) + "\n", "utf-8")
    return sum(len(v) for v in results.values())


# ---------------------------------------------------------------- the audit

def audit(paths: list[Path] | None = None, *, staged: bool = False, diff: str | None = None, model=None,
          cfg: AuditConfig | None = None, root: Path | None = None, baseline: Path | None = None,
          measure: bool = False) -> AuditReport:
    """Audit the staged changes (`staged`), the changes since revision `diff`, or the files and
    folders in `paths`. With a change, flags concern only the lines it adds, and `paths` (if any)
    narrows it to those files (pre-commit passes the staged files). `model` is a CodeModel, a model
    folder or None (the bundled one), loaded only if something needs scoring; `measure` scores every
    text file. Raises InputError for a missing path, a bad revision or configuration, or a bad baseline."""
    cwd = Path.cwd()
    root = root or git_root(cwd) or cwd
    cfg = cfg or AuditConfig.from_pyproject(root)
    change = staged or diff is not None
    if staged and diff is not None:
        raise InputError("use --staged or --diff, not both")
    if change:
        changes = staged_changes(root) if staged else diff_changes(root, diff)
        if paths:
            wanted = {p.resolve() for p in paths}
            changes = [c for c in changes if (root / c[0]).resolve() in wanted]
    else:
        changes = path_files(paths or [], root)
    skip = set(cfg.ignore)
    base_rel = None
    if baseline is not None:
        try:
            base_rel = baseline.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            base_rel = None
    changes = [c for c in changes if c[0] != base_rel and not any(fnmatch.fnmatch(c[0], pat) for pat in skip)]
    accepted = read_baseline(baseline) if baseline is not None and baseline.exists() else set()

    work = [_prepare(path, data, old, change, cfg) for path, data, old in changes]
    lm = LazyModel(model)
    # what needs the model: candidates to judge, files zstd finds repetitive enough that the model
    # might call them generated, a change whose zstd estimate crosses the information limit, --measure
    zstd_total = sum(w.fa.added_info_bytes for w in work)
    over = change and cfg.on("too_much_information") and zstd_total > cfg.max_added_info_bytes
    for w in work:
        near_generated = cfg.on("generated") and len(w.data) >= 4096 and \
            w.fa.bits_per_byte < 4 * cfg.generated_bits_per_byte
        whole = measure or near_generated
        info = over and bool(w.added)
        if whole or info or any(_needs_bits(c) for c in w.cands):
            _score(w, lm.get(), cfg, whole, info)
    files = []
    for w in work:
        w.fa.flags += _flags_from([c for c in w.cands if _decide(c, cfg)], w.lines)
        if cfg.on("generated") and len(w.data) >= 4096 and w.fa.bits_per_byte < cfg.generated_bits_per_byte:
            how = "" if w.fa.scored else " (zstd estimate)"
            w.fa.flags.append(Flag("generated", f"{w.fa.bits_per_byte:.2f} bits/byte{how}: generated, vendored "
                                                f"or repetitive?"))
        files.append(w.fa)
    dropped = 0
    for fa in files:
        keep = [f for f in fa.flags if _baseline_key(fa.path, f) not in accepted]
        dropped += len(fa.flags) - len(keep)
        fa.flags = keep
    flags = []
    added = sum(f.added_info_bytes for f in files)
    if change and cfg.on("too_much_information") and added > cfg.max_added_info_bytes:
        flags.append(Flag("too_much_information", f"the change adds {added:,.0f} bytes of information "
                                                  f"(limit {cfg.max_added_info_bytes:,})"))
    return AuditReport(files, flags, lm.loaded, dropped)
