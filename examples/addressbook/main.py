"""An address book kept in Redis: GET renders it with a form, POST adds an entry.

- ``GET /addressbook``: the entries (sorted by name) as an HTML page, with a
  form to add one; ``?format=json`` gives them as JSON.
- ``POST /addressbook``: a form (``application/x-www-form-urlencoded``, as a
  browser sends it) or JSON with ``name`` and a ``phone`` and/or an ``email``;
  adds the entry and answers ``303 See Other`` back to the page, so a reload
  does not post it again. A bad entry is a 400 with the page and the error.

Redis (``REDIS_URL``, default ``redis://redis:6379``): one hash per entry,
``addressbook:entry:<id>``, the ids in the list ``addressbook:entries``, the
last id given in ``addressbook:next-id``.
"""

from __future__ import annotations

import html
import json
import os
import threading
import time
import urllib.parse
from typing import Any

import redis

PREFIX = "addressbook"
FIELDS = {"name": 100, "phone": 40, "email": 200}  # field -> most characters

_client: redis.Redis | None = None
_lock = threading.Lock()


def db() -> redis.Redis:
    """One client (a connection pool) per instance, made on the first call."""
    global _client
    with _lock:
        if _client is None:
            url = os.environ.get("REDIS_URL", "redis://redis:6379")
            _client = redis.Redis.from_url(url, decode_responses=True, socket_timeout=5, socket_connect_timeout=5)
        return _client


def entries() -> list[dict[str, str]]:
    ids = db().lrange(f"{PREFIX}:entries", 0, -1)
    pipe = db().pipeline(transaction=False)
    for entry_id in ids:
        pipe.hgetall(f"{PREFIX}:entry:{entry_id}")
    found = [{"id": i, **e} for i, e in zip(ids, pipe.execute(), strict=True) if e]
    return sorted(found, key=lambda e: (e.get("name", "").casefold(), int(e["id"])))


def add(entry: dict[str, str]) -> str:
    entry_id = str(db().incr(f"{PREFIX}:next-id"))
    pipe = db().pipeline(transaction=True)  # MULTI/EXEC: the entry and its id appear together
    pipe.hset(f"{PREFIX}:entry:{entry_id}", mapping={**entry, "added": str(int(time.time()))})
    pipe.rpush(f"{PREFIX}:entries", entry_id)
    pipe.execute()
    return entry_id


def form_of(request: Any) -> dict[str, str]:
    """The posted fields: JSON, or a urlencoded form (a repeated field: its last value)."""
    if request.headers.get("content-type", "").startswith("application/json"):
        data = request.json()
        if not isinstance(data, dict):
            return {}
        return {k: str(v).strip() for k, v in data.items() if k in FIELDS and v is not None}
    pairs = urllib.parse.parse_qsl(request.text, keep_blank_values=True)
    return {k: v.strip() for k, v in pairs if k in FIELDS}


def problem_with(entry: dict[str, str]) -> str:
    if not entry.get("name"):
        return "A name is needed."
    if not entry.get("phone") and not entry.get("email"):
        return "Give a phone number or an email address (or both)."
    for field, most in FIELDS.items():
        if len(entry.get(field, "")) > most:
            return f"The {field} is longer than {most} characters."
    if entry.get("email") and "@" not in entry["email"]:
        return "That email address has no @."
    return ""


def page(action: str, rows: list[dict[str, str]], error: str = "", given: dict[str, str] | None = None) -> str:
    e = html.escape  # every value from a user goes through it: names, numbers, the form's echo
    given = given or {}
    if rows:
        body = "\n".join(
            f"      <tr><td>{e(r.get('name', ''))}</td><td>{e(r.get('phone', ''))}</td>"
            f"<td>{e(r.get('email', ''))}</td></tr>"
            for r in rows
        )
        table = "    <table>\n      <tr><th>Name</th><th>Phone</th><th>Email</th></tr>\n" + body + "\n    </table>\n"
    else:
        table = "    <p>No entries yet.</p>\n"
    alert = f'    <p class="error">{e(error)}</p>\n' if error else ""
    return (
        "<!doctype html>\n"
        '<html lang="en">\n'
        '  <head><meta charset="utf-8"><title>Address book</title>\n'
        "    <style>body{font-family:sans-serif;max-width:40em;margin:2em auto}"
        "td,th{padding:.2em .8em;text-align:left}.error{color:#b00}</style>\n"
        "  </head>\n"
        "  <body>\n"
        f"    <h1>Address book ({len(rows)})</h1>\n"
        f"{table}{alert}"
        f'    <form method="post" action="{e(action)}">\n'
        f'      <label>Name <input name="name" required maxlength="100" value="{e(given.get("name", ""))}"></label>\n'
        f'      <label>Phone <input name="phone" maxlength="40" value="{e(given.get("phone", ""))}"></label>\n'
        f'      <label>Email <input name="email" type="email" maxlength="200" value="{e(given.get("email", ""))}">'
        "</label>\n"
        '      <button type="submit">Add</button>\n'
        "    </form>\n"
        "  </body>\n"
        "</html>\n"
    )


HTML = {"Content-Type": "text/html; charset=utf-8"}


def main(context: Any) -> Any:
    request = context.request
    action = request.path  # /addressbook, or /function/addressbook when called without the route
    if request.method == "GET":
        if request.query.get("format") == "json":
            return {"entries": entries()}
        return page(action, entries()), 200, HTML
    if request.method == "POST":
        try:
            entry = form_of(request)
        except (ValueError, json.JSONDecodeError):
            return page(action, entries(), "The body is not valid JSON."), 400, HTML
        error = problem_with(entry)
        if error:
            return page(action, entries(), error, entry), 400, HTML
        add({k: entry.get(k, "") for k in FIELDS})
        return "", 303, {"Location": action}
    return "only GET and POST\n", 405, {"Allow": "GET, POST"}
