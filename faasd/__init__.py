"""faasd: functions as a service on one machine.

One asyncio process plays Fission's three parts. The path of a call::

    client ──HTTP──▶ ClientConnection          (faasd/dataplane/server.py)
                      │  httptools parses strictly; /v1, /healthz, /readyz, /metrics, /ui
                      │  go to the admin app (aiohttp, on a private unix socket);
                      │  a call gets its X-Request-Id (the caller's, or a new one)
                      ▼
                    Gateway.resolve(method, path)  (faasd/dataplane/gateway.py)
                      │  RouteTable.match(method, path) -> function, params
                      │     (in memory, changed in place by each write, between awaits;
                      │      a route that splits its calls draws one of its
                      │      functions by weight; /function/<name> reaches any function)
                      ▼
                    PoolManager.lease(function)   (faasd/pool/manager.py)
                      │  warm instance?  ── yes ──▶ use it
                      │  no: take a pre-started container from the
                      │      environment's pool (start one if empty),
                      │      POST the code to /v2/specialize (one per
                      │      function, concurrent first calls share it),
                      │      refill the pool in the background
                      ▼
                    Exchange -> UpstreamPool    (faasd/dataplane/exchange.py)
                      │  keep-alive connection to the instance; head rebuilt
                      │  (hop-by-hop out, X-Forwarded-*, X-Faasd-Params in),
                      │  body streamed with backpressure; timeout -> 504
                      ▼
                    runtime container (runtimes/<lang>/server)
                      │  calls the user's function
                      ▼
    client ◀──────── response streamed back (with X-Request-Id); the call is
                     counted (faasd/observe: metrics, the last hour, usage);
                     lease released; an instance idle past --idle-timeout is
                     removed by the reaper

The admin API (faasd/control/api.py) writes through the controller
(faasd/control/controller.py) to SQLite (faasd/store/registry.py) and the code blobs
(faasd/store/codestore.py), then changes the in-memory catalog the gateway reads
(in place, in time independent of the registry's size; faasd/control/catalog.py).
Docker is reached only through faasd/engines/, behind the ContainerBackend
protocol of faasd/pool/backend.py and the BuildBackend protocol of
faasd/builds/backend.py; faasd/engines/isolation.py keeps the containers
apart (SECURITY.md).

A package (faasd/builds/) goes: upload (faasd/control/uploads.py) ->
archive.normalize -> package store -> Builder queue -> builder container
(dependencies only, cached by manifest) -> dependencies + source overlaid
under deploy/ -> record_build -> the package's functions get a new revision;
a first call then puts the deployment archive into a pooled container at
/faasd/deploy and specializes it with the entrypoint.
"""

__version__ = "0.1.0"
