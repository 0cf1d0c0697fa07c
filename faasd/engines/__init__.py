"""Container engines behind faasd.pool.backend.ContainerBackend.

Owns: everything that speaks to Docker (the only place the SDK is imported)
and the host firewall that keeps function containers apart.
May use: core, pool.backend.
"""
