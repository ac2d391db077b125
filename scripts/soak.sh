#!/usr/bin/env bash
# Soak and load run (issue 8, part 4): emulator live traffic → `run` → every local sink, with a
# flapping webhook; samples RSS/CPU/metrics every 10 s, then drains, stops and checks zero loss.
#
# Usage: scripts/soak.sh [MINUTES=30]
#
# Processes (all on 127.0.0.1, ports picked at start, all stopped at the end):
#   emulator   `emulator --orgs 3 --rate 4000 --live-for MINUTESm` (4000/min per org × 3 orgs =
#              200 activities/s), real rate limit (10 requests / 10 s per key) on, 1 day of history
#   receivers  scripts/soak_receivers.py: webhook (up 2 min / down 2 min: listener closed),
#              Splunk HEC, syslog TCP; each logs accepted event ids
#   servers    clickhouse-server (Debian) and tansu (Kafka), when installed; skipped otherwise
#   exporter   `run` with sinks file, webhook, syslog (cef), splunk_hec, clickhouse, kafka
# Afterwards: waits for every visible activity to be stored and every backlog to be 0, SIGTERMs
# the exporter, collects the ids each sink holds and compares them with the emulator's.
#
# Outputs in $SOAK_OUT (default benches/results): soak.csv (every 10 s: t_seconds, rss_kib,
# cpu_seconds_total, outbox/backlog/delivered metrics), soak-flaps.csv, soak-check.json,
# soak-run.json; then scripts/soak_plot.py draws soak.png. Scratch (logs, DBs, id lists) stays in
# $SOAK_WORK (default a new /tmp/soak.XXXXXX) for inspection.
# Knobs: SOAK_RATE (per org per minute, 4000), SOAK_ORGS (3), SOAK_FLAP_UP/SOAK_FLAP_DOWN (120 s),
# SOAK_NO_RATE_LIMIT=1 (emulator without the API limit), SOAK_DRAIN_TIMEOUT (900 s).
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${1:-30}
RATE=${SOAK_RATE:-4000}
ORGS=${SOAK_ORGS:-3}
UP=${SOAK_FLAP_UP:-120}
DOWN=${SOAK_FLAP_DOWN:-120}
OUT=${SOAK_OUT:-benches/results}
DRAIN_TIMEOUT=${SOAK_DRAIN_TIMEOUT:-900}
LIMIT=
[ "${SOAK_NO_RATE_LIMIT:-0}" = 1 ] && LIMIT=--no-rate-limit
BIN=${BIN:-$PWD/target/release/clickhouse-audit-exporter}
[ -x "$BIN" ] || cargo build --release --locked
WORK=${SOAK_WORK:-$(mktemp -d /tmp/soak.XXXXXX)}
mkdir -p "$WORK" "$OUT"
OUT=$(cd "$OUT" && pwd)
HERE=$PWD/scripts
TANSU=${TANSU:-${CARGO_HOME:-$HOME/.cargo}/bin/tansu}
CH_SERVER=/usr/sbin/clickhouse-server
KEY_ID=soak KEY_SECRET=soak-secret HEC_TOKEN=soak-hec-token CH_PASSWORD=soak-ch-pw
log() { echo "[$(date -u +%H:%M:%S)] $*" | tee -a "$WORK/soak.log" >&2; }

PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 600); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; log "port $1 never opened"; return 1; }
EMU_PORT=$(free_port) METRICS_PORT=$(free_port) WEBHOOK_PORT=$(free_port) HEC_PORT=$(free_port)
SYSLOG_PORT=$(free_port) CH_HTTP=$(free_port) CH_TCP=$(free_port) KAFKA_PORT=$(free_port)
log "work dir $WORK; $MINUTES min at $RATE/min/org × $ORGS orgs; webhook up ${UP}s / down ${DOWN}s"

# --- servers --------------------------------------------------------------------------------
SINKS_EXTRA=""
HAVE_CH=0 HAVE_KAFKA=0
if [ -x "$CH_SERVER" ]; then
  HAVE_CH=1
  mkdir -p "$WORK/ch"
  cat > "$WORK/ch/config.xml" <<XML
<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>$WORK/ch/server.log</log><errorlog>$WORK/ch/server.err.log</errorlog><console>0</console></logger>
  <listen_host>127.0.0.1</listen_host>
  <http_port>$CH_HTTP</http_port>
  <tcp_port>$CH_TCP</tcp_port>
  <path>$WORK/ch/data/</path>
  <tmp_path>$WORK/ch/data/tmp/</tmp_path>
  <user_files_path>$WORK/ch/data/user_files/</user_files_path>
  <format_schema_path>$WORK/ch/data/format_schemas/</format_schema_path>
  <mark_cache_size>104857600</mark_cache_size>
  <uncompressed_cache_size>104857600</uncompressed_cache_size>
  <max_concurrent_queries>50</max_concurrent_queries>
  <users_config>users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mlock_executable>false</mlock_executable>
</yandex>
XML
  cat > "$WORK/ch/users.xml" <<XML
<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>2000000000</max_memory_usage></default></profiles>
  <users>
    <default><password></password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></default>
    <audit><password>$CH_PASSWORD</password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></audit>
  </users>
  <quotas><default></default></quotas>
</yandex>
XML
  "$CH_SERVER" --config-file="$WORK/ch/config.xml" > "$WORK/ch/stdout.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 600); do curl -sf "http://127.0.0.1:$CH_HTTP/ping" >/dev/null && break; sleep 0.1; done
  ch() { curl -sfS "http://127.0.0.1:$CH_HTTP/" --data-binary "$1"; }
  ch "CREATE DATABASE soak"
  # Plain MergeTree, not the sink's ReplacingMergeTree: redeliveries must stay visible to count
  # duplicates. Columns as the sink's create_table makes them on this (pre-20.1) server.
  ch "CREATE TABLE soak.audit (event_id String, kind String, org_id String, type String,
      occurred_at DateTime('UTC'), observed_at DateTime('UTC'), actor_type String,
      actor_id String, actor_ip String, record String)
      ENGINE = MergeTree PARTITION BY toYYYYMM(occurred_at) ORDER BY (org_id, kind, occurred_at, event_id)"
  SINKS_EXTRA+="
[[sinks]]
name = \"clickhouse\"
type = \"clickhouse\"
url = \"http://127.0.0.1:$CH_HTTP\"
database = \"soak\"
table = \"audit\"
create_table = false
user = \"audit\"
password = \"$CH_PASSWORD\"
batch_max_events = 5000
"
  log "clickhouse-server $(ch "SELECT version()") on :$CH_HTTP"
else
  log "SKIPPED clickhouse sink: $CH_SERVER not installed"
fi
if [ -x "$TANSU" ]; then
  HAVE_KAFKA=1
  RUST_LOG=warn "$TANSU" broker --listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
    --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" --storage-engine memory://tansu/ \
    > "$WORK/tansu.log" 2>&1 &
  PIDS+=($!)
  TANSU_PID=$!
  wait_port "$KAFKA_PORT"
  "$TANSU" topic create soak --broker "tcp://127.0.0.1:$KAFKA_PORT" --partitions 3
  SINKS_EXTRA+="
[[sinks]]
name = \"kafka\"
type = \"kafka\"
brokers = [\"127.0.0.1:$KAFKA_PORT\"]
topic = \"soak\"
"
  log "tansu $("$TANSU" --version) on :$KAFKA_PORT, topic soak (3 partitions)"
else
  log "SKIPPED kafka sink: $TANSU not installed"
fi

python3 "$HERE/soak_receivers.py" --dir "$WORK" --webhook-port "$WEBHOOK_PORT" \
  --hec-port "$HEC_PORT" --syslog-port "$SYSLOG_PORT" --hec-token "$HEC_TOKEN" \
  --up "$UP" --down "$DOWN" 2> "$WORK/receivers.log" &
PIDS+=($!)
RECV_PID=$!
for _ in $(seq 1 100); do [ -e "$WORK/receivers.ready" ] && break; sleep 0.1; done

# --- emulator and exporter ------------------------------------------------------------------
EMU_CMD=("$BIN" emulator --listen "127.0.0.1:$EMU_PORT" --key-id "$KEY_ID" --key-secret "$KEY_SECRET"
  --orgs "$ORGS" --rate "$RATE" --live-for "${MINUTES}m" --history 1d --seed 1 $LIMIT)
"${EMU_CMD[@]}" 2> "$WORK/emulator.log" &
PIDS+=($!)
EMU_PID=$!
for _ in $(seq 1 300); do grep -q "listening" "$WORK/emulator.log" 2>/dev/null && break; sleep 0.1; done
T0=$(date +%s.%N)

cat > "$WORK/soak.toml" <<TOML
# Written by scripts/soak.sh.
[api]
base_url = "http://127.0.0.1:$EMU_PORT"
key_id = "$KEY_ID"
key_secret = "$KEY_SECRET"
[activities]
initial_lookback = "2d"
[state]
path = "$WORK/state.db"
[server]
listen = "127.0.0.1:$METRICS_PORT"
[log]
level = "info"

[[sinks]]
name = "file"
type = "file"
path = "$WORK/audit.ndjson"

[[sinks]]
name = "webhook"
type = "webhook"
url = "http://127.0.0.1:$WEBHOOK_PORT/soak"

[[sinks]]
name = "syslog"
type = "syslog"
format = "cef"
address = "127.0.0.1:$SYSLOG_PORT"
protocol = "tcp"

[[sinks]]
name = "splunk"
type = "splunk_hec"
url = "http://127.0.0.1:$HEC_PORT"
token = "$HEC_TOKEN"
$SINKS_EXTRA
TOML
EXP_CMD=("$BIN" -c "$WORK/soak.toml" run)
"${EXP_CMD[@]}" 2> "$WORK/exporter.log" &
PIDS+=($!)
EXP_PID=$!
wait_port "$METRICS_PORT"
log "emulator pid $EMU_PID :$EMU_PORT, exporter pid $EXP_PID metrics :$METRICS_PORT"

# --- sampler: every 10 s until told to stop --------------------------------------------------
SINK_NAMES="file webhook syslog splunk"
[ $HAVE_CH = 1 ] && SINK_NAMES+=" clickhouse"
[ $HAVE_KAFKA = 1 ] && SINK_NAMES+=" kafka"
HZ=$(getconf CLK_TCK)
{
  printf 't_seconds,rss_kib,cpu_seconds_total,outbox_events,activities_stored_total'
  for s in $SINK_NAMES; do printf ',backlog_%s' "$s"; done
  for s in $SINK_NAMES; do printf ',delivered_%s' "$s"; done
  echo
} > "$WORK/soak.csv"
sample() {
  local now stat rss cpu metrics
  now=$(date +%s.%N)
  stat=$(cat "/proc/$EXP_PID/stat" 2>/dev/null) || return 1
  rss=$(awk '/^VmRSS/{print $2}' "/proc/$EXP_PID/status")
  # The peak since start (VmHWM) catches what a 10 s sample misses: each poll's high point.
  awk '/^VmHWM/{print $2}' "/proc/$EXP_PID/status" > "$WORK/peak_rss_kib"
  # Fields 14/15 (utime/stime) counted after the ")" that ends the command name.
  cpu=$(echo "${stat##*) }" | awk -v hz="$HZ" '{printf "%.2f", ($12+$13)/hz}')
  metrics=$(curl -sf --max-time 5 "http://127.0.0.1:$METRICS_PORT/metrics") || metrics=""
  echo "$metrics" | awk -v t="$(echo "$now - $T0" | bc)" -v rss="$rss" -v cpu="$cpu" -v sinks="$SINK_NAMES" '
    function label(s, k,   m) { m = s; sub(".*" k "=\"", "", m); sub("\".*", "", m); return m }
    /^clickhouse_audit_outbox_events\{/ { outbox += $NF }
    /^clickhouse_audit_activities_new_total\{/ { stored += $NF }
    /^clickhouse_audit_sink_backlog_events\{/ { backlog[label($1, "sink")] = $NF }
    /^clickhouse_audit_sink_events_delivered_total\{/ { delivered[label($1, "sink")] = $NF }
    END {
      n = split(sinks, s, " ")
      printf "%.1f,%d,%s,%d,%d", t, rss, cpu, outbox, stored
      for (i = 1; i <= n; i++) printf ",%d", backlog[s[i]]
      for (i = 1; i <= n; i++) printf ",%d", delivered[s[i]]
      print ""
    }' >> "$WORK/soak.csv"
}
(
  while [ ! -e "$WORK/sampler.stop" ]; do
    sample || break
    sleep $((10 - $(date +%s) % 10))
  done
) &
SAMPLER_PID=$!
PIDS+=($SAMPLER_PID)

# --- the run ----------------------------------------------------------------------------------
for m in $(seq 1 "$MINUTES"); do
  sleep 60
  log "minute $m/$MINUTES: $(tail -1 "$WORK/soak.csv")"
  kill -0 "$EXP_PID" || { log "exporter died"; tail -20 "$WORK/exporter.log"; exit 1; }
done
for _ in $(seq 1 60); do grep -q "live generation stopped" "$WORK/emulator.log" && break; sleep 1; done
T_GEN_END=$(date +%s.%N)
log "generation stopped: $(grep 'live generation stopped' "$WORK/emulator.log" | tail -1 | sed 's/\x1b\[[0-9;]*m//g')"

# --- drain -------------------------------------------------------------------------------------
# Activities become visible up to 120 s after createdAt; then list them all.
sleep 125
EXPECTED=$(python3 "$HERE/soak_check.py" emulator-ids --url "http://127.0.0.1:$EMU_PORT" \
  --key-id "$KEY_ID" --key-secret "$KEY_SECRET" --out "$WORK/expected.ids")
log "emulator holds $EXPECTED activities"
metric_sum() { curl -sf "http://127.0.0.1:$METRICS_PORT/metrics" | awk -v m="$1" '$1 ~ "^"m"[{ ]" || $1 == m {s += $NF} END {printf "%d", s}'; }
DRAINED=0
for _ in $(seq 1 "$DRAIN_TIMEOUT"); do
  stored=$(metric_sum clickhouse_audit_activities_new_total)
  backlog=$(metric_sum clickhouse_audit_sink_backlog_events)
  if [ "$stored" -ge "$EXPECTED" ] && [ "$backlog" = 0 ]; then DRAINED=1; break; fi
  sleep 1
done
T_DRAINED=$(date +%s.%N)
log "drained=$DRAINED after $(echo "$T_DRAINED - $T_GEN_END" | bc) s past generation end (stored=$stored backlog=$backlog)"
sleep 10   # one more sample of the idle, drained state
touch "$WORK/sampler.stop"
wait "$SAMPLER_PID" 2>/dev/null || true
kill -TERM "$EXP_PID"
T_TERM=$(date +%s.%N)
EXP_RC=0
wait "$EXP_PID" || EXP_RC=$?
log "exporter exited with $EXP_RC $(echo "$(date +%s.%N) - $T_TERM" | bc) s after SIGTERM"
kill "$RECV_PID"; wait "$RECV_PID" 2>/dev/null || true

# --- ids per sink and the comparison ------------------------------------------------------
python3 "$HERE/soak_check.py" file-ids "$WORK/audit.ndjson" > "$WORK/file.ids"
CHECK_ARGS=(--sink "file=$WORK/file.ids" --sink "webhook=$WORK/webhook.ids"
  --sink "syslog=$WORK/syslog.ids" --sink "splunk=$WORK/hec.ids")
if [ $HAVE_CH = 1 ]; then
  curl -sfS "http://127.0.0.1:$CH_HTTP/" --data-binary "SELECT event_id FROM soak.audit" > "$WORK/clickhouse.ids"
  CHECK_ARGS+=(--sink "clickhouse=$WORK/clickhouse.ids")
fi
if [ $HAVE_KAFKA = 1 ]; then
  python3 "$HERE/soak_check.py" kafka-ids --broker "127.0.0.1:$KAFKA_PORT" --topic soak \
    --partitions 3 > "$WORK/kafka.ids" 2>> "$WORK/soak.log"
  CHECK_ARGS+=(--sink "kafka=$WORK/kafka.ids")
fi
CHECK_RC=0
python3 "$HERE/soak_check.py" compare --expected "$WORK/expected.ids" "${CHECK_ARGS[@]}" \
  --out "$OUT/soak-check.json" 2>&1 | tee -a "$WORK/soak.log" || CHECK_RC=$?

cp "$WORK/soak.csv" "$OUT/soak.csv"
cp "$WORK/flaps.csv" "$OUT/soak-flaps.csv"
python3 - "$OUT/soak-run.json" <<PY
import json, sys
json.dump({
  "minutes": $MINUTES, "rate_per_org_per_min": $RATE, "orgs": $ORGS,
  "rate_limit": "${LIMIT:-on}", "flap_up_s": $UP, "flap_down_s": $DOWN,
  "t0_epoch": $T0, "generation_end_epoch": $T_GEN_END, "drained_epoch": $T_DRAINED,
  "drained": bool($DRAINED), "expected_activities": $EXPECTED,
  "exporter_exit_code": $EXP_RC, "check_exit_code": $CHECK_RC,
  "peak_rss_kib": int(open("$WORK/peak_rss_kib").read() or 0),
  "sinks": "$SINK_NAMES".split(),
  "emulator_cmd": "${EMU_CMD[*]}".replace("$BIN", "target/release/clickhouse-audit-exporter"),
  "work_dir": "$WORK",
}, open(sys.argv[1], "w"), indent=2)
PY
python3 "$HERE/soak_plot.py" --dir "$OUT" || log "plot failed"
log "done: check exit $CHECK_RC, exporter exit $EXP_RC; outputs in $OUT, scratch in $WORK"
exit $((CHECK_RC || EXP_RC || !DRAINED))
