"""The byte-level context-mixing codec "cm": round trips, determinism, bounded decoding of hostile
payloads, and its place in solid blocks and in exact mode's per-file choice."""
from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from codeseed import bytecm, codecs, packing
from codeseed.errors import ArchiveError
from codeseed.walk import SourceFile

ROOT = Path(__file__).resolve().parent.parent
FIXTURE_TEXT = b"".join(p.read_bytes() for p in sorted((ROOT / "fixtures").rglob("*"))
                        if p.is_file() and p.suffix in (".py", ".md", ".toml", ".go", ".js", ".c"))


def inputs() -> dict[str, bytes]:
    rng = random.Random(7)
    return {"empty": b"", "one byte": b"\x00", "every byte value": bytes(range(256)) * 3,
            "random": bytes(rng.randrange(256) for _ in range(5000)), "a run": b"a" * 20000,
            "text": FIXTURE_TEXT, "text then random": FIXTURE_TEXT[:3000] + bytes(rng.randrange(256) for _ in range(3000)),
            "repeats far apart": (b"x" * 7 + FIXTURE_TEXT[:2000]) * 4}


@pytest.mark.parametrize("name", list(inputs()))
def test_round_trip_of_every_kind_of_input(name):
    data = inputs()[name]
    payload = bytecm.encode(data)
    assert bytecm.decode(payload, len(data)) == data
    assert codecs.decode_classical("cm", payload, len(data)) == data


def test_encoding_is_deterministic_and_costs_add_up_to_the_payload():
    data = FIXTURE_TEXT
    payload = bytecm.encode(data)
    assert bytecm.encode(data) == payload
    cuts = [0, 100, 1000, len(data) // 2, len(data)]
    costs = bytecm.segment_costs(data, cuts)
    assert len(costs) == 4 and all(c > 0 for c in costs)
    assert abs(sum(costs) - len(payload)) <= bytecm.FLUSH + 4  # ideal lengths: the payload within a few bytes


def test_text_codes_smaller_than_xz():
    """What it is for: on source text it beats the LZ codecs (measured on real trees in RESULTS.md)."""
    assert len(bytecm.encode(FIXTURE_TEXT)) < len(codecs.xz_encode(FIXTURE_TEXT))


def test_a_payload_too_short_for_its_declared_size_is_refused_before_decoding():
    payload = bytecm.encode(b"hello world\n" * 10)
    with pytest.raises(ArchiveError, match="cannot hold"):
        bytecm.decode(payload, 10 ** 12)  # would be a terabyte: refused at once, nothing allocated


def test_cut_short_or_trailing_bytes_are_refused():
    data = FIXTURE_TEXT[:4000]
    payload = bytecm.encode(data)
    for bad in (payload[:-1], payload[: len(payload) // 2], payload + b"\x00", payload + b"tail"):
        with pytest.raises(ArchiveError, match="corrupt payload"):
            codecs.decode_classical("cm", bad, len(data))


def test_damaged_and_random_payloads_give_an_error_or_exactly_the_declared_size():
    """Fuzzing: bit flips, cuts and random bytes never crash, hang or decode past the declared size."""
    rng = random.Random(1)
    data = FIXTURE_TEXT[:3000]
    good = bytecm.encode(data)
    for it in range(300):
        if it % 3 == 0:
            payload = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 200)))
        elif it % 3 == 1:
            b = bytearray(good)
            for _ in range(rng.randrange(1, 4)):
                b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
            payload = bytes(b)
        else:
            payload = good[:rng.randrange(len(good))]
        size = rng.choice([len(data), rng.randrange(0, 5000)])
        try:
            out = codecs.decode_classical("cm", payload, size)
        except ArchiveError:
            continue
        assert len(out) == size


def test_solid_blocks_pick_the_smallest_codec_and_keep_binary_apart():
    rng = random.Random(3)
    texts = [FIXTURE_TEXT[i:i + 900] for i in range(0, 9000, 900)]
    binary = bytes(rng.randrange(256) for _ in range(4000)) + b"\xff\xfe"  # not UTF-8
    placed = packing.solid_blocks(texts + [binary])
    text_block = placed[0]
    assert all(p.payload is text_block.payload for p in placed[:-1])
    assert placed[-1].payload is not text_block.payload  # binary in a block of its own
    block = b"".join(texts)
    sizes = {name: len(codecs.CLASSICAL[name].encode(block)) for name in codecs.BLOCK_CODECS}
    assert text_block.codec == min(sizes, key=lambda n: (sizes[n], codecs.BLOCK_CODECS.index(n)))
    assert codecs.decode_classical(text_block.codec, text_block.payload, text_block.raw_size) == block


def test_block_costs_measure_each_file_in_its_block():
    files = [SourceFile(f"f{i}.py", FIXTURE_TEXT[i * 700:(i + 1) * 700], False) for i in range(5)]
    files.append(SourceFile("copy.py", files[0].data, False))   # a repeated content costs nothing
    files.append(SourceFile("b.bin", b"\xff\xfe" * 50, False))    # not text: not in the text block
    costs = packing.block_costs(files)
    assert set(costs) == set(range(6))
    assert min(costs[0], costs[5]) == 0.0 < max(costs[0], costs[5])  # the first in block order pays
    assert all(costs[i] > 0 for i in range(1, 5))
    order = packing.block_order(files[:5])
    block = b"".join(f.data for f in order)
    assert abs(sum(costs.values()) - len(bytecm.encode(block))) <= bytecm.FLUSH + 4


def test_exact_mode_records_why_each_file_went_where(tmp_path, tiny_model):
    """Each file the LM scored keeps the smaller of its two measured sizes; `info` says so."""
    import codeseed
    src = ROOT / "fixtures" / "sample-py"
    arc = tmp_path / "a.cseed"
    codeseed.pack(src, arc, mode="exact", model=tiny_model)
    out = subprocess.run([sys.executable, "-m", "codeseed", "info", str(arc), "--json"], capture_output=True,
                         text=True, check=True)
    entries = json.loads(out.stdout)["entries"]
    scored = [e for e in entries if "lm" in e.get("meta", {})]
    assert scored and all(e["why"] for e in entries)
    for e in scored:
        lm, alt = e["meta"]["lm"], e["meta"]["alt"]
        assert (lm <= alt) if e["codec"] == "lm" else (alt <= lm)
        assert f"{lm:,} " in e["why"] and f"{alt:,} " in e["why"]
    png = next(e for e in entries if e["path"] == "assets/logo.png")
    assert "not text the LM takes" in png["why"]
