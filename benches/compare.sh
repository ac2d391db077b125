#!/usr/bin/env bash
# Side by side (issue 8): the vendor Splunk add-on's algorithm (benches/splunk_addon_algorithm.py)
# versus `clickhouse-audit-exporter once`, per poll cycle, against the same emulator.
#
# Usage: benches/compare.sh [N ...]          (default: 10000 100000 1000000)
#   env GAP=30        seconds between the first (backfill) and the second (steady-state) cycle
#   env RATE=10       live activities per minute the emulator adds meanwhile ("a handful")
#   env WARM=120      seconds to let the live flow settle first (the emulator makes live
#                     activities visible up to 120 s after createdAt)
#   env LIST_MAX=100000  above this N the add-on's second cycle runs with --lookup set and the
#                     list lookups are estimated from a timed sample (a list scan of 1 M ids
#                     per activity would take hours)
#   env BUDGET=1      keep the real API budget instead: the emulator's 10 requests / 10 s per key
#                     and the exporter's default client limiter (what a backfill costs in time)
#
# For each N the emulator (`--no-rate-limit`) holds N activities spread over the last 250 days
# (N/250 per day), well inside the add-on's 365-day window. Every client talks to it through
# benches/count_proxy.py, which counts requests and bytes on the wire (headers included) the
# same way for both. Per cycle: requests, bytes downloaded, wall seconds and peak RSS of the
# client (/usr/bin/time -v), events emitted, and the size of the state each approach keeps
# (the add-on's id file; the exporter's SQLite file with -wal). The exporter uses its defaults
# except: `initial_lookback = "365d"` (the same year the add-on reads), inventory off, a file
# sink, and its own client rate limiter lifted (CH_AUDIT__API__RATE_LIMIT_REQUESTS=1000) to
# match the emulator's; BENCHMARKS.md gives the time under the real budget too.
# Results: benches/results/compare-<UTC date>[-budget].csv (appended) and a summary on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=("$@")
[ ${#SIZES[@]} -eq 0 ] && SIZES=(10000 100000 1000000)
GAP=${GAP:-30}
RATE=${RATE:-10}
LIST_MAX=${LIST_MAX:-100000}
LIMIT=(--no-rate-limit); LIFT=(CH_AUDIT__API__RATE_LIMIT_REQUESTS=1000); XNOTE="rate limiter lifted"
if [ "${BUDGET:-0}" = 1 ]; then LIMIT=(); LIFT=(); XNOTE="real budget: 10 requests / 10 s"; fi
BIN=target/release/clickhouse-audit-exporter
[ -x "$BIN" ] || cargo build --release --locked
SUFFIX=; if [ "${BUDGET:-0}" = 1 ]; then SUFFIX=-budget; fi
CSV=benches/results/compare-$(date -u +%F)$SUFFIX.csv
[ -f "$CSV" ] || echo "stored,approach,cycle,requests,bytes_down,wall_s,peak_rss_mib,answered,emitted,state_bytes,note" > "$CSV"
WORK=$(mktemp -d)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
total() { python3 -c "import json,sys; print(json.load(open('$1'))['$2'])"; }
wall() { grep 'Elapsed (wall clock)' "$1" | awk '{print $NF}' | awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }'; }
rss() { python3 -c "print(round($(grep 'Maximum resident set size' "$1" | awk '{print $NF}')/1024,1))"; }
# Runs "$@" under time -v and appends one CSV row; sets REQ/BYTES/SECS/RSS_MIB for the caller.
measure() {
  local n=$1 approach=$2 cycle=$3 totals=$4 timelog=$5; shift 5
  local r0 b0 c0
  r0=$(total "$totals" requests); b0=$(total "$totals" bytes_down); c0=$(total "$totals" connections)
  /usr/bin/time -v "$@" 2> "$timelog" || { cat "$timelog"; exit 1; }
  # Wait for the proxy to account the client's connections (they close when it exits).
  for _ in $(seq 1 100); do [ "$(total "$totals" connections)" -gt "$c0" ] && break; sleep 0.1; done
  sleep 0.3
  REQ=$(( $(total "$totals" requests) - r0 )); BYTES=$(( $(total "$totals" bytes_down) - b0 ))
  SECS=$(wall "$timelog"); RSS_MIB=$(rss "$timelog")
}

for N in "${SIZES[@]}"; do
  PER_DAY=$(( N / 250 ))
  D="$WORK/$N"; mkdir -p "$D/addon" "$D/exporter"
  EPORT=$(free_port)
  $BIN emulator --listen 127.0.0.1:$EPORT --key-id bench --key-secret bench-secret \
    --history 250d --history-per-day "$PER_DAY" --rate "$RATE" --seed 1 "${LIMIT[@]}" 2> "$D/emulator.log" &
  EMU=$!; PIDS+=("$EMU")
  for _ in $(seq 1 600); do grep -q "listening" "$D/emulator.log" 2>/dev/null && break; sleep 0.1; done
  python3 -u benches/count_proxy.py --upstream 127.0.0.1:$EPORT --totals "$D/totals.json" > "$D/proxy.out" &
  PROXY=$!; PIDS+=("$PROXY")
  for _ in $(seq 1 100); do grep -q "listening" "$D/proxy.out" 2>/dev/null && break; sleep 0.1; done
  PPORT=$(awk '{print $3}' "$D/proxy.out")
  sleep "${WARM:-120}"
  ORG=$(python3 - <<PY
import base64, json, urllib.request
r = urllib.request.Request("http://127.0.0.1:$EPORT/v1/organizations",
    headers={"Authorization": "Basic " + base64.b64encode(b"bench:bench-secret").decode()})
print(json.load(urllib.request.urlopen(r))["result"][0]["id"])
PY
)
  echo "== N=$N ($PER_DAY/day over 250 days), org $ORG, emulator :$EPORT, proxy :$PPORT"

  # --- the Splunk add-on's algorithm: two runs ---------------------------------------------
  ADDON=(python3 benches/splunk_addon_algorithm.py --base-url "http://127.0.0.1:$PPORT" --org "$ORG"
         --key-id bench --key-secret bench-secret --checkpoint "$D/addon/$ORG.txt" --out "$D/addon/events.xml")
  for cycle in 1 2; do
    extra=(); note="lookup=list (as the add-on)"
    if [ "$cycle" = 2 ]; then
      if [ "$N" -gt "$LIST_MAX" ]; then extra=(--lookup set --estimate-list); note="lookup=set stand-in"
      else extra=(--estimate-list); fi
    fi
    measure "$N" addon "$cycle" "$D/totals.json" "$D/addon/time$cycle.log" "${ADDON[@]}" --stats "$D/addon/stats$cycle.json" "${extra[@]}"
    read -r ANSWERED EMITTED EST <<<"$(python3 -c "import json; s=json.load(open('$D/addon/stats$cycle.json')); print(s['activities'], s['emitted'], s.get('estimated_list_lookup_seconds',''))")"
    if [ -n "$EST" ]; then note="$note; list lookups estimated ${EST}s from a sample"; fi
    CKPT=$(stat -c %s "$D/addon/$ORG.txt")
    if [ "${BUDGET:-0}" = 1 ]; then note="$note; real budget"; fi
    echo "$N,splunk-addon,$cycle,$REQ,$BYTES,$SECS,$RSS_MIB,$ANSWERED,$EMITTED,$CKPT,$note" >> "$CSV"
    echo "addon    cycle $cycle: requests=$REQ bytes=$BYTES wall=${SECS}s rss=${RSS_MIB}MiB answered=$ANSWERED emitted=$EMITTED id_file=$CKPT $(cat "$D/addon/stats$cycle.json")"
    if [ "$cycle" = 1 ]; then sleep "$GAP"; fi
  done

  # --- the exporter: `once` twice on the same state ------------------------------------------
  cat > "$D/exporter/config.toml" <<TOML
[api]
base_url = "http://127.0.0.1:$PPORT"
key_id = "bench"
key_secret = "bench-secret"
organizations = ["$ORG"]
request_timeout = "120s"
[activities]
initial_lookback = "365d"
[inventory]
enabled = false
[state]
path = "$D/exporter/state.db"
[server]
listen = ""
[[sinks]]
name = "archive"
type = "file"
format = "json"
path = "$D/exporter/audit.ndjson"
TOML
  for cycle in 1 2; do
    before=$( [ -f "$D/exporter/audit.ndjson" ] && wc -l < "$D/exporter/audit.ndjson" || echo 0)
    measure "$N" exporter "$cycle" "$D/totals.json" "$D/exporter/time$cycle.log" \
      env "${LIFT[@]}" $BIN -c "$D/exporter/config.toml" once
    EMITTED=$(( $(wc -l < "$D/exporter/audit.ndjson") - before ))
    STATE=$(( $(stat -c %s "$D/exporter/state.db") + $(stat -c %s "$D/exporter/state.db-wal" 2>/dev/null || echo 0) ))
    echo "$N,exporter,$cycle,$REQ,$BYTES,$SECS,$RSS_MIB,,$EMITTED,$STATE,once; $XNOTE" >> "$CSV"
    echo "exporter cycle $cycle: requests=$REQ bytes=$BYTES wall=${SECS}s rss=${RSS_MIB}MiB emitted=$EMITTED state_db=$STATE"
    if [ "$cycle" = 1 ]; then sleep "$GAP"; fi
  done
  kill "$PROXY" "$EMU" 2>/dev/null || true
  wait "$PROXY" "$EMU" 2>/dev/null || true
done
echo "results appended to $CSV"
