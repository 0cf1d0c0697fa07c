"""The control plane: the admin API under /v1 and the registry's single writer.

Owns: the aiohttp admin app's handlers (package uploads streamed to disk), the
bearer token, the OpenAPI document, the controller (validates, writes the
store, changes the catalog in place; packages and build reports in packages.py, functions'
versions and rollback in versions.py), and the canaries (canary.py: their
writes and the intervals that move their routes' weights).
May use: core, store, pool, builds (archives and the package store),
dataplane.routing (the catalog's route table).
"""
