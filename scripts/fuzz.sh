#!/usr/bin/env bash
# Bad-input fuzzing (issue 8): builds the cargo-fuzz targets in fuzz/ and runs each for a fixed
# time, one after the other (one libFuzzer process at a time: -jobs=1 -workers=1), starting
# from the committed seeds in fuzz/seeds/<target>/ plus whatever fuzz/corpus/<target>/ already
# holds (and fuzz/dicts/<target>.dict when there is one). Prints a table (target, seconds
# fuzzed, execs, corpus size, crashes) and exits non-zero if any target left a
# crash/leak/timeout/oom artifact in fuzz/artifacts/<target>/.
# Needs: rustup nightly, `cargo install cargo-fuzz --locked`. Not part of CI's test command.
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET=300] [TARGET...]   (docs/fuzzing.md)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-300}
shift || true
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
    TARGETS=(api_decode config dates formats)
fi

cargo +nightly fuzz build

LOGS=$(mktemp -d)
trap 'rm -rf "$LOGS"' EXIT
declare -a ROWS
failed=0
for t in "${TARGETS[@]}"; do
    corpus=fuzz/corpus/$t
    artifacts=fuzz/artifacts/$t
    mkdir -p "$corpus" "$artifacts"
    cp -n fuzz/seeds/"$t"/* "$corpus"/ 2>/dev/null || true
    before=$(find "$artifacts" -type f | wc -l)
    echo "== $t: ${SECS}s" >&2
    start=$(date +%s)
    # -jobs/-workers make libFuzzer fuzz in one child process that logs to ./fuzz-0.log.
    rm -f fuzz-0.log
    dict=()
    [ -f "fuzz/dicts/$t.dict" ] && dict=(-dict="fuzz/dicts/$t.dict")
    rc=0
    cargo +nightly fuzz run "$t" "$corpus" -- \
        -max_total_time="$SECS" -jobs=1 -workers=1 -print_final_stats=1 \
        -timeout=30 -rss_limit_mb=2048 "${dict[@]}" \
        -artifact_prefix="$artifacts/" >"$LOGS/$t.out" 2>&1 || rc=$?
    cat "$LOGS/$t.out" fuzz-0.log >"$LOGS/$t.log" 2>/dev/null || true
    rm -f fuzz-0.log
    # libFuzzer's own count of fuzzing time (without the build); wall time if it crashed.
    secs=$(grep -ho 'Done [0-9]* runs in [0-9]* second' "$LOGS/$t.log" | grep -o '[0-9]* second' | grep -o '[0-9]*' | tail -1)
    [ -n "$secs" ] || secs="<$(( $(date +%s) - start ))"
    execs=$(grep -ho 'stat::number_of_executed_units: *[0-9]*' "$LOGS/$t.log" | grep -o '[0-9]*$' | tail -1)
    [ -n "$execs" ] || execs=$(grep -ho '^#[0-9]*' "$LOGS/$t.log" | tr -d '#' | tail -1)
    size=$(find "$corpus" -type f | wc -l)
    crashes=$(( $(find "$artifacts" -type f | wc -l) - before ))
    if [ "$crashes" -gt 0 ] || [ "$rc" -ne 0 ]; then
        failed=1
        grep -h -m1 -A1 'panicked at\|==ERROR\|ERROR: libFuzzer' "$LOGS/$t.log" >&2 || true
        [ "$crashes" -gt 0 ] || crashes="rc=$rc"
    fi
    cp "$LOGS/$t.log" "fuzz/artifacts/$t.last.log"
    ROWS+=("$(printf '%-12s %8s %14s %8s %8s' "$t" "$secs" "${execs:-?}" "$size" "$crashes")")
done

printf '\n%-12s %8s %14s %8s %8s\n' target seconds execs corpus crashes
for r in "${ROWS[@]}"; do echo "$r"; done
if [ "$failed" -ne 0 ]; then
    echo "crash artifacts in fuzz/artifacts/ (reproduce: cargo +nightly fuzz run <target> <file>)" >&2
    exit 1
fi
