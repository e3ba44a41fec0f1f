"""Exact mode: choose, per file, the LM codec or the best classical codec; decode the LM stream back.

Text files (UTF-8, exact token round trip, at most LM_MAX_BYTES) are LM candidates. Candidates
are coded in batches (lmcodec); each then keeps whichever of its LM payload and its best classical
payload is smaller, so no file is stored larger than zstd/xz would store it. After encoding, pack
decodes the LM stream again (unless verify=False) and stores any file that does not round-trip
with a classical codec instead, saying so.
"""
from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass

from codeseed import codecs, lmcodec
from codeseed.archive import Archive, Entry
from codeseed.candidates import MODEL_MAX_BYTES, model_candidate
from codeseed.errors import ArchiveError, ModelMismatchError
from codeseed.model import CodeModel
from codeseed.walk import SourceFile

LM_MAX_BYTES = MODEL_MAX_BYTES  # larger files go to classical codecs (candidates.py: the rule every mode applies)
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
    cands = [i for i, f in enumerate(files) if model_candidate(f)]
    tokens = {i: model.tokenize_exact(files[i].data) for i in cands}
    cands = [i for i in cands if tokens[i]]
    chunks = [(cands[f], a, e) for f, a, e in lmcodec.plan_chunks([len(tokens[i]) for i in cands],
                                                                      settings.chunk_tokens)]
    batches = lmcodec.plan_batches(len(chunks), settings.batch_rows)
    total = sum(len(tokens[i]) for i in cands)
    task = progress.add_task("LM encode", total=total * (2 if verify else 1)) if progress else None
    state = lmcodec.ArchiveState(settings)
    streams: dict[int, list[bytes]] = {i: [] for i in cands}
    for batch in batches:
        rows = [chunks[c] for c in batch]
        for (i, _, _), payload in zip(rows, lmcodec.encode_batch(model, state, [tokens[i][a:e] for i, a, e in rows])):
            streams[i].append(payload)
        if progress:
            progress.advance(task, sum(e - a for _, a, e in rows))
    for i in cands:
        e, payload = out[i], lmcodec.join_chunks(streams[i])
        e.meta, e.lm_bytes = {"n": len(tokens[i])}, len(payload)
        if len(payload) < e.classical_bytes:
            e.codec, e.payload = LM_CODEC, payload
    if verify:
        lm = {i: out[i].codec == LM_CODEC for i in cands}
        got = _decode_stream(model, settings, [(len(tokens[i]), out[i].payload if lm[i] else None,
                                                None if lm[i] else tokens[i]) for i in cands],
                             (lambda n: progress.advance(task, n)) if progress else None)
        for i, toks in zip(cands, got):
            if lm[i] and toks != tokens[i]:
                print(f"codeseed: warning: {files[i].path}: LM stream did not decode back; stored with "
                      "a classical codec instead", file=sys.stderr)
                out[i].codec, out[i].payload = codecs.best_classical(files[i].data)
    return out


def _decode_stream(model: CodeModel, settings: lmcodec.MixSettings,
                   files: list[tuple[int, bytes | None, list[int] | None]], advance=None) -> list[list[int]]:
    """Tokens of the files of an LM stream, in order; each is (token count, LM payload or None,
    known tokens when its payload is another codec's). Raises ValueError on a malformed stream."""
    chunks = lmcodec.plan_chunks([n for n, _, _ in files], settings.chunk_tokens)
    count = Counter(f for f, _, _ in chunks)
    per_file = {f: lmcodec.split_chunks(payload, count[f]) for f, (_, payload, _) in enumerate(files)
                if payload is not None}
    taken = {f: 0 for f in per_file}
    out: list[list[int]] = [[] for _ in files]
    state = lmcodec.ArchiveState(settings)
    for batch in lmcodec.plan_batches(len(chunks), settings.batch_rows):
        rows, payloads, known = [chunks[c] for c in batch], [], []
        for f, a, e in rows:
            if f in per_file:
                payloads.append(per_file[f][taken[f]])
                taken[f] += 1
                known.append(None)
            else:
                payloads.append(None)
                known.append(files[f][2][a:e])
        for (f, _, _), toks in zip(rows, lmcodec.decode_batch(model, state, [e - a for _, a, e in rows],
                                                              payloads, known)):
            out[f].extend(toks)
        if advance:
            advance(sum(e - a for _, a, e in rows))
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
    entries = [e for e in arc.entries if "n" in e.meta]  # the files of the LM stream, in archive order
    try:
        files = [(int(e.meta["n"]), arc.payload(e) if e.codec == LM_CODEC else None,
                  None if e.codec == LM_CODEC else model.tokenize_exact(contents[e.path])) for e in entries]
        if any(n <= 0 or (p is None and (k is None or len(k) != n)) for n, p, k in files):
            raise ValueError("token counts do not match")
    except (KeyError, TypeError, ValueError) as err:
        raise ArchiveError(f"{arc.path}: corrupt archive (bad LM entry meta: {err})") from None
    task = progress.add_task("LM decode", total=sum(n for n, _, _ in files)) if progress else None
    advance = (lambda n: progress.advance(task, n)) if progress else None
    try:
        toks = _decode_stream(model, settings, files, advance)
    except (ValueError, RuntimeError, IndexError) as err:
        raise ArchiveError(f"{arc.path}: corrupt LM stream ({err})") from None
    return {e.path: model.decode(t).encode("utf-8") for e, t in zip(entries, toks) if e.codec == LM_CODEC}
