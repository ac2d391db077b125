#!/usr/bin/env bash
# Exact vs day mode, sweeps, and a 200 k-activity day (issue 12), against a fake that is not
# our emulator (benches/activities_server.py), with the vendor Splunk add-on's algorithm
# (benches/splunk_addon_algorithm.py) as the peer in the same run.
#
# Usage: scripts/bench-window-modes.sh [--quick]
#   full  (~9 min): densities 1,000 / 10,000 / 100,000 activities a day, both modes, and the
#                    200,000-activity day under the real budget (day mode, plus exact mode and the
#                    add-on on the same day as peers)
#   quick (~2 min):  1,000 a day only, and a 20,000-activity day
#   env DENSITIES="1000 10000"  MODES="exact date-only"  POLLS=3  SWEEPS=3  GAP=10  BIG=200000
#       CSV=FILE (default benches/results/window-modes-<UTC date>[-quick].csv)  KEEP=DIR
#
# For each mode and density the fake holds `--per-day N` activities on each of the 5 UTC days
# before today and on today (only those whose createdAt has passed are visible, so today fills
# in real time). Then, with a fresh state:
#   1. backfill: `clickhouse-audit-exporter once` with initial_lookback = "4d" (so the sweep's
#      reach, reconcile_lookback 2d + 1 day, floored to a day in day mode, lies inside what was
#      backfilled and a sweep finds nothing to recover);
#   2. steady state: POLLS more `once` runs GAP seconds apart on the same state (no sweep is
#      due: reconcile_interval is 1 h) — per-poll requests, bytes, activities, CPU;
#   3. sweeps: SWEEPS `once` runs with CH_AUDIT__ACTIVITIES__RECONCILE_INTERVAL=1s (the first sweep is
#      due one interval after the first poll; `once` sweeps after its poll when one is due):
#      the sweep's part is split out by wm_measure.py (see there);
#   4. the add-on's algorithm twice (a first run with an empty checkpoint, and a second one) —
#      it asks for now − 365 d … now in naive `…T…:SS.000`, which a date-only API refuses.
# The exporter's own client limiter is lifted for 1–3 (CH_AUDIT__API__RATE_LIMIT_REQUESTS=1000,
# the fake runs without a limit) since only counts are compared there. Last, the big day: the
# fake in date-only mode with BIG activities yesterday (nothing else), `--limit 10/10s`, the
# exporter with its default limiter (10 / 10 s), initial_lookback = "2d", into a file sink.
#
# Results: $CSV, default benches/results/window-modes-<UTC date>[-quick].csv (appended) and a directory of raw
# outputs (exporter logs, per-request traces of the fake) kept at $KEEP if set.
set -euo pipefail
cd "$(dirname "$0")/.."
QUICK=0; [ "${1:-}" = "--quick" ] && QUICK=1
if [ $QUICK = 1 ]; then
  DENSITIES=${DENSITIES:-1000}; BIG=${BIG:-20000}; POLLS=${POLLS:-2}
else
  DENSITIES=${DENSITIES:-1000 10000 100000}; BIG=${BIG:-200000}; POLLS=${POLLS:-3}
fi
MODES=${MODES:-exact date-only}
GAP=${GAP:-10}
SWEEPS=${SWEEPS:-3}
BIN=target/release/clickhouse-audit-exporter
[ -x "$BIN" ] || cargo build --release --locked
COMMIT=$(git rev-parse --short HEAD)
SUFFIX=; [ $QUICK = 1 ] && SUFFIX=-quick
CSV=${CSV:-benches/results/window-modes-$(date -u +%F)$SUFFIX.csv}
WORK=${KEEP:-$(mktemp -d)}; mkdir -p "$WORK"
FAKE=
trap '[ -n "$FAKE" ] && kill "$FAKE" 2>/dev/null; [ -z "${KEEP:-}" ] && rm -rf "$WORK"' EXIT
ORG=10ead720-7ca1-48c9-aaf7-7230f42b56c0
LIFT=(CH_AUDIT__API__RATE_LIMIT_REQUESTS=1000)
echo "commit $COMMIT, results appended to $CSV, raw outputs in $WORK"
uptime

start_fake() {  # start_fake DIR ARGS... → FAKE (pid), FURL
  local d=$1; shift
  python3 -u benches/activities_server.py --log "$d/fake.jsonl" "$@" > "$d/fake.out" 2> "$d/fake.err" &
  FAKE=$!
  for _ in $(seq 1 600); do grep -q listening "$d/fake.out" 2>/dev/null && break; kill -0 "$FAKE" 2>/dev/null || { cat "$d/fake.err"; exit 1; }; sleep 0.1; done
  FURL=http://127.0.0.1:$(awk '{print $3}' "$d/fake.out")
  cat "$d/fake.err"
  touch "$d/fake.jsonl"
}
stop_fake() { kill "$FAKE" 2>/dev/null || true; wait "$FAKE" 2>/dev/null || true; FAKE=; }

config() {  # config DIR URL LOOKBACK → DIR/config.toml
  cat > "$1/config.toml" <<TOML
[api]
base_url = "$2"
key_id = "bench"
key_secret = "bench-secret"
organizations = ["$ORG"]
request_timeout = "120s"
[activities]
initial_lookback = "$3"
[inventory]
enabled = false
[state]
path = "$1/state.db"
[server]
listen = ""
[log]
level = "info"
format = "json"
[[sinks]]
name = "archive"
type = "file"
format = "json"
path = "$1/audit.ndjson"
TOML
  chmod 600 "$1/config.toml"
}

measure() {  # measure DIR NAME FIELDS... -- CMD...
  local d=$1 name=$2; shift 2
  python3 benches/wm_measure.py --fake "$FURL" --fake-log "$d/fake.jsonl" --csv "$CSV" \
    --dir "$d" --name "$name" --field "run_at_utc=$(date -u +%FT%TZ)" --field "commit=$COMMIT" "$@"
}

day_note() { python3 -c 'import time; t=time.gmtime(); s=t.tm_hour*3600+t.tm_min*60+t.tm_sec; print("at %s UTC, %.0f%% of today elapsed" % (time.strftime("%H:%M", t), s / 864))'; }

for N in $DENSITIES; do
  for MODE in $MODES; do
    D="$WORK/$MODE-$N"; mkdir -p "$D/addon"
    echo "== $MODE, $N activities a day"
    start_fake "$D" --mode "$MODE" --per-day "$N" --history-days 5 --seed 1
    config "$D" "$FURL" 4d
    F=(--field "mode=$MODE" --field "per_day=$N" --field client=exporter)
    measure "$D" backfill "${F[@]}" --field phase=backfill --field "note=once, fresh state, initial_lookback 4d; $(day_note)" \
      --emitted-file "$D/audit.ndjson" -- env "${LIFT[@]}" $BIN -c "$D/config.toml" once
    CPUS=()
    for i in $(seq 1 "$POLLS"); do
      sleep "$GAP"
      line=$(measure "$D" "poll$i" "${F[@]}" --field "phase=poll $i" --field "note=once on the backfilled state, $GAP s after the previous; $(day_note)" \
        --emitted-file "$D/audit.ndjson" -- env "${LIFT[@]}" $BIN -c "$D/config.toml" once)
      echo "$line"
      CPUS+=("$(sed -n 's/.*cpu_ms=\([0-9.]*\).*/\1/p' <<<"$line")")
    done
    MEDIAN=$(printf '%s\n' "${CPUS[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
    for i in $(seq 1 "$SWEEPS"); do  # several sweeps in a row: whether extra requests recur
      sleep "$GAP"
      measure "$D" "sweep$i" "${F[@]}" --field "phase=poll+sweep $i" --field "note=once with reconcile_interval 1s: a poll then a sweep; $(day_note)" \
        --emitted-file "$D/audit.ndjson" --sweep --poll-cpu-ms "$MEDIAN" \
        -- env "${LIFT[@]}" CH_AUDIT__ACTIVITIES__RECONCILE_INTERVAL=1s $BIN -c "$D/config.toml" once
    done
    A=(--field "mode=$MODE" --field "per_day=$N" --field client=splunk-addon)
    ADDON=(python3 benches/splunk_addon_algorithm.py --base-url "$FURL" --org "$ORG" --key-id bench
           --key-secret bench-secret --checkpoint "$D/addon/$ORG.txt" --out "$D/addon/events.xml")
    rm -f "$D/addon/stats1.json" "$D/addon/stats2.json"
    measure "$D" addon1 "${A[@]}" --field "phase=run 1 (empty checkpoint)" --field "note=one GET now-365d..now (naive bounds); the fake holds 5 days + today" \
      --addon-stats "$D/addon/stats1.json" -- "${ADDON[@]}" --stats "$D/addon/stats1.json" || true
    if [ -s "$D/addon/stats1.json" ]; then
      LOOKUP=(); lnote="list lookups (as the add-on)"
      if [ "$N" -gt 1000 ]; then LOOKUP=(--lookup set --estimate-list); lnote="--lookup set stand-in (list lookups estimated in addon2.json)"; fi
      measure "$D" addon2 "${A[@]}" --field "phase=run 2" --field "note=$lnote" \
        --addon-stats "$D/addon/stats2.json" -- "${ADDON[@]}" --stats "$D/addon/stats2.json" "${LOOKUP[@]}" || true
      cp "$D/addon/stats2.json" "$D/addon2.json" 2>/dev/null || true
    else
      echo "add-on failed: $(tail -1 "$D/addon1.err")"
    fi
    stop_fake
  done
done

# --- the big day: BIG activities yesterday, real budget, day mode (and exact mode, add-on) ---------
for MODE in date-only exact; do
  D="$WORK/big-$MODE"; mkdir -p "$D/addon"
  echo "== $BIG activities in one day (yesterday), $MODE, 10 requests / 10 s on both sides"
  start_fake "$D" --mode "$MODE" --per-day 0 --history-days 2 "--day=-1=$BIG" --seed 1 --limit 10/10s
  config "$D" "$FURL" 2d
  if [ "$MODE" = date-only ]; then  # what the fake alone serves: the whole day to curl (own key, own budget)
    Y=$(date -u -d yesterday +%F)
    measure "$D" curl --field "mode=$MODE" --field "per_day=big day $BIG" --field client=curl \
      --field "phase=the day in one answer" --field "note=curl -o /dev/null: the fake's own pace on loopback" \
      -- curl -sS -o /dev/null -u curl:x "$FURL/v1/organizations/$ORG/activities?from_date=$Y&to_date=$Y"
  fi
  measure "$D" backfill --field "mode=$MODE" --field "per_day=big day $BIG" --field client=exporter \
    --field "phase=backfill (real budget)" --field "note=once, fresh state, initial_lookback 2d, rate_limit 10/10s both sides" \
    --emitted-file "$D/audit.ndjson" -- $BIN -c "$D/config.toml" once
  grep -h '"level":"\(WARN\|ERROR\)"' "$D/backfill.err" | cut -c1-400 || true
  if [ "$MODE" = exact ] && [ $QUICK = 0 ]; then
    sleep 10  # a fresh budget for the peer
    measure "$D" addon1 --field "mode=$MODE" --field "per_day=big day $BIG" --field client=splunk-addon \
      --field "phase=run 1 (empty checkpoint)" --field "note=one GET now-365d..now" \
      --addon-stats "$D/addon/stats1.json" -- python3 benches/splunk_addon_algorithm.py --base-url "$FURL" --org "$ORG" \
      --key-id bench --key-secret bench-secret --checkpoint "$D/addon/$ORG.txt" --out "$D/addon/events.xml" --stats "$D/addon/stats1.json" || true
  fi
  stop_fake
done
uptime
echo "results appended to $CSV"
