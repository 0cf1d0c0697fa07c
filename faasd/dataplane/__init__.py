"""faasd's data plane: the public HTTP listener, asyncio.Protocol on both sides.

No aiohttp on the call path: bytes are parsed by httptools (llhttp), headers
are rebuilt once per hop, bodies stream through with backpressure, and a warm
call creates no task and no object heavier than an
:class:`~faasd.dataplane.exchange.Exchange` (the pool's ``lease_now`` answers
without awaiting; only a cold or queued call waits in a task). ::

    client ──TCP──▶ ClientConnection                  server.py
                      │ httptools parses; a bad or ambiguous message
                      │ (CL+TE, two CLs, bad chunk) -> 400 and close;
                      │ head > 64 KiB -> 431; head timeout, keep-alive timeout,
                      │ body idle timeout (no body byte for head_timeout -> 408)
                      │ Upgrade with a body -> 400 and close (see below)
                      │ pipelined requests queue; only the oldest may answer
                      ▼
                    Exchange.start                    exchange.py
                      ├─ /v1, /v1/..., /healthz, /readyz, /metrics, /ui
                      │     └─▶ UpstreamPool["unix:<tmp>/admin.sock"] ─▶ aiohttp admin app
                      │         (no call timeout, no body limit: client_max_size is aiohttp's)
                      └─ anything else
                            Gateway.resolve(method, path) -> function, params
                            body over --max-body-bytes -> 413
                            pool.lease_now(function), else pool.lease in a task
                              (may await a specialization, or answer 429/503)
                            function timeout starts  ──────────────▶ 504, lease discarded
                              (TimeLimits: a loop timer only for a call still
                              running after a tick of 50 ms or two)
                            UpstreamPool[lease.url]            upstream.py
                              idle keep-alive connection, or a new one;
                              a request is sent once: a connection that
                              breaks before the answer -> 502, never resent
                      │ head rebuilt (http.py; the connection's last one reused when the
                      │ same, HeadMemo): hop-by-hop, X-Faasd-*, the client's
                      │ X-Forwarded-Proto/-Host and Forwarded out; X-Forwarded-For
                      │ appended to; X-Forwarded-Proto/-Host, X-Faasd-Params,
                      │ X-Request-Id (the caller's if valid, else a new one) in;
                      │ body relayed (Content-Length as is, chunked re-chunked)
                      ▼
                    UpstreamConnection ──TCP──▶ runtime container :8888
                      │ httptools parses the answer; 1xx dropped
                      ▼
    client ◀─────── head rebuilt (X-Request-Id faasd's), body relayed; connection
                    back to the pool; Exchange._count: Front.calls.record (status
                    class, duration, overhead; faasd/observe) and the access log
                    line if on; lease released (discarded on 502/504); next
                    pipelined request

Protocol upgrades (WebSocket, h2c) are not supported: faasd never switches
protocols and never forwards ``Upgrade``. RFC 9110 (7.8) lets a server ignore
it, so a bodiless Upgrade request is answered as the plain HTTP/1.1 request it
also is, and the connection is closed after that answer: an h2c client carries
on in HTTP/1.1, a WebSocket client sees a status other than 101 and reports
it. Rejecting every Upgrade instead would break ``curl --http2 http://...``
for no gain. An Upgrade request (``Connection: upgrade``) that declares a body
is 400 and close: llhttp takes such a body for the new protocol's bytes, so
the request could not be forwarded whole.

Backpressure: the client's reading pauses while the upstream's write buffer
is full; the upstream's reading pauses while the client's is. faasd/__main__.py
starts the listener, the admin app on its unix socket, and stops them in order.
"""

from faasd.dataplane.exchange import FunctionRouter
from faasd.dataplane.server import Front, FrontConfig
from faasd.dataplane.upstream import UpstreamPool

__all__ = ["Front", "FrontConfig", "FunctionRouter", "UpstreamPool"]
