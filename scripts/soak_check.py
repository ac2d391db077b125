#!/usr/bin/env python3
# Soak loss check (issue 8): the emulator's activity ids over HTTP, the ids each sink holds
# (file output, receiver id logs, ClickHouse, Kafka), and missing/duplicate counts.
"""Subcommands (Python 3 stdlib only):

  emulator-ids --url U --key-id K --key-secret S --out FILE
      Every visible activity of every org the key sees, as `activity:<org>:<id>` lines
      (the exporter's event_id), fetched in 10-minute windows (one for everything older than
      an hour), honouring the emulator's 429 + X-RateLimit-Reset.
  compare --expected FILE --sink NAME=FILE ... --out JSON
      Per sink: lines, distinct ids, duplicates (lines - distinct), missing (expected ids not
      seen), extra activity ids (seen but not expected). Exit 1 on any missing id.
  file-ids NDJSON > ids       event_id of every line of a json-format file sink output
  kafka-ids --broker H:P --topic T [--partitions 3]
      the key (= event_id) of every record, read with Kafka's Fetch v4 (stdlib socket)
"""

import argparse
import base64
import datetime as dt
import gzip
import json
import socket
import struct
import sys
import time
import urllib.error
import urllib.request


def get(url, auth):
    while True:
        req = urllib.request.Request(url, headers={"Authorization": auth})
        try:
            with urllib.request.urlopen(req, timeout=300) as r:
                return json.load(r)["result"]
        except urllib.error.HTTPError as e:
            if e.code != 429:
                raise
            time.sleep(float(e.headers.get("X-RateLimit-Reset", "1")) + 0.2)


def rfc3339(t):
    # The emulator is strict like the live API (API notes §3.3): only this form is accepted.
    return t.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def emulator_ids(a):
    auth = "Basic " + base64.b64encode(f"{a.key_id}:{a.key_secret}".encode()).decode()
    orgs = [o["id"] for o in get(f"{a.url}/v1/organizations", auth)]
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    recent = now - dt.timedelta(hours=1)
    ids = set()
    for org in orgs:
        base = f"{a.url}/v1/organizations/{org}/activities"
        # Bounds are inclusive, so neighbouring windows share a second; the set absorbs that.
        windows = [f"?to_date={rfc3339(recent)}"]
        t = recent
        while t <= now:
            windows.append(f"?from_date={rfc3339(t)}&to_date={rfc3339(t + dt.timedelta(minutes=10))}")
            t += dt.timedelta(minutes=10)
        n = 0
        for w in windows:
            for act in get(base + w, auth):
                ids.add(f"activity:{org}:{act['id']}")
                n += 1
        print(f"emulator: org {org}: {n} activities", file=sys.stderr)
    with open(a.out, "w", encoding="utf-8") as f:
        f.writelines(i + "\n" for i in sorted(ids))
    print(len(ids))


def read_ids(path):
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


def compare(a):
    expected = set(read_ids(a.expected))
    report = {"expected": len(expected), "sinks": {}}
    lost = False
    for spec in a.sink:
        name, path = spec.split("=", 1)
        seen = read_ids(path)
        distinct = set(seen)
        missing = expected - distinct
        extra = {i for i in distinct - expected if i.startswith("activity:")}
        report["sinks"][name] = {
            "lines": len(seen),
            "distinct": len(distinct),
            "distinct_activities": len(distinct & expected),
            "duplicates": len(seen) - len(distinct),
            "missing": len(missing),
            "missing_sample": sorted(missing)[:5],
            "extra_activities": len(extra),
        }
        lost |= bool(missing)
        print(f"{name:10} lines={len(seen)} distinct={len(distinct)} "
              f"duplicates={len(seen) - len(distinct)} missing={len(missing)} "
              f"extra_activities={len(extra)}", file=sys.stderr)
    with open(a.out, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
    sys.exit(1 if lost else 0)


def file_ids(a):
    with open(a.path, encoding="utf-8") as f:
        for line in f:
            print(json.loads(line)["event_id"])


def _varint(b, i):
    """Zigzag varint at b[i:] → (value, next index)."""
    shift = result = 0
    while True:
        byte = b[i]
        i += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (result >> 1) ^ -(result & 1), i
        shift += 7


def _records(batches):
    """(offset, key) of every record in a v2 record-batch blob (none or gzip compression)."""
    i = 0
    while i + 12 <= len(batches):
        base, length = struct.unpack_from(">qi", batches, i)
        end = i + 12 + length
        if end > len(batches):
            return  # a partial batch at the end of the fetch; fetched again next time
        attrs, _last_delta = struct.unpack_from(">hi", batches, i + 21)
        count = struct.unpack_from(">i", batches, i + 57)[0]
        body = batches[i + 61:end]
        codec = attrs & 7
        if codec == 1:
            body = gzip.decompress(body)
        elif codec:
            sys.exit(f"kafka-ids: compression codec {codec} not supported; use none or gzip")
        j = 0
        for _ in range(count):
            _len, j = _varint(body, j)
            j += 1  # attributes
            _ts, j = _varint(body, j)
            off_delta, j = _varint(body, j)
            klen, j = _varint(body, j)
            key = body[j:j + klen] if klen >= 0 else b""
            j += max(klen, 0)
            vlen, j = _varint(body, j)
            j += max(vlen, 0)
            headers, j = _varint(body, j)
            for _ in range(headers):
                hk, j = _varint(body, j)
                j += hk
                hv, j = _varint(body, j)
                j += max(hv, 0)
            yield base + off_delta, key.decode()
        i = end


def _fetch(sock, topic, partition, offset, corr):
    """One Fetch v4 request; returns (high watermark, record-batch bytes)."""
    t = topic.encode()
    body = struct.pack(">iiiib", -1, 1000, 1, 64 << 20, 0)
    body += struct.pack(">ih", 1, len(t)) + t + struct.pack(">iiqi", 1, partition, offset, 16 << 20)
    client = b"soak-check"
    msg = struct.pack(">hhih", 1, 4, corr, len(client)) + client + body
    sock.sendall(struct.pack(">i", len(msg)) + msg)
    size = struct.unpack(">i", _read(sock, 4))[0]
    r = _read(sock, size)
    i = 4 + 4 + 4  # correlation id, throttle time, topic count
    tlen = struct.unpack_from(">h", r, i)[0]
    i += 2 + tlen + 4  # topic name, partition count
    _p, err, hw, _lso = struct.unpack_from(">ihqq", r, i)
    i += 22
    if err:
        sys.exit(f"kafka-ids: fetch error {err} on partition {partition}")
    aborted = struct.unpack_from(">i", r, i)[0]
    i += 4 + max(aborted, 0) * 16
    rlen = struct.unpack_from(">i", r, i)[0]
    return hw, r[i + 4:i + 4 + max(rlen, 0)]


def _read(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            sys.exit("kafka-ids: broker closed the connection")
        buf += chunk
    return buf


def kafka_ids(a):
    """Every record key (= event_id) of every partition, read with Kafka's Fetch v4."""
    host, port = a.broker.rsplit(":", 1)
    corr = 0
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        for p in range(a.partitions):
            offset, hw = 0, None
            while hw is None or offset < hw:
                corr += 1
                hw, blob = _fetch(sock, a.topic, p, offset, corr)
                got = 0
                for off, key in _records(blob):
                    if off >= offset:
                        print(key)
                        offset = off + 1
                        got += 1
                if not got and offset < hw:
                    sys.exit(f"kafka-ids: no progress on partition {p} at offset {offset} < {hw}")
            print(f"kafka: partition {p}: high watermark {hw}", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("emulator-ids")
    e.add_argument("--url", required=True)
    e.add_argument("--key-id", required=True)
    e.add_argument("--key-secret", required=True)
    e.add_argument("--out", required=True)
    c = sub.add_parser("compare")
    c.add_argument("--expected", required=True)
    c.add_argument("--sink", action="append", default=[], help="NAME=FILE of ids")
    c.add_argument("--out", required=True)
    f = sub.add_parser("file-ids")
    f.add_argument("path")
    k = sub.add_parser("kafka-ids")
    k.add_argument("--broker", required=True, help="host:port")
    k.add_argument("--topic", required=True)
    k.add_argument("--partitions", type=int, default=3)
    a = ap.parse_args()
    {"emulator-ids": emulator_ids, "compare": compare, "file-ids": file_ids,
     "kafka-ids": kafka_ids}[a.cmd](a)


if __name__ == "__main__":
    main()
