#!/usr/bin/env bash
# Backfill throughput against Helr (issue 17): N activities inside one UTC day (yesterday),
# read by Helr 0.7.0 and by our exporter from the same benches/activities_server.py (the
# standard-library fake of the API, not our emulator) in the same run; for each tool the events
# it wrote, wall time and events/s, peak RSS (/usr/bin/time -v "Maximum resident set size"),
# CPU seconds, and the requests and non-200 answers the fake logged for it. The issue's bar:
# our events/s >= 1.5x Helr's in the same run, our peak RSS <= 64 MiB.
#
#   benches/backfill_vs_helr.sh [N=1000000] [--budget]
#
# Serving is measured first and alone: curl reads the whole day once (seconds, bytes, the
# fake's CPU seconds), so the tools' figures can be set against what the fake needs to serve
# the same bytes.
#
# Default: the fake has no rate limit and our client's limiter is lifted
# (CH_AUDIT__API__RATE_LIMIT_REQUESTS=1000 per the default 10 s window); Helr has no client-side
# limit configured. --budget: the fake enforces the real budget (--limit 10/10s, per key id)
# and our exporter keeps its default limiter (10 requests / 10 s); Helr runs too (its single
# request fits the budget). The probe, Helr and the exporter use different key ids
# (probe, helr, bench) so each has its own window.
#
# Helr (https://github.com/timescale/helr, crate `helr`), installed with:
#   CARGO_TARGET_DIR=/tmp/helr-target cargo install helr --version 0.7.0 --locked --root /work/tools/helr -j 1
# (default features: no `streaming`, so Helr buffers and parses each answer whole).
# Its config is benches/helr/activities.yaml (placeholders rendered here with sed); it runs
#   helr run --config helr.yaml --once --output helr.ndjson
# Our exporter runs `$BIN -c exporter.toml once` with a `file` sink (format json), state in
# SQLite, inventory off, initial_lookback 2d (so it reads yesterday and today; today is empty).
#
# env: BIN (default target/release/clickhouse-audit-exporter), HELR (default
#      /work/tools/helr/bin/helr, else `helr` on PATH), SKIP_HELR=1 (exporter only), SINK_ONLY=0 (skip the
#      sink-only row: the stored outbox delivered again to a new sink, nothing to poll),
#      OUT (default benches/results/backfill-vs-helr-<N>[-budget]), TMPDIR (event files and
#      databases, deleted at exit unless KEEP_WORK=1), SEED (1), LOG_LEVEL (info),
#      PYTHON (python3).
# Saved in $OUT: summary.txt, the rendered configs, the /usr/bin/time -v outputs, each tool's
# stdout and stderr, the fake's stdout/stderr and request log (fake.jsonl). Not the event files or DBs.
set -euo pipefail

N=1000000
BUDGET=0
for arg in "$@"; do
  case "$arg" in
    --budget) BUDGET=1 ;;
    ''|*[!0-9]*) echo "usage: $0 [N=1000000] [--budget]" >&2; exit 2 ;;
    *) N=$arg ;;
  esac
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BIN=${BIN:-target/release/clickhouse-audit-exporter}
if [ -z "${HELR:-}" ]; then
  if [ -x /work/tools/helr/bin/helr ]; then HELR=/work/tools/helr/bin/helr; else HELR=$(command -v helr || true); fi
fi
SKIP_HELR=${SKIP_HELR:-0}
PYTHON=${PYTHON:-python3}
SEED=${SEED:-1}
SUFFIX=""
[ "$BUDGET" = 1 ] && SUFFIX="-budget"
OUT=${OUT:-benches/results/backfill-vs-helr-$N$SUFFIX}

[ -x "$BIN" ] || { echo "no executable $BIN (build it: cargo build --release --locked, or set BIN)" >&2; exit 2; }
if [ "$SKIP_HELR" != 1 ] && [ ! -x "${HELR:-}" ]; then
  echo "no helr binary (install it as in the header, set HELR, or SKIP_HELR=1)" >&2; exit 2
fi
[ -x /usr/bin/time ] || { echo "needs GNU time at /usr/bin/time" >&2; exit 2; }
command -v curl > /dev/null || { echo "needs curl" >&2; exit 2; }

mkdir -p "$OUT"
rm -f "$OUT"/*.time "$OUT"/*.stdout "$OUT"/*.stderr "$OUT"/fake.* "$OUT"/summary.txt
WORK=$(mktemp -d "${TMPDIR:-/tmp}/backfill-vs-helr.XXXXXX")
FAKE=""
cleanup() {
  if [ -n "$FAKE" ]; then kill "$FAKE" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  if [ "${KEEP_WORK:-0}" = 1 ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

TICK=$(getconf CLK_TCK)
# fake_cpu: the fake's utime+stime so far, in seconds.
fake_cpu() { awk -v t="$TICK" '{ printf "%.2f", ($14 + $15) / t }' "/proc/$FAKE/stat"; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
log_lines() { wc -l < "$OUT/fake.jsonl" | tr -d ' '; }
# requests FROM TO: "requests non200 aborted serve_ms" over fake.jsonl lines FROM+1..TO
# (aborted: a 200 the client closed after its headers, e.g. a Content-Length over its cap).
requests() {
  sed -n "$(($1 + 1)),$2p" "$OUT/fake.jsonl" | "$PYTHON" -c '
import json, sys
n = bad = cut = 0; ms = 0.0
for line in sys.stdin:
    e = json.loads(line); n += 1; bad += e["status"] != 200; cut += bool(e.get("aborted"))
    ms += e.get("ms", 0)
print(n, bad, cut, round(ms))'
}
# timev FILE KEY: a field of a /usr/bin/time -v output.
timev() {
  case "$2" in
    wall) grep 'Elapsed (wall clock)' "$1" | awk '{print $NF}' |
            awk -F: '{ if (NF == 3) print $1*3600 + $2*60 + $3; else print $1*60 + $2 }' ;;
    rss_mib) grep 'Maximum resident set size' "$1" | awk '{printf "%.1f", $NF / 1024}' ;;
    cpu_s) awk -F': ' '/User time|System time/ {s += $2} END {printf "%.2f", s}' "$1" ;;
    status) grep 'Exit status' "$1" | awk '{print $NF}' ;;
  esac
}
ratio() { "$PYTHON" -c "import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); print(round(a / b) if b > 0 else 'nan')" "$1" "$2"; }

LOAD_BEFORE=$(loadavg)
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -n "$(git status --porcelain 2>/dev/null)" ] && COMMIT="$COMMIT-dirty"
BIN_DIR=$(cd "$(dirname "$BIN")" && pwd)
BIN_COMMIT=$(git -C "$BIN_DIR" rev-parse --short HEAD 2>/dev/null || echo unknown)
BIN_VERSION=$("$BIN" --version 2>/dev/null | head -1 || echo unknown)
HELR_VERSION=$([ "$SKIP_HELR" = 1 ] && echo skipped || "$HELR" --version 2>/dev/null | head -1 || echo unknown)
DAY=$(date -u -d yesterday +%F)

# --- the fake: N activities yesterday, none today --------------------------------------------
LIMIT_ARGS=()
[ "$BUDGET" = 1 ] && LIMIT_ARGS=(--limit 10/10s)
: > "$OUT/fake.jsonl"
"$PYTHON" -u benches/activities_server.py --history-days 1 --per-day 0 "--day=-1=$N" \
  --seed "$SEED" --log "$OUT/fake.jsonl" ${LIMIT_ARGS[@]+"${LIMIT_ARGS[@]}"} \
  > "$OUT/fake.out" 2> "$OUT/fake.err" &
FAKE=$!
for _ in $(seq 1 3000); do
  grep -q listening "$OUT/fake.out" 2>/dev/null && break
  kill -0 "$FAKE" 2>/dev/null || break
  sleep 0.2
done
PORT=$(awk '/listening/ {print $3}' "$OUT/fake.out")
[ -n "$PORT" ] || { echo "the fake did not start: $(cat "$OUT/fake.err")" >&2; exit 1; }
BASE="http://127.0.0.1:$PORT"
ORG=$(curl -sf -u probe:x "$BASE/v1/organizations" |
      "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["result"][0]["id"])')
URL="$BASE/v1/organizations/$ORG/activities?from_date=$DAY&to_date=$DAY"

{
  echo "# backfill vs Helr: N=$N day=$DAY budget=$BUDGET $(date -u +%FT%TZ)"
  echo "# commit=$COMMIT bin=$BIN ($BIN_VERSION, tree $BIN_COMMIT) helr=${HELR:-none} ($HELR_VERSION)"
  echo "# host: $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo), $(uname -sr)"
  echo "# fake: $(head -1 "$OUT/fake.err")"
  echo "# loadavg_before=$LOAD_BEFORE"
} | tee "$OUT/summary.txt"

# --- serving alone: one GET of the whole day -------------------------------------------------
L0=$(log_lines); C0=$(fake_cpu)
read -r SERVE_S SERVE_BYTES SERVE_CODE < <(curl -s -u probe:x -o /dev/null \
  -w '%{time_total} %{size_download} %{http_code}\n' "$URL")
sleep 0.2
L1=$(log_lines); C1=$(fake_cpu)
read -r _ _ _ SERVE_MS < <(requests "$L0" "$L1")
SERVE_CPU=$("$PYTHON" -c "print(round($C1 - $C0, 2))")
SERVE_MBS=$("$PYTHON" -c "print(round($SERVE_BYTES / 1048576 / $SERVE_S, 1))")
echo "serving: curl GET of the day: http=$SERVE_CODE seconds=$SERVE_S bytes=$SERVE_BYTES" \
  "(${SERVE_MBS} MiB/s, $(ratio "$N" "$SERVE_S") activities/s) fake_cpu_s=$SERVE_CPU fake_ms=$SERVE_MS" |
  tee -a "$OUT/summary.txt"

printf '%-9s %8s %7s %12s %12s %6s %8s %6s %7s %10s %12s %4s\n' tool events wall_s events_per_s \
  peak_rss_mib cpu_s requests non200 aborted fake_cpu_s distinct_ids exit > "$WORK/table"

# count_events FILE PATH: "lines distinct_ids", the id at dotted PATH of each line (event.id in
# Helr's envelope, activity.id in our json format).
count_events() {
  [ -f "$1" ] || { echo "0 0"; return; }
  "$PYTHON" -c '
import json, sys
path = sys.argv[2].split(".")
lines = 0; ids = set()
with open(sys.argv[1], "rb") as f:
    for line in f:
        lines += 1
        v = json.loads(line)
        for k in path:
            v = v.get(k) if isinstance(v, dict) else None
        ids.add(v)
ids.discard(None)
print(lines, len(ids))' "$1" "$2"
}

# run_tool NAME CMD...: runs under /usr/bin/time -v, appends a table row.
run_tool() {
  local name=$1 events_file=$2 id_path=$3; shift 3
  local l0 l1 c0 c1 rc=0
  l0=$(log_lines); c0=$(fake_cpu)
  /usr/bin/time -v -o "$OUT/$name.time" "$@" > "$OUT/$name.stdout" 2> "$OUT/$name.stderr" || rc=$?
  sleep 0.2
  l1=$(log_lines); c1=$(fake_cpu)
  local wall rss cpu ev ids reqs bad cut
  wall=$(timev "$OUT/$name.time" wall); rss=$(timev "$OUT/$name.time" rss_mib)
  cpu=$(timev "$OUT/$name.time" cpu_s)
  read -r ev ids < <(count_events "$events_file" "$id_path")
  read -r reqs bad cut _ < <(requests "$l0" "$l1")
  printf '%-9s %8s %7s %12s %12s %6s %8s %6s %7s %10s %12s %4s\n' "$name" "$ev" "$wall" \
    "$(ratio "$ev" "$wall")" "$rss" "$cpu" "$reqs" "$bad" "$cut" \
    "$("$PYTHON" -c "print(round($c1 - $c0, 2))")" "$ids" "$rc" >> "$WORK/table"
  [ "$rc" = 0 ] || echo "warning: $name exited $rc (see $OUT/$name.stderr)" >&2
  [ "$ev" = "$N" ] || echo "warning: $name wrote $ev events, expected $N" >&2
}

# --- Helr ------------------------------------------------------------------------------------
if [ "$SKIP_HELR" != 1 ]; then
  sed -e "s|\${HELR_BENCH_BASE_URL}|$BASE|g" -e "s|\${HELR_BENCH_ORG}|$ORG|g" \
      -e "s|\${HELR_BENCH_DAY}|$DAY|g" -e "s|\${HELR_BENCH_STATE}|$WORK/helr-state.db|g" \
      benches/helr/activities.yaml > "$OUT/helr.yaml"
  HELR_BENCH_KEY_ID=helr HELR_BENCH_KEY_SECRET=helr-secret \
    run_tool helr "$WORK/helr.ndjson" event.id \
    "$HELR" run --config "$OUT/helr.yaml" --once --output "$WORK/helr.ndjson"
fi

# --- our exporter ----------------------------------------------------------------------------
cat > "$OUT/exporter.toml" <<TOML
[api]
base_url = "$BASE"
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
format = "json"
[[sinks]]
name = "archive"
type = "file"
format = "json"
path = "$WORK/exporter.ndjson"
TOML
chmod 600 "$OUT/exporter.toml"  # it holds key_secret: the exporter warns about a readable one
if [ "$BUDGET" = 1 ]; then
  run_tool exporter "$WORK/exporter.ndjson" activity.id "$BIN" -c "$OUT/exporter.toml" once
else
  CH_AUDIT__API__RATE_LIMIT_REQUESTS=1000 \
    run_tool exporter "$WORK/exporter.ndjson" activity.id "$BIN" -c "$OUT/exporter.toml" once
fi

# --- our sink alone ---------------------------------------------------------------------------
# The same binary delivering the outbox the run above stored, to a new file sink (position 0),
# with nothing to poll (its re-read of today is empty): what the delivery half costs by itself.
if [ "${SINK_ONLY:-1}" = 1 ]; then
  for f in state.db state.db-wal state.db.marker; do
    if [ -f "$WORK/$f" ]; then cp "$WORK/$f" "$WORK/replay.${f#state.}"; fi
  done
  sed -e "s|$WORK/state.db|$WORK/replay.db|" -e 's|^name = "archive"|name = "replay"|' \
      -e "s|$WORK/exporter.ndjson|$WORK/replay.ndjson|" "$OUT/exporter.toml" > "$OUT/sink-only.toml"
  chmod 600 "$OUT/sink-only.toml"
  run_tool sink-only "$WORK/replay.ndjson" activity.id "$BIN" -c "$OUT/sink-only.toml" once
fi

tee -a "$OUT/summary.txt" < "$WORK/table"
{
  if [ "$BUDGET" = 1 ]; then
    echo "# exporter: default limiter (10 requests / 10 s); fake --limit 10/10s"
  else
    echo "# exporter: CH_AUDIT__API__RATE_LIMIT_REQUESTS=1000; fake without limit"
  fi
  [ "${SINK_ONLY:-1}" = 1 ] && echo "# sink-only: the exporter's stored outbox copied and delivered again to a new file sink, nothing to poll (SINK_ONLY=0 skips it)"
  echo "# events: lines in each tool's output file; distinct_ids: distinct activity ids in them;" \
    "requests/non200/aborted/fake_cpu_s: the fake's log and CPU while that tool ran"
  echo "# loadavg_after=$(loadavg)"
} | tee -a "$OUT/summary.txt"
