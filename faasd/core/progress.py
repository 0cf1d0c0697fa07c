"""Progress of a long job (building images) for a person: a line per step, and a bar on a terminal.

On a terminal the last line is a bar, ``[#####.......] 2/5 building faasd/runtime-python:...``,
redrawn in place; every step's line is printed above it. Elsewhere (a log file,
CI, systemd's journal) only the lines are written, through ``emit``.
"""

from __future__ import annotations

import logging
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
        self._lock = threading.RLock()  # steps are reported from worker threads (and through the log)
        self._wrapped: list[tuple[logging.Handler, Callable[[logging.LogRecord], None]]] = []

    def line(self, message: str) -> None:
        """One step's line (above the bar on a terminal)."""
        with self._lock:
            if message.startswith(("building ", "making ", "pulling ")):
                self._current = message
            attached = bool(self._wrapped)
        if attached:
            # Through the log, whose handler (wrapped) clears and draws: its lock first, then ours,
            # the same order as every other log record's (no deadlock with the loop's thread).
            self._emit(message)
            return
        with self._lock:
            self._clear()
            self._emit(message)
            self._draw()

    def advance(self) -> None:
        with self._lock:
            self.done = min(self.total, self.done + 1)
            self._draw()

    def finish(self) -> None:
        with self._lock:
            self._clear()
            self._bar = False
        for handler, emit in self._wrapped:
            handler.emit = emit  # type: ignore[method-assign,assignment]
        self._wrapped = []

    def attach_to_log(self) -> None:
        """In a daemon that logs to the same terminal: every log record clears the bar first and
        draws it again after, so no line is written behind it."""
        if not self._bar:
            return
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.StreamHandler) and getattr(handler, "stream", None) is self._stream:
                self._wrapped.append((handler, handler.emit))
                handler.emit = self._around(handler.emit)  # type: ignore[method-assign,assignment]

    def _around(self, emit: Callable[[logging.LogRecord], None]) -> Callable[[logging.LogRecord], None]:
        def emit_clear(record: logging.LogRecord) -> None:
            with self._lock:
                self._clear()
                emit(record)
                self._draw()

        return emit_clear

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
