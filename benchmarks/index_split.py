"""Where an archive's bytes that are not file content go: its index coded again without one part
at a time (paths, token counts, header), beside the tree digest and the framing.

    python benchmarks/index_split.py A.cseed [B.cseed ...]

For a format-6 archive (as pack writes now). The full SHA-256s are not in an archive: the stored
prefixes padded to 32 bytes stand in (only the tree digest's size matters here). "rest" is what
is left: sizes, modes, kinds, payload table, CRC32s and digest prefixes.
"""
from __future__ import annotations

import copy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from codeseed import archive, codecs  # noqa: E402


def coded(raw: bytes) -> int:
    return len(codecs.varint(len(raw))) + len(archive._compress_index(raw))


def split(path: str) -> dict:
    with archive.Archive(path) as arc:
        ents, hdr, version = arc.entries, arc.header, arc.version
        framing = arc.payload_start + archive.FOOTERS[version].size
        index = arc.size - arc.payload_end - archive.FOOTERS[version].size
    if version != archive.FORMAT_VERSION:
        raise SystemExit(f"{path}: format {version}, not {archive.FORMAT_VERSION}")
    ids = [e.payload_id for e in ents]
    table = {e.payload_id: (e.codec, e.length, e.decoded_size(), e.crc32) for e in ents}
    payloads = [table[i] for i in range(len(table))]
    for e in ents:
        e.sha256 = e.sha256 + bytes(32 - len(e.sha256))
    header = archive.compact_header(hdr)
    base = coded(archive._encode_index(ents, ids, payloads, header))

    def without(change=None, head=header) -> int:
        e2 = copy.deepcopy(ents)
        for e in e2:
            if change:
                change(e)
        return base - coded(archive._encode_index(e2, ids, payloads, head))
    row = {"files": len(ents), "index": index, "framing": framing, "header": without(head=b""),
           "paths": without(lambda e: setattr(e, "path", "")),
           "token counts": without(lambda e: e.meta.pop("n", None)), "tree digest": 32}
    row["rest"] = index - row["header"] - row["paths"] - row["token counts"] - row["tree digest"]
    return row


def main() -> None:
    rows = {Path(p).name: split(p) for p in sys.argv[1:]}
    keys = ["files", "index", "framing", "paths", "token counts", "header", "tree digest", "rest"]
    total = {k: sum(r[k] for r in rows.values()) for k in keys}
    print("| archive | " + " | ".join(keys) + " | bytes a file |")
    print("|---|" + "---|" * (len(keys) + 1))
    for name, r in list(rows.items()) + [("all", total)]:
        print(f"| {name} | " + " | ".join(f"{r[k]:,}" for k in keys) + f" | {(r['index'] + r['framing']) / r['files']:.2f} |")


if __name__ == "__main__":
    main()
