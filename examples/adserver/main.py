"""The ad server's HTTP side: ads, clicks and the billing report.

- ``POST /ads``: add or replace an ad, JSON ``{"id", "advertiser", "url", "cpc"}``
  (``cpc``: the cost per click, e.g. ``"0.25"``); 201 with the ad.
- ``GET /ads``: every ad.
- ``GET /ads/{id}/click``: ``302 Found`` to the ad's URL at once; the click is
  appended to the Redis stream ``clicks``, which the function ``settle``
  (settle.py, called by a message-queue trigger) bills later.
- ``GET /ads/report``: what each advertiser owes for the clicks settled so far,
  and how many clicks are not settled yet.
"""

from __future__ import annotations

import json
import re
import time
from decimal import Decimal, InvalidOperation
from typing import Any

import redis
from store import BILLED_CENTS, BILLED_CLICKS, CLICKS, ad_key, db, money

AD_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
URL = re.compile(r"^https?://[^\s\x00-\x1f\x7f]{1,2040}$")  # no spaces or control characters: it is a header


def bad(message: str, status: int = 400) -> tuple[dict[str, str], int]:
    return {"error": message}, status


def ad_of(ad_id: str) -> dict[str, Any] | None:
    found = db().hgetall(ad_key(ad_id))
    if not found:
        return None
    cents = int(found["cpc_cents"])
    return {
        "id": ad_id,
        "advertiser": found["advertiser"],
        "url": found["url"],
        "cpc": money(cents),
        "cpc_cents": cents,
    }


def put_ad(request: Any) -> Any:
    try:
        data = request.json()
    except ValueError:
        return bad("the body is not JSON")
    if not isinstance(data, dict):
        return bad('give a JSON object: {"id", "advertiser", "url", "cpc"}')
    ad_id, advertiser, url = (str(data.get(k) or "") for k in ("id", "advertiser", "url"))
    if not AD_ID.fullmatch(ad_id):
        return bad("id: 1 to 64 letters, digits, '_' or '-'")
    if not advertiser or len(advertiser) > 100:
        return bad("advertiser: 1 to 100 characters")
    if not URL.fullmatch(url):
        return bad("url: an http:// or https:// URL without spaces")
    try:
        cpc = Decimal(str(data.get("cpc")))
    except InvalidOperation:
        return bad('cpc: the cost per click, e.g. "0.25"')
    if not cpc.is_finite() or cpc <= 0 or cpc > 1000 or cpc != cpc.quantize(Decimal("0.01")):
        return bad("cpc: more than 0 and at most 1000, in whole cents")
    pipe = db().pipeline(transaction=True)
    pipe.hset(ad_key(ad_id), mapping={"advertiser": advertiser, "url": url, "cpc_cents": int(cpc * 100)})
    pipe.sadd("ads:ids", ad_id)
    pipe.execute()
    return ad_of(ad_id), 201


def click(ad_id: str, request: Any) -> Any:
    # Bill at the price of the moment of the click: the click carries it.
    url, advertiser, cents = db().hmget(ad_key(ad_id), "url", "advertiser", "cpc_cents")
    if url is None:
        return bad(f"no ad {ad_id!r}", 404)
    event = {
        "ad": ad_id,
        "advertiser": advertiser,
        "cpc_cents": int(cents),
        "at_ms": int(time.time() * 1000),
        "user_agent": request.headers.get("user-agent", "")[:200],
    }
    db().xadd(CLICKS, {"body": json.dumps(event)})
    return "", 302, {"Location": url, "Cache-Control": "no-store"}


def unsettled() -> int:
    """Clicks not yet settled: those the consumer groups of ``clicks`` hold or have not read yet."""
    try:
        groups = db().xinfo_groups(CLICKS)
    except redis.ResponseError:  # no stream yet
        return 0
    if not groups:
        return int(db().xlen(CLICKS))
    return max(int(g.get("pending") or 0) + int(g.get("lag") or 0) for g in groups)


def report() -> dict[str, Any]:
    pipe = db().pipeline(transaction=True)
    pipe.hgetall(BILLED_CENTS)
    pipe.hgetall(BILLED_CLICKS)
    cents, clicks = pipe.execute()
    advertisers = {
        name: {"clicks": int(clicks.get(name, 0)), "cents": int(cents[name]), "amount": money(int(cents[name]))}
        for name in sorted(cents)
    }
    total = sum(int(c) for c in cents.values())
    return {
        "advertisers": advertisers,
        "total": {"clicks": sum(int(c) for c in clicks.values()), "cents": total, "amount": money(total)},
        "unsettled_clicks": unsettled(),
    }


def main(context: Any) -> Any:
    request = context.request
    # /ads/{id}/click through the route, or /function/adserver/ads/x/click without it
    parts = request.path.rstrip("/").split("/")
    if len(parts) >= 3 and parts[-1] == "click" and parts[-3] == "ads":
        if request.method not in ("GET", "HEAD"):
            return bad("a click is a GET", 405)
        return click(request.params.get("id") or parts[-2], request)
    if parts[-1] == "report":
        return report()
    if request.method == "POST":
        return put_ad(request)
    if request.method == "GET":
        ids = sorted(db().smembers("ads:ids"))
        return {"ads": [ad for ad in map(ad_of, ids) if ad]}
    return bad("GET or POST", 405)
