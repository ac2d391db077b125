//! Security checks (issue 8): no secret (API secret, webhook secrets, HEC token, ClickHouse and
//! Kafka passwords, Elasticsearch API key) in trace logs, `/status`, `/readyz`, `/metrics` or
//! error output; TLS verified by default for every HTTPS destination; loopback-only listener by
//! default; private file modes; a warning for world-readable configs holding secrets.

use std::os::unix::fs::PermissionsExt;

use base64::Engine;
use clickhouse_audit_exporter::config::Config;
use clickhouse_audit_exporter::sinks::SinkError;

use crate::support::daemon::{Daemon, bin};
use crate::support::elasticsearch::FakeEs;
use crate::support::receiver::{Receiver, Reply};
use crate::support::rig::{Rig, metric_at_least, stop_clean};
use crate::support::sinks::{events, sink};
use crate::support::splunk_hec::FakeHec;

const WEBHOOK_SECRET: &str = "whsec_c2VjcmV0LXdlYmhvb2stc2lnbmluZy1rZXk=";
const BEARER: &str = "bearer-7f3a9c1e5d";
const HEC_TOKEN: &str = "11111111-2222-3333-4444-555555555555";
const CH_PASSWORD: &str = "ch-pass-9d8e7f";
const KAFKA_PASSWORD: &str = "kafka-pass-1a2b3c";
const OTLP_HEADER: &str = "otlp-header-7f6e5d";
const ES_KEY_ID: &str = "es-key-id-4e5f";
const ES_KEY: &str = "es-api-key-8g9h0i";
const AZURE_SECRET: &str = crate::support::azure_monitor::CLIENT_SECRET;
const S3_SECRET: &str = "s3-secret-4d5e6f";

/// Every rendering of the secrets that must never show.
fn forbidden(api_key: &str, api_secret: &str) -> Vec<String> {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    vec![
        api_secret.to_string(),
        b64(&format!("{api_key}:{api_secret}")),
        WEBHOOK_SECRET.to_string(),
        WEBHOOK_SECRET.trim_start_matches("whsec_").to_string(),
        BEARER.to_string(),
        HEC_TOKEN.to_string(),
        CH_PASSWORD.to_string(),
        b64(&format!("default:{CH_PASSWORD}")),
        KAFKA_PASSWORD.to_string(),
        OTLP_HEADER.to_string(),
        ES_KEY.to_string(),
        b64(&format!("{ES_KEY_ID}:{ES_KEY}")),
        AZURE_SECRET.to_string(),
        // The form body of the token request, and any token the fake issues.
        format!("client_secret={AZURE_SECRET}"),
        "fake-access-token".to_string(),
        S3_SECRET.to_string(),
    ]
}

fn assert_clean(what: &str, text: &str, secrets: &[String]) {
    for s in secrets {
        assert!(
            !text.contains(s.as_str()),
            "{what} shows a secret ({s:?}):\n{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_logs_endpoints_or_errors_even_at_trace_level() {
    let rig = Rig::new().await;
    let rx = Receiver::start().await;
    rx.script([Reply::status(401), Reply::status(500)]);
    let hec = FakeHec::start("another-token-than-ours", false).await;
    let es = FakeEs::start().await;
    es.api_key("another:key", true);
    // Azure issues tokens for our secret but refuses the uploads (no role): both the secret
    // and the access tokens travel, and failures are counted.
    let azure =
        crate::support::azure_monitor::FakeAzure::start(std::time::Duration::from_secs(3600)).await;
    azure.deny_role(true);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_addr = closed.local_addr().unwrap();
    drop(closed);
    let sinks = format!(
        "[[sinks]]\nname = \"siem\"\ntype = \"webhook\"\nurl = \"{}\"\nsigning_secret = \"{WEBHOOK_SECRET}\"\nbearer_token = \"{BEARER}\"\n\n\
         [[sinks]]\nname = \"splunk\"\ntype = \"splunk_hec\"\nurl = \"{}\"\ntoken = \"{HEC_TOKEN}\"\n\n\
         [[sinks]]\nname = \"ch\"\ntype = \"clickhouse\"\nurl = \"http://{closed_addr}\"\ntable = \"audit\"\npassword = \"{CH_PASSWORD}\"\n\n\
         [[sinks]]\nname = \"kafka\"\ntype = \"kafka\"\nbrokers = [\"{closed_addr}\"]\ntopic = \"audit\"\nsasl_mechanism = \"PLAIN\"\nsasl_username = \"u\"\nsasl_password = \"{KAFKA_PASSWORD}\"\ntimeout = \"1s\"\n\n\
         [[sinks]]\nname = \"otel\"\ntype = \"otlp\"\nendpoint = \"http://{closed_addr}\"\nheaders = {{ authorization = \"Bearer {OTLP_HEADER}\" }}\ntimeout = \"1s\"\n\n\
         [[sinks]]\nname = \"es\"\ntype = \"elasticsearch\"\nurl = \"{}\"\napi_key = \"{ES_KEY_ID}:{ES_KEY}\"\n\n\
         [[sinks]]\nname = \"sentinel\"\ntype = \"azure_logs_ingestion\"\n{}\n\n\
         [[sinks]]\nname = \"lake\"\ntype = \"object_store\"\nurl = \"s3://audit/ch\"\nendpoint = \"http://{closed_addr}\"\naccess_key_id = \"AKIAEXAMPLE\"\nsecret_access_key = \"{S3_SECRET}\"\ntimeout = \"1s\"\nobject_max_age = \"1s\"\n",
        rx.url(),
        hec.url(),
        es.url(),
        azure.sink_keys(AZURE_SECRET)
    );
    rig.configure(&sinks, "", "");
    rig.edit(|doc| doc.set("log.level", "trace"));
    // API failures too, so error paths with the Authorization header in reach log.
    rig.emu.emulator.fail_next(2, 500);
    let d = Daemon::start(&rig.cfg, &[("RUST_LOG", "trace")]).await;
    for sink in [
        "siem", "splunk", "ch", "kafka", "otel", "es", "sentinel", "lake",
    ] {
        metric_at_least(
            &d,
            "clickhouse_audit_sink_failures_total",
            &[("sink", sink)],
            1.0,
        )
        .await;
    }
    let secrets = forbidden(&rig.emu.emulator.key_id(), &rig.emu.emulator.key_secret());
    for path in ["/status", "/readyz", "/metrics", "/healthz"] {
        let (_, body) = d.get(path).await;
        assert_clean(path, &body, &secrets);
    }
    let logs = stop_clean(d).await;
    assert!(
        logs.contains("TRACE") || logs.contains("\"level\":\"TRACE\""),
        "trace was on"
    );
    assert_clean("the trace log", &logs, &secrets);

    // `validate` and `once` error output with the same config.
    for args in [&["validate"][..], &["once"][..]] {
        let (_, text) = rig.cli(args, &[("RUST_LOG", "trace")]).await;
        assert_clean(&format!("`{}`", args.join(" ")), &text, &secrets);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_of_the_wrong_type_is_named_but_not_echoed() {
    let dir = tempfile::tempdir().unwrap();
    let stdout_sink = "[[sinks]]\nname = \"o\"\ntype = \"stdout\"\n";
    for toml in [
        format!("[api]\nkey_id = \"k\"\nkey_secret = [\"s3cr3t-in-a-list\"]\norganizations = [\"o\"]\n{stdout_sink}"),
        "[api]\nkey_id = \"k\"\nkey_secret = \"x\"\norganizations = [\"o\"]\n[[sinks]]\nname = \"s\"\ntype = \"splunk_hec\"\nurl = \"http://127.0.0.1:1\"\ntoken = { value = \"s3cr3t-in-a-list\" }\n".to_string(),
    ] {
        let cfg = dir.path().join("bad.toml");
        std::fs::write(&cfg, toml).unwrap();
        let out = bin()
            .arg("-c")
            .arg(&cfg)
            .args(["validate", "--offline"])
            .output()
            .await
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(!err.contains("s3cr3t-in-a-list"), "{err}");
        assert!(
            err.contains("key_secret") || err.contains("token"),
            "the key is named: {err}"
        );
    }
}

fn ca() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/data/test-ca.pem").to_string()
}

/// Every HTTPS destination refuses a certificate from an unknown CA by default, and trusts it
/// with `ca_file`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_is_verified_by_default_for_every_https_destination() {
    let rx = Receiver::start_tls("test-server.pem", "test-server.key").await;
    let url = rx.url();
    let blocks = [
        format!("[[sinks]]\nname = \"w\"\ntype = \"webhook\"\nurl = \"{url}\"\n"),
        format!("[[sinks]]\nname = \"s\"\ntype = \"splunk_hec\"\nurl = \"{url}\"\ntoken = \"t\"\n"),
        format!(
            "[[sinks]]\nname = \"c\"\ntype = \"clickhouse\"\nurl = \"{url}\"\ntable = \"audit\"\n"
        ),
        format!("[[sinks]]\nname = \"e\"\ntype = \"elasticsearch\"\nurl = \"{url}\"\n"),
        // Both the token request and the upload go to the TLS receiver.
        format!(
            "[[sinks]]\nname = \"a\"\ntype = \"azure_logs_ingestion\"\nendpoint = \"{url}\"\nauthority_host = \"{url}\"\ndcr_immutable_id = \"dcr-00112233445566778899aabbccddeeff\"\nstream_name = \"Custom-Audit\"\ntenant_id = \"t\"\nclient_id = \"c\"\nclient_secret = \"s\"\n"
        ),
    ];
    let batch = events(1);
    for block in &blocks {
        let before = rx.received().len();
        match sink(block).deliver(&batch).await {
            Err(SinkError::Transient { message, .. }) => {
                assert!(message.contains("certificate"), "{block}: {message}");
            }
            other => panic!("{block}: an unknown CA must be refused, got {other:?}"),
        }
        assert_eq!(rx.received().len(), before, "{block}: nothing sent");
        let trusting = format!("{block}ca_file = \"{}\"\n", ca());
        let result = sink(&trusting).deliver(&batch).await;
        if let Err(e) = &result {
            assert!(!format!("{e}").contains("certificate"), "{block}: {e}");
        }
        assert!(
            rx.received().len() > before,
            "{block}: with ca_file the request went through"
        );
    }
    // The API client: the same unknown CA is refused.
    let rig = Rig::new().await;
    rig.edit(|doc| doc.replace("api.base_url", url.as_str()));
    let (code, text) = rig.cli(&["validate"], &[]).await;
    assert_ne!(code, 0, "{text}");
    assert!(
        text.contains("certificate"),
        "the API's TLS failure is named: {text}"
    );
}

#[test]
fn the_metrics_listener_binds_loopback_by_default() {
    let cfg = Config::from_toml(
        "[api]\nkey_id = \"k\"\nkey_secret = \"s\"\norganizations = [\"o\"]\n[[sinks]]\nname = \"o\"\ntype = \"stdout\"\n",
        Some(Default::default()),
    )
    .unwrap();
    let addr: std::net::SocketAddr = cfg.server.listen.parse().unwrap();
    assert!(addr.ip().is_loopback(), "{addr}");
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/example.toml"))
            .unwrap();
    assert!(example.contains("listen = \"127.0.0.1:9187\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_and_output_files_are_private() {
    let rig = Rig::new().await;
    let (code, text) = rig.cli(&["once"], &[]).await;
    assert_eq!(code, 0, "{text}");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&rig.path("state.db")), 0o600, "state database");
    assert_eq!(mode(&rig.path("state.db.marker")), 0o600, "state marker");
    assert_eq!(mode(&rig.out), 0o640, "file sink output");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_world_readable_config_with_secrets_gets_a_warning() {
    let rig = Rig::new().await;
    let secret = rig.emu.emulator.key_secret();
    let run = async || {
        let (code, text) = rig.cli(&["validate", "--offline"], &[]).await;
        assert_eq!(code, 0, "{text}");
        text
    };
    std::fs::set_permissions(&rig.cfg, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = run().await;
    assert!(
        err.contains("readable by every user") && err.contains("key_secret"),
        "{err}"
    );
    assert!(err.contains(&rig.cfg.display().to_string()), "{err}");
    assert!(!err.contains(&secret), "{err}");
    std::fs::set_permissions(&rig.cfg, std::fs::Permissions::from_mode(0o640)).unwrap();
    let err = run().await;
    assert!(!err.contains("readable by every user"), "{err}");
}
