"""Progress of a long job (building images) for a person: a line per step, and a bar on a terminal.

On a terminal the last line is a bar, ``[#####.......] 2/5 building faasd/runtime-python:...``,
redrawn in place; every step's line is printed above it. Elsewhere (a log file,
CI, systemd's journal) only the lines are written, through ``emit``.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import TextIO

BAR_WIDTH = 24


class Progress:
    def __init__(
        self,
        total: int,
        emit: Callable[[str], None] | None = None,
        stream: TextIO | None = None,
        bar: bool | None = None,
    ) -> None:
        self.total = total
        self.done = 0
        self._stream = stream if stream is not None else sys.stderr
        self._emit = emit or self._print
        self._bar = self._stream.isatty() if bar is None else bar
        self._current = ""
        self._drawn = False
        self._lock = threading.Lock()  # steps are reported from worker threads

    def line(self, message: str) -> None:
        """One step's line (above the bar on a terminal)."""
        with self._lock:
            self._clear()
            self._emit(message)
            if message.startswith(("building ", "making ", "pulling ")):
                self._current = message
            self._draw()

    def advance(self) -> None:
        with self._lock:
            self.done = min(self.total, self.done + 1)
            self._draw()

    def finish(self) -> None:
        with self._lock:
            self._clear()

    def _print(self, message: str) -> None:
        print(message, file=self._stream, flush=True)

    def _clear(self) -> None:
        if self._drawn:
            self._stream.write("\r\x1b[2K")
            self._stream.flush()
            self._drawn = False

    def _draw(self) -> None:
        if not self._bar or self.total <= 0:
            return
        filled = BAR_WIDTH * self.done // self.total
        text = f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {self.done}/{self.total} {self._current}"
        self._stream.write("\r\x1b[2K" + text[:160])
        self._stream.flush()
        self._drawn = True
