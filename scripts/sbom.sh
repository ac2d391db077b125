#!/usr/bin/env bash
# The CycloneDX SBOM of the release binary (issue 18): every crate compiled into
# `clickhouse-audit-exporter` for x86_64 Linux with the features a release build uses (normal
# dependencies only: no dev- or build-dependencies), written to packaging/sbom/ by cargo-cyclonedx
# (pinned below) and made reproducible: no timestamp (SOURCE_DATE_EPOCH=0, then removed), the
# root's absolute path made relative, so an unchanged Cargo.lock gives identical bytes.
# cargo-cyclonedx reads `cargo metadata`, whose resolve also lists optional crates named only by
# weak `dep?/feature` edges that are never built (rust-lang/cargo#10801: quinn, zlib-rs, …); those
# are dropped, keeping exactly what `cargo tree -e normal` compiles (and failing if that lists a
# crate cargo-cyclonedx does not).
# Needs: `cargo install cargo-cyclonedx --version <pinned> --locked`, python3. CI runs --check.
# Usage: scripts/sbom.sh            regenerate packaging/sbom/clickhouse-audit-exporter.cdx.json
#        scripts/sbom.sh --check    exit 1 when the committed SBOM differs from a fresh one
#        scripts/sbom.sh --tool-version   print the pinned cargo-cyclonedx version (.ci/run)
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_CYCLONEDX_VERSION=0.5.9
TARGET=x86_64-unknown-linux-gnu
SBOM=packaging/sbom/clickhouse-audit-exporter.cdx.json
# Where cargo-cyclonedx writes with --describe binaries (it takes no output path then).
TOOL_OUT=clickhouse-audit-exporter_bin.cdx.json

need_tool() {
    if ! cargo cyclonedx --version 2>/dev/null | grep -qF " $CARGO_CYCLONEDX_VERSION"; then
        echo "sbom: needs cargo-cyclonedx $CARGO_CYCLONEDX_VERSION (other versions write other bytes):" >&2
        echo "  cargo install cargo-cyclonedx --version $CARGO_CYCLONEDX_VERSION --locked" >&2
        exit 2
    fi
}

# Writes the SBOM to $1, using the scratch directory $2.
generate() {
    local out=$1 work=$2
    # --locked first: a Cargo.lock that does not match Cargo.toml fails here, before
    # cargo-cyclonedx's `cargo metadata` could rewrite it.
    cargo tree --locked --quiet -e normal --target "$TARGET" --prefix none --format '{p}' \
        > "$work/tree.txt"
    rm -f "$TOOL_OUT"
    SOURCE_DATE_EPOCH=0 cargo cyclonedx --quiet --format json --describe binaries \
        --spec-version 1.5 --no-build-deps --target "$TARGET"
    mv "$TOOL_OUT" "$work/raw.json"
    python3 - "$work/raw.json" "$work/tree.txt" "$out" <<'PY'
import json, re, sys

raw, tree, out = sys.argv[1:]
with open(raw, encoding="utf-8") as f:
    bom = json.load(f)
meta = bom["metadata"]
root = meta["component"]

# name@version of every crate `cargo tree -e normal` compiles into the binary.
built = set()
with open(tree, encoding="utf-8") as f:
    for line in f:
        m = re.match(r"(\S+) v(\S+)", line)
        if m:
            built.add(f"{m[1]}@{m[2]}")
built.discard(f"{root['name']}@{root['version']}")
key = lambda c: f"{c['name']}@{c['version']}"
missing = built - {key(c) for c in bom["components"]}
if missing:
    sys.exit(f"sbom: cargo tree builds {sorted(missing)}, which cargo-cyclonedx does not list")

# Drop what is never built, and every edge to it.
dropped = {c["bom-ref"] for c in bom["components"] if key(c) not in built}
bom["components"] = [c for c in bom["components"] if c["bom-ref"] not in dropped]
deps = []
for d in bom["dependencies"]:
    if d["ref"] in dropped:
        continue
    if "dependsOn" in d:
        d["dependsOn"] = [r for r in d["dependsOn"] if r not in dropped]
    deps.append(d)
bom["dependencies"] = deps

# Reproducible: no build time, no checkout path.
meta.pop("timestamp", None)
meta.setdefault("properties", []).append({"name": "cdx:reproducible", "value": "true"})
old_ref = root["bom-ref"]
new_ref = re.sub(r"^path\+file://[^#]*", "path+file://.", old_ref)

def relocate(v):
    if isinstance(v, dict):
        return {k: relocate(x) for k, x in v.items()}
    if isinstance(v, list):
        return [relocate(x) for x in v]
    return new_ref if v == old_ref else v

with open(out, "w", encoding="utf-8") as f:
    json.dump(relocate(bom), f, indent=2, ensure_ascii=False)
    f.write("\n")
PY
}

components() {
    python3 -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["components"]))' "$1"
}

if [ "${1:-}" = --tool-version ]; then
    echo "$CARGO_CYCLONEDX_VERSION"
    exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"; rm -f "$TOOL_OUT"' EXIT
case "${1:-}" in
    --check)
        need_tool
        generate "$work/fresh.json" "$work"
        if ! diff -u "$SBOM" "$work/fresh.json" > "$work/diff.txt"; then
            head -40 "$work/diff.txt" >&2
            echo "SBOM is stale: run scripts/sbom.sh and commit $SBOM" >&2
            exit 1
        fi
        echo "SBOM matches Cargo.lock: $SBOM ($(components "$SBOM") components)"
        ;;
    "")
        need_tool
        mkdir -p "$(dirname "$SBOM")"
        generate "$work/fresh.json" "$work"
        mv "$work/fresh.json" "$SBOM"
        echo "wrote $SBOM ($(components "$SBOM") components)"
        ;;
    *)
        sed -n '2,14p' "$0" >&2
        exit 2
        ;;
esac
