#!/usr/bin/env python3
"""A standalone fake of the ClickHouse Cloud activities API, for benchmarks (issue 12).

The team rule for benchmarks: serve the data from something that is not our own emulator
(`src/emulator/`), so a figure cannot depend on the emulator and the exporter sharing a
misreading of the API. This is a small, independent reimplementation of the parts of the API a
poller touches (docs/clickhouse-cloud-api.md §2, §3, §4.1), Python 3.11 standard
library only (`http.server` + threads):

- `GET /v1/organizations` → the single org of the key; `GET /v1/organizations/{org}` → it.
- `--orgs N` (default 1): N organizations, org i (1..N) seen only by the key id `bench-<i>`
  (any secret): its `GET /v1/organizations` lists org i alone, another org's paths answer
  404, and each key has its own `--limit` window. Org 1 is the single org of the default
  (any key id sees it when N = 1; with N > 1 another key id gets 401); org i > 1 has its own
  id and its data is generated from `--seed`, i and the date, so orgs differ.
- `--inventory`: also the list endpoints the inventory poller and the own-key watch read
  (vendor spec `ApiKey`, §6): `GET /v1/organizations/{org}/keys` → one record, the asking
  key's own (`id` a UUID, `name` the key id, `state` "enabled", `roles` ["developer"],
  `keySuffix` the last 4 characters of the key id, `createdAt`, `expireAt` 180 days after
  start-up, `usedAt` this minute); `/services`, `/members`, `/invitations` → `[]` (so no backups are listed).
  Without it those paths answer 404, as before.
- `GET /v1/organizations/{org}/activities?from_date&to_date` → every visible activity of the
  window, oldest first, no pagination, in the vendor envelope
  `{"status":200,"requestId":"<uuid4>","result":[…]}`; every answer carries an HTTP `Date`.
- Basic auth with any key id and secret (a missing or non-Basic `Authorization` gets 401).
- `--mode exact`: `from_date`/`to_date` may be RFC 3339 (`…T10:53:17.000Z`, any offset),
  naive `…T10:53:17[.000]` (read as UTC) or `YYYY-MM-DD` (from: 00:00:00; to: the whole day);
  an activity is returned when `from <= createdAt <= to`, to the millisecond.
- `--mode date-only`: a value that is not `YYYY-MM-DD` gets `400 {"status":400,"error":
  "BAD_REQUEST: Invalid from_date …: the date must be in format YYYY-MM-DD",…}`; the bounds
  cover whole UTC days, `to_date` inclusive of its day (as the documented `usageCost`
  endpoint reads its `to_date`, API notes §6).
- No `from_date`: from the first activity; no `to_date`: up to now; `from > to` → 400.
- Data: `--per-day N` activities on each of the `--history-days` UTC days before today and on
  today (`--day OFFSET=N` overrides one day: `--day -1=200000` is yesterday). Each day's
  activities are generated from `--seed` and the date alone (the same day holds the same
  activities in every run), at random whole seconds of the day; an activity whose `createdAt`
  is still in the future is not visible yet, so today fills up in real time. Objects are
  400–600 bytes, shaped like the emulator's (id, createdAt, type, actor*, organizationId,
  serviceId on service events, userAgent, key targets), pre-encoded once at start-up.
- Large answers are written in pieces of 2,000 activities with a `Content-Length` computed up
  front (`--framing chunked` sends `Transfer-Encoding: chunked` instead), so the fake copies
  bytes and does no per-request JSON work.
- `--limit 10/10s`: a per-key sliding window; over it, `429 {"status":429,"error":
  "TOO_MANY_REQUESTS",…}` with `X-RateLimit-Reset: <seconds until a slot frees>`.

Counting: every request appends one JSON line to `--log` (time, path, bounds, status,
activities, bytes written including headers, ms; with `--orgs` > 1 also `key` and `org`, the
org index the key sees) and updates totals served unauthenticated at
`GET /_stats` (`requests`, `activity_requests`, `status` counts, `bytes`, `activities`). Bytes
are what the fake wrote to the socket: for an answer the client refuses after reading its
headers (a `Content-Length` above its cap) that includes what the kernel accepted before the
client closed.

Usage: activities_server.py [--port 0] [--mode exact|date-only] [--per-day N]
           [--history-days D] [--day OFFSET=N ...] [--seed S] [--limit 10/10s]
           [--framing length|chunked] [--log FILE] [--orgs N] [--inventory]
Prints `listening on PORT` on stdout once the data is generated and the socket is open.
"""

from __future__ import annotations

import argparse
import base64
import bisect
import collections
import datetime as dt
import http.server
import itertools
import json
import random
import re
import sys
import threading
import time
import urllib.parse
import uuid

ORG_ID = "10ead720-7ca1-48c9-aaf7-7230f42b56c0"
PIECE = 2000
DAY = 86400

TYPES = [  # (type, weight): what a busy org emits most, as in the emulator's generator
    ("user_login", 220), ("user_logout", 70), ("user_login_failed", 25), ("service_idle", 90),
    ("service_awaken", 60), ("service_running", 35), ("service_stop", 18), ("service_start", 18),
    ("service_update_ip_access_list", 14), ("service_update_autoscaling_memory", 10),
    ("service_update_password", 8), ("service_upgrade", 10), ("service_create", 5),
    ("openapi_key_update", 14), ("key_create", 6), ("key_delete", 3),
    ("organization_invite_create", 6), ("organization_member_join", 4), ("backup_delete", 3),
    ("role_update", 3),
]
SYSTEM = {"service_idle", "service_running", "service_upgrade"}
BROWSERS = [
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
]
API_AGENTS = ["terraform-provider-clickhouse/3.3.3 Commit/c320db9", "clickhousectl/0.6.0",
              "python-requests/2.32.3"]
KEY_UPDATES = ["state-changed", "name-changed", "roles-changed", "expiration-changed"]


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


class Pools:
    def __init__(self, rng: random.Random):
        self.users = [(_uuid(rng), f"Firstname{i} Lastname{i} <firstname{i}.lastname{i}@example-corp.com>")
                      for i in range(40)]
        self.keys = [(_uuid(rng), f"ci-key-{i}") for i in range(8)]
        self.services = [_uuid(rng) for _ in range(12)]
        weights = list(itertools.accumulate(w for _, w in TYPES))
        self.types, self.weights = [t for t, _ in TYPES], weights


def activity(rng: random.Random, p: Pools, created: int, org_id: str) -> bytes:
    kind = rng.choices(p.types, cum_weights=p.weights)[0]
    if kind in SYSTEM:
        actor = "system"
    elif kind.startswith("user_") or kind == "organization_member_join":
        actor = "user"
    else:
        actor = "user" if rng.random() < 0.65 else "api"
    ip = (f"203.0.113.{rng.randrange(1, 255)}" if rng.random() < 0.8
          else f"2001:db8:{rng.randrange(65536):x}::{rng.randrange(1, 65536):x}")
    ts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created))
    parts = [f'"id":"{_uuid(rng)}"', f'"createdAt":"{ts}"', f'"type":"{kind}"',
             f'"actorType":"{actor}"']
    if actor == "user":
        uid, details = rng.choice(p.users)
        parts += [f'"actorId":"{uid}"', f'"actorDetails":"{details}"', f'"actorIpAddress":"{ip}"']
    elif actor == "api":
        kid, name = rng.choice(p.keys)
        parts += [f'"actorId":"{kid}"', f'"actorDetails":"{name}"', f'"actorIpAddress":"{ip}"']
    else:
        parts += ['"actorId":"system"', '"actorDetails":"ClickHouse Cloud"']
    parts.append(f'"organizationId":"{org_id}"')
    if kind.startswith(("service_", "backup_")):
        parts.append(f'"serviceId":"{rng.choice(p.services)}"')
    if actor == "user":
        parts.append(f'"userAgent":"{rng.choice(BROWSERS)}"')
    elif actor == "api":
        parts.append(f'"userAgent":"{rng.choice(API_AGENTS)}"')
    if kind == "openapi_key_update":
        parts += [f'"targetKeyId":"{rng.choice(p.keys)[0]}"',
                  f'"keyUpdateType":"{rng.choice(KEY_UPDATES)}"']
    elif kind in ("key_create", "key_delete"):
        parts.append(f'"targetKeyId":"{rng.choice(p.keys)[0]}"')
    return ("{" + ",".join(parts) + "}").encode()


class DayData:
    """One UTC day: createdAt seconds (sorted), the encoded objects, cumulative byte lengths."""

    def __init__(self, seed: int, day: dt.date, n: int, pools: Pools, org: "Org"):
        rng = random.Random(f"{seed}:{day.isoformat()}" if org.index == 1
                            else f"{seed}:{org.index}:{day.isoformat()}")
        start = int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc).timestamp())
        secs = sorted(start + rng.randrange(DAY) for _ in range(n))
        self.start = start
        self.secs = secs
        self.items = [activity(rng, pools, s, org.id) for s in secs]
        self.cum = [0, *itertools.accumulate(len(x) for x in self.items)]


class Org:
    """Organization i (1-based): org 1 is the historical single org (same id, same data)."""

    def __init__(self, index: int, seed: int):
        self.index = index
        self.id = ORG_ID if index == 1 else str(uuid.UUID(int=random.Random(f"org:{index}").getrandbits(128), version=4))
        self.name = "bench-org" if index == 1 else f"bench-org-{index}"
        self.days: dict[int, DayData] = {}
        self.first = 0
        self.json = {"id": self.id, "name": self.name, "createdAt": "2024-01-01T00:00:00Z",
                     "privateEndpoints": [], "byocConfig": [], "enableCoreDumps": False}

    def select(self, lo: float, hi: float) -> list[tuple[DayData, int, int]]:
        """Slices of visible activities with `lo <= createdAt <= hi`, oldest first."""
        hi = min(hi, time.time())
        if hi < lo:
            return []
        out = []
        first = dt.datetime.fromtimestamp(max(lo, 0), dt.timezone.utc).date().toordinal()
        last = dt.datetime.fromtimestamp(max(hi, 0), dt.timezone.utc).date().toordinal()
        for o in range(max(first, self.first), last + 1):
            d = self.days.get(o)
            if not d:
                continue
            i = bisect.bisect_left(d.secs, lo)
            j = bisect.bisect_right(d.secs, hi)
            if j > i:
                out.append((d, i, j))
        return out


def key_record(key: str, started: float) -> dict:
    """The asking key's own `ApiKey` record (vendor spec fields the exporter reads and more)."""
    rid = str(uuid.UUID(int=random.Random(f"key:{key}").getrandbits(128), version=4))
    iso = lambda t: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))  # noqa: E731
    return {"id": rid, "name": key, "state": "enabled", "roles": ["developer"],
            "assignedRoles": [{"roleId": "00000000-0000-4000-8000-000000000001",
                               "roleName": "Org Member", "roleType": "system"}],
            "keySuffix": key[-4:], "createdAt": "2024-01-01T00:00:00Z",
            "expireAt": iso(started + 180 * DAY), "usedAt": iso(time.time() // 60 * 60), "ipAccessList": [{"source": "0.0.0.0/0",
                                                                    "description": ""}]}


def parse_bound(name: str, value: str, mode: str, is_to: bool) -> float:
    """Unix seconds (float) of a bound; raises ValueError with the API's 400 message."""
    bad = f"BAD_REQUEST: Invalid {name} {value!r}: the date must be in format YYYY-MM-DD"
    m = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})", value)
    if m:
        try:
            d = dt.datetime(int(m[1]), int(m[2]), int(m[3]), tzinfo=dt.timezone.utc)
        except ValueError:
            raise ValueError(bad) from None
        return d.timestamp() + (DAY - 0.001 if is_to else 0)
    if mode == "date-only":
        raise ValueError(bad)
    v = value.replace(" ", "T")
    if v.endswith(("Z", "z")):
        v = v[:-1] + "+00:00"
    try:
        t = dt.datetime.fromisoformat(v)
    except ValueError:
        raise ValueError(f"BAD_REQUEST: Invalid {name} {value!r}: expected an ISO 8601 date-time") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    return t.timestamp()


class State:
    def __init__(self, a: argparse.Namespace):
        self.mode, self.framing = a.mode, a.framing
        self.lock = threading.Lock()
        self.totals = {"requests": 0, "activity_requests": 0, "bytes": 0, "activities": 0,
                       "status": collections.Counter()}
        self.log = open(a.log, "a") if a.log else None
        self.limit = None
        if a.limit:
            n, w = re.fullmatch(r"(\d+)/(\d+)s", a.limit).groups()
            self.limit = (int(n), float(w))
        self.hits: dict[str, collections.deque] = collections.defaultdict(collections.deque)
        self.inventory = a.inventory
        self.started = time.time()
        today = dt.datetime.now(dt.timezone.utc).date()
        counts = {off: a.per_day for off in range(-a.history_days, 1)}
        for spec in a.day:
            off, n = spec.split("=")
            counts[int(off)] = int(n)
        self.orgs = [Org(i, a.seed) for i in range(1, a.orgs + 1)]
        for org in self.orgs:
            pools = Pools(random.Random(a.seed if org.index == 1 else f"{a.seed}:{org.index}"))
            for off, n in sorted(counts.items()):
                d = today + dt.timedelta(days=off)
                org.days[d.toordinal()] = DayData(a.seed, d, n, pools, org)
            org.first = min(org.days) if org.days else today.toordinal()

    def org_of(self, key: str) -> Org | None:
        """The org a key id sees: `bench-<i>` → org i; any key → org 1 when there is one org."""
        m = re.fullmatch(r"bench-(\d+)", key)
        if m and 1 <= int(m[1]) <= len(self.orgs):
            return self.orgs[int(m[1]) - 1]
        return self.orgs[0] if len(self.orgs) == 1 else None

    def admit(self, key: str) -> float | None:
        """None when the request may proceed, else seconds until a slot frees."""
        if not self.limit:
            return None
        n, window = self.limit
        now = time.monotonic()
        with self.lock:
            q = self.hits[key]
            while q and q[0] <= now - window:
                q.popleft()
            if len(q) >= n:
                return q[0] + window - now
            q.append(now)
            return None

    def record(self, entry: dict) -> None:
        with self.lock:
            t = self.totals
            t["requests"] += 1
            t["status"][str(entry["status"])] += 1
            t["bytes"] += entry["bytes"]
            if "/activities" in entry["path"]:
                t["activity_requests"] += 1
                t["activities"] += entry.get("count", 0)
            if self.log:
                self.log.write(json.dumps(entry) + "\n")
                self.log.flush()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "activities-fake/1"
    # TCP_NODELAY, as production HTTP servers set it: http.server writes the headers, the
    # envelope's head, each piece and the tail as separate small sends, and with Nagle on, a
    # small send behind one not yet acknowledged waits for the client's delayed ACK (~40 ms on
    # Linux). An empty window's answer took 42-47 ms that way; a tool making many requests paid
    # it per request, one making a single request paid it once.
    disable_nagle_algorithm = True
    state: State

    def log_message(self, *args) -> None:  # the JSON log replaces the access log
        pass

    def _head(self, status: int, length: int | None, extra: dict | None = None) -> int:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        if length is None:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(length))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        n = sum(len(x) for x in self._headers_buffer) + 2
        self.end_headers()
        return n

    def _json(self, status: int, body: dict, extra: dict | None = None) -> int:
        data = json.dumps(body).encode()
        n = self._head(status, len(data), extra)
        self.wfile.write(data)
        return n + len(data)

    def _error(self, status: int, message: str, extra: dict | None = None) -> int:
        return self._json(status, {"status": status, "error": message,
                                   "requestId": str(uuid.uuid4())}, extra)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        t0 = time.perf_counter()
        url = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(url.query))
        entry = {"t": round(time.time(), 3), "path": url.path, "from": q.get("from_date"),
                 "to": q.get("to_date"), "status": 0, "count": 0, "bytes": 0}
        try:
            self._route(url.path, q, entry)
        except (BrokenPipeError, ConnectionResetError):
            entry["aborted"] = True
            self.close_connection = True
        finally:
            entry["ms"] = round((time.perf_counter() - t0) * 1000, 1)
            if url.path != "/_stats":
                self.state.record(entry)

    def _route(self, path: str, q: dict, entry: dict) -> None:
        st = self.state
        if path == "/_stats":
            with st.lock:
                body = dict(st.totals, status=dict(st.totals["status"]))
            self._json(200, body)
            return
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Basic ") or ":" not in base64.b64decode(auth[6:] + "==").decode(errors="replace"):
            entry["status"] = 401
            entry["bytes"] = self._error(401, "UNAUTHORIZED: Invalid credentials")
            return
        key = base64.b64decode(auth[6:] + "==").decode(errors="replace").split(":")[0]
        mine = st.org_of(key)
        if len(st.orgs) > 1:
            entry["key"], entry["org"] = key, mine.index if mine else None
        if mine is None:
            entry["status"] = 401
            entry["bytes"] = self._error(401, "UNAUTHORIZED: Invalid credentials")
            return
        wait = st.admit(key)
        if wait is not None:
            entry["status"] = 429
            entry["bytes"] = self._error(429, "TOO_MANY_REQUESTS",
                                         {"X-RateLimit-Reset": f"{max(wait, 0.001):.3f}"})
            return
        org = mine.json
        parts = path.strip("/").split("/")
        if parts == ["v1", "organizations"]:
            entry["status"] = 200
            entry["bytes"] = self._json(200, {"status": 200, "requestId": str(uuid.uuid4()),
                                              "result": [org]})
            return
        if len(parts) >= 3 and parts[:2] == ["v1", "organizations"] and parts[2] != mine.id:
            entry["status"] = 404
            entry["bytes"] = self._error(404, "NOT_FOUND: Unknown organization")
            return
        if parts == ["v1", "organizations", mine.id]:
            entry["status"] = 200
            entry["bytes"] = self._json(200, {"status": 200, "requestId": str(uuid.uuid4()),
                                              "result": org})
            return
        if st.inventory and len(parts) == 4 and parts[3] in ("keys", "services", "members",
                                                               "invitations"):
            result = [key_record(key, st.started)] if parts[3] == "keys" else []
            entry["status"] = 200
            entry["bytes"] = self._json(200, {"status": 200, "requestId": str(uuid.uuid4()),
                                              "result": result})
            return
        if parts != ["v1", "organizations", mine.id, "activities"]:
            entry["status"] = 404
            entry["bytes"] = self._error(404, "NOT_FOUND: Unknown Error")
            return
        try:
            lo = parse_bound("from_date", q["from_date"], st.mode, False) if "from_date" in q else 0.0
            hi = parse_bound("to_date", q["to_date"], st.mode, True) if "to_date" in q else time.time()
            if lo > hi:
                raise ValueError("BAD_REQUEST: from_date must not be after to_date")
        except ValueError as e:
            entry["status"] = 400
            entry["bytes"] = self._error(400, str(e))
            return
        entry["status"] = 200
        self._activities(mine.select(lo, hi), entry)

    def _activities(self, slices: list, entry: dict) -> None:
        head = ('{"status":200,"requestId":"%s","result":[' % uuid.uuid4()).encode()
        tail = b"]}"
        count = sum(j - i for _, i, j in slices)
        body = sum(d.cum[j] - d.cum[i] for d, i, j in slices) + max(count - 1, 0)
        chunked = self.state.framing == "chunked"
        entry["count"] = count
        entry["bytes"] = self._head(200, None if chunked else len(head) + body + len(tail))
        written = 0

        def put(data: bytes) -> None:
            nonlocal written
            if chunked:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            else:
                self.wfile.write(data)
            written += len(data) + (len(f"{len(data):x}") + 4 if chunked else 0)

        try:
            put(head)
            sep = b""
            for d, i, j in slices:
                for k in range(i, j, PIECE):
                    put(sep + b",".join(d.items[k:min(k + PIECE, j)]))
                    sep = b","
            put(tail)
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
                written += 5
        finally:
            entry["bytes"] += written


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--mode", choices=["exact", "date-only"], default="exact")
    p.add_argument("--per-day", type=int, default=1000)
    p.add_argument("--history-days", type=int, default=5)
    p.add_argument("--day", action="append", default=[], metavar="OFFSET=N")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--limit", help="e.g. 10/10s (per key); default: none")
    p.add_argument("--framing", choices=["length", "chunked"], default="length")
    p.add_argument("--log", help="append one JSON line per request here")
    p.add_argument("--orgs", type=int, default=1, help="organizations; key bench-<i> sees org i")
    p.add_argument("--inventory", action="store_true",
                   help="serve keys (the asking key's record), services, members, invitations")
    a = p.parse_args()
    t0 = time.perf_counter()
    Handler.state = State(a)
    days = [d for org in Handler.state.orgs for d in org.days.values()]
    n = sum(len(d.secs) for d in days)
    size = sum(d.cum[-1] for d in days)
    print(f"generated {n} activities ({size} bytes, {size / max(n, 1):.0f} per activity) "
          f"in {time.perf_counter() - t0:.1f}s", file=sys.stderr, flush=True)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    srv.daemon_threads = True
    print(f"listening on {srv.server_address[1]}", flush=True)
    srv.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
