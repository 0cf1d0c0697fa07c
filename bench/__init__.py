"""faasd's benchmark suite (`make bench`): cold starts, warm path, burst, memory, control plane.

Every figure is measured against a faasd process the suite starts itself, on
loopback, next to references measured in the same run (a bare container start,
the runtime container called directly, a minimal aiohttp reverse proxy).
`python -m bench --help` lists the options; `bench/run.py` orders the phases.
"""
