"""Several faasd nodes on one registry: what one node writes, the others serve.

    admin write on node A ──> store transaction ──(same transaction)──> changes row (+ NOTIFY on PostgreSQL)
                                                                             │
    node B's follower <──── LISTEN wake-up, or a poll every 0.25 s / 1 s ────┘
        └─> reload the named entity from the registry ─> catalog, route table, pools, triggers (as a local write)

Owns the change journal (journal.py), the follower (changes.py, apply.py, listen.py), readiness for a load
balancer (readiness.py) and what a caller is told while the registry cannot be reached (availability.py).
Uses the store's tables and the controller's apply paths; nothing on the request path waits for it.
"""
