#!/usr/bin/env python3
"""Runs one client invocation against benches/activities_server.py and appends one CSV row per
figure, for scripts/bench-window-modes.sh (issue 12).

What is measured, and where it comes from:
- requests, HTTP errors, bytes: the fake's own counters (`GET /_stats` before and after the
  client ran; bytes are what the fake wrote, headers included); activities and `dropped` from
  its request log (`--fake-log`, one JSON line per request): `activities` counts the answers
  the client read to the end, `dropped` the answers it closed early (the exporter refuses an
  answer whose `Content-Length` exceeds `max_response_bytes` after reading its headers); the
  log also splits a `once` into poll and sweep;
- wall time; CPU (user + sys) of the client process from `os.wait4`'s rusage (microsecond
  resolution); its peak RSS from `/usr/bin/time -v` ("Maximum resident set size");
- events emitted: the lines the client added to its output file (`--emitted-file`), or the
  add-on's own stats (`--addon-stats`).
With `--sweep`, the client is an exporter `once` that ran a poll and then a sweep: the sweep's
request count comes from the exporter's log line "reconcile sweep …" (`requests`, `fetched`), its
bytes and activities from the last that-many activities requests in the fake's log (a sweep
runs after the poll in `once`), and its CPU is the run's minus `--poll-cpu-ms`.

Usage: wm_measure.py --fake URL --fake-log FILE --csv FILE --dir DIR --name NAME
           --field k=v ... [--emitted-file F] [--addon-stats F] [--sweep --poll-cpu-ms X]
           -- COMMAND ...
Prints the row(s) as `k=v` on stdout.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
import urllib.request

COLUMNS = ["run_at_utc", "commit", "mode", "per_day", "client", "phase", "rc", "requests",
           "http_errors", "dropped", "bytes", "activities", "wall_s", "cpu_ms", "peak_rss_mib", "emitted",
           "note"]


def stats(url: str) -> dict:
    with urllib.request.urlopen(f"{url}/_stats", timeout=10) as r:
        return json.load(r)


def settled(url: str, before: dict) -> dict:
    """The fake's totals once they stop moving (a response the client dropped is accounted
    when the fake's write fails)."""
    last = stats(url)
    for _ in range(50):
        time.sleep(0.2)
        now = stats(url)
        if now == last:
            return now
        last = now
    return last


def lines(path: str) -> int:
    try:
        with open(path, "rb") as f:
            return sum(1 for _ in f)
    except FileNotFoundError:
        return 0


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--fake", required=True)
    p.add_argument("--fake-log", required=True)
    p.add_argument("--csv", required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--field", action="append", default=[])
    p.add_argument("--emitted-file")
    p.add_argument("--addon-stats")
    p.add_argument("--sweep", action="store_true")
    p.add_argument("--poll-cpu-ms", type=float, default=0.0)
    p.add_argument("cmd", nargs=argparse.REMAINDER)
    a = p.parse_args()
    cmd = a.cmd[1:] if a.cmd and a.cmd[0] == "--" else a.cmd
    fields = dict(kv.split("=", 1) for kv in a.field)

    before = stats(a.fake)
    log_before = lines(a.fake_log)
    emitted_before = lines(a.emitted_file) if a.emitted_file else 0
    out = open(os.path.join(a.dir, f"{a.name}.out"), "wb")
    err = open(os.path.join(a.dir, f"{a.name}.err"), "wb")
    t0 = time.perf_counter()
    # Under /usr/bin/time -v: its "Maximum resident set size" is the client's own (a process
    # forked from this Python one would start with Python's ~22 MiB as its high-water mark);
    # the CPU comes from wait4 on `time`, which includes the client it waited for.
    timelog = os.path.join(a.dir, f"{a.name}.time")
    proc = subprocess.Popen(["/usr/bin/time", "-v", "-o", timelog, *cmd], stdout=out, stderr=err)
    _, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    out.close()
    err.close()
    after = settled(a.fake, before)
    with open(a.fake_log) as f:
        entries = [json.loads(x) for x in f.read().splitlines()[log_before:]]
    acts = [e for e in entries if "/activities" in e["path"]]
    errors = sum(1 for e in entries if e["status"] >= 400)
    cpu_ms = (ru.ru_utime + ru.ru_stime) * 1000
    rss_kib = 0
    with open(timelog) as f:
        for line in f:
            if "Maximum resident set size" in line:
                rss_kib = int(line.rsplit(":", 1)[1])
    if a.addon_stats and os.path.exists(a.addon_stats):
        emitted = json.load(open(a.addon_stats))["emitted"]
    elif a.emitted_file:
        emitted = lines(a.emitted_file) - emitted_before
    else:
        emitted = ""
    done = [e for e in acts if not e.get("aborted")]
    row = dict(fields, rc=proc.returncode,
               requests=after["activity_requests"] - before["activity_requests"],
               http_errors=errors, dropped=len(acts) - len(done),
               bytes=after["bytes"] - before["bytes"],
               activities=sum(e["count"] for e in done), wall_s=round(wall, 3),
               cpu_ms=round(cpu_ms, 1), peak_rss_mib=round(rss_kib / 1024, 1),
               emitted=emitted)
    errors_logged = []
    with open(os.path.join(a.dir, f"{a.name}.err"), errors="replace") as f:
        for line in f:
            if '"level":"ERROR"' in line:
                errors_logged.append(json.loads(line).get("message", "")[:110])
    if errors_logged:
        row["note"] = (row.get("note", "") + f"; exporter logged {len(errors_logged)} ERROR "
                       f"line(s), first: {errors_logged[0]}")
    rows = [row]
    if a.sweep:
        sweep_phase = fields.get("phase", "").replace("poll+sweep", "sweep")
        sweep = None
        with open(os.path.join(a.dir, f"{a.name}.err")) as f:
            for line in f:
                try:
                    j = json.loads(line)
                except ValueError:
                    continue
                if "reconcile sweep" in j.get("message", "") and "requests" in j:
                    sweep = j
        if sweep is None:
            rows.append(dict(fields, phase=sweep_phase, rc=proc.returncode,
                             note="no sweep line in the exporter's log"))
        else:
            k = int(sweep["requests"])
            tail = acts[-k:] if k else []
            rows.append(dict(
                fields, phase=sweep_phase, rc=proc.returncode, requests=k,
                http_errors=sum(1 for e in tail if e["status"] >= 400),
                dropped=sum(1 for e in tail if e.get("aborted")),
                bytes=sum(e["bytes"] for e in tail),
                activities=sum(e["count"] for e in tail if not e.get("aborted")),
                cpu_ms=round(cpu_ms - a.poll_cpu_ms, 1),
                note=(f"from the exporter's sweep line (fetched={sweep.get('fetched', '')}, "
                      f"recovered={sweep.get('recovered', 0)}); bytes/activities = its last {k} "
                      f"requests in the fake's log; CPU = this run minus the median poll "
                      f"({a.poll_cpu_ms:.1f} ms); windows: "
                      + " ".join(f"[{e['from']}..{e['to']}]={e['count']}"
                                 f"{'' if e['status'] == 200 else '/' + str(e['status'])}"
                                 f"{'/dropped' if e.get('aborted') else ''}"
                                 for e in tail))))
    new = not os.path.exists(a.csv)
    with open(a.csv, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        if new:
            w.writeheader()
        for r in rows:
            w.writerow({c: r.get(c, "") for c in COLUMNS})
    for r in rows:
        print(" ".join(f"{c}={r[c]}" for c in COLUMNS[2:] if c in r and c != "note"), flush=True)
    # A compact per-request trace next to the outputs, for the report.
    with open(os.path.join(a.dir, f"{a.name}.requests.jsonl"), "w") as f:
        for e in entries:
            f.write(json.dumps(e) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
