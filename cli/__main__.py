"""`python -m faas_cli`: the same as the `faas` console script."""

from __future__ import annotations

from faas_cli.main import app

app(prog_name="faas")
