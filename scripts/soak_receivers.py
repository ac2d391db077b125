#!/usr/bin/env python3
# Soak receivers (issue 8): a flapping webhook endpoint, a Splunk HEC endpoint and a syslog TCP
# listener for scripts/soak.sh; each appends every event_id it accepts to <dir>/<sink>.ids.
"""Local stand-ins for the soak run's network sinks (Python 3 stdlib only).

- webhook: POST any path; body a JSON array or NDJSON of envelopes (gzip if
  Content-Encoding says so); 200 once the ids are written. Flaps: up `--up` seconds, then the
  listening socket is closed (connection refused) for `--down` seconds, and so on; every
  transition goes to <dir>/flaps.csv as `epoch_seconds,state`.
- hec: POST /services/collector/event with `Authorization: Splunk <token>`; body = HEC event
  objects back to back; the id is `fields.event_id`; answers {"text":"Success","code":0}.
- syslog: RFC 6587 octet-counted (or newline-framed) RFC 5424 over TCP; the id is the SD
  parameter event_id="…".

One line per accepted event (duplicates included), so `sort -u | wc -l` gives distinct ids and
`wc -l` minus that the duplicates. Writes `<dir>/receivers.ready` once all three listen.
"""

import argparse
import gzip
import json
import re
import signal
import socket
import socketserver
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class IdLog:
    """Appends ids to a file, one per line; thread-safe; flushed after every batch."""

    def __init__(self, path):
        self.f = open(path, "a", encoding="utf-8")
        self.lock = threading.Lock()
        self.count = 0

    def add(self, ids):
        if not ids:
            return
        with self.lock:
            self.f.write("".join(i + "\n" for i in ids))
            self.f.flush()
            self.count += len(ids)


def body_of(handler):
    n = int(handler.headers.get("Content-Length", "0"))
    data = handler.rfile.read(n)
    if handler.headers.get("Content-Encoding", "").lower() == "gzip":
        data = gzip.decompress(data)
    return data


def json_values(text):
    """Every JSON value in `text`: one array, or objects back to back / one per line."""
    dec = json.JSONDecoder()
    i, out = 0, []
    while True:
        while i < len(text) and text[i] in " \t\r\n":
            i += 1
        if i >= len(text):
            return out
        v, i = dec.raw_decode(text, i)
        out.extend(v if isinstance(v, list) else [v])


def make_webhook_handler(ids):
    class Webhook(BaseHTTPRequestHandler):
        def do_POST(self):
            try:
                events = json_values(body_of(self).decode("utf-8"))
                got = [e["event_id"] for e in events]
            except (ValueError, KeyError, TypeError) as e:
                self.send_response(400)
                self.end_headers()
                self.wfile.write(str(e).encode())
                return
            ids.add(got)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    return Webhook


def make_hec_handler(ids, token):
    class Hec(BaseHTTPRequestHandler):
        def answer(self, status, obj):
            body = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            if self.path.split("?")[0] != "/services/collector/event":
                return self.answer(404, {"text": "The requested URL was not found", "code": 404})
            if self.headers.get("Authorization") != f"Splunk {token}":
                return self.answer(403, {"text": "Invalid token", "code": 4})
            try:
                events = json_values(body_of(self).decode("utf-8"))
                got = [e["fields"]["event_id"] for e in events]
            except (ValueError, KeyError, TypeError):
                return self.answer(400, {"text": "Invalid data format", "code": 6})
            ids.add(got)
            self.answer(200, {"text": "Success", "code": 0})

        def log_message(self, *args):
            pass

    return Hec


SD_EVENT_ID = re.compile(rb'event_id="((?:[^"\\]|\\.)*)"')


def make_syslog_handler(ids):
    class Syslog(socketserver.StreamRequestHandler):
        def handle(self):
            r = self.rfile
            while True:
                first = r.read(1)
                if not first:
                    return
                if first.isdigit():  # octet counting: "LEN SP MSG"
                    digits = first
                    while (c := r.read(1)) and c != b" ":
                        digits += c
                    msg = r.read(int(digits))
                else:  # newline framing
                    msg = first + r.readline()
                m = SD_EVENT_ID.search(msg)
                if m:
                    ids.add([re.sub(rb"\\(.)", rb"\1", m.group(1)).decode()])
                else:
                    print(f"syslog: no event_id in {msg[:120]!r}", file=sys.stderr)

    return Syslog


class ReusingHTTPServer(ThreadingHTTPServer):
    allow_reuse_address = True
    daemon_threads = True


class ReusingTCPServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def flap(port, handler, up, down, log_path, stop):
    """Serves `up` seconds, closes the listener for `down` seconds, repeats until `stop`."""
    with open(log_path, "a", encoding="utf-8") as log:
        while not stop.is_set():
            srv = ReusingHTTPServer(("127.0.0.1", port), handler)
            threading.Thread(target=srv.serve_forever, daemon=True).start()
            log.write(f"{time.time():.3f},up\n")
            log.flush()
            if stop.wait(up):
                srv.shutdown()
                srv.server_close()
                return
            srv.shutdown()
            srv.server_close()
            log.write(f"{time.time():.3f},down\n")
            log.flush()
            if down > 0 and stop.wait(down):
                return


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", required=True, help="where the .ids files and flaps.csv go")
    ap.add_argument("--webhook-port", type=int, required=True)
    ap.add_argument("--hec-port", type=int, required=True)
    ap.add_argument("--syslog-port", type=int, required=True)
    ap.add_argument("--hec-token", default="soak-hec-token")
    ap.add_argument("--up", type=float, default=120, help="webhook seconds up per cycle")
    ap.add_argument("--down", type=float, default=120, help="webhook seconds down per cycle")
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

    webhook, hec, syslog = (IdLog(f"{a.dir}/{n}.ids") for n in ("webhook", "hec", "syslog"))
    stop = threading.Event()
    hec_srv = ReusingHTTPServer(("127.0.0.1", a.hec_port), make_hec_handler(hec, a.hec_token))
    sys_srv = ReusingTCPServer(("127.0.0.1", a.syslog_port), make_syslog_handler(syslog))
    for s in (hec_srv, sys_srv):
        threading.Thread(target=s.serve_forever, daemon=True).start()
    threading.Thread(
        target=flap,
        args=(a.webhook_port, make_webhook_handler(webhook), a.up, a.down,
              f"{a.dir}/flaps.csv", stop),
        daemon=True,
    ).start()
    # Wait until the webhook listener is up before announcing readiness.
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", a.webhook_port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    open(f"{a.dir}/receivers.ready", "w").close()
    try:
        while True:
            time.sleep(60)
            print(f"receivers: webhook={webhook.count} hec={hec.count} syslog={syslog.count}",
                  file=sys.stderr, flush=True)
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        stop.set()


if __name__ == "__main__":
    main()
