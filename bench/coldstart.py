"""Pool-warm first-call latency through a running faasd.

For each sample: wait until the environment's pool is full, create a fresh
function, and time its first call end to end (client -> faasd -> pooled
container specialized -> answer). Sends traffic only to the faasd given
(loopback by default); bounded by --samples and --deadline.

    .venv/bin/python bench/coldstart.py --env python --samples 30
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import time
import uuid
from urllib.parse import urlsplit

CODE = {
    "nodejs": 'module.exports = async () => "hello";\n',
    "python": 'def main():\n    return "hello"\n',
}


def request(conn: http.client.HTTPConnection, method: str, path: str, body: object = None) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    conn.request(method, path, body=data, headers={"Content-Type": "application/json"} if data else {})
    response = conn.getresponse()
    return response.status, response.read()


def pool_full(conn: http.client.HTTPConnection, env: str) -> bool:
    _, raw = request(conn, "GET", "/v1/status")
    status = next(e for e in json.loads(raw)["environments"] if e["name"] == env)
    return bool(status["pool_ready"] == status["poolsize"] and status["poolsize"] > 0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--env", default="python")
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--deadline", type=float, default=120.0, help="stop after this many seconds")
    args = parser.parse_args()
    target = urlsplit(args.url)
    conn = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port or 80, timeout=60)
    run = uuid.uuid4().hex[:6]
    samples: list[float] = []
    names: list[str] = []
    stop_at = time.monotonic() + args.deadline
    try:
        for i in range(args.samples):
            while not pool_full(conn, args.env):
                if time.monotonic() > stop_at:
                    raise SystemExit("deadline reached while waiting for the pool")
                time.sleep(0.05)
            name = f"cold-{run}-{i}"
            status, raw = request(
                conn, "POST", "/v1/functions", {"name": name, "environment": args.env, "code": CODE[args.env]}
            )
            if status != 201:
                raise SystemExit(f"create failed: {status} {raw!r}")
            names.append(name)
            began = time.perf_counter()
            status, raw = request(conn, "GET", f"/function/{name}")
            samples.append((time.perf_counter() - began) * 1000)
            if status != 200:
                raise SystemExit(f"first call failed: {status} {raw!r}")
    finally:
        for name in names:
            request(conn, "DELETE", f"/v1/functions/{name}")
    samples.sort()
    p99 = samples[min(len(samples) - 1, round(0.99 * (len(samples) - 1)))]
    print(
        f"{args.env}: pool-warm first call over {len(samples)} samples: "
        f"p50 {statistics.median(samples):.1f} ms, p99 {p99:.1f} ms, min {samples[0]:.1f} ms, max {samples[-1]:.1f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
