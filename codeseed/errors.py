"""Errors users can act on, each with the exit code the CLI returns for it (documented in README)."""
from __future__ import annotations


class CodeseedError(Exception):
    exit_code = 1


class InputError(CodeseedError):
    """Missing, empty or unreadable input."""
    exit_code = 3


class ArchiveError(CodeseedError):
    """Not an archive, truncated, corrupt, or a format version this codeseed cannot read."""
    exit_code = 4


class OutputExistsError(CodeseedError):
    """The output would overwrite an existing file (use --force)."""
    exit_code = 5


class ModelMismatchError(CodeseedError):
    """The archive needs a model other than the one loaded."""
    exit_code = 6


class UnsafeArchiveError(CodeseedError):
    """An entry would write outside the output folder (absolute path, `..`, or through a symlink)."""
    exit_code = 7


class VerificationError(CodeseedError):
    """A reconstruction or test check failed."""
    exit_code = 8
