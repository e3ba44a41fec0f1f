"""Exact mode: one LM stream for the text files, the best classical codec for the rest, by measured size.

Text files (model candidates, candidates.py, whose tokens decode back to exactly their bytes) go
through the LM stream (lmcodec.py), each distinct content once. Scoring the stream gives every
file's exact coded size; a file keeps the stream only where that is smaller than its best classical
payload, and the stream is then range-coded with the kept files alone. The others stay in the stream
as *known* files: the decoder reads them from their classical payload and feeds their tokens, so
that every file's frequencies are what the encoder scored.

In the archive (format 3) the stream is one payload of codec "lm" whose decoded bytes are the kept
files back to back; each stream member carries its token count in meta ("n"), in index order, and
each kept file its place (`start`) in the decoded payload. Other copies of a member's content point
to the same data without a token count. Formats 1-2 coded each file alone with the float engine
(legacy.py), and still decode that way.
"""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from codeseed import codecs, lmcodec, packing
from codeseed.archive import HEADER_MODEL_SHA_CHARS, Archive
from codeseed.candidates import model_candidate
from codeseed.errors import ArchiveError, ModelMismatchError
from codeseed.model import CodeModel
from codeseed.walk import SourceFile

BLOCK_ROUNDS = 3  # the stream / solid block choice, measured again with the block's final members
LM_CODEC = "lm"
ENGINE = "exact-1"  # the arithmetic the stream was coded with (engine.py, cm.py): recorded in the header


@dataclass
class EncodedFile:
    """A file's payload as pack writes it; `start` and `raw_size` place it in a shared payload."""
    codec: str
    payload: bytes
    meta: dict = field(default_factory=dict)
    start: int = 0
    raw_size: int | None = None
    lm_bytes: float | None = None     # its exact size in the LM stream, whether chosen or not
    classical_bytes: int = 0          # its best classical payload alone
    block_bytes: float | None = None  # its bits in a solid block of the tree's small text files (packing.block_costs)

    def alternative(self) -> float:
        """Its measured size outside the LM stream: alone or in a solid block, whichever is smaller."""
        return self.classical_bytes if self.block_bytes is None else min(self.classical_bytes, self.block_bytes)


def classical(f: SourceFile) -> EncodedFile:
    """The best classical encoding of a file; a symlink's target is stored as is."""
    name, payload = ("stored", f.data) if f.is_symlink else codecs.best_classical(f.data)
    return EncodedFile(name, payload, {}, classical_bytes=len(payload))


def header_settings(settings: lmcodec.StreamSettings) -> dict:
    return {"lm": settings.to_dict(), "engine": ENGINE}


def encode(files: list[SourceFile], model: CodeModel,
           settings: lmcodec.StreamSettings | lmcodec.MixSettings | None = None, progress=None,
           jobs: int = 2) -> tuple[list[EncodedFile], lmcodec.StreamSettings]:
    """Each file's payload: the LM stream's or its best classical one, whichever is smaller. Returns
    the payloads (files in order) and the stream's settings (for the archive header). `settings`:
    a whole StreamSettings, or only the mixing (rows and segments then chosen for the stream).
    `jobs`: threads the model runs in (the archive is the same for any count)."""
    with ThreadPoolExecutor(1) as side:
        # what the stream competes with does not depend on it: measured beside the model (the cm
        # codec and lzma release the GIL; the scorer's threads leave a core part idle)
        alone = side.submit(lambda: [classical(f) for f in files])
        block = side.submit(packing.block_costs, files, None)
        return _encode(files, model, settings, progress, jobs, alone, block)


def _encode(files, model, settings, progress, jobs, alone: Future, block: Future):
    """encode(), given futures of each file's classical payload and of the solid block's costs."""
    first: dict[bytes, int] = {}
    members, tokens = [], []
    for i, f in enumerate(files):
        if not model_candidate(f, exact=True) or f.data in first:
            continue
        ids = model.tokenize_exact(f.data)
        if ids:
            first[f.data] = i
            members.append(i)
            tokens.append(ids)
    if isinstance(settings, lmcodec.MixSettings) or settings is None:
        mix = settings or lmcodec.MixSettings()
        settings = lmcodec.choose_settings([len(t) for t in tokens], model.context, mix=mix)
    if not members:
        return alone.result(), settings
    task = progress.add_task("LM encode", total=sum(map(len, tokens))) if progress else None
    scorer = lmcodec.Scorer(model.engine, model.bos, tokens, settings, jobs=jobs,
                            progress=(lambda n: progress.advance(task, n)) if progress else None)
    out = alone.result()
    # the alternative to the stream: the file alone, or its part of a solid block, whichever is smaller.
    # A block's cost depends on what else is in it, so the block is measured again with only the files
    # that left the stream; a file that the first measure lured out and that now costs more there than
    # in the stream goes back (tinydb's README.rst: 1,946 bytes in a block of its own, not ~1,000)
    lm_bytes = {i: scorer.file_bits[j] / 8 for j, i in enumerate(members)}
    kept: set[int] = set()
    for _ in range(BLOCK_ROUNDS):
        in_stream = {files[i].data for i in kept}  # copies of a stream member's content share its data
        outside = None if not kept else {i for i, f in enumerate(files) if f.data not in in_stream}
        for i in range(len(files)):
            out[i].block_bytes = None
        for i, cost in (block.result() if outside is None else packing.block_costs(files, outside)).items():
            out[i].block_bytes = cost
        now = {i for i in members if lm_bytes[i] < out[i].alternative()}
        if now == kept:
            break
        kept = now
    keep = [i in kept for i in members]
    payload = scorer.payload(keep) if any(keep) else b""
    raw = sum(len(files[i].data) for i, k in zip(members, keep) if k)
    start = 0
    for j, (i, k) in enumerate(zip(members, keep)):
        out[i].lm_bytes = float(scorer.file_bits[j] / 8)
        # a file the stream lost keeps the two measured sizes that decided, for `codeseed info` (whole
        # bytes; the stream's own files do not: 2-3 bytes each of index, and the rule says why)
        out[i].meta = {"n": len(tokens[j])} if k else {
            "n": len(tokens[j]), "lm": round(out[i].lm_bytes), "alt": round(out[i].alternative())}
        if k:
            out[i].codec, out[i].payload, out[i].start, out[i].raw_size = LM_CODEC, payload, start, raw
            start += len(files[i].data)
    for i, f in enumerate(files):  # later copies of a member's content share its data
        j = first.get(f.data)
        if j is not None and j != i and out[j].codec == LM_CODEC:
            out[i] = EncodedFile(LM_CODEC, payload, {}, out[j].start, raw, out[j].lm_bytes, out[i].classical_bytes,
                                 out[i].block_bytes)
    return out, settings


def check_model(header_model: dict | None, model: CodeModel) -> None:
    if not header_model:
        return
    sha = header_model.get("sha256", "")
    if len(sha) < HEADER_MODEL_SHA_CHARS or not model.id.sha256.startswith(sha):  # format 5 keeps a prefix
        raise ModelMismatchError(
            f"archive was packed with model {header_model.get('id')!r} (sha256 {header_model.get('sha256', '')[:12]}...), "
            f"but the loaded model is {model.id.name!r} (sha256 {model.id.sha256[:12]}...); "
            "unpack with --model pointing to the packing model")


def decode(arc: Archive, out: list[bytes], model: CodeModel, progress=None, jobs: int = 2) -> None:
    """Decode the archive's LM entries into `out` (index order), where the classical entries are
    already decoded. Raises ArchiveError on anything malformed or a stream that does not decode."""
    if arc.version < 3:
        return _decode_legacy(arc, out, model, progress)
    check_model(arc.header.model, model)
    try:
        if arc.header.settings.get("engine") != ENGINE:
            raise ValueError(f"engine {arc.header.settings.get('engine')!r} is not {ENGINE!r}")
        settings = lmcodec.StreamSettings.from_dict(arc.header.settings["lm"])
        if settings.window > model.context:  # pack uses the model's at most; a window sizes the KV cache
            raise ValueError(f"window {settings.window} is over the model's context ({model.context})")
    except (KeyError, TypeError, ValueError) as err:
        raise ArchiveError(f"{arc.path}: corrupt archive (LM settings: {err})") from None
    entries = arc.entries
    members = [k for k, e in enumerate(entries) if "n" in e.meta]
    coded = [k for k in members if entries[k].codec == LM_CODEC]
    payload_ids = {entries[k].payload_id for k, e in enumerate(entries) if e.codec == LM_CODEC}
    if not coded or len(payload_ids) != 1:
        raise ArchiveError(f"{arc.path}: corrupt archive (LM entries without one LM stream)")
    known = []
    for k in members:
        if entries[k].codec == LM_CODEC:
            known.append(None)
            continue
        ids = model.tokenize_exact(out[k])
        if ids is None or len(ids) != entries[k].meta["n"]:
            raise ArchiveError(f"{arc.path}: corrupt archive ({entries[k].path!r}: its tokens are not the stream's)")
        known.append(ids)
    first = entries[coded[0]]
    task = progress.add_task("LM decode", total=sum(entries[k].meta["n"] for k in members)) if progress else None
    try:
        toks = lmcodec.decode(model.engine, model.bos, [entries[k].meta["n"] for k in members], known,
                              arc.payload(first), settings, jobs=jobs,
                              progress=(lambda n: progress.advance(task, n)) if progress else None)
    except lmcodec.StreamError as err:
        where = f" in {entries[members[err.file]].path!r}" if err.file is not None else ""
        raise ArchiveError(f"{arc.path}: corrupt LM stream{where} ({err})") from None
    at: dict[int, bytes] = {}
    pos = 0
    for k, t, kn in zip(members, toks, known):
        if kn is not None:
            continue
        data = model.decode(t).encode("utf-8", "surrogatepass")
        if entries[k].start != pos:
            raise ArchiveError(f"{arc.path}: corrupt archive ({entries[k].path!r} decodes to another size)")
        out[k], at[pos] = data, data
        pos += len(data)
    if pos != first.decoded_size():
        raise ArchiveError(f"{arc.path}: corrupt archive (the LM stream decodes to {pos} bytes, not "
                           f"{first.decoded_size()})")
    for k, e in enumerate(entries):
        if e.codec == LM_CODEC and "n" not in e.meta:
            if e.start not in at:
                raise ArchiveError(f"{arc.path}: corrupt archive ({e.path!r} points into the LM stream)")
            out[k] = at[e.start]


def _decode_legacy(arc: Archive, out: list[bytes], model: CodeModel, progress=None) -> None:
    """Formats 1-2: each LM file its own stream, coded with the float engine of codeseed 0.1
    (legacy.py); decodes only where float results match the packing machine's."""
    from codeseed import legacy
    check_model(arc.header.model, model)
    try:
        settings = legacy.MixSettings.from_dict(arc.header.settings["lm"])
    except (KeyError, TypeError, ValueError):
        raise ArchiveError(f"{arc.path}: corrupt archive (missing LM settings)") from None
    fm = legacy.FloatModel(model.path)
    members = [k for k, e in enumerate(arc.entries) if "n" in e.meta]
    try:
        files = [(int(arc.entries[k].meta["n"]), arc.payload(arc.entries[k]) if arc.entries[k].codec == LM_CODEC
                  else None, None if arc.entries[k].codec == LM_CODEC else fm.tokenize_exact(out[k]))
                 for k in members]
        if any(n <= 0 or (p is None and (t is None or len(t) != n)) for n, p, t in files):
            raise ValueError("token counts do not match")
        toks = legacy.decode_stream(fm, settings, files)
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AssertionError) as err:
        raise ArchiveError(f"{arc.path}: corrupt LM stream, or one written by the float engine of another "
                           f"machine (format {arc.version}: {err})") from None
    for k, t in zip(members, toks):
        if arc.entries[k].codec == LM_CODEC:
            out[k] = fm.decode(t).encode("utf-8")
