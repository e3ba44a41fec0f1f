"""Exact mode: choose, per file, the LM codec or the best classical codec; decode the LM stream back.

Text files (UTF-8, exact token round trip, at most LM_MAX_BYTES) are LM candidates. Candidates
are coded in batches (lmcodec); each then keeps whichever of its LM payload and its best classical
payload is smaller, so no file is stored larger than zstd/xz would store it. After encoding, pack
decodes the LM stream again (unless verify=False) and stores any file that does not round-trip
with a classical codec instead, saying so.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass

from codeseed import codecs, lmcodec
from codeseed.archive import Archive, Entry
from codeseed.errors import ArchiveError, ModelMismatchError
from codeseed.model import CodeModel
from codeseed.walk import SourceFile

LM_MAX_BYTES = 128_000  # larger files go to classical codecs: decoding is sequential within a file (schedule's
                        # 66 KB test file alone took minutes here), and semver's 240 KB uv.lock is mostly hashes
LM_CODEC = "lm"


@dataclass
class EncodedFile:
    codec: str
    payload: bytes
    meta: dict
    lm_bytes: int | None = None       # size of the LM payload, whether chosen or not
    classical_bytes: int = 0


def classical(f: SourceFile) -> EncodedFile:
    """The best classical encoding of a file; a symlink's target is stored as is."""
    name, payload = ("stored", f.data) if f.is_symlink else codecs.best_classical(f.data)
    return EncodedFile(name, payload, {}, None, len(payload))


def header_settings(model: CodeModel, settings: lmcodec.MixSettings) -> dict:
    import torch
    import transformers
    return {"lm": settings.to_dict(), "backend": {"torch": torch.__version__, "transformers": transformers.__version__}}


def encode(files: list[SourceFile], model: CodeModel, settings: lmcodec.MixSettings, verify: bool = True,
           progress=None) -> list[EncodedFile]:
    out = [classical(f) for f in files]
    cands = [i for i, f in enumerate(files) if not f.is_symlink and 0 < len(f.data) <= LM_MAX_BYTES]
    tokens = {i: model.tokenize_exact(files[i].data) for i in cands}
    cands = [i for i in cands if tokens[i]]
    batches = lmcodec.plan_batches([len(tokens[i]) for i in cands], settings.batch_rows)
    total = sum(len(tokens[i]) for i in cands)
    task = progress.add_task("LM encode", total=total * (2 if verify else 1)) if progress else None
    state = lmcodec.ArchiveState(settings)
    for b, batch in enumerate(batches):
        idx = [cands[j] for j in batch]
        payloads = lmcodec.encode_batch(model, state, [tokens[i] for i in idx])
        for i, payload in zip(idx, payloads):
            e = out[i]
            e.meta, e.lm_bytes = {"b": b, "n": len(tokens[i])}, len(payload)
            if len(payload) < e.classical_bytes:
                e.codec, e.payload = LM_CODEC, payload
        if progress:
            progress.advance(task, sum(len(tokens[i]) for i in idx))
    if verify:
        state = lmcodec.ArchiveState(settings)
        for b, batch in enumerate(batches):
            idx = [cands[j] for j in batch]
            lm = [out[i].codec == LM_CODEC for i in idx]
            got = lmcodec.decode_batch(model, state, [len(tokens[i]) for i in idx],
                                       [out[i].payload if is_lm else None for i, is_lm in zip(idx, lm)],
                                       [None if is_lm else tokens[i] for i, is_lm in zip(idx, lm)])
            for i, toks in zip(idx, got):
                if out[i].codec == LM_CODEC and toks != tokens[i]:
                    print(f"codeseed: warning: {files[i].path}: LM stream did not decode back; stored with "
                          "a classical codec instead", file=sys.stderr)
                    out[i].codec, out[i].payload = codecs.best_classical(files[i].data)
            if progress:
                progress.advance(task, sum(len(tokens[i]) for i in idx))
    return out


def check_model(header_model: dict | None, model: CodeModel) -> None:
    if not header_model:
        return
    if header_model.get("sha256") != model.id.sha256:
        raise ModelMismatchError(
            f"archive was packed with model {header_model.get('id')!r} (sha256 {header_model.get('sha256', '')[:12]}...), "
            f"but the loaded model is {model.id.name!r} (sha256 {model.id.sha256[:12]}...); "
            "unpack with --model pointing to the packing model")


def decode(arc: Archive, contents: dict[str, bytes], model: CodeModel, progress=None) -> dict[str, bytes]:
    """Decode the archive's LM stream; `contents` holds the classical entries already decoded."""
    check_model(arc.header.model, model)
    try:
        settings = lmcodec.MixSettings.from_dict(arc.header.settings["lm"])
    except (KeyError, TypeError):
        raise ArchiveError(f"{arc.path}: corrupt archive (missing LM settings)") from None
    rows: dict[int, list[Entry]] = {}
    for e in arc.entries:
        if "b" in e.meta:
            rows.setdefault(int(e.meta["b"]), []).append(e)
    out: dict[str, bytes] = {}
    state = lmcodec.ArchiveState(settings)
    task = progress.add_task("LM decode", total=sum(int(e.meta["n"]) for r in rows.values() for e in r)) \
        if progress else None
    for b in sorted(rows):
        entries = rows[b]
        known = []
        for e in entries:
            if e.codec == LM_CODEC:
                known.append(None)
            else:
                known.append(model.tokenize_exact(contents[e.path]))
        try:
            toks = lmcodec.decode_batch(model, state, [int(e.meta["n"]) for e in entries],
                                        [arc.payload(e) if e.codec == LM_CODEC else None for e in entries], known)
        except (ValueError, RuntimeError, IndexError) as err:
            raise ArchiveError(f"{arc.path}: corrupt LM stream in batch {b} ({err})") from None
        for e, t in zip(entries, toks):
            if e.codec == LM_CODEC:
                out[e.path] = model.decode(t).encode("utf-8")
        if progress:
            progress.advance(task, sum(int(e.meta["n"]) for e in entries))
    return out
