#!/usr/bin/env python3
"""One run of the vendor's Splunk add-on polling algorithm, for the side-by-side benchmark.

What users run today (../shared/docs/product.md, "What they have today": "the vendor's Splunk
add-on (asks for a 365-day window on every run, dedupes against an id file that is never
pruned, no retries, no rate limiting, no metrics, Splunk only)"; the wire details are in
../shared/docs/clickhouse-cloud-api.md §3.2 and §3.3, source S9: the ClickHouse Splunk add-on's
modular input, class ClickHouseCloudAuditLogsScript, Apache-2.0, Splunkbase app 7709).
This is a reimplementation of that algorithm, not the add-on's code. On every run (Splunk
starts the modular input once per configured interval):

1. Read the checkpoint file `<checkpoint_dir>/<org>.txt` (one activity id per line) into a
   Python *list* (the add-on keeps `f.read().splitlines()`), so every "seen?" test below is a
   linear scan: a run over N stored activities costs O(N^2) comparisons once the file holds
   them. `--lookup set` swaps in a set (NOT what the add-on does) so 1 M runs finish; then
   `--estimate-list` times list lookups for a sample of the answer and scales them up.
2. One request, no retry, no rate limiting: `GET /v1/organizations/{org}/activities?
   from_date=<now-365d>&to_date=<now>`, both naive UTC `%Y-%m-%dT%H:%M:%S.000`, URL-encoded,
   headers `Authorization: Basic base64(id:secret)`, `Content-Type: application/json`,
   `User-Agent: splunk-clickhouse-cloud-audit-logs`; a new connection per run (http.client,
   closed afterwards). Non-2xx is an error (the run logs it and emits nothing).
3. Read the whole body and `json.loads` it (the whole year is in memory at once).
4. For every activity of `result` whose id is not in the list: emit it as a Splunk event
   (`data` = `json.dumps(activity)`, `time` = `createdAt` parsed with `%Y-%m-%dT%H:%M:%S%z`
   and printed as `%s.000`, `source` = the activities URL), written the way splunklib's
   EventWriter does: `<stream>` once, then one `<event>` element per event built with
   ElementTree, flushed after each event; `</stream>` at the end. The id is appended to an
   in-memory string.
5. Append that string to the checkpoint file (never pruned, so it grows by every id forever).

Output: events go to `--out` (default stdout); one JSON line of measurements goes to stderr
(or `--stats FILE`): activities in the answer, events emitted, response bytes, seconds per
phase, checkpoint bytes after the run.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import http.client
import json
import os
import sys
import time
import urllib.parse
import xml.etree.ElementTree as ET


def fetch(base_url: str, org: str, key_id: str, key_secret: str) -> tuple[bytes, str]:
    """The add-on's request: the last 365 days, one GET, whole body read."""
    now = datetime.datetime.now(datetime.timezone.utc)
    fmt = "%Y-%m-%dT%H:%M:%S.000"
    query = urllib.parse.urlencode(
        {
            "from_date": (now - datetime.timedelta(days=365)).strftime(fmt),
            "to_date": now.strftime(fmt),
        }
    )
    path = f"/v1/organizations/{org}/activities"
    url = urllib.parse.urlsplit(base_url)
    auth = base64.b64encode(f"{key_id}:{key_secret}".encode()).decode()
    headers = {
        "Authorization": f"Basic {auth}",
        "Content-Type": "application/json",
        "User-Agent": "splunk-clickhouse-cloud-audit-logs",
    }
    conn_cls = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
    conn = conn_cls(url.netloc)
    try:
        conn.request("GET", f"{path}?{query}", headers=headers)
        resp = conn.getresponse()
        if not 200 <= resp.status < 300:
            raise RuntimeError(f"HTTP {resp.status}: {resp.reason}")
        return resp.read(), f"{base_url}{path}"
    finally:
        conn.close()


def write_event(out, stanza: str, source: str, activity: dict) -> None:
    """One event as splunklib's Event.write_to writes it (ElementTree, flush per event)."""
    created = datetime.datetime.strptime(activity["createdAt"], "%Y-%m-%dT%H:%M:%S%z")
    event = ET.Element("event")
    event.set("stanza", stanza)
    event.set("unbroken", "0")
    ET.SubElement(event, "time").text = created.strftime("%s.000")
    ET.SubElement(event, "source").text = source
    ET.SubElement(event, "data").text = json.dumps(activity)
    out.write(ET.tostring(event).decode())
    out.flush()


def estimate_list_seconds(seen: list[str], ids: list[str], samples: int = 2000) -> float:
    """Seconds the add-on's list lookups would take for `ids`: time `id in seen` for an evenly
    spaced sample of the answer (the cost depends on where each id sits in the list) and scale
    to all of them."""
    if not ids:
        return 0.0
    step = max(1, len(ids) // samples)
    picked = ids[::step]
    t0 = time.perf_counter()
    for i in picked:
        _ = i in seen
    return (time.perf_counter() - t0) / len(picked) * len(ids)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base-url", required=True, help="e.g. http://127.0.0.1:8123 (no /v1)")
    p.add_argument("--org", required=True)
    p.add_argument("--key-id", required=True)
    p.add_argument("--key-secret", required=True)
    p.add_argument("--checkpoint", required=True, help="the add-on's <checkpoint_dir>/<org>.txt")
    p.add_argument("--out", help="events (splunklib XML stream); default stdout")
    p.add_argument("--stats", help="write the measurements here instead of stderr")
    p.add_argument("--lookup", choices=["list", "set"], default="list",
                   help="list: the add-on's linear scan (default); set: a faster stand-in")
    p.add_argument("--estimate-list", action="store_true",
                   help="also estimate what the list lookups take, from a timed sample")
    a = p.parse_args()

    t_start = time.perf_counter()
    seen: list[str] = []
    if os.path.exists(a.checkpoint):
        with open(a.checkpoint) as f:
            seen = f.read().splitlines()
    lookup = seen if a.lookup == "list" else set(seen)
    t_read = time.perf_counter()

    body, source = fetch(a.base_url, a.org, a.key_id, a.key_secret)
    t_fetch = time.perf_counter()
    activities = json.loads(body.decode())["result"]
    t_parse = time.perf_counter()

    out = open(a.out, "a") if a.out else sys.stdout
    stanza = f"clickhouse_cloud_audit_logs://{a.org}"
    new_ids = ""
    emitted = 0
    out.write("<stream>")
    for activity in activities:
        if activity["id"] not in lookup:
            write_event(out, stanza, source, activity)
            new_ids += f"{activity['id']}\n"
            emitted += 1
    out.write("</stream>\n")
    out.flush()
    if a.out:
        out.close()
    t_loop = time.perf_counter()

    with open(a.checkpoint, "a") as f:
        f.write(new_ids)
    t_end = time.perf_counter()

    stats = {
        "activities": len(activities),
        "emitted": emitted,
        "requests": 1,
        "response_bytes": len(body),
        "checkpoint_bytes": os.path.getsize(a.checkpoint),
        "checkpoint_ids": len(seen) + emitted,
        "lookup": a.lookup,
        "seconds": {
            "read_checkpoint": round(t_read - t_start, 3),
            "fetch": round(t_fetch - t_read, 3),
            "parse": round(t_parse - t_fetch, 3),
            "dedupe_and_emit": round(t_loop - t_parse, 3),
            "write_checkpoint": round(t_end - t_loop, 3),
            "total": round(t_end - t_start, 3),
        },
    }
    if a.estimate_list:
        ids = [x["id"] for x in activities]
        stats["estimated_list_lookup_seconds"] = round(estimate_list_seconds(seen, ids), 1)
    line = json.dumps(stats)
    if a.stats:
        with open(a.stats, "w") as f:
            f.write(line + "\n")
    else:
        print(line, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
