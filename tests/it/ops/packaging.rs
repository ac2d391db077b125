//! The packaging files, checked as text (no Docker engine, systemd or Kubernetes here; CI adds
//! hadolint, `systemd-analyze verify`/`security` and `promtool test rules`): the Dockerfile
//! checklist, the systemd unit's notify/watchdog/sandboxing lines, the sidecar manifest, and the
//! names every dashboard panel and alert queries.

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::support::daemon::Scrape;

fn read(rel: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Metric names (ours and the process collector's) in PromQL found anywhere in `text`.
fn queried_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for prefix in ["clickhouse_audit_", "process_"] {
        let mut rest = text;
        while let Some(i) = rest.find(prefix) {
            let before = rest[..i].chars().next_back();
            let tail = &rest[i..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                names.insert(tail[..end].to_string());
            }
            rest = &tail[end..];
        }
    }
    names
}

/// Every PromQL expression of the dashboard (panel targets and template queries).
fn dashboard_exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("expr" | "definition", serde_json::Value::String(s)) => out.push(s.clone()),
                    ("query", serde_json::Value::String(s)) if s.contains('(') => {
                        out.push(s.clone())
                    }
                    _ => dashboard_exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| dashboard_exprs(v, out)),
        _ => {}
    }
}

/// The `expr:` values of a rules file (plain, or a `>-`/`|` block scalar).
fn rule_exprs(yaml: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut lines = yaml.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(rest) = line.trim_start().strip_prefix("expr:") else {
            continue;
        };
        let indent = line.len() - line.trim_start().len();
        let rest = rest.trim();
        if !matches!(rest, ">-" | ">" | "|" | "|-") {
            out.push(rest.to_string());
            continue;
        }
        let mut block = String::new();
        while let Some(next) =
            lines.next_if(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent)
        {
            block.push_str(next.trim());
            block.push(' ');
        }
        out.push(block);
    }
    out
}

/// Called with a scrape of a daemon that polled activities and inventory, stored and delivered
/// (and had polls, calls and a sink fail): every metric the dashboard and the alert rules query
/// is in it.
pub fn dashboard_and_alerts_query_only(scrape: &Scrape) {
    let exported = scrape.names();
    let dashboard: serde_json::Value =
        serde_json::from_str(&read("config/grafana/dashboard.json")).expect("valid JSON");
    let mut exprs = Vec::new();
    dashboard_exprs(&dashboard, &mut exprs);
    assert!(exprs.len() >= 30, "the dashboard queries: {exprs:?}");
    let sources = [
        ("config/grafana/dashboard.json", exprs.join("\n")),
        (
            "config/prometheus/alerts.yml",
            rule_exprs(&read("config/prometheus/alerts.yml")).join("\n"),
        ),
    ];
    for (file, text) in sources {
        let names = queried_names(&text);
        assert!(names.len() >= 8, "{file}: {names:?}");
        for name in names {
            assert!(
                exported.contains(&name),
                "{file} queries {name}, which the exporter does not export; exported: {exported:?}"
            );
        }
    }
}

#[test]
fn rule_expressions_are_read_from_plain_and_block_scalars() {
    let yaml = "      - alert: A\n        expr: up == 0\n        for: 5m\n      - alert: B\n        expr: >-\n          a\n            - b\n        labels:\n";
    assert_eq!(rule_exprs(yaml), ["up == 0", "a - b "]);
}

#[test]
fn queried_names_are_found_in_promql() {
    let names = queried_names(
        "histogram_quantile(0.9, rate(clickhouse_audit_x_bucket{a=\"b\"}[5m])) - process_open_fds > my_clickhouse_audit_y",
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        ["clickhouse_audit_x_bucket", "process_open_fds"]
    );
}

#[test]
fn the_dashboard_is_importable_grafana_json() {
    let d: serde_json::Value =
        serde_json::from_str(&read("config/grafana/dashboard.json")).unwrap();
    assert_eq!(d["uid"], "clickhouse-audit-exporter");
    assert!(d["title"].as_str().is_some_and(|t| !t.is_empty()));
    let panels = d["panels"].as_array().unwrap();
    let mut ids = BTreeSet::new();
    let mut rows = Vec::new();
    for p in panels {
        assert!(
            ids.insert(p["id"].as_i64().unwrap()),
            "duplicate panel id {}",
            p["id"]
        );
        let g = &p["gridPos"];
        assert!(
            g["x"].as_i64().unwrap() + g["w"].as_i64().unwrap() <= 24,
            "{p}"
        );
        if p["type"] == "row" {
            rows.push(p["title"].as_str().unwrap().to_string());
        } else {
            assert_eq!(p["datasource"]["uid"], "${datasource}", "{}", p["title"]);
            let targets = p["targets"].as_array().unwrap();
            assert!(!targets.is_empty(), "{}", p["title"]);
            for t in targets {
                let e = t["expr"].as_str().unwrap();
                assert!(e.contains("instance=~\"$instance\""), "{}: {e}", p["title"]);
            }
        }
    }
    for want in [
        "Events flow",
        "Lag",
        "Sink health",
        "API budget",
        "Inventory and findings",
    ] {
        assert!(rows.iter().any(|r| r == want), "row {want:?} in {rows:?}");
    }
}

/// The container checklist (hadolint in CI lints the rest).
#[test]
fn the_dockerfile_follows_the_checklist() {
    let text = read("Dockerfile");
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let froms: Vec<&&str> = lines.iter().filter(|l| l.starts_with("FROM ")).collect();
    assert!(froms.len() >= 2, "multi-stage: {froms:?}");
    assert!(froms[0].contains(" AS build"), "{froms:?}");
    // Dependencies are built from the manifests alone, before the sources are copied.
    let pos = |needle: &str| {
        lines
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?}"))
    };
    assert!(pos("COPY Cargo.toml Cargo.lock") < pos("cargo build --release --locked"));
    assert!(pos("cargo build --release --locked") < pos("COPY src"));
    let runtime = froms.last().unwrap();
    assert!(
        runtime.contains("distroless/cc") || runtime.contains("-slim"),
        "{runtime}"
    );
    let user = lines
        .iter()
        .rev()
        .find(|l| l.starts_with("USER "))
        .expect("USER");
    let uid = user["USER ".len()..].split(':').next().unwrap();
    assert!(
        uid.parse::<u32>().is_ok_and(|u| u != 0),
        "non-root numeric user: {user}"
    );
    assert!(pos("VOLUME") > 0 && text.contains("/var/lib/clickhouse-audit-exporter"));
    assert!(text.contains("EXPOSE 9187"));
    assert!(
        text.contains("0.0.0.0:9187"),
        "the metrics listener is reachable from outside the container"
    );
    let hc = lines[pos("HEALTHCHECK")..].join(" ");
    assert!(
        hc.contains("\"healthcheck\"") && hc.contains("/readyz"),
        "{hc}"
    );
    assert!(text.contains("--version"), "smoke test of the built binary");
    // Read-only root: everything written goes under the volume (SQLite temp files too).
    assert!(text.contains("SQLITE_TMPDIR=/var/lib/clickhouse-audit-exporter"));
    assert!(text.contains("ENTRYPOINT [\"/usr/bin/clickhouse-audit-exporter\"]"));
}

#[test]
fn the_systemd_unit_notifies_and_is_sandboxed() {
    let unit = read("systemd/clickhouse-audit-exporter.service");
    let has = |line: &str| unit.lines().any(|l| l.trim() == line);
    for line in [
        "Type=notify",
        "NotifyAccess=main",
        "ExecStartPre=/usr/bin/clickhouse-audit-exporter validate --offline",
        "ExecStart=/usr/bin/clickhouse-audit-exporter run",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "StateDirectory=clickhouse-audit-exporter",
        "LoadCredential=key_secret:/etc/clickhouse-audit-exporter/key_secret",
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "PrivateDevices=yes",
        "NoNewPrivileges=yes",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "SystemCallFilter=@system-service",
        "CapabilityBoundingSet=",
        "UMask=0077",
    ] {
        assert!(has(line), "missing `{line}`");
    }
    let watchdog = unit
        .lines()
        .find_map(|l| l.trim().strip_prefix("WatchdogSec="))
        .expect("WatchdogSec");
    let watchdog = humantime::parse_duration(watchdog).unwrap();
    let stop = unit
        .lines()
        .find_map(|l| l.trim().strip_prefix("TimeoutStopSec="))
        .map(|v| humantime::parse_duration(v).unwrap())
        .expect("TimeoutStopSec");
    // The daemon pings at least every 5 s; the default grace (10 s) fits in the stop timeout.
    assert!(
        watchdog >= std::time::Duration::from_secs(20),
        "{watchdog:?}"
    );
    assert!(stop > std::time::Duration::from_secs(10), "{stop:?}");
}

#[test]
fn the_kubernetes_sidecar_example_is_complete() {
    let text = read("config/kubernetes/sidecar.yaml");
    for needle in [
        "kind: StatefulSet",
        "replicas: 1",
        "image: clickhouse-audit-exporter",
        "readOnlyRootFilesystem: true",
        "runAsNonRoot: true",
        "runAsUser: 65532",
        "allowPrivilegeEscalation: false",
        "path: /readyz",
        "path: /healthz",
        "containerPort: 9187",
        "mountPath: /var/lib/clickhouse-audit-exporter",
        "CLICKHOUSE_CLOUD_API_SECRET",
        "secretKeyRef",
        "kind: ConfigMap",
        "prometheus.io/port",
    ] {
        assert!(text.contains(needle), "sidecar.yaml lacks {needle:?}");
    }
    assert!(!text.contains('\t'), "YAML has no tabs");
}

/// README's "Guarantees" names a test for every fault-matrix row: each must exist.
#[test]
fn every_test_the_guarantees_table_names_exists() {
    let readme = read("README.md");
    let section = readme
        .split("## Guarantees")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("README has a Guarantees section");
    let mut named = 0;
    for cell in section.split('`').skip(1).step_by(2) {
        let Some(rest) = cell.strip_prefix("faults::") else {
            continue;
        };
        let (module, name) = rest.split_once("::").expect("faults::module::test");
        let file = read(&format!("tests/it/faults/{module}.rs"));
        assert!(
            file.contains(&format!("async fn {name}(")),
            "README names faults::{module}::{name}, which does not exist"
        );
        named += 1;
    }
    assert!(named >= 20, "the matrix lists its rows ({named})");
}
