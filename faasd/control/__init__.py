"""The control plane: the admin API under /v1 and the registry's single writer.

Owns: the aiohttp admin app's handlers, the bearer token, the OpenAPI
document, the controller (validates, writes the store, swaps the catalog).
May use: core, store, pool, dataplane.routing (the catalog's route table).
"""
