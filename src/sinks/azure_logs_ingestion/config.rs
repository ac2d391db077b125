//! `type = "azure_logs_ingestion"` settings: serde data with a documented default per key,
//! checked by `validate` (errors name `sinks[i].key`), and the cleartext rule for the client
//! secret (to `authority_host`) and the access token (to `endpoint`). The secret is a
//! `SecretString` and the URLs are `HttpUrl`s, so the derived `Debug` shows neither.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

use crate::cleartext::{self, Insecure};
use crate::http::url::HttpUrl;
use crate::sinks::{BuildContext, Sink, SinkSpec};
use crate::values::{ConfigError, KeyPath};

/// `type = "azure_logs_ingestion"`: Azure Monitor Logs Ingestion API (Microsoft Sentinel).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzureLogsIngestionConfig {
    /// The data collection endpoint (DCE) or the DCR's own logs ingestion endpoint, e.g.
    /// `https://my-dce-abcd.westeurope-1.ingest.monitor.azure.com`.
    pub endpoint: HttpUrl,
    /// The DCR's immutable id, `dcr-` followed by 32 hex digits.
    pub dcr_immutable_id: String,
    /// The DCR input stream, `Custom-<name>` (or a `Microsoft-<table>` stream).
    pub stream_name: String,
    /// Directory (tenant) id of the app registration (client-credentials flow).
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// Application (client) id of the app registration (client-credentials flow).
    #[serde(default)]
    pub client_id: Option<String>,
    /// The app registration's client secret (its Value, not its ID).
    #[serde(default)]
    pub client_secret: Option<SecretString>,
    /// File holding the client secret (trailing newline ignored).
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    /// Take tokens from the Azure Instance Metadata Service instead (a VM / scale set with a
    /// managed identity); no tenant, client id or secret then.
    #[serde(default)]
    pub managed_identity: bool,
    /// Client id of a user-assigned managed identity; unset = the system-assigned one.
    #[serde(default)]
    pub managed_identity_client_id: Option<String>,
    /// The IMDS token URL (without query); only tests and proxies change it.
    #[serde(default = "default_managed_identity_endpoint")]
    pub managed_identity_endpoint: HttpUrl,
    /// Microsoft Entra authority; sovereign clouds: `https://login.microsoftonline.us`,
    /// `https://login.partner.microsoftonline.cn`.
    #[serde(default = "default_authority_host")]
    pub authority_host: HttpUrl,
    /// Token scope (`<resource>/.default`); Azure Government: `https://monitor.azure.us//.default`.
    #[serde(default = "default_scope")]
    pub scope: String,
    /// `api-version` of the upload call.
    #[serde(default = "default_api_version")]
    pub api_version: String,
    /// `gzip` (default) or `none`.
    #[serde(
        default = "default_compression",
        deserialize_with = "crate::http::de_gzip"
    )]
    pub compression: bool,
    /// How long dispatch may wait to fill a batch before sending a partial one.
    #[serde(default = "default_batch_timeout", with = "humantime_serde")]
    pub batch_timeout: Duration,
    /// Timeout of one request (token or upload).
    #[serde(default = "crate::sinks::default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// PEM file of extra CA certificates to trust (added to the system roots).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Events Azure refuses for good (a 400 naming the payload, a record over 1 MB) are
    /// appended here as NDJSON and the sink moves on; unset = keep retrying them.
    #[serde(default)]
    pub dead_letter_path: Option<PathBuf>,
    /// Send the client secret or the access token over plain `http://` to a non-loopback host
    /// anyway (WARN at every start; `clickhouse_audit_insecure_transport` = 1).
    #[serde(default)]
    pub allow_insecure: bool,
}

/// The Azure Instance Metadata Service's token endpoint.
pub const IMDS_TOKEN_URL: &str = "http://169.254.169.254/metadata/identity/oauth2/token";

fn default_managed_identity_endpoint() -> HttpUrl {
    HttpUrl::new(IMDS_TOKEN_URL)
}
fn default_authority_host() -> HttpUrl {
    HttpUrl::new("https://login.microsoftonline.com")
}
fn default_scope() -> String {
    "https://monitor.azure.com//.default".into()
}
fn default_api_version() -> String {
    "2023-01-01".into()
}
fn default_compression() -> bool {
    true
}
fn default_batch_timeout() -> Duration {
    Duration::from_secs(1)
}

/// Letters, digits and `extra` only, not empty.
fn plain(text: &str, extra: &[char]) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || extra.contains(&c))
}

impl SinkSpec for AzureLogsIngestionConfig {
    fn validate(&self, at: &KeyPath) -> Result<(), ConfigError> {
        self.endpoint.check(
            at,
            "endpoint",
            "https://my-dce-abcd.westeurope-1.ingest.monitor.azure.com",
        )?;
        let dcr = self.dcr_immutable_id.as_str();
        if !dcr.starts_with("dcr-") || !plain(&dcr[4..], &[]) {
            return Err(at.err(
                "dcr_immutable_id",
                format!("{dcr:?}"),
                "must be the DCR's immutable id, dcr-<32 hex digits> (the DCR's JSON view, \
                 properties.immutableId)",
            ));
        }
        let stream = self.stream_name.as_str();
        let known_prefix = stream.starts_with("Custom-") || stream.starts_with("Microsoft-");
        if !known_prefix || !plain(stream, &['-', '_']) {
            return Err(at.err(
                "stream_name",
                format!("{stream:?}"),
                "must be a stream declared in the DCR, e.g. Custom-ClickHouseAudit \
                 (letters, digits, - and _)",
            ));
        }
        if self.managed_identity {
            for (key, set) in [
                ("tenant_id", self.tenant_id.is_some()),
                ("client_id", self.client_id.is_some()),
                ("client_secret", self.client_secret.is_some()),
                ("client_secret_file", self.client_secret_file.is_some()),
            ] {
                if set {
                    return Err(at.err(
                        key,
                        "<set>",
                        "not used with managed_identity = true (a user-assigned identity is \
                         chosen with managed_identity_client_id)",
                    ));
                }
            }
            self.managed_identity_endpoint.check(
                at,
                "managed_identity_endpoint",
                IMDS_TOKEN_URL,
            )?;
            if let Some(id) = &self.managed_identity_client_id
                && !plain(id, &['-'])
            {
                return Err(at.err(
                    "managed_identity_client_id",
                    format!("{id:?}"),
                    "must be the identity's client id (a GUID)",
                ));
            }
        } else {
            if self.managed_identity_client_id.is_some() {
                return Err(at.err(
                    "managed_identity_client_id",
                    "<set>",
                    "needs managed_identity = true",
                ));
            }
            let hint =
                "set tenant_id, client_id and client_secret(_file), or managed_identity = true";
            match &self.tenant_id {
                None => return Err(at.missing("tenant_id", hint)),
                Some(t) if !plain(t, &['-', '.']) => {
                    return Err(at.err(
                        "tenant_id",
                        format!("{t:?}"),
                        "must be the Directory (tenant) id (a GUID) or a verified domain",
                    ));
                }
                Some(_) => {}
            }
            match &self.client_id {
                None => return Err(at.missing("client_id", hint)),
                Some(c) if !plain(c, &['-']) => {
                    return Err(at.err(
                        "client_id",
                        format!("{c:?}"),
                        "must be the Application (client) id (a GUID)",
                    ));
                }
                Some(_) => {}
            }
            at.one_secret(
                "client_secret",
                &self.client_secret,
                &self.client_secret_file,
                Some(hint),
            )?;
            self.authority_host
                .check(at, "authority_host", "https://login.microsoftonline.com")?;
        }
        if self.scope.trim().is_empty() || self.scope.contains(char::is_whitespace) {
            return Err(at.err(
                "scope",
                format!("{:?}", self.scope),
                "must be one scope, e.g. https://monitor.azure.com//.default",
            ));
        }
        if !plain(&self.api_version, &['-']) {
            return Err(at.err(
                "api_version",
                format!("{:?}", self.api_version),
                "must be an api-version such as 2023-01-01",
            ));
        }
        at.nonzero("timeout", self.timeout)?;
        crate::sinks::dead_letter::validate(
            at,
            "dead_letter_path",
            self.dead_letter_path.as_deref(),
        )
    }

    /// The client secret goes to `authority_host`, the access token to `endpoint`. The IMDS
    /// endpoint is plain http on a link-local address by design and is sent no credential.
    fn cleartext(&self, at: &KeyPath, component: &str) -> Result<Option<Insecure>, ConfigError> {
        let token = cleartext::check_url(
            at,
            component,
            "endpoint",
            self.endpoint.as_str(),
            Some("the Microsoft Entra access token"),
            self.allow_insecure,
        )?;
        let secret = if self.managed_identity {
            None
        } else {
            cleartext::check_url(
                at,
                component,
                "authority_host",
                self.authority_host.as_str(),
                Some("the client secret"),
                self.allow_insecure,
            )?
        };
        Ok(match (token, secret) {
            (Some(a), Some(b)) => Some(Insecure {
                component: a.component,
                detail: format!("{}; {}", a.detail, b.detail),
            }),
            (a, b) => a.or(b),
        })
    }

    fn batch_timeout(&self) -> Option<Duration> {
        Some(self.batch_timeout)
    }

    fn build(&self, ctx: BuildContext<'_>) -> anyhow::Result<Box<dyn Sink>> {
        Ok(Box::new(super::AzureLogsIngestionSink::new(
            self,
            ctx.name,
            ctx.format,
            &ctx.metrics,
        )?))
    }
}
