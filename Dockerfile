# syntax=docker/dockerfile:1
# Build: docker build -t clickhouse-audit-exporter .
# Run:   docker run --read-only -v ch-audit-state:/var/lib/clickhouse-audit-exporter \
#          -e CLICKHOUSE_CLOUD_API_KEY -e CLICKHOUSE_CLOUD_API_SECRET \
#          -v $PWD/config.toml:/etc/clickhouse-audit-exporter/config.toml:ro clickhouse-audit-exporter

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# Dependencies first, in their own cached layer: a dummy crate with the real manifest.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src
COPY src ./src
COPY migrations ./migrations
RUN touch src/main.rs src/lib.rs && cargo build --release --locked

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/clickhouse-audit-exporter /usr/bin/clickhouse-audit-exporter
RUN ["/usr/bin/clickhouse-audit-exporter", "--version"]
RUN mkdir -p /var/lib/clickhouse-audit-exporter /etc/clickhouse-audit-exporter \
    && chown 65532:65532 /var/lib/clickhouse-audit-exporter \
    && chmod 0700 /var/lib/clickhouse-audit-exporter
USER 65532:65532
VOLUME ["/var/lib/clickhouse-audit-exporter"]
ENV CH_AUDIT_CONFIG=/etc/clickhouse-audit-exporter/config.toml \
    CH_AUDIT__STATE__PATH=/var/lib/clickhouse-audit-exporter/state.db \
    CH_AUDIT__SERVER__LISTEN=0.0.0.0:9187
EXPOSE 9187
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s \
    CMD ["/usr/bin/clickhouse-audit-exporter", "healthcheck", "--url", "http://127.0.0.1:9187/readyz"]
ENTRYPOINT ["/usr/bin/clickhouse-audit-exporter"]
CMD ["run"]
