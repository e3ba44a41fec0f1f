"""codeseed: predictive compression of source code.

Library API (the CLI is a thin layer over it):

    import codeseed
    report = codeseed.pack("repo/", "repo.cseed")        # -> PackReport
    codeseed.unpack("repo.cseed", "out/")                 # -> UnpackReport
"""
from codeseed.errors import CodeseedError

__version__ = "0.1.0"
__all__ = ["CodeseedError", "PackReport", "UnpackReport", "pack", "unpack", "__version__"]
_LAZY = {"pack": "packing", "PackReport": "packing", "unpack": "unpacking", "UnpackReport": "unpacking"}


def __getattr__(name: str):
    # imported on first use, so that `python -m codeseed.train` needs only torch and transformers
    # (a GPU machine has those, not tree-sitter or constriction)
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(f"codeseed.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'codeseed' has no attribute {name!r}")
