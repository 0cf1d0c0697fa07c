"""The runtimes stand alone: they import nothing of faasd, only their language's standard library.

(The borders inside faasd/ are import-linter contracts in pyproject.toml, checked by `make lint`.)
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

NODE_BUILTINS = {
    "assert", "async_hooks", "buffer", "child_process", "crypto", "events", "fs", "fs/promises", "http",
    "net", "os", "path", "process", "stream", "stream/promises", "string_decoder", "timers", "url", "util",
    "v8", "vm", "worker_threads", "zlib", "module",
}  # fmt: skip


def test_python_runtime_imports_only_the_standard_library() -> None:
    tree = ast.parse((ROOT / "runtimes/python/server.py").read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            imported.add(node.module.split(".")[0])
    assert imported, "the parser found no import at all"
    assert imported - set(sys.stdlib_module_names) - {"__future__"} == set()


def test_node_runtime_requires_only_builtins() -> None:
    source = (ROOT / "runtimes/nodejs/server.js").read_text()
    required = set(re.findall(r"require\(\s*'([^']+)'\s*\)", source))
    assert required, "the pattern found no require at all"
    names = {name.removeprefix("node:") for name in required}
    assert names - NODE_BUILTINS == set()


def test_every_python_package_is_in_the_wheel() -> None:
    """pyproject.toml lists its packages by name: a new one missing there is missing from `pip install faasd`."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    dirs = {"faasd": "faasd", "faas_cli": "cli", "faasd_migrations": "migrations"}
    found = {
        ".".join((name, *init.parent.relative_to(ROOT / folder).parts))
        for name, folder in dirs.items()
        for init in (ROOT / folder).rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    assert found - listed == set(), f"packages missing from pyproject.toml's packages: {sorted(found - listed)}"
