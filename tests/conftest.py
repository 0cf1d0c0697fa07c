"""Fixtures every test may use: a real PostgreSQL (tests/postgres.py) and the registry on SQLite or on it."""

from __future__ import annotations

from tests.postgres import database, postgres, postgres_url  # noqa: F401 - fixtures
