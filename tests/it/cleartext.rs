//! The cleartext-credentials rule (issue 18), one table over every component that can hold a
//! credential: plain transport to a non-loopback host → `validate --offline` exits 2 naming the
//! key, the address and the fix; loopback → accepted; `allow_insecure = true` → accepted, said
//! by `validate`, WARNed by the daemon at start with `insecure_transport{component}` = 1.
//! Non-loopback hosts are under `.invalid`: every check is config-time, and nothing here sends
//! traffic anywhere but loopback.

use std::time::Duration;

use clickhouse_audit_exporter::emulator::EmulatorOptions;
use toml::{Table, Value};

use crate::support::daemon::bin;
use crate::support::rig::{Rig, metric_at_least, stop_clean};

/// One component that carries a credential: the `[api]` table or a `[[sinks]]` table, built
/// for a host, with the key the error must name.
struct Row {
    component: &'static str,
    /// Builds the section for `host` over the cleartext transport.
    section: fn(&str) -> Table,
    /// `true`: an `[api]` table; else one `[[sinks]]` entry.
    api: bool,
    key: &'static str,
}

fn table(pairs: &[(&str, Value)]) -> Table {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn s(v: &str) -> Value {
    Value::String(v.to_string())
}

fn rows() -> Vec<Row> {
    vec![
        Row {
            component: "api",
            api: true,
            key: "api.base_url",
            section: |host| {
                table(&[
                    ("base_url", s(&format!("http://{host}:8080"))),
                    ("key_id", s("k")),
                    ("key_secret", s("api-secret")),
                ])
            },
        },
        Row {
            component: "webhook bearer",
            api: false,
            key: "sinks[0].url",
            section: |host| {
                table(&[
                    ("type", s("webhook")),
                    ("url", s(&format!("http://{host}/ingest"))),
                    ("bearer_token", s("bearer-secret")),
                ])
            },
        },
        Row {
            component: "webhook basic auth",
            api: false,
            key: "sinks[0].url",
            section: |host| {
                table(&[
                    ("type", s("webhook")),
                    ("url", s(&format!("http://{host}/ingest"))),
                    ("basic_auth_user", s("u")),
                    ("basic_auth_password", s("basic-secret")),
                ])
            },
        },
        Row {
            component: "splunk_hec",
            api: false,
            key: "sinks[0].url",
            section: |host| {
                table(&[
                    ("type", s("splunk_hec")),
                    ("url", s(&format!("http://{host}:8088"))),
                    ("token", s("hec-token")),
                ])
            },
        },
        Row {
            component: "elasticsearch API key",
            api: false,
            key: "sinks[0].url",
            section: |host| {
                table(&[
                    ("type", s("elasticsearch")),
                    ("url", s(&format!("http://{host}:9200"))),
                    ("api_key", s("es-id:es-api-key")),
                ])
            },
        },
        Row {
            component: "elasticsearch basic auth, second node",
            api: false,
            key: "sinks[0].urls[1]",
            section: |host| {
                table(&[
                    ("type", s("elasticsearch")),
                    (
                        "urls",
                        Value::Array(vec![
                            s("https://es-1.invalid:9200"),
                            s(&format!("http://{host}:9200")),
                        ]),
                    ),
                    ("username", s("elastic")),
                    ("password", s("es-password")),
                ])
            },
        },
        Row {
            component: "clickhouse",
            api: false,
            key: "sinks[0].url",
            section: |host| {
                table(&[
                    ("type", s("clickhouse")),
                    ("url", s(&format!("http://{host}:8123"))),
                    ("password", s("ch-password")),
                ])
            },
        },
        Row {
            component: "azure_logs_ingestion access token",
            api: false,
            key: "sinks[0].endpoint",
            section: |host| {
                table(&[
                    ("type", s("azure_logs_ingestion")),
                    ("endpoint", s(&format!("http://{host}:8080"))),
                    (
                        "dcr_immutable_id",
                        s("dcr-00112233445566778899aabbccddeeff"),
                    ),
                    ("stream_name", s("Custom-ClickHouseAudit")),
                    ("tenant_id", s("t")),
                    ("client_id", s("c")),
                    ("client_secret", s("azure-secret")),
                ])
            },
        },
        Row {
            component: "azure_logs_ingestion client secret",
            api: false,
            key: "sinks[0].authority_host",
            section: |host| {
                table(&[
                    ("type", s("azure_logs_ingestion")),
                    ("endpoint", s("https://dce.example")),
                    ("authority_host", s(&format!("http://{host}:8080"))),
                    (
                        "dcr_immutable_id",
                        s("dcr-00112233445566778899aabbccddeeff"),
                    ),
                    ("stream_name", s("Custom-ClickHouseAudit")),
                    ("tenant_id", s("t")),
                    ("client_id", s("c")),
                    ("client_secret", s("azure-secret")),
                ])
            },
        },
        Row {
            component: "kafka SASL PLAIN",
            api: false,
            key: "sinks[0].brokers",
            section: |host| {
                table(&[
                    ("type", s("kafka")),
                    ("brokers", Value::Array(vec![s(&format!("{host}:9092"))])),
                    ("topic", s("audit")),
                    ("sasl_mechanism", s("PLAIN")),
                    ("sasl_username", s("u")),
                    ("sasl_password", s("kafka-password")),
                ])
            },
        },
        Row {
            component: "otlp headers",
            api: false,
            key: "sinks[0].endpoint",
            section: |host| {
                let mut headers = Table::new();
                headers.insert("authorization".into(), s("Bearer otlp-header-secret"));
                table(&[
                    ("type", s("otlp")),
                    ("endpoint", s(&format!("http://{host}:4317"))),
                    ("headers", Value::Table(headers)),
                ])
            },
        },
        Row {
            component: "object_store S3 keys",
            api: false,
            key: "sinks[0].endpoint",
            section: |host| {
                table(&[
                    ("type", s("object_store")),
                    ("url", s("s3://audit/ch")),
                    ("endpoint", s(&format!("http://{host}:9000"))),
                    ("access_key_id", s("AKIAEXAMPLE")),
                    ("secret_access_key", s("s3-secret")),
                ])
            },
        },
    ]
}

/// A whole config holding `row`'s section for `host` (plus what the rest needs).
fn config(row: &Row, host: &str, allow_insecure: bool, dir: &std::path::Path) -> String {
    let mut section = (row.section)(host);
    if allow_insecure {
        section.insert("allow_insecure".into(), Value::Boolean(true));
    }
    let mut doc = Table::new();
    let mut state = Table::new();
    state.insert(
        "path".into(),
        s(&dir.join("state.db").display().to_string()),
    );
    doc.insert("state".into(), Value::Table(state));
    let sink = if row.api {
        doc.insert("api".into(), Value::Table(section));
        table(&[("type", s("stdout"))])
    } else {
        section
    };
    let mut sink = sink;
    sink.insert("name".into(), s("dest"));
    doc.insert("sinks".into(), Value::Array(vec![Value::Table(sink)]));
    toml::to_string(&doc).unwrap()
}

async fn validate_offline(toml: &str, dir: &std::path::Path) -> (i32, String, String) {
    let path = dir.join("c.toml");
    std::fs::write(&path, toml).unwrap();
    let out = bin()
        .arg("-c")
        .arg(&path)
        .args(["validate", "--offline"])
        .env("CLICKHOUSE_CLOUD_API_KEY", "k")
        .env("CLICKHOUSE_CLOUD_API_SECRET", "s")
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_credential_in_clear_text_to_a_remote_host_is_refused_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    for row in rows() {
        let what = row.component;
        let remote = config(&row, "siem.corp.invalid", false, dir.path());
        let (code, _, err) = validate_offline(&remote, dir.path()).await;
        assert_eq!(code, 2, "{what}: refused with exit 2; stderr: {err}");
        for needle in [row.key, "siem.corp.invalid", "clear text", "allow_insecure"] {
            assert!(
                err.contains(needle),
                "{what}: the error names {needle:?}: {err}"
            );
        }
        for secret in [
            "api-secret",
            "bearer-secret",
            "basic-secret",
            "hec-token",
            "ch-password",
            "kafka-password",
            "otlp-header-secret",
            "azure-secret",
            "s3-secret",
        ] {
            assert!(
                !err.contains(secret),
                "{what}: no secret in the error: {err}"
            );
        }

        for host in ["127.0.0.1", "localhost", "[::1]"] {
            let local = config(&row, host, false, dir.path());
            let (code, out, err) = validate_offline(&local, dir.path()).await;
            assert_eq!(code, 0, "{what} to {host} is allowed: {out}{err}");
            assert!(
                !out.contains("allow_insecure"),
                "{what}: nothing to warn about: {out}"
            );
        }

        let allowed = config(&row, "siem.corp.invalid", true, dir.path());
        let (code, out, err) = validate_offline(&allowed, dir.path()).await;
        assert_eq!(code, 0, "{what}: allow_insecure accepts it: {out}{err}");
        let component = if row.api { "api" } else { "sink:dest" };
        assert!(
            out.contains(&format!("! {component}: allow_insecure:"))
                && out.contains("siem.corp.invalid"),
            "{what}: validate says what crosses in clear text: {out}"
        );
    }
}

#[tokio::test]
async fn what_proves_a_secret_without_sending_it_needs_no_tls() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "webhook signing only",
            table(&[
                ("type", s("webhook")),
                ("url", s("http://siem.corp.invalid/ingest")),
                (
                    "signing_secret",
                    s("whsec_c2VjcmV0LXdlYmhvb2stc2lnbmluZy1rZXk="),
                ),
            ]),
        ),
        (
            "kafka SCRAM",
            table(&[
                ("type", s("kafka")),
                ("brokers", Value::Array(vec![s("kafka.corp.invalid:9092")])),
                ("topic", s("audit")),
                ("sasl_mechanism", s("SCRAM-SHA-512")),
                ("sasl_username", s("u")),
                ("sasl_password", s("p")),
            ]),
        ),
        (
            "azure managed identity (IMDS is plain http by design, and is sent nothing)",
            table(&[
                ("type", s("azure_logs_ingestion")),
                ("endpoint", s("https://dce.corp.invalid")),
                (
                    "dcr_immutable_id",
                    s("dcr-00112233445566778899aabbccddeeff"),
                ),
                ("stream_name", s("Custom-ClickHouseAudit")),
                ("managed_identity", Value::Boolean(true)),
            ]),
        ),
        (
            "clickhouse without a password",
            table(&[
                ("type", s("clickhouse")),
                ("url", s("http://ch.corp.invalid:8123")),
            ]),
        ),
    ];
    for (what, sink) in cases {
        let row = Row {
            component: what,
            api: false,
            key: "",
            section: |_| Table::new(),
        };
        let mut doc: Table = toml::from_str(&config(&row, "", false, dir.path())).unwrap();
        let mut sink = sink;
        sink.insert("name".into(), s("dest"));
        doc.insert("sinks".into(), Value::Array(vec![Value::Table(sink)]));
        let (code, out, err) = validate_offline(&toml::to_string(&doc).unwrap(), dir.path()).await;
        assert_eq!(code, 0, "{what} is no credential in clear text: {out}{err}");
        assert!(!out.contains("allow_insecure"), "{what}: {out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_insecure_warns_at_every_start_and_sets_the_gauge() {
    // No activity at all: the webhook below is never sent anything (and its host is never
    // looked up); the daemon only has to start with it.
    let rig = Rig::with(EmulatorOptions {
        history: Duration::from_secs(3600),
        history_events_per_day: 0,
        rate_limit: None,
        ..Default::default()
    })
    .await;
    rig.configure(
        "[[sinks]]\nname = \"siem\"\ntype = \"webhook\"\nurl = \"http://siem.corp.invalid/ingest\"\nbearer_token = \"bearer-secret\"\nallow_insecure = true\n",
        "",
        "",
    );
    let d = rig.start().await;
    metric_at_least(
        &d,
        "clickhouse_audit_insecure_transport",
        &[("component", "sink:siem")],
        1.0,
    )
    .await;
    let logs = stop_clean(d).await;
    let warn = logs
        .lines()
        .find(|l| l.contains("allow_insecure") && l.contains("WARN"))
        .unwrap_or_else(|| panic!("a WARN at start naming allow_insecure:\n{logs}"));
    assert!(
        warn.contains("sink:siem")
            && warn.contains("siem.corp.invalid")
            && warn.contains("the bearer token"),
        "{warn}"
    );
    assert!(!logs.contains("bearer-secret"), "no secret in the logs");
}
