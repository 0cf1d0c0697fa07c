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


def test_log_records_never_land_behind_the_bar() -> None:
    import logging

    out = io.StringIO()
    handler = logging.StreamHandler(out)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        progress = Progress(2, emit=logging.getLogger("faasd.images").warning, stream=out, bar=True)
        progress.attach_to_log()
        progress.line("building faasd/runtime-python:abc")
        logging.getLogger("faasd").warning("listening on http://127.0.0.1:8080")
        progress.finish()
        logging.getLogger("faasd").warning("after")
    finally:
        root.removeHandler(handler)
    lines = out.getvalue().split("\n")
    # Every log line starts clean (the bar was cleared before it) and the bar never precedes text on a line.
    listening = next(line for line in lines if "listening on" in line)
    assert listening.endswith("listening on http://127.0.0.1:8080")
    assert "] " not in listening.split("\x1b[2K")[-1]
    assert lines[-2].split("\x1b[2K")[-1] == "after"
