"""faas: the command line for faasd, with Fission's command groups and spellings.

A command goes::

    faas <group> <verb> --options      (faas_cli/main.py registers the groups)
      │  typer parses the options; `reports_errors` (faas_cli/errors.py)
      │  turns any CliError into one line `error: ...` and exit code 1
      ▼
    FaasClient.<api call>               (faas_cli/client.py)
      │  urllib, JSON in and out; HTTP and socket errors become CliError
      │  at this one boundary
      ▼
    faasd's admin API (/v1/...) or a function (/function/<name>)
      │
      ▼
    print: a table, JSON (`-o json`) or a short message  (faas_cli/output.py)

Modules: client (HTTP), errors (exception tree and its one-line rendering),
output (tables, JSON, progress), options (shared options, the context object),
credentials (which API token is sent), sources (reading code files), and
commands/ with one module per command group.
"""
