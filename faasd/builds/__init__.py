"""Packages and builders: a function's source archive made into its deployment archive.

Owns: archive checks and normalization (archive.py), the package store on
disk (store.py), the build queue with its dependency cache (builder.py) and
the BuildBackend protocol a container engine implements to run one build
(backend.py). May use: core. Never the Docker SDK, aiohttp or SQLAlchemy.
"""
