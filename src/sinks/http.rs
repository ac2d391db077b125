//! What the HTTP sinks (webhook, splunk_hec, clickhouse) share: the reqwest client they build
//! (timeouts, no redirects, our User-Agent, TLS verification on with an optional `ca_file`
//! added to the roots) and the `compression = "gzip" | "none"` key.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;

/// A client for one sink. `what` names it in errors ("the webhook HTTP client").
pub fn client(
    timeout: Duration,
    ca_file: Option<&Path>,
    what: &str,
) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!(
            "clickhouse-audit-exporter/",
            env!("CARGO_PKG_VERSION")
        ));
    if let Some(path) = ca_file {
        let pem =
            std::fs::read(path).with_context(|| format!("reading ca_file {}", path.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .with_context(|| format!("parsing ca_file {} (PEM)", path.display()))?;
        anyhow::ensure!(
            !certs.is_empty(),
            "ca_file {} holds no certificate",
            path.display()
        );
        builder = builder.tls_certs_merge(certs);
    }
    builder.build().with_context(|| format!("building {what}"))
}

/// `compression = "gzip"` (true) or `"none"` (false).
pub fn de_gzip<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    match String::deserialize(d)?.as_str() {
        "gzip" => Ok(true),
        "none" => Ok(false),
        other => Err(serde::de::Error::custom(format!(
            "compression = {other:?}: expected \"gzip\" or \"none\""
        ))),
    }
}
