"""Reading a function's source file for upload."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from faas_cli.errors import CliError


@dataclass(frozen=True)
class SourceFile:
    """A function's code as sent to faasd: its text and its file name (no directories)."""

    filename: str
    code: str


def read_source(path: Path) -> SourceFile:
    """The text of ``path``; a one-line :class:`CliError` when it cannot be read as UTF-8."""
    shown = str(path)
    try:
        code = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CliError(f"code file '{shown}' not found") from None
    except IsADirectoryError:
        raise CliError(f"code file '{shown}' is a directory") from None
    except UnicodeDecodeError:
        raise CliError(f"code file '{shown}' is not UTF-8 text") from None
    except OSError as error:
        reason = (error.strerror or str(error)).lower()
        raise CliError(f"cannot read code file '{shown}' ({reason})") from None
    return SourceFile(filename=path.name, code=code)
