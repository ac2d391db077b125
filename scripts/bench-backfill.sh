#!/usr/bin/env bash
# Backfill benchmark (issue 3): N activities inside one day from the built-in emulator into a
# file sink (format json, fsync per batch), measured end to end with /usr/bin/time -v.
# Usage: scripts/bench-backfill.sh [N=1000000] [--rate-limited]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
LIMIT=--no-rate-limit
[ "${2:-}" = "--rate-limited" ] && LIMIT=
BIN=target/release/clickhouse-audit-exporter
[ -x "$BIN" ] || cargo build --release --locked
WORK=$(mktemp -d)
trap 'kill $EMU 2>/dev/null || true; rm -rf "$WORK"' EXIT
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
$BIN emulator --listen 127.0.0.1:$PORT --key-id bench --key-secret bench-secret \
  --history 1d --history-per-day "$N" --seed 1 $LIMIT 2> "$WORK/emulator.log" &
EMU=$!
for _ in $(seq 1 300); do grep -q "listening" "$WORK/emulator.log" 2>/dev/null && break; sleep 0.1; done
cat > "$WORK/bench.toml" <<TOML
[api]
base_url = "http://127.0.0.1:$PORT"
key_id = "bench"
key_secret = "bench-secret"
request_timeout = "120s"
[activities]
initial_lookback = "2d"
[inventory]
enabled = false
[state]
path = "$WORK/state.db"
[server]
listen = ""
[log]
level = "${LOG_LEVEL:-info}"
[[sinks]]
name = "archive"
type = "file"
format = "json"
path = "$WORK/audit.ndjson"
TOML
${WRAP:-} /usr/bin/time -v $BIN -c "$WORK/bench.toml" once 2> "$WORK/time.log" ; cp "$WORK/time.log" /tmp/bench-time.log; true || { cat "$WORK/time.log"; exit 1; }
LINES=$(wc -l < "$WORK/audit.ndjson")
SECS=$(grep 'Elapsed (wall clock)' "$WORK/time.log" | awk '{print $NF}' | awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')
RSS=$(grep 'Maximum resident set size' "$WORK/time.log" | awk '{print $NF}')
CPU=$(grep 'Percent of CPU' "$WORK/time.log" | awk '{print $NF}')
grep -E 'split|window' "$WORK/time.log" | head -5 || true
echo "events=$LINES seconds=$SECS events_per_s=$(python3 -c "print(round($LINES/$SECS))") peak_rss_mib=$(python3 -c "print(round($RSS/1024,1))") cpu=$CPU"
echo "state_db_bytes=$(stat -c %s "$WORK/state.db") output_bytes=$(stat -c %s "$WORK/audit.ndjson")"
