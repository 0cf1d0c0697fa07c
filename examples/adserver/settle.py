"""Settles clicks: called by the message-queue trigger on the stream ``clicks``, once per click.

Delivery is at least once: faasd gives a message again when its answer was
lost (faasd stopped between the call and the acknowledgement). So a click is
billed in one Lua script that first remembers the message's id
(``SET billing:settled:<id> NX``) and adds to the totals only when that id was
new: Redis runs the script whole, so a click is billed exactly once.
"""

from __future__ import annotations

from typing import Any

from store import BILLED_CENTS, BILLED_CLICKS, SETTLED_TTL, db

SETTLE = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[3]) then
  redis.call('HINCRBY', KEYS[2], ARGV[1], ARGV[2])
  redis.call('HINCRBY', KEYS[3], ARGV[1], 1)
  return 1
end
return 0
"""
_script: Any = None


def main(context: Any) -> Any:
    global _script
    request = context.request
    message_id = request.context.get("message_id")
    if not message_id:
        return {"error": "settle is called by the mqtrigger on the stream 'clicks'"}, 400
    try:
        click = request.json()
        advertiser, cents = str(click["advertiser"]), int(click["cpc_cents"])
    except (ValueError, TypeError, KeyError) as exc:
        # Answered 4xx: retried up to the trigger's --maxretries, then on its --errortopic.
        return {"error": f"not a click: {exc!r}"}, 422
    if _script is None:
        _script = db().register_script(SETTLE)
    billed = _script(
        keys=[f"billing:settled:{message_id}", BILLED_CENTS, BILLED_CLICKS], args=[advertiser, cents, SETTLED_TTL]
    )
    return {"message_id": message_id, "advertiser": advertiser, "cents": cents, "billed": bool(billed)}
