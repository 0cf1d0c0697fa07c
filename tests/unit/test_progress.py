"""Progress: lines everywhere, a bar redrawn in place only on a terminal."""

from __future__ import annotations

import io

from faasd.core.progress import Progress


def test_without_a_terminal_only_lines() -> None:
    out = io.StringIO()
    progress = Progress(2, stream=out)
    progress.line("building faasd/runtime-python:abc")
    progress.advance()
    progress.line("built faasd/runtime-python:abc")
    progress.finish()
    assert out.getvalue() == "building faasd/runtime-python:abc\nbuilt faasd/runtime-python:abc\n"


def test_on_a_terminal_a_bar_under_the_lines() -> None:
    out = io.StringIO()
    progress = Progress(4, stream=out, bar=True)
    progress.line("building faasd/runtime-nodejs:abc")
    progress.advance()
    text = out.getvalue()
    assert "building faasd/runtime-nodejs:abc\n" in text
    assert text.endswith("[" + "#" * 6 + "." * 18 + "] 1/4 building faasd/runtime-nodejs:abc")
    progress.finish()
    assert out.getvalue().endswith("\r\x1b[2K")


def test_lines_go_through_emit_when_given() -> None:
    seen: list[str] = []
    progress = Progress(1, emit=seen.append, stream=io.StringIO())
    progress.line("pulling python:3.12-slim-bookworm")
    assert seen == ["pulling python:3.12-slim-bookworm"]
