"""Progress on stderr: bars on a terminal; elsewhere (a CI log, a pipe) a plain line every
LINE_INTERVAL seconds, so a long pack shows signs of life; nothing when disabled (-q)."""
from __future__ import annotations

import sys
import threading
import time
from contextlib import contextmanager
from typing import Iterator, TextIO

LINE_INTERVAL = 5.0  # seconds between progress lines when stderr is not a terminal


class _Silent:
    def add_task(self, *a, **k) -> int:
        return 0

    def update(self, *a, **k) -> None:
        pass

    def advance(self, *a, **k) -> None:
        pass


class Lines:
    """The add_task/advance/update calls of rich.progress.Progress, printed as one line every
    `interval` seconds by a background thread: `codeseed: compress 4,000/10,000 (40%), 12 s`."""

    def __init__(self, stream: TextIO, interval: float = LINE_INTERVAL):
        self.stream, self.interval = stream, interval
        self.tasks: list[list] = []  # [description, completed, total]
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="codeseed-progress", daemon=True)

    def add_task(self, description: str, total: float | None = None, **_) -> int:
        self.tasks.append([description, 0.0, total])
        return len(self.tasks) - 1

    def advance(self, task: int, advance: float = 1) -> None:
        self.tasks[task][1] += advance

    def update(self, task: int, *, total: float | None = None, completed: float | None = None,
               advance: float | None = None, description: str | None = None, **_) -> None:
        t = self.tasks[task]
        if description is not None:
            t[0] = description
        if total is not None:
            t[2] = total
        if completed is not None:
            t[1] = completed
        if advance is not None:
            t[1] += advance

    def line(self) -> str:
        """The current state: the latest task not yet finished (or the last one)."""
        elapsed = f"{time.monotonic() - self.started:.0f} s"
        if not self.tasks:
            return f"codeseed: working, {elapsed}"
        open_tasks = [t for t in self.tasks if t[2] is None or t[1] < t[2]]  # total None: open-ended
        desc, done, total = (open_tasks or self.tasks)[-1]
        if total:
            return f"codeseed: {desc} {done:,.0f}/{total:,.0f} ({100 * done / total:.0f}%), {elapsed}"
        return f"codeseed: {desc} {done:,.0f}, {elapsed}"

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                print(self.line(), file=self.stream, flush=True)
            except (OSError, ValueError):
                return  # stderr closed

    def __enter__(self) -> Lines:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


@contextmanager
def bars(enabled: bool = True, interval: float = LINE_INTERVAL) -> Iterator:
    """`with bars(show) as p: t = p.add_task("pack", total=n); p.advance(t)`: bars on a terminal, a
    line every `interval` seconds otherwise, nothing when not `enabled`."""
    if not enabled:
        yield _Silent()
        return
    if not sys.stderr.isatty():
        with Lines(sys.stderr, interval) as lines:
            yield lines
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=Console(stderr=True), transient=True)
    with progress:
        yield progress
