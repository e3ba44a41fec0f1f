"""Integer tables built with decimal arithmetic (the same on every machine), shipped prebuilt.

Building the entropy models' tables (stretch, squash, log2, bit costs: 4,096 decimal logarithms or
exponentials each) took about 0.4 s of every pack and unpack. They are constants, so they ship in
tables.npz beside this file, as zstd ships its predefined tables: `@table(name)` makes a builder
return the shipped copy (or build it, where the file lacks it), and tests/test_engine.py checks that
every shipped table equals what its builder computes. After changing a builder, regenerate:

    python -m codeseed.tables
"""
from __future__ import annotations

from functools import lru_cache, wraps
from pathlib import Path

import numpy as np

FILE = Path(__file__).with_name("tables.npz")
BUILDERS: dict = {}   # name -> the builder, for the test and for regenerating


@lru_cache(maxsize=1)
def _shipped() -> dict[str, np.ndarray]:
    try:
        with np.load(FILE) as z:
            return {k: z[k] for k in z.files}
    except FileNotFoundError:
        return {}


def table(name: str):
    """Decorator: the builder's table, from tables.npz when it holds `name`, else built (once)."""
    def wrap(build):
        BUILDERS[name] = build

        @wraps(build)
        @lru_cache(maxsize=None)
        def get() -> np.ndarray:
            shipped = _shipped().get(name)
            return shipped if shipped is not None else build()
        return get
    return wrap


def main() -> None:
    from codeseed import bytecm, cm, logistic, tables  # noqa: F401 (they register their tables in `tables`)
    np.savez_compressed(FILE, **{name: build() for name, build in sorted(tables.BUILDERS.items())})
    print(f"{FILE}: {', '.join(sorted(tables.BUILDERS))}")


if __name__ == "__main__":
    main()
