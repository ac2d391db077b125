#!/usr/bin/env bash
# Issue 14: the exporter's own peak RSS and throughput when a 1 M-activity single-day backfill
# goes into S3 (moto in server mode), against the same backfill into a `file` sink in the same
# run (the baseline). The activities come from benches/activities_server.py (not our emulator);
# each run is `once` from a fresh state, measured with /usr/bin/time -v. Afterwards every object
# is read back (boto3, which moto brings) and the activities counted: each exactly once.
#
# Usage: benches/s3_backfill.sh [N=1000000]
# Needs: target/release/clickhouse-audit-exporter (cargo build --release --locked), python3,
#        moto_server + boto3 (pip install 'moto[server]'; .ci/run installs it), pyarrow for the
#        Parquet read-back (.ci/run installs it).
# Prints one line per sink: events delivered, seconds, events/s, peak RSS, objects, bytes
# stored per event. Raw /usr/bin/time files: $OUT (default benches/results/s3-backfill-<N>/).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
BIN=${BIN:-target/release/clickhouse-audit-exporter}
[ -x "$BIN" ] || { echo "build first: cargo build --release --locked" >&2; exit 2; }
command -v moto_server >/dev/null || { echo "needs moto_server: pip install 'moto[server]'" >&2; exit 2; }
OUT=${OUT:-benches/results/s3-backfill-$N}
mkdir -p "$OUT"
WORK=$(mktemp -d)
FAKE="" MOTO=""
trap 'kill $FAKE $MOTO 2>/dev/null || true; rm -rf "$WORK"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

python3 benches/activities_server.py --per-day 0 --history-days 1 --day=-1="$N" \
  --log "$WORK/requests.ndjson" > "$WORK/fake.out" 2>&1 &
FAKE=$!
MPORT=$(free_port)
moto_server -H 127.0.0.1 -p "$MPORT" > "$WORK/moto.out" 2>&1 &
MOTO=$!
for _ in $(seq 1 600); do grep -q "^listening on" "$WORK/fake.out" 2>/dev/null && break; sleep 0.2; done
PORT=$(sed -n 's/^listening on //p' "$WORK/fake.out")
[ -n "$PORT" ] || { cat "$WORK/fake.out"; exit 1; }
for _ in $(seq 1 150); do curl -s -o /dev/null "http://127.0.0.1:$MPORT/" && break; sleep 0.2; done
S3="http://127.0.0.1:$MPORT"
export AWS_ACCESS_KEY_ID=AKIABENCH AWS_SECRET_ACCESS_KEY=bench-secret AWS_DEFAULT_REGION=us-east-1

# `run NAME SINK_TOML`: one `once` from a fresh state with the given [[sinks]] table.
run() {
  rm -f "$WORK/state.db"*
  cat > "$WORK/$1.toml" <<TOML
[api]
base_url = "http://127.0.0.1:$PORT"
key_id = "bench"
key_secret = "bench-secret"
request_timeout = "300s"
rate_limit_requests = 1000
[activities]
initial_lookback = "2d"
reconcile_interval = "0s"
[inventory]
enabled = false
[state]
path = "$WORK/state.db"
[server]
listen = ""
$2
TOML
  /usr/bin/time -v "$BIN" -c "$WORK/$1.toml" once > "$WORK/$1.out" 2> "$WORK/$1.time" \
    || { tail -30 "$WORK/$1.time"; exit 1; }
  cp "$WORK/$1.time" "$OUT/"
}

# `line NAME EVENTS OBJECTS BYTES`
line() {
  local secs rss
  secs=$(grep 'Elapsed (wall clock)' "$WORK/$1.time" | awk '{print $NF}' | awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')
  rss=$(grep 'Maximum resident set size' "$WORK/$1.time" | awk '{print $NF}')
  python3 -c "
n, s, rss, objs, b = $2, $secs, $rss, $3, $4
print(f'{\"$1\":<14} events={n} seconds={s} events_per_s={round(n/s)} peak_rss_mib={rss/1024:.1f} objects={objs} bytes_per_event={b/max(n,1):.1f}')"
}

# `count BUCKET KIND`: objects, stored bytes and activities read back (each id once or fail).
count() {
  python3 - "$S3" "$1" "$2" <<'PY'
import gzip, io, json, sys, boto3
endpoint, bucket, kind = sys.argv[1:]
s3 = boto3.client("s3", endpoint_url=endpoint)
ids, objs, size = set(), 0, 0
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
    for o in page.get("Contents", []):
        if o["Key"].endswith(".inflight") or "/_" in o["Key"]:
            continue
        objs += 1
        size += o["Size"]
        body = s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
        if kind == "parquet":
            import pyarrow.parquet as pq
            t = pq.read_table(io.BytesIO(body), columns=["metadata"])
            new = [m["uid"] for m in t.column("metadata").to_pylist()]
        else:
            new = [json.loads(l)["event_id"] for l in gzip.decompress(body).splitlines()]
        for i in new:
            if i in ids:
                sys.exit(f"{i} stored twice")
            ids.add(i)
print(len(ids), objs, size)
PY
}

{
echo "# $(date -u +%FT%TZ) N=$N commit=$(git rev-parse --short HEAD) load before: $(cut -d' ' -f1-3 /proc/loadavg)"

run file "[[sinks]]
name = \"archive\"
type = \"file\"
format = \"json\"
path = \"$WORK/file.ndjson\""
line file "$(wc -l < "$WORK/file.ndjson")" 1 "$(stat -c %s "$WORK/file.ndjson")"
rm -f "$WORK/file.ndjson"

curl -s -X PUT "$S3/ndjson" > /dev/null
run s3_ndjson_gzip "[[sinks]]
name = \"lake\"
type = \"object_store\"
url = \"s3://ndjson/audit\"
endpoint = \"$S3\"
allow_insecure = true
region = \"us-east-1\"
format = \"json\"
compression = \"gzip\""
read -r EV OBJS BYTES <<< "$(count ndjson ndjson)"
line s3_ndjson_gzip "$EV" "$OBJS" "$BYTES"

curl -s -X PUT "$S3/lake" > /dev/null
run s3_parquet "[[sinks]]
name = \"securitylake\"
type = \"object_store\"
url = \"s3://lake/ext\"
endpoint = \"$S3\"
allow_insecure = true
region = \"us-east-1\"
encoding = \"parquet\"
[sinks.security_lake]
source_name = \"clickhouse-{class}\"
source_version = \"1.0\"
account_id = \"123456789012\"
region = \"us-east-1\""
read -r EV OBJS BYTES <<< "$(count lake parquet)"
line s3_parquet "$EV" "$OBJS" "$BYTES"
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT/summary.txt"
