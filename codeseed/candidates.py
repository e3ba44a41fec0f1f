"""Which files go to the model, in every mode (exact, seeded, audit alike): one predicate.

A file is a model candidate when it is a regular, non-empty file of at most MODEL_MAX_BYTES that
does not look minified or like a data blob (a line over MAX_LINE bytes, or lines of more than
MAX_MEAN_LINE bytes on average: the thresholds corpus.py uses to keep such files out of training).
Such files cost the model minutes and gain nothing over zstd/xz: a 164 KB one-line minified
JavaScript file took over 7 minutes in seeded mode, and 5 s with zstd in exact mode.
"""
from __future__ import annotations

MODEL_MAX_BYTES = 128_000  # larger files go to classical codecs: semver's 240 KB uv.lock is mostly hashes, and the
                           # LM codec with mixing gave 2.42 bits/byte on it against xz's 2.03 (measured)
MAX_LINE = 2000
MAX_MEAN_LINE = 200


def looks_minified(data: bytes) -> bool:
    """A line longer than MAX_LINE bytes, or more than MAX_MEAN_LINE bytes a line on average."""
    lines = data.count(b"\n") + (not data.endswith(b"\n"))
    if len(data) > MAX_MEAN_LINE * max(lines, 1):
        return True
    return len(data) > MAX_LINE and max(map(len, data.split(b"\n"))) > MAX_LINE


EXACT_MAX_BYTES = MODEL_MAX_BYTES  # exact mode: the LM stream scores files up to this size


def model_candidate(f, exact: bool = False) -> bool:
    """Whether the file (a walk.SourceFile) may be coded or seeded by the model (`exact`: coded by
    the LM stream in exact mode, where each file keeps the stream only if it measures smaller)."""
    limit = EXACT_MAX_BYTES if exact else MODEL_MAX_BYTES
    return not f.is_symlink and 0 < len(f.data) <= limit and not looks_minified(f.data)
