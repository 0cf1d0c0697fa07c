"""What runs and what it costs: call counters, the last hour per minute, usage, Prometheus.

::

    data plane (Exchange._count) ─┐
    dispatcher / mq (send)  ──────┼─▶ CallStats (calls.py)  ◀─ pool: cold starts
                                  │     cumulative, in memory, no lock
                                  │
        ┌─────────────────────────┼──────────────────────────────┐
        ▼                         ▼                              ▼
    MinuteSeries (series.py)   UsageMeter (usage.py)         FaasdCollector (metrics.py)
    a reading every minute:    every 10 s: deltas + the      at a scrape: counters, the
    /v1/stats, the dashboard   pool's instance-seconds ->    pool, queues, builds ->
                               registry (store/usage.py)     GET /metrics
                               -> /v1/usage, faas usage

Nothing here imports aiohttp, SQLAlchemy, Docker or another part of faasd: the
pool, the store and the queues are reached through what faasd/app.py passes in.
"""
