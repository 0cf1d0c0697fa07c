"""The recipes' tags: a hash of their files, stable, and changed by any edit."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from faasd.core.recipes import (
    BUILDER,
    DAEMON,
    RUNTIME,
    RecipeBook,
    broker_recipes,
    daemon_recipe,
    runtime_recipes,
    split_reference,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def runtimes(tmp_path: Path) -> Path:
    """A copy of the shipped runtimes' recipes, to edit."""
    copy = tmp_path / "runtimes"
    shutil.copytree(ROOT / "runtimes", copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def test_the_installed_recipes_are_the_repos() -> None:
    installed = {r.repository: r.digest for r in runtime_recipes()}
    here = {r.repository: r.digest for r in runtime_recipes(root=ROOT / "runtimes")}
    assert installed == here
    assert set(installed) == {
        "faasd/runtime-nodejs",
        "faasd/runtime-python",
        "faasd/runtime-ruby",
        "faasd/builder-nodejs",
        "faasd/builder-python",
    }
    assert {r.repository for r in broker_recipes()} == {"faasd/broker-redis", "faasd/broker-nats"}


def test_a_tag_is_the_hash_of_the_files_and_stable(runtimes: Path) -> None:
    first = {r.reference for r in runtime_recipes(root=runtimes)}
    again = {r.reference for r in runtime_recipes(root=runtimes)}
    assert first == again
    for recipe in runtime_recipes(root=runtimes):
        assert recipe.reference == f"{recipe.repository}:{recipe.digest[:12]}"
        assert len(recipe.tag) == 12 and int(recipe.tag, 16) >= 0


def test_an_edit_changes_that_recipe_only(runtimes: Path) -> None:
    before = {r.repository: r.tag for r in runtime_recipes(root=runtimes)}
    with (runtimes / "python" / "server.py").open("a") as f:
        f.write("\n# an upgrade\n")
    after = {r.repository: r.tag for r in runtime_recipes(root=runtimes)}
    changed = {repo for repo in before if before[repo] != after[repo]}
    assert changed == {"faasd/runtime-python"}


def test_a_runtimes_builder_folder_is_not_part_of_the_runtime(runtimes: Path) -> None:
    before = {r.repository: r.tag for r in runtime_recipes(root=runtimes)}
    with (runtimes / "nodejs" / "builder" / "build").open("a") as f:
        f.write("\n# builder only\n")
    after = {r.repository: r.tag for r in runtime_recipes(root=runtimes)}
    assert before["faasd/runtime-nodejs"] == after["faasd/runtime-nodejs"]
    assert before["faasd/builder-nodejs"] != after["faasd/builder-nodejs"]


def test_bytecode_and_renames_count_as_they_should(runtimes: Path) -> None:
    before = {r.repository: r.tag for r in runtime_recipes(root=runtimes)}
    cache = runtimes / "python" / "__pycache__"
    cache.mkdir()
    (cache / "server.cpython-311.pyc").write_bytes(b"\0")
    assert {r.repository: r.tag for r in runtime_recipes(root=runtimes)} == before
    (runtimes / "ruby" / "server.rb").rename(runtimes / "ruby" / "main.rb")  # same bytes, another name
    assert {r.repository: r.tag for r in runtime_recipes(root=runtimes)}["faasd/runtime-ruby"] != before[
        "faasd/runtime-ruby"
    ]


def test_bases_and_namespaces() -> None:
    book = RecipeBook(runtime_recipes("registry.local:5000/team"))
    python = book.runtime("python")
    assert python.kind == RUNTIME and python.repository == "registry.local:5000/team/runtime-python"
    assert python.default_base == "python:3.12-slim-bookworm"
    assert python.local_base == "faasd/base-python:bookworm"  # the local bases are shared by every namespace
    builder = book.builder_of(python)
    assert builder is not None and builder.kind == BUILDER
    assert builder.local_base == "faasd/base-builder-python:bookworm"
    assert "pip" in builder.debian_packages


def test_stock_references_resolve_to_this_faasds_tag() -> None:
    book = RecipeBook(runtime_recipes())
    python = book.runtime("python")
    for stock in ("faasd/runtime-python", "faasd/runtime-python:latest", python.reference):
        assert book.of(stock) is python
        assert book.resolve(stock) == python.reference
    # An old tag, another image, a registry's port: as they are.
    for other in ("faasd/runtime-python:0123456789ab", "python:3.12", "localhost:5000/faasd/runtime-python", "x"):
        assert book.of(other) is None
        assert book.resolve(other) == other


def test_split_reference() -> None:
    assert split_reference("faasd/runtime-python:latest") == ("faasd/runtime-python", "latest")
    assert split_reference("faasd/runtime-python") == ("faasd/runtime-python", "")
    assert split_reference("localhost:5000/faasd/runtime-python") == ("localhost:5000/faasd/runtime-python", "")
    assert split_reference("localhost:5000/a:b") == ("localhost:5000/a", "b")


def test_faasds_own_image_hashes_what_its_build_copies(tmp_path: Path) -> None:
    recipe = daemon_recipe(ROOT)
    assert recipe.kind == DAEMON and recipe.repository == "faasd/faasd"
    files = set(recipe.files())
    assert {"Dockerfile", "pyproject.toml", "faasd/__init__.py", "runtimes/python/server.py"} <= files
    assert not any(f.startswith((".git/", ".venv/", "tests/")) for f in files)
    with pytest.raises(ValueError, match="not a clone of faasd"):
        daemon_recipe(tmp_path)
