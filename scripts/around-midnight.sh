#!/usr/bin/env bash
# Runs the fault matrix's window rows with the wall clock moved to just before and just after
# UTC midnight (libfaketime). Their history and windows are placed relative to now, so a row can
# pass all day and fail in the minutes after 00:00 (a CI run once did: a zone reading looked like
# "bounds ignored" when the window crossed midnight). The offset is relative, so the test process
# (and its emulator) and every exporter it starts share one moved clock; monotonic time is left
# alone so timeouts still measure real seconds.
#   scripts/around-midnight.sh [test filter]   (default: faults::window; "" runs every test)
set -euo pipefail
cd "$(dirname "$0")/.."
filter=${1-faults::window}
command -v faketime >/dev/null || { echo "faketime is missing (Debian package faketime)"; exit 1; }
bin=$(cargo test --locked --test it --no-run --message-format=json 2>/dev/null \
  | python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "it":
        print(m["executable"])')
[ -x "$bin" ] || { echo "no integration test binary"; exit 1; }
tomorrow=$(date -u -d tomorrow +%F)
for at in "$(date -u +%F) 23:52:00" "$tomorrow 00:10:00"; do
  off=$(( $(date -u -d "$at" +%s) - $(date -u +%s) ))
  echo "== $filter with the clock at $at UTC (offset ${off} s)"
  FAKETIME_DONT_FAKE_MONOTONIC=1 faketime -f "$(printf '%+ds' "$off")" "$bin" "$filter"
done
