//! Config loading: every error names its key and value; env overrides; secrets stay hidden;
//! the shipped example loads.

use std::collections::HashMap;

use clickhouse_audit_exporter::config::{Config, DateFormat};

const MINIMAL: &str = r#"
[[sinks]]
name = "out"
type = "stdout"
"#;

fn err(toml: &str) -> String {
    Config::from_toml(toml, Some(HashMap::new()))
        .expect_err("config should be rejected")
        .to_string()
}

fn env(pairs: &[(&str, &str)]) -> Option<HashMap<String, String>> {
    Some(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

#[test]
fn the_shipped_example_config_loads_with_its_documented_defaults() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.toml");
    let cfg = Config::load_with_env(&path, true, Some(HashMap::new())).unwrap();
    let defaults = Config::from_toml(MINIMAL, Some(HashMap::new())).unwrap();
    assert_eq!(cfg.activities.overlap, defaults.activities.overlap);
    assert_eq!(cfg.activities.interval, defaults.activities.interval);
    assert_eq!(
        cfg.activities.max_response_bytes,
        defaults.activities.max_response_bytes
    );
    assert_eq!(cfg.api.rate_limit_requests, 10);
    assert_eq!(cfg.api.base_url, defaults.api.base_url);
    // The only date-time form seen to pass the live API (API notes §3.2).
    assert_eq!(defaults.api.date_format, DateFormat::Rfc3339);
    assert_eq!(cfg.api.date_format, defaults.api.date_format);
    assert_eq!(cfg.state.retention, defaults.state.retention);
    assert_eq!(cfg.server.listen, defaults.server.listen);
    assert_eq!(
        cfg.server.sink_unready_after,
        defaults.server.sink_unready_after
    );
    assert_eq!(
        cfg.daemon.sink_max_backoff,
        defaults.daemon.sink_max_backoff
    );
    assert_eq!(
        cfg.daemon.sink_max_backoff,
        std::time::Duration::from_secs(60)
    );
    assert_eq!(
        cfg.server.sink_unready_after,
        std::time::Duration::from_secs(300)
    );
    let (inv, dinv) = (&cfg.inventory, &defaults.inventory);
    assert_eq!(inv.resources, dinv.resources);
    assert_eq!(inv.interval, dinv.interval);
    assert_eq!(inv.backup_interval, dinv.backup_interval);
    assert_eq!(inv.backups_per_cycle, dinv.backups_per_cycle);
    assert_eq!(inv.service_idle_states, dinv.service_idle_states);
    assert_eq!(
        format!("{:?}", inv.ignore_fields),
        format!("{:?}", dinv.ignore_fields)
    );
    assert_eq!(
        format!("{:?}", inv.findings),
        format!("{:?}", {
            // The example spells out each rule's default severity; defaults leave it implicit.
            let mut f = dinv.findings.clone();
            use clickhouse_audit_exporter::config::Severity::*;
            f.service_open_to_internet.severity = Some(High);
            f.service_unhealthy.severity = Some(High);
            f.key_never_expires.severity = Some(Medium);
            f.key_expiring.severity = Some(Medium);
            f.key_unused.severity = Some(Low);
            f.key_admin.severity = Some(Medium);
            f.key_disabled.severity = Some(Low);
            f.invitation_stale.severity = Some(Low);
            f.invitation_admin.severity = Some(High);
            f.member_admin.severity = Some(Medium);
            f.backup_failed.severity = Some(High);
            f.backup_stale.severity = Some(High);
            f
        })
    );
    assert_eq!(cfg.sink_configs.len(), 2);
    assert_eq!(cfg.sink_configs[1].batch_max_events, 500);
}

#[test]
fn unknown_keys_are_named() {
    let e = err(&format!("[api]\nbase_ur = \"https://x\"\n{MINIMAL}"));
    assert!(e.contains("base_ur"), "{e}");
    let e = err("[[sinks]]\nname = \"a\"\ntype = \"file\"\npath = \"/tmp/x\"\nfsnyc = false\n");
    assert!(e.contains("fsnyc") && e.contains("sinks[0]"), "{e}");
    let e = err(&format!("[nonsense]\nx = 1\n{MINIMAL}"));
    assert!(e.contains("nonsense"), "{e}");
}

#[test]
fn bad_durations_name_the_key_and_value() {
    let e = err(&format!(
        "[activities]\ninterval = \"5 parsecs\"\n{MINIMAL}"
    ));
    assert!(e.contains("interval") && e.contains("5 parsecs"), "{e}");
}

#[test]
fn bad_urls_name_the_key_and_value() {
    let e = err(&format!("[api]\nbase_url = \"not a url\"\n{MINIMAL}"));
    assert!(e.contains("api.base_url") && e.contains("not a url"), "{e}");
    let e = err(&format!("[api]\nbase_url = \"ftp://x\"\n{MINIMAL}"));
    assert!(e.contains("api.base_url") && e.contains("ftp://x"), "{e}");
}

#[test]
fn sink_list_errors_are_named() {
    let e = err("");
    assert!(e.contains("`sinks`") && e.contains("empty"), "{e}");
    let e = err(&format!("{MINIMAL}{MINIMAL}"));
    assert!(
        e.contains("sinks[1].name") && e.contains("\"out\"") && e.contains("duplicate"),
        "{e}"
    );
    let e = err("[[sinks]]\nname = \"x\"\ntype = \"carrier_pigeon\"\n");
    assert!(
        e.contains("sinks[0].type") && e.contains("carrier_pigeon"),
        "{e}"
    );
    let e = err("[[sinks]]\nname = \"x\"\ntype = \"stdout\"\nformat = \"xml\"\n");
    assert!(e.contains("sinks[0].format") && e.contains("xml"), "{e}");
    let e = err("[[sinks]]\nname = \"x\"\ntype = \"stdout\"\nbatch_max_events = 0\n");
    assert!(e.contains("sinks[0].batch_max_events"), "{e}");
    let e = err(
        "[[sinks]]\nname = \"x\"\ntype = \"file\"\npath = \"/tmp/x\"\nmax_bytes = \"12 parsecs\"\n",
    );
    assert!(e.contains("12 parsecs"), "{e}");
}

#[test]
fn other_bad_values_are_named() {
    let e = err(&format!("[server]\nlisten = \"everywhere\"\n{MINIMAL}"));
    assert!(
        e.contains("server.listen") && e.contains("everywhere"),
        "{e}"
    );
    let e = err(&format!("[state]\nretention = \"10m\"\n{MINIMAL}"));
    assert!(e.contains("state.retention") && e.contains("10m"), "{e}");
    let e = err(&format!("[daemon]\nsink_max_backoff = \"0s\"\n{MINIMAL}"));
    assert!(
        e.contains("daemon.sink_max_backoff") && e.contains("greater than zero"),
        "{e}"
    );
    let e = err(&format!("[api]\ndate_format = \"julian\"\n{MINIMAL}"));
    assert!(e.contains("date_format") || e.contains("julian"), "{e}");
}

#[test]
fn sweep_and_overlap_keys_are_checked_against_each_other_and_retention() {
    let e = err(&format!(
        "[activities]\noverlap = \"1h\"\nmax_overlap = \"30m\"\n{MINIMAL}"
    ));
    assert!(
        e.contains("activities.max_overlap") && e.contains("30m"),
        "{e}"
    );
    let e = err(&format!(
        "[activities]\nreconcile_lookback = \"0s\"\n{MINIMAL}"
    ));
    assert!(e.contains("activities.reconcile_lookback"), "{e}");
    // Retention must outlive what a sweep re-reads, or a sweep would export pruned events again.
    let e = err(&format!(
        "[activities]\nreconcile_lookback = \"10d\"\n[state]\nretention = \"7d\"\n{MINIMAL}"
    ));
    assert!(
        e.contains("state.retention") && e.contains("reconcile_lookback"),
        "{e}"
    );
    // Sweeps off: the same retention is fine.
    Config::from_toml(
        &format!(
            "[activities]\nreconcile_interval = \"0s\"\nreconcile_lookback = \"10d\"\n[state]\nretention = \"7d\"\n{MINIMAL}"
        ),
        Some(HashMap::new()),
    )
    .expect("sweeps off: lookback does not bind retention");
}

#[test]
fn an_overlap_too_large_to_add_an_hour_to_is_an_error_not_a_panic() {
    // Regression (issue 8): `overlap + 1h` overflowed `Duration` inside validate().
    let e = err(&format!(
        "[activities]\noverlap = \"18446744073709551615s\"\n{MINIMAL}"
    ));
    assert!(
        e.contains("activities.overlap") || e.contains("state.retention"),
        "{e}"
    );
}

#[test]
fn absurdly_long_poller_durations_are_refused_by_name() {
    // `cursor + window` is millisecond arithmetic on i64: bound the inputs (issue 8 fuzzing).
    for (key, value) in [
        ("max_window", "500000000y"),
        ("initial_lookback", "100y"),
        ("interval", "2d"),
        ("overlap", "30d"),
    ] {
        let e = err(&format!("[activities]\n{key} = \"{value}\"\n{MINIMAL}"));
        assert!(
            e.contains(&format!("activities.{key}")) && e.contains("must be at most"),
            "{e}"
        );
    }
}

#[test]
fn environment_overrides_every_section() {
    let cfg = Config::from_toml(
        MINIMAL,
        env(&[
            ("CH_AUDIT__API__BASE_URL", "http://127.0.0.1:1"),
            ("CH_AUDIT__ACTIVITIES__INTERVAL", "5s"),
            ("CH_AUDIT__API__RATE_LIMIT_REQUESTS", "3"),
            ("CH_AUDIT__API__ORGANIZATIONS", "a,b"),
            ("CH_AUDIT__LOG__LEVEL", "debug"),
        ]),
    )
    .unwrap();
    assert_eq!(cfg.api.base_url, "http://127.0.0.1:1");
    assert_eq!(cfg.activities.interval, std::time::Duration::from_secs(5));
    assert_eq!(cfg.api.rate_limit_requests, 3);
    assert_eq!(cfg.api.organizations, ["a", "b"]);
    let e = Config::from_toml(MINIMAL, env(&[("CH_AUDIT__ACTIVITIES__OVERLAP", "soon")]))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("overlap") && e.contains("soon"), "{e}");
}

#[test]
fn secrets_never_show_in_debug() {
    let cfg = Config::from_toml(
        &format!("[api]\nkey_id = \"kid\"\nkey_secret = \"s3cr3t-VALUE\"\n{MINIMAL}"),
        Some(HashMap::new()),
    )
    .unwrap();
    let dbg = format!("{cfg:?} {:?}", cfg.credentials().unwrap());
    assert!(!dbg.contains("s3cr3t-VALUE"), "{dbg}");
    assert!(cfg.summary().to_string().contains("kid"));
    assert!(!cfg.summary().to_string().contains("s3cr3t-VALUE"));
}

#[test]
fn secret_file_and_inline_secret_together_are_ambiguous() {
    let e = err(&format!(
        "[api]\nkey_secret = \"a\"\nkey_secret_file = \"/x\"\n{MINIMAL}"
    ));
    assert!(e.contains("key_secret_file"), "{e}");
}

#[test]
fn secret_file_is_read_and_trimmed() {
    use secrecy::ExposeSecret;
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("secret");
    std::fs::write(&f, "from-file\n").unwrap();
    let cfg = Config::from_toml(
        &format!(
            "[api]\nkey_id = \"k\"\nkey_secret_file = \"{}\"\n{MINIMAL}",
            f.display()
        ),
        Some(HashMap::new()),
    )
    .unwrap();
    assert_eq!(
        cfg.credentials().unwrap().key_secret.expose_secret(),
        "from-file"
    );
}

#[test]
fn inventory_findings_are_tunable_from_toml_and_env() {
    let toml = format!(
        "[inventory.findings.key_expiring]\nkey_expiry_warning = \"3d\"\nseverity = \"critical\"\n[inventory.findings.member_admin]\nenabled = false\n{MINIMAL}"
    );
    let cfg = Config::from_toml(
        &toml,
        env(&[
            (
                "CH_AUDIT__INVENTORY__FINDINGS__BACKUP_STALE__BACKUP_MAX_AGE",
                "12h",
            ),
            ("CH_AUDIT__INVENTORY__IGNORE_FIELDS__KEYS", "usedAt,name"),
        ]),
    )
    .unwrap();
    let f = &cfg.inventory.findings;
    assert_eq!(
        f.key_expiring.key_expiry_warning,
        std::time::Duration::from_secs(3 * 86400)
    );
    assert_eq!(
        f.key_expiring.severity,
        Some(clickhouse_audit_exporter::config::Severity::Critical)
    );
    assert!(!f.member_admin.enabled);
    assert_eq!(
        f.backup_stale.backup_max_age,
        std::time::Duration::from_secs(12 * 3600)
    );
    assert_eq!(cfg.inventory.ignore_fields.keys, ["usedAt", "name"]);
    let e = err(&format!(
        "[inventory.findings.key_unused]\nafter = \"1d\"\n{MINIMAL}"
    ));
    assert!(e.contains("after"), "{e}");
    let e = err(&format!(
        "[inventory]\nresources = [\"backups\"]\n{MINIMAL}"
    ));
    assert!(
        e.contains("inventory.resources") && e.contains("services"),
        "{e}"
    );
}

#[test]
fn sink_secrets_never_show_in_debug() {
    let cfg = Config::from_toml(
        "[[sinks]]\nname = \"w\"\ntype = \"webhook\"\nurl = \"https://siem.example/in\"\n\
         signing_secret = \"whsec_c2VjcmV0LXNpZ25pbmcta2V5LTEyMzQ1Ng==\"\nbearer_token = \"tok-SECRET-42\"\n",
        Some(HashMap::new()),
    )
    .unwrap();
    let dbg = format!("{cfg:?}");
    assert!(
        !dbg.contains("c2VjcmV0LXNpZ25pbmcta2V5LTEyMzQ1Ng") && !dbg.contains("tok-SECRET-42"),
        "{dbg}"
    );
    assert!(!cfg.summary().to_string().contains("tok-SECRET-42"));
}

#[test]
fn otlp_keys_are_checked_by_name() {
    let sink = |extra: &str| {
        format!(
            "[[sinks]]\nname = \"o\"\ntype = \"otlp\"\nendpoint = \"https://otel.example:4317\"\n{extra}\n"
        )
    };
    for (extra, needles) in [
        (
            "protocol = \"http/json\"",
            &["sinks[0].protocol", "http/json"][..],
        ),
        ("compression = \"zstd\"", &["sinks[0].compression", "zstd"]),
        (
            "timeout = \"0s\"",
            &["sinks[0].timeout", "greater than zero"],
        ),
        ("service_name = \"\"", &["sinks[0].service_name"]),
        (
            "client_cert_file = \"/c.pem\"",
            &["sinks[0].client_key_file", "missing"],
        ),
        (
            "headers = { \"bad name\" = \"x\" }",
            &["sinks[0].headers", "bad name"],
        ),
        (
            "headers = { content-type = \"x\" }",
            &["sinks[0].headers", "set by the sink"],
        ),
        ("resource = \"x\"", &["resource"]),
    ] {
        let e = err(&sink(extra));
        for needle in needles {
            assert!(e.contains(needle), "{extra}: {needle:?} in {e}");
        }
    }
    let e = err(
        "[[sinks]]\nname = \"o\"\ntype = \"otlp\"\nendpoint = \"https://otel.example:4317/v1/logs\"\n",
    );
    assert!(
        e.contains("sinks[0].endpoint") && e.contains("no path"),
        "{e}"
    );
    let e = err("[[sinks]]\nname = \"o\"\ntype = \"otlp\"\nendpoint = \"ftp://otel.example\"\n");
    assert!(
        e.contains("sinks[0].endpoint") && e.contains("ftp://otel.example"),
        "{e}"
    );
    let e = err("[[sinks]]\nname = \"o\"\ntype = \"otlp\"\n");
    assert!(e.contains("endpoint"), "{e}");
    // The header value never shows in Debug.
    let cfg = Config::from_toml(
        &sink("protocol = \"http/protobuf\"\nheaders = { x-api-key = \"hdr-SECRET-9\" }"),
        Some(HashMap::new()),
    )
    .unwrap();
    assert!(!format!("{cfg:?}").contains("hdr-SECRET-9"));
}

/// Every elasticsearch key's error names the key; `format` defaults to `ecs` for this sink only.
#[test]
fn elasticsearch_keys_are_checked_by_name_and_ecs_is_its_default_format() {
    let es = |extra: &str| {
        format!(
            "[[sinks]]\nname = \"es\"\ntype = \"elasticsearch\"\nurl = \"https://es.example:9200\"\n{extra}\n"
        )
    };
    for (extra, key, words) in [
        ("index = \"Audit-%Y\"", "sinks[0].index", "lowercase"),
        ("index = \"audit-%H\"", "sinks[0].index", "date fields"),
        (
            "urls = [\"https://b:9200\"]",
            "sinks[0]",
            "either url or urls",
        ),
        ("pipeline = \"\"", "sinks[0].pipeline", "empty"),
        ("username = \"elastic\"", "sinks[0].username", "password"),
        (
            "api_key = \"a\"\napi_key_file = \"/k\"",
            "sinks[0].api_key",
            "both set",
        ),
        (
            "api_key = \"a\"\nbearer_token = \"b\"",
            "sinks[0]",
            "set one of",
        ),
        (
            "batch_max_bytes = \"1KB\"",
            "sinks[0].batch_max_bytes",
            "1KiB",
        ),
        ("compression = \"zstd\"", "sinks[0].compression", "gzip"),
        ("timeout = \"0s\"", "sinks[0].timeout", "greater than zero"),
        (
            "dead_letter_path = \"/tmp\"",
            "sinks[0].dead_letter_path",
            "directory",
        ),
        ("op_type = \"index\"", "sinks[0]", "op_type"),
    ] {
        let e = err(&es(extra));
        assert!(e.contains(key) && e.contains(words), "{extra}: {e}");
    }
    let e = err("[[sinks]]\nname = \"es\"\ntype = \"elasticsearch\"\n");
    assert!(e.contains("sinks[0].url") && e.contains("missing"), "{e}");
    let e = err(&es("").replace("https://es.example:9200", "https://es.example:9200/_bulk"));
    assert!(e.contains("sinks[0].url") && e.contains("base URL"), "{e}");
    let cfg = Config::from_toml(&format!("{}{MINIMAL}", es("")), Some(HashMap::new())).unwrap();
    use clickhouse_audit_exporter::format::Format;
    assert_eq!(cfg.sink_configs[0].format, Format::Ecs);
    assert_eq!(
        cfg.sink_configs[1].format,
        Format::Json,
        "other sinks keep json"
    );
    let cfg = Config::from_toml(&es("format = \"json\""), Some(HashMap::new())).unwrap();
    assert_eq!(cfg.sink_configs[0].format, Format::Json);
}

#[test]
fn azure_logs_ingestion_keys_are_checked_by_name() {
    let base = "[[sinks]]\nname = \"sentinel\"\ntype = \"azure_logs_ingestion\"\n";
    let good = "endpoint = \"https://dce.example\"\ndcr_immutable_id = \"dcr-00112233445566778899aabbccddeeff\"\nstream_name = \"Custom-ClickHouseAudit\"\ntenant_id = \"t\"\nclient_id = \"c\"\nclient_secret = \"azure-SECRET-1\"\n";
    let cfg = Config::from_toml(&format!("{base}{good}"), Some(HashMap::new())).unwrap();
    assert!(!format!("{cfg:?}").contains("azure-SECRET-1"));
    for (change, key, says) in [
        (
            (
                "dcr_immutable_id = \"dcr-00112233445566778899aabbccddeeff\"",
                "dcr_immutable_id = \"my-dcr\"",
            ),
            "sinks[0].dcr_immutable_id",
            "my-dcr",
        ),
        (
            (
                "stream_name = \"Custom-ClickHouseAudit\"",
                "stream_name = \"ClickHouseAudit_CL\"",
            ),
            "sinks[0].stream_name",
            "Custom-",
        ),
        (
            (
                "endpoint = \"https://dce.example\"",
                "endpoint = \"dce.example\"",
            ),
            "sinks[0].endpoint",
            "relative URL",
        ),
        (("tenant_id = \"t\"\n", ""), "sinks[0].tenant_id", "missing"),
        (
            ("client_id = \"c\"", "client_id = \"c d\""),
            "sinks[0].client_id",
            "GUID",
        ),
        (
            (
                "client_secret = \"azure-SECRET-1\"",
                "client_secret_file = \"/x\"\nclient_secret = \"azure-SECRET-1\"",
            ),
            "sinks[0].client_secret",
            "both set",
        ),
        (
            (
                "tenant_id = \"t\"",
                "tenant_id = \"t\"\nmanaged_identity = true",
            ),
            "sinks[0].tenant_id",
            "managed_identity",
        ),
        (
            ("tenant_id = \"t\"", "tenant_id = \"t\"\napi_version = \"\""),
            "sinks[0].api_version",
            "2023-01-01",
        ),
        (
            ("tenant_id = \"t\"", "tenant_id = \"t\"\ntimeout = \"0s\""),
            "sinks[0].timeout",
            "greater than zero",
        ),
        (
            (
                "tenant_id = \"t\"",
                "tenant_id = \"t\"\ncompression = \"zstd\"",
            ),
            "sinks[0].compression",
            "zstd",
        ),
        (
            (
                "tenant_id = \"t\"",
                "tenant_id = \"t\"\nworkspace_id = \"w\"",
            ),
            "workspace_id",
            "unknown",
        ),
    ] {
        let e = err(&format!("{base}{}", good.replace(change.0, change.1)));
        assert!(e.contains(key) && e.contains(says), "{key}: {e}");
        assert!(!e.contains("azure-SECRET-1"), "{e}");
    }
}

#[test]
fn object_store_keys_are_named_and_batches_default_to_one_object() {
    let sink = |extra: &str| {
        format!(
            "[[sinks]]\nname = \"lake\"\ntype = \"object_store\"\nurl = \"s3://audit/ch\"\n{extra}\n"
        )
    };
    let cfg = Config::from_toml(&sink(""), Some(HashMap::new())).unwrap();
    assert_eq!(cfg.sink_configs[0].batch_max_events, 10_000);
    assert_eq!(
        cfg.sink_configs[0].batch_timeout(),
        Some(std::time::Duration::from_secs(300))
    );
    let cfg = Config::from_toml(&sink("object_max_events = 50"), Some(HashMap::new())).unwrap();
    assert_eq!(cfg.sink_configs[0].batch_max_events, 50);
    for (extra, key, value) in [
        ("", "sinks[0].url", "ftp://x"),
        ("partition = \"d={dat}\"", "sinks[0].partition", "{dat}"),
        ("compression = \"brotli\"", "sinks[0].compression", "brotli"),
        ("encoding = \"csv\"", "sinks[0].encoding", "csv"),
        ("object_max_events = 0", "sinks[0].object_max_events", "0"),
        ("object_max_age = \"0s\"", "sinks[0].object_max_age", "0s"),
        (
            "endpoint = \"minio:9000\"",
            "sinks[0].endpoint",
            "minio:9000",
        ),
        ("account = \"acct\"", "sinks[0].account", "s3://"),
        (
            "access_key_id = \"AKIA\"",
            "sinks[0].secret_access_key",
            "missing",
        ),
        ("bucket = \"x\"", "sinks[0]", "bucket"),
    ] {
        let toml = if key == "sinks[0].url" {
            sink("").replace("s3://audit/ch", value)
        } else {
            sink(extra)
        };
        let e = err(&toml);
        assert!(e.contains(key) && e.contains(value), "{extra}: {e}");
    }
    let e = err(&sink(
        "secret_access_key = \"s3-SECRET-1\"\nsecret_access_key_file = \"/x\"\naccess_key_id = \"A\"",
    ));
    assert!(
        e.contains("secret_access_key_file") && !e.contains("s3-SECRET-1"),
        "{e}"
    );
}

#[test]
fn api_key_list_errors_name_the_key() {
    let both = err(&format!(
        "[api]\norganizations = [\"o\"]\n[[api.keys]]\nkey_id = \"a\"\nkey_secret = \"s\"\n{MINIMAL}"
    ));
    assert!(
        both.contains("`api.keys`") && both.contains("`api.organizations`"),
        "{both}"
    );
    let zero = err(&format!(
        "[[api.keys]]\nname = \"prod\"\nkey_id = \"a\"\nkey_secret = \"s\"\nrate_limit_requests = 0\n{MINIMAL}"
    ));
    assert!(zero.contains("api.keys[0].rate_limit_requests"), "{zero}");
    let label = err(&format!(
        "[[api.keys]]\nname = \"prod key\"\nkey_id = \"a\"\nkey_secret = \"s\"\n{MINIMAL}"
    ));
    assert!(
        label.contains("api.keys[0].name") && label.contains("\"prod key\""),
        "{label}"
    );
    let twice = err(&format!(
        "[[api.keys]]\nname = \"a\"\nkey_id = \"k\"\nkey_secret = \"s\"\n[[api.keys]]\nname = \"b\"\nkey_id = \"k\"\nkey_secret = \"t\"\n{MINIMAL}"
    ));
    assert!(twice.contains("api.keys[1].key_id"), "{twice}");
    let unknown = err(&format!(
        "[[api.keys]]\nkey_id = \"k\"\nkey_secret = \"s\"\nkey_sekret = \"t\"\n{MINIMAL}"
    ));
    assert!(unknown.contains("key_sekret"), "{unknown}");
}

#[test]
fn security_lake_keys_are_named_and_parquet_needs_ocsf() {
    let lake = "[sinks.security_lake]\nsource_name = \"clickhouse-{class}\"\naccount_id = \"123456789012\"\nregion = \"eu-west-1\"\n";
    let sink = |extra: &str, lake: &str| {
        format!(
            "[[sinks]]\nname = \"lake\"\ntype = \"object_store\"\nurl = \"s3://aws-security-data-lake-eu-west-1-x\"\n{extra}\n{lake}"
        )
    };
    // Parquet's format is OCSF when the table names none.
    let cfg =
        Config::from_toml(&sink("encoding = \"parquet\"", lake), Some(HashMap::new())).unwrap();
    assert_eq!(cfg.sink_configs[0].format.as_str(), "ocsf");
    for (extra, lake_table, key, value) in [
        (
            "encoding = \"parquet\"\nformat = \"json\"",
            lake,
            "sinks[0].encoding",
            "\"json\"",
        ),
        (
            "encoding = \"parquet\"",
            "",
            "sinks[0].security_lake",
            "missing",
        ),
        ("", lake, "sinks[0].security_lake", "encoding = \"parquet\""),
        (
            "encoding = \"parquet\"",
            &lake.replace("123456789012", "1234"),
            "sinks[0].security_lake.account_id",
            "\"1234\"",
        ),
        (
            "encoding = \"parquet\"",
            &lake.replace("eu-west-1", "Ireland"),
            "sinks[0].security_lake.region",
            "\"Ireland\"",
        ),
        (
            "encoding = \"parquet\"",
            &lake.replace("clickhouse-{class}", "click house"),
            "sinks[0].security_lake.source_name",
            "click house",
        ),
        (
            "encoding = \"parquet\"\ncompression = \"zstd\"",
            lake,
            "sinks[0].compression",
            "zstd",
        ),
        (
            "encoding = \"parquet\"",
            &format!("{lake}bucket = \"x\"\n"),
            "sinks[0].security_lake",
            "bucket",
        ),
    ] {
        let e = err(&sink(extra, lake_table));
        assert!(
            e.contains(key) && e.contains(value),
            "{extra} {lake_table}: {e}"
        );
    }
}
