"""codeseed: predictive compression of source code.

Library API (the CLI is a thin layer over it):

    import codeseed
    report = codeseed.pack("repo/", "repo.cseed")        # -> PackReport
    codeseed.unpack("repo.cseed", "out/")                 # -> UnpackReport
"""
from codeseed.errors import CodeseedError
from codeseed.packing import PackReport, pack
from codeseed.unpacking import UnpackReport, unpack

__version__ = "0.1.0"
__all__ = ["CodeseedError", "PackReport", "UnpackReport", "pack", "unpack", "__version__"]
