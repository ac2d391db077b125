# syntax=docker/dockerfile:1
# clickhouse-audit-exporter: built on rust:slim, run on distroless/cc (glibc, CA certificates, no
# shell, no package manager) as the numeric non-root user 65532, with a read-only root
# filesystem: everything it writes goes to the /var/lib/clickhouse-audit-exporter volume.
#
# Build: docker build --build-arg CH_AUDIT_COMMIT="$(git rev-parse --short HEAD)" \
#          -t clickhouse-audit-exporter:0.1.0 .
# Run:   docker run -d --name ch-audit --read-only \
#          -v ch-audit-state:/var/lib/clickhouse-audit-exporter \
#          -v "$PWD/config.toml:/etc/clickhouse-audit-exporter/config.toml:ro" \
#          -e CLICKHOUSE_CLOUD_API_KEY -e CLICKHOUSE_CLOUD_API_SECRET \
#          -p 127.0.0.1:9187:9187 clickhouse-audit-exporter:0.1.0
# (README: "Run as a sidecar"; config/kubernetes/sidecar.yaml for Kubernetes.)

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# Dependencies first, in their own cached layer: a dummy crate with the real manifest, so a
# change to the sources rebuilds only the exporter itself.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src
COPY src ./src
COPY migrations ./migrations
# Shown by the clickhouse_audit_build_info{commit} metric.
ARG CH_AUDIT_COMMIT=unknown
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked \
    && mkdir -p /out/state

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/clickhouse-audit-exporter /usr/bin/clickhouse-audit-exporter
RUN ["/usr/bin/clickhouse-audit-exporter", "--version"]
COPY --from=build --chown=65532:65532 --chmod=0700 /out/state /var/lib/clickhouse-audit-exporter
USER 65532:65532
VOLUME ["/var/lib/clickhouse-audit-exporter"]
# The config file is optional (every key also comes from CH_AUDIT__SECTION__KEY); SQLite puts its
# temporary files next to the state, the only writable place.
ENV CH_AUDIT__STATE__PATH=/var/lib/clickhouse-audit-exporter/state.db \
    CH_AUDIT__SERVER__LISTEN=0.0.0.0:9187 \
    SQLITE_TMPDIR=/var/lib/clickhouse-audit-exporter
EXPOSE 9187
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["/usr/bin/clickhouse-audit-exporter", "healthcheck", "--url", "http://127.0.0.1:9187/readyz"]
ENTRYPOINT ["/usr/bin/clickhouse-audit-exporter"]
CMD ["run"]
