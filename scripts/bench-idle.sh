#!/usr/bin/env bash
# Idle footprint (issue 3): `run` against the emulator with the default 60 s interval, after
# the first cycle and once the daemon has settled (the executable's pages are released one poll
# interval after start, then after each round of polls): RSS (anonymous and file-backed) between
# polls and CPU seconds over a measured idle period. BIN must not be running elsewhere (a soak):
# code pages another process maps stay resident in both.
# Usage: [BIN=path] scripts/bench-idle.sh [SECONDS=120]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-120}
BIN=${BIN:-target/release/clickhouse-audit-exporter}
[ -x "$BIN" ] || cargo build --release --locked
WORK=$(mktemp -d)
trap 'kill $EMU $EXP 2>/dev/null || true; rm -rf "$WORK"' EXIT
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# The emulator stands in for ClickHouse Cloud, another program on another machine: run from a
# copy of the binary, so it does not keep the exporter's code pages mapped (pages two processes
# map are skipped by the exporter's MADV_PAGEOUT; with one file the exporter's idle RSS kept
# ~8 MiB of code the emulator had touched, issue 17).
cp "$BIN" "$WORK/emulator"
"$WORK/emulator" emulator --listen 127.0.0.1:$PORT --key-id bench --key-secret bench-secret --history 7d --seed 1 2> "$WORK/emulator.log" &
EMU=$!
for _ in $(seq 1 300); do grep -q "listening" "$WORK/emulator.log" 2>/dev/null && break; sleep 0.1; done
cat > "$WORK/idle.toml" <<TOML
[api]
base_url = "http://127.0.0.1:$PORT"
key_id = "bench"
key_secret = "bench-secret"
[state]
path = "$WORK/state.db"
[server]
listen = "127.0.0.1:0"
[[sinks]]
name = "archive"
type = "file"
path = "$WORK/audit.ndjson"
TOML
$BIN -c "$WORK/idle.toml" run 2> "$WORK/exporter.log" &
EXP=$!
sleep 75   # first cycle (7 days of history + inventory), a second poll, and settling
ticks() { awk '{print $14+$15}' /proc/$EXP/stat; }
T0=$(ticks); RSS0=$(awk '/VmRSS/{print $2}' /proc/$EXP/status)
# RSS rises for a moment at each poll and falls when the refresh releases the code pages again:
# sampled every 5 s over the measured period too (min / mean / max).
SAMPLES=""
for _ in $(seq 1 $((SECS / 5))); do
  sleep 5
  SAMPLES+="$(awk '/VmRSS/{print $2}' /proc/$EXP/status),"
done
sleep $((SECS % 5))
T1=$(ticks); RSS1=$(awk '/VmRSS/{print $2}' /proc/$EXP/status)
HZ=$(getconf CLK_TCK)
THREADS=$(awk '/Threads/{print $2}' /proc/$EXP/status)
ANON=$(awk '/RssAnon/{print $2}' /proc/$EXP/status); FILE=$(awk '/RssFile/{print $2}' /proc/$EXP/status)
python3 - <<PY
cpu = ($T1 - $T0) / $HZ
print(f"events_exported={sum(1 for _ in open('$WORK/audit.ndjson'))}")
print(f"idle_rss_mib_start={$RSS0/1024:.1f} idle_rss_mib_end={$RSS1/1024:.1f} (anon {$ANON/1024:.1f} + file {$FILE/1024:.1f}) threads=$THREADS")
samples = [int(x) / 1024 for x in "$SAMPLES".split(",") if x]
if samples:
    print(f"idle_rss_mib_min={min(samples):.1f} idle_rss_mib_mean={sum(samples) / len(samples):.1f} idle_rss_mib_max={max(samples):.1f} (every 5 s, {len(samples)} samples)")
print(f"cpu_seconds={cpu:.2f} over {$SECS} s -> cpu_seconds_per_idle_hour={cpu*3600/$SECS:.1f}")
PY
