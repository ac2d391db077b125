#!/usr/bin/env python3
"""A counting TCP proxy for the side-by-side benchmark (benches/compare.sh).

Sits between a client and the emulator and counts, for every client alike, what crossed the
wire: connections, HTTP requests (header blocks ending in CRLF CRLF sent by the client; the
clients measured send only body-less GETs) and bytes in each direction (headers included).
After each connection closes it rewrites the running totals as one JSON object to `--totals`,
so a driver reads the totals before and after a client run and takes the difference.

Usage: count_proxy.py --upstream 127.0.0.1:PORT --totals FILE [--port N]
Prints `listening on PORT` to stdout once ready. Python 3.11 standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import threading

CHUNK = 1 << 20
lock = threading.Lock()
totals = {"connections": 0, "requests": 0, "bytes_up": 0, "bytes_down": 0}


def pump(src: socket.socket, dst: socket.socket, counts: dict, key: str, count_requests: bool):
    tail = b""
    try:
        while True:
            data = src.recv(CHUNK)
            if not data:
                break
            counts[key] += len(data)
            if count_requests:
                joined = tail + data
                counts["requests"] += joined.count(b"\r\n\r\n")
                tail = joined[-3:]
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def handle(client: socket.socket, upstream: tuple[str, int], path: str):
    counts = {"requests": 0, "bytes_up": 0, "bytes_down": 0}
    try:
        server = socket.create_connection(upstream)
    except OSError:
        client.close()
        return
    up = threading.Thread(target=pump, args=(client, server, counts, "bytes_up", True))
    up.start()
    pump(server, client, counts, "bytes_down", False)
    up.join()
    client.close()
    server.close()
    with lock:
        totals["connections"] += 1
        for k, v in counts.items():
            totals[k] += v
        tmp = f"{path}.tmp"
        with open(tmp, "w") as f:
            json.dump(totals, f)
        os.replace(tmp, path)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--upstream", required=True)
    p.add_argument("--totals", required=True)
    p.add_argument("--port", type=int, default=0)
    a = p.parse_args()
    host, port = a.upstream.rsplit(":", 1)
    with open(a.totals, "w") as f:
        json.dump(totals, f)
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", a.port))
    ls.listen(64)
    print(f"listening on {ls.getsockname()[1]}", flush=True)
    while True:
        c, _ = ls.accept()
        threading.Thread(target=handle, args=(c, (host, int(port)), a.totals), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
