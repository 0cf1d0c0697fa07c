"""The registry: SQLite (the default) or PostgreSQL through SQLAlchemy (alembic), and code blobs.

Owns: the database schema and its queries, content-addressed code files.
May use: core. Only the controller writes through it.
"""
