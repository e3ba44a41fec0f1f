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


def model_candidate(f) -> bool:
    """Whether the file (a walk.SourceFile) may be coded or seeded by the model."""
    return not f.is_symlink and 0 < len(f.data) <= MODEL_MAX_BYTES and not looks_minified(f.data)
