"""Progress bars on stderr: shown only on a terminal, never with --quiet."""
from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class _Silent:
    def add_task(self, *a, **k) -> int:
        return 0

    def update(self, *a, **k) -> None:
        pass

    def advance(self, *a, **k) -> None:
        pass


@contextmanager
def bars(enabled: bool = True) -> Iterator[Progress | _Silent]:
    """`with bars(not quiet) as p: t = p.add_task("pack", total=n); p.advance(t)`."""
    if not (enabled and sys.stderr.isatty()):
        yield _Silent()
        return
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=Console(stderr=True), transient=True)
    with progress:
        yield progress
