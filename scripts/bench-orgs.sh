#!/usr/bin/env bash
# Idle footprint with many organizations (issue 16): RSS, CPU and the requests the exporter
# makes per hour with 1, 10 and 50 organizations, one API key each.
#
#   scripts/bench-orgs.sh [SECONDS=600] [ORGS="1 10 50"]
#   env: BIN (default target/release/clickhouse-audit-exporter), OUT (default
#        benches/results/orgs-idle), PER_DAY (200), HISTORY_DAYS (1)
#
# For each N: benches/activities_server.py (not our emulator) serves N orgs, key bench-<i>
# seeing org i alone with its own 10 req/10 s window, plus the inventory list endpoints (the
# asking key's own record for the own-key watch); the exporter runs `run` with N
# `[[api.keys]]` and otherwise the default configuration (activities every 60s, inventory and
# own-key watch every 5m, one `file` sink, state in a temp dir, metrics on 127.0.0.1:0). Once
# every org has had its first activities, inventory and key-record answers and the fake's log
# has been quiet for 5 s, it measures for SECONDS: VmRSS/RssAnon/RssFile and threads at the
# start and end (/proc/PID/status), CPU seconds (utime+stime, /proc/PID/stat), and the requests
# made in the window per org and in total (the fake's log), scaled to per hour. One summary
# line per N on stdout and in $OUT/summary.txt; raw files in $OUT/n<N>/.
set -euo pipefail

SECS=${1:-600}
ORGS=${2:-"1 10 50"}
BIN=${BIN:-target/release/clickhouse-audit-exporter}
OUT=${OUT:-benches/results/orgs-idle}
PER_DAY=${PER_DAY:-200}
HISTORY_DAYS=${HISTORY_DAYS:-1}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
[ -x "$BIN" ] || { echo "no executable $BIN (build it: cargo build --release --locked, or set BIN)" >&2; exit 2; }
mkdir -p "$OUT"
TMP=$(mktemp -d)
FAKE="" EXP=""
# `fail MSG`: say why, keep that run's logs and config under $OUT/failed-n$N, stop.
fail() {
  echo "$1" >&2
  [ -n "${D:-}" ] && [ -d "$D" ] && { rm -rf "$OUT/failed-n$N"; cp -r "$D" "$OUT/failed-n$N"; rm -f "$OUT/failed-n$N/state.db"* "$OUT/failed-n$N/audit.ndjson"; echo "logs kept in $OUT/failed-n$N" >&2; }
  exit 1
}
cleanup() {
  for p in $EXP $FAKE; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

# `proc PID`: one line "vmrss_kib rssanon_kib rssfile_kib threads cpu_ticks".
proc() {
  python3 - "$1" <<'PY'
import sys
pid = sys.argv[1]
st = {}
for line in open(f"/proc/{pid}/status"):
    k, _, v = line.partition(":")
    st[k] = v.split()[0] if v.split() else "0"
stat = open(f"/proc/{pid}/stat").read()
fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": field 3 onwards
print(st["VmRSS"], st.get("RssAnon", 0), st.get("RssFile", 0), st["Threads"],
      int(fields[11]) + int(fields[12]))  # utime (14) + stime (15)
PY
}

# `ready LOG N`: every org has had a 200 on keys, members and invitations (inventory and
# own-key watch) and on an activities window ending within 2 minutes of the request (the
# catch-up from initial_lookback has reached the present).
ready() {
  python3 - "$1" "$2" <<'PY'
import datetime as dt, json, sys
need = {"activities", "keys", "members", "invitations"}
seen = {}
for line in open(sys.argv[1]):
    e = json.loads(line)
    if e["status"] != 200:
        continue
    what = e["path"].rstrip("/").rsplit("/", 1)[-1]
    if what == "activities":
        to = dt.datetime.fromisoformat((e["to"] or "").replace("Z", "+00:00")) if e["to"] else None
        if to is None or to.timestamp() < e["t"] - 120:
            continue
    seen.setdefault(e.get("org", 1), set()).add(what)
n = int(sys.argv[2])
sys.exit(0 if all(need <= seen.get(i, set()) for i in range(1, n + 1)) else 1)
PY
}

# `swept LOG`: "<orgs that finished a reconcile sweep> <mean requests of a sweep>".
swept() {
  python3 - "$1" <<'PY'
import json, sys
req = {}
for line in open(sys.argv[1]):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    if "reconcile sweep" in e.get("message", "") and "org" in e and "requests" in e:
        req.setdefault(e["org"], int(e["requests"]))
print(len(req), f"{sum(req.values()) / max(len(req), 1):.1f}")
PY
}

echo "# $(date -u +%FT%TZ) commit=$(git rev-parse --short HEAD 2>/dev/null || echo ?) bin=$BIN secs=$SECS loadavg_before=\"$(cut -d' ' -f1-3 /proc/loadavg)\"" | tee -a "$OUT/summary.txt"
for N in $ORGS; do
  D=$TMP/n$N
  mkdir -p "$D"
  python3 -u benches/activities_server.py --orgs "$N" --inventory --limit 10/10s \
    --history-days "$HISTORY_DAYS" --per-day "$PER_DAY" --log "$D/fake.jsonl" > "$D/fake.out" 2> "$D/fake.err" &
  FAKE=$!
  for _ in $(seq 1 600); do grep -q listening "$D/fake.out" 2>/dev/null && break; sleep 0.1; done
  PORT=$(awk '/listening/ {print $3}' "$D/fake.out")
  [ -n "$PORT" ] || { echo "the fake did not start: $(cat "$D/fake.err")" >&2; exit 1; }
  touch "$D/fake.jsonl"
  {
    printf '[api]\nbase_url = "http://127.0.0.1:%s"\n' "$PORT"
    for i in $(seq 1 "$N"); do
      printf '[[api.keys]]\nname = "org-%s"\nkey_id = "bench-%s"\nkey_secret = "bench-secret"\n' "$i" "$i"
    done
    printf '[state]\npath = "%s/state.db"\n[server]\nlisten = "127.0.0.1:0"\n' "$D"
    printf '[log]\nformat = "json"\n'
    printf '[[sinks]]\nname = "archive"\ntype = "file"\nformat = "json"\npath = "%s/audit.ndjson"\n' "$D"
  } > "$D/config.toml"
  chmod 600 "$D/config.toml"
  "$BIN" -c "$D/config.toml" run 2> "$D/exporter.log" &
  EXP=$!
  deadline=$(( $(date +%s) + 300 ))
  until ready "$D/fake.jsonl" "$N"; do
    kill -0 "$EXP" 2>/dev/null || fail "the exporter exited: $(tail -5 "$D/exporter.log")"
    [ "$(date +%s)" -lt "$deadline" ] || fail "N=$N: not every org finished its first cycle in 300 s"
    sleep 1
  done
  # Then until every org's first reconcile sweep is done (one poll interval after start, then
  # every reconcile_interval = 1h: kept out of the window, its cost is reported apart).
  deadline=$(( $(date +%s) + 600 ))
  until [ "$(swept "$D/exporter.log" | cut -d' ' -f1)" -ge "$N" ]; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "N=$N: only $(swept "$D/exporter.log" | cut -d' ' -f1) of $N orgs made their first sweep in 600 s"
    sleep 1
  done
  # Then until the fake's log has been quiet for 12 s (longer than one 10 s rate window).
  quiet_deadline=$(( $(date +%s) + 120 ))
  while [ $(( $(date +%s) - $(stat -c %Y "$D/fake.jsonl") )) -lt 12 ] && [ "$(date +%s)" -lt "$quiet_deadline" ]; do sleep 1; done
  T0=$(date +%s.%N)
  read -r RSS0 ANON0 FILE0 THR0 CPU0 <<<"$(proc "$EXP")"
  sleep "$SECS"
  read -r RSS1 ANON1 FILE1 THR1 CPU1 <<<"$(proc "$EXP")"
  T1=$(date +%s.%N)
  LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
  MPORT=$(grep -o '"addr":"127.0.0.1:[0-9]*"' "$D/exporter.log" | head -1 | grep -o '[0-9]*"$' | tr -d '"' || true)
  if [ -n "$MPORT" ]; then curl -s "http://127.0.0.1:$MPORT/metrics" > "$D/metrics.txt" || true; fi
  kill "$EXP"; wait "$EXP" 2>/dev/null || true; EXP=""
  kill "$FAKE"; wait "$FAKE" 2>/dev/null || true; FAKE=""
  SWEEP=$(swept "$D/exporter.log" | cut -d' ' -f2)
  WARNS=$(grep -c '"level":"\(WARN\|ERROR\)"' "$D/exporter.log" || true)
  LINE=$(python3 - "$D/fake.jsonl" "$N" "$T0" "$T1" "$(getconf CLK_TCK)" \
    "$RSS0" "$ANON0" "$FILE0" "$THR0" "$CPU0" "$RSS1" "$ANON1" "$FILE1" "$THR1" "$CPU1" "$LOAD" "$SWEEP" "$WARNS" <<'PY'
import collections, json, sys
log, n, t0, t1, tck = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
r0, a0, f0, th0, c0, r1, a1, f1, th1, c1 = map(int, sys.argv[6:16])
load, sweep, warns = sys.argv[16], float(sys.argv[17]), sys.argv[18]
secs = t1 - t0
per_org = collections.Counter()
per_ep = collections.Counter()
errors = 0
for line in open(log):
    e = json.loads(line)
    if not t0 <= e["t"] < t1:
        continue
    per_org[e.get("org", 1)] += 1
    last = e["path"].rstrip("/").rsplit("/", 1)[-1]
    per_ep[last if last in ("activities", "keys", "services", "members", "invitations") else "other"] += 1
    errors += e["status"] != 200
counts = [per_org.get(i, 0) for i in range(1, n + 1)]
h = 3600 / secs
cpu = (c1 - c0) / tck
mib = lambda k: f"{k / 1024:.1f}"  # noqa: E731
eps = " ".join(f"{k}={v * h / n:.0f}" for k, v in sorted(per_ep.items()))
print(f"orgs={n} window_s={secs:.0f} rss_mib={mib(r0)}->{mib(r1)} anon_mib={mib(a0)}->{mib(a1)} "
      f"file_mib={mib(f0)}->{mib(f1)} threads={th0}->{th1} cpu_s={cpu:.2f} "
      f"cpu_pct={100 * cpu / secs:.3f} requests={sum(counts)} non200={errors} "
      f"req_per_hour={sum(counts) * h:.0f} per_org_per_hour(min/mean/max)="
      f"{min(counts) * h:.0f}/{sum(counts) * h / n:.0f}/{max(counts) * h:.0f} "
      f"per_org_per_hour_by_endpoint: {eps} hourly_sweep_requests_per_org={sweep:g} "
      f"warn_error_lines={warns} loadavg_after=\"{load}\"")
PY
)
  echo "$LINE" | tee -a "$OUT/summary.txt"
  mkdir -p "$OUT/n$N"
  cp "$D/fake.jsonl" "$D/config.toml" "$D/exporter.log" "$OUT/n$N/"
  [ -f "$D/metrics.txt" ] && cp "$D/metrics.txt" "$OUT/n$N/"
  echo "$LINE" > "$OUT/n$N/summary.txt"
done
