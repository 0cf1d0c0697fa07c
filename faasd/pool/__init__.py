"""Instances of functions: environment pools, leases, scaling, reaping, logs.

Owns: the pool manager's bookkeeping, the ContainerBackend protocol it runs
containers through, the function log files. May use: core. Never the Docker
SDK, aiohttp or SQLAlchemy (an import contract checked by `make lint`).
"""
