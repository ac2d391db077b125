//! `type = "object_store"` settings: serde data with a documented default per key, checked by
//! `validate` (errors name `sinks[i].key`), the cleartext rule (a signed request over `http://`
//! to a non-loopback endpoint needs `allow_insecure`), the batch defaults (one delivered batch = the
//! objects of one flush) and the store itself, built with the `object_store` crate's builders
//! (which also read each cloud's standard environment variables and instance credentials).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;
use object_store::path::Path as StorePath;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::layout::Template;
use super::security_lake::SecurityLakeConfig;
use crate::cleartext::{self, Insecure, Transport};
use crate::sinks::{BuildContext, Sink, SinkSpec};
use crate::values::{ConfigError, KeyPath, resolve_secret};

/// `type = "object_store"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectStoreConfig {
    /// Where objects go: `s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix`
    /// or `file:///path`.
    pub url: String,
    /// S3-compatible (MinIO, Ceph, R2) or Azure endpoint instead of the cloud's own.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// S3 region (else `AWS_REGION`/`AWS_DEFAULT_REGION`, else `us-east-1`).
    #[serde(default)]
    pub region: Option<String>,
    /// Accept an `http://` endpoint on a non-loopback host (signed requests in clear text: WARN
    /// at every start, `clickhouse_audit_insecure_transport` = 1). Loopback `http://` (tests,
    /// a local MinIO) needs nothing.
    #[serde(default)]
    pub allow_insecure: bool,
    /// S3 access key id (else the standard AWS environment, profile-less instance/workload
    /// credentials).
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// S3 secret access key (with `access_key_id`).
    #[serde(default)]
    pub secret_access_key: Option<SecretString>,
    /// File holding the S3 secret access key (trailing newline ignored).
    #[serde(default)]
    pub secret_access_key_file: Option<PathBuf>,
    /// Azure storage account (else `AZURE_STORAGE_ACCOUNT_NAME`).
    #[serde(default)]
    pub account: Option<String>,
    /// Azure storage account key (else the `AZURE_*` environment or managed identity).
    #[serde(default)]
    pub access_key: Option<SecretString>,
    /// File holding the Azure storage account key.
    #[serde(default)]
    pub access_key_file: Option<PathBuf>,
    /// GCS service-account JSON file (else `GOOGLE_APPLICATION_CREDENTIALS` or workload
    /// identity).
    #[serde(default)]
    pub service_account_file: Option<PathBuf>,
    /// Hive-style directory of an object below the prefix; placeholders `{org_id}`, `{kind}`,
    /// `{date}` (YYYY-MM-DD), `{year}`, `{month}`, `{day}`, `{hour}` of the event's time (UTC).
    #[serde(default = "default_partition")]
    pub partition: String,
    /// `ndjson` (one encoded record per line) or `parquet` (Security Lake mode: OCSF records
    /// as nested Parquet columns, one class per object; needs `format = "ocsf"` and
    /// `[sinks.security_lake]`).
    #[serde(default = "default_encoding")]
    pub encoding: String,
    /// Security Lake custom source the `parquet` objects belong to (layout, account, region).
    #[serde(default)]
    pub security_lake: Option<SecurityLakeConfig>,
    /// `gzip` (default), `zstd` or `none`.
    #[serde(default = "default_compression")]
    pub compression: String,
    /// An object closes at this many events; also the default `batch_max_events`.
    #[serde(default = "default_object_max_events")]
    pub object_max_events: usize,
    /// An object closes before it would exceed this size before compression (`"64MiB"`).
    #[serde(
        default = "default_object_max_bytes",
        deserialize_with = "crate::values::de_size"
    )]
    pub object_max_bytes: u64,
    /// How long dispatch may wait to fill a batch (the objects of one flush) while events
    /// keep arriving.
    #[serde(default = "default_object_max_age", with = "humantime_serde")]
    pub object_max_age: Duration,
    /// What `validate` does to prove the destination: `write` (put a small probe object and
    /// delete it again), `list` (list the prefix: where write probes are unwelcome) or `none`.
    #[serde(default = "default_validate_probe")]
    pub validate_probe: String,
    /// Longest time one request (a put, one part of a multipart upload) may take.
    #[serde(
        default = "crate::sinks::default_long_timeout",
        with = "humantime_serde"
    )]
    pub timeout: Duration,
}

fn default_partition() -> String {
    "org_id={org_id}/date={date}/hour={hour}".to_string()
}
fn default_encoding() -> String {
    "ndjson".to_string()
}
fn default_compression() -> String {
    "gzip".to_string()
}
fn default_object_max_events() -> usize {
    10_000
}
fn default_object_max_bytes() -> u64 {
    64 * 1024 * 1024
}
fn default_validate_probe() -> String {
    "write".to_string()
}
fn default_object_max_age() -> Duration {
    Duration::from_secs(300)
}

/// The store behind a `url`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    S3,
    Gcs,
    Azure,
    File,
}

/// Object compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Gzip,
    Zstd,
    None,
}

impl Compression {
    pub fn suffix(self) -> &'static str {
        match self {
            Compression::Gzip => ".gz",
            Compression::Zstd => ".zst",
            Compression::None => "",
        }
    }
}

/// A checked `url`: scheme, bucket (container; empty for files) and the prefix below it.
#[derive(Debug, Clone)]
pub struct Location {
    pub scheme: Scheme,
    pub bucket: String,
    pub prefix: String,
}

impl ObjectStoreConfig {
    /// Parses `url`; errors name the key.
    pub fn location(&self, at: &KeyPath) -> Result<Location, ConfigError> {
        let bad = |why: &str| at.err("url", format!("{:?}", self.url), why);
        let (scheme, rest) = self.url.split_once("://").ok_or_else(|| {
            bad("expected s3://bucket/prefix, gs://bucket/prefix, az://container/prefix or file:///path")
        })?;
        let scheme = match scheme {
            "s3" | "s3a" => Scheme::S3,
            "gs" => Scheme::Gcs,
            "az" | "azure" => Scheme::Azure,
            "file" => Scheme::File,
            _ => return Err(bad("unknown scheme: use s3://, gs://, az:// or file://")),
        };
        if rest.contains(['?', '#']) || rest.contains("..") {
            return Err(bad("no query, fragment or `..` in the url"));
        }
        if scheme == Scheme::File {
            if !rest.starts_with('/') || rest.trim_matches('/').is_empty() {
                return Err(bad("a file url names an absolute directory: file:///path"));
            }
            return Ok(Location {
                scheme,
                bucket: String::new(),
                prefix: rest.trim_matches('/').to_string(),
            });
        }
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() || bucket.contains('@') {
            return Err(bad("name the bucket (container) after the scheme"));
        }
        Ok(Location {
            scheme,
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
        })
    }

    pub fn compression_kind(&self) -> Compression {
        match self.compression.as_str() {
            "zstd" => Compression::Zstd,
            "none" => Compression::None,
            _ => Compression::Gzip,
        }
    }

    /// Builds the store and the prefix objects go under; reads secret files now, so a bad path
    /// fails at startup.
    pub fn store(&self) -> anyhow::Result<(Arc<dyn ObjectStore>, StorePath)> {
        self.stores().map(|(store, _, prefix)| (store, prefix))
    }

    /// `store` with the store's multipart interface when it has one (S3, Azure, GCS; a local
    /// directory has not), for uploads recorded in the in-flight marker.
    pub fn stores(&self) -> anyhow::Result<(Arc<dyn ObjectStore>, Option<Multipart>, StorePath)> {
        let loc = self
            .location(&KeyPath::section("sink"))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let retry = object_store::RetryConfig {
            // dispatch retries with its own backoff; the store answers at once.
            max_retries: 0,
            retry_timeout: self.timeout,
            ..Default::default()
        };
        let options = object_store::ClientOptions::new()
            .with_timeout(self.timeout)
            // `validate` let an http:// endpoint through only to loopback or with
            // `allow_insecure` (the cleartext rule).
            .with_allow_http(true);
        let (store, multipart): (Arc<dyn ObjectStore>, Option<Multipart>) = match loc.scheme {
            Scheme::File => {
                let root = format!("/{}", loc.prefix);
                std::fs::create_dir_all(&root)
                    .map_err(|e| anyhow::anyhow!("cannot create {root}: {e}"))?;
                (Arc::new(object_store::local::LocalFileSystem::new()), None)
            }
            Scheme::S3 => {
                let mut b = object_store::aws::AmazonS3Builder::from_env()
                    .with_bucket_name(&loc.bucket)
                    .with_retry(retry)
                    .with_client_options(options);
                if let Some(r) = &self.region {
                    b = b.with_region(r);
                }
                if let Some(e) = &self.endpoint {
                    b = b.with_endpoint(e);
                }
                if let Some(id) = &self.access_key_id {
                    let secret = resolve_secret(
                        &self.secret_access_key,
                        &self.secret_access_key_file,
                        "secret_access_key_file",
                    )?
                    .ok_or_else(|| anyhow::anyhow!("secret_access_key missing"))?;
                    b = b
                        .with_access_key_id(id)
                        .with_secret_access_key(secret.expose_secret());
                }
                both(Arc::new(b.build()?))
            }
            Scheme::Azure => {
                let mut b = object_store::azure::MicrosoftAzureBuilder::from_env()
                    .with_container_name(&loc.bucket)
                    .with_retry(retry)
                    .with_client_options(options);
                if let Some(a) = &self.account {
                    b = b.with_account(a);
                }
                if let Some(e) = &self.endpoint {
                    b = b.with_endpoint(e.clone());
                }
                if let Some(key) =
                    resolve_secret(&self.access_key, &self.access_key_file, "access_key_file")?
                {
                    b = b.with_access_key(key.expose_secret());
                }
                both(Arc::new(b.build()?))
            }
            Scheme::Gcs => {
                let mut b = object_store::gcp::GoogleCloudStorageBuilder::from_env()
                    .with_bucket_name(&loc.bucket)
                    .with_retry(retry)
                    .with_client_options(options);
                if let Some(f) = &self.service_account_file {
                    b = b.with_service_account_path(f.display().to_string());
                }
                both(Arc::new(b.build()?))
            }
        };
        Ok((store, multipart, StorePath::from(loc.prefix.as_str())))
    }
}

/// A store's multipart interface.
pub type Multipart = Arc<dyn object_store::multipart::MultipartStore>;

fn both<S: ObjectStore + object_store::multipart::MultipartStore>(
    s: Arc<S>,
) -> (Arc<dyn ObjectStore>, Option<Multipart>) {
    (s.clone(), Some(s))
}

/// Keys that only one scheme reads, to refuse them elsewhere.
fn scheme_keys(cfg: &ObjectStoreConfig) -> [(&'static str, bool, Scheme); 8] {
    [
        ("access_key_id", cfg.access_key_id.is_some(), Scheme::S3),
        (
            "secret_access_key",
            cfg.secret_access_key.is_some(),
            Scheme::S3,
        ),
        (
            "secret_access_key_file",
            cfg.secret_access_key_file.is_some(),
            Scheme::S3,
        ),
        ("region", cfg.region.is_some(), Scheme::S3),
        ("account", cfg.account.is_some(), Scheme::Azure),
        ("access_key", cfg.access_key.is_some(), Scheme::Azure),
        (
            "access_key_file",
            cfg.access_key_file.is_some(),
            Scheme::Azure,
        ),
        (
            "service_account_file",
            cfg.service_account_file.is_some(),
            Scheme::Gcs,
        ),
    ]
}

impl SinkSpec for ObjectStoreConfig {
    fn validate(&self, at: &KeyPath) -> Result<(), ConfigError> {
        let loc = self.location(at)?;
        for (key, set, scheme) in scheme_keys(self) {
            if set && loc.scheme != scheme {
                return Err(at.err(
                    key,
                    "(set)",
                    format!("only read for {scheme:?} urls, not {:?}", self.url),
                ));
            }
        }
        at.one_secret(
            "secret_access_key",
            &self.secret_access_key,
            &self.secret_access_key_file,
            None,
        )?;
        at.one_secret("access_key", &self.access_key, &self.access_key_file, None)?;
        let has_secret = self.secret_access_key.is_some() || self.secret_access_key_file.is_some();
        if self.access_key_id.is_some() != has_secret {
            return Err(at.missing(
                if has_secret {
                    "access_key_id"
                } else {
                    "secret_access_key"
                },
                "set access_key_id with secret_access_key (or secret_access_key_file), or neither to use the environment",
            ));
        }
        if let Some(e) = &self.endpoint {
            if loc.scheme == Scheme::File || loc.scheme == Scheme::Gcs {
                return Err(at.err(
                    "endpoint",
                    format!("{e:?}"),
                    "only read for s3:// and az:// urls",
                ));
            }
            let Ok(u) = reqwest::Url::parse(e) else {
                return Err(at.err(
                    "endpoint",
                    format!("{e:?}"),
                    "expected http(s)://host[:port][/path]",
                ));
            };
            if !matches!(u.scheme(), "https" | "http") || u.host_str().is_none() {
                return Err(at.err("endpoint", format!("{e:?}"), "expected http(s)://host"));
            }
        }
        Template::parse(&self.partition)
            .map_err(|why| at.err("partition", format!("{:?}", self.partition), why))?;
        match (self.encoding.as_str(), &self.security_lake) {
            ("ndjson", None) => {}
            ("parquet", Some(lake)) => {
                lake.validate(at)?;
                if self.compression != "gzip" {
                    return Err(at.err(
                        "compression",
                        format!("{:?}", self.compression),
                        "not read with encoding = \"parquet\" (zstd inside the Parquet file)",
                    ));
                }
            }
            ("parquet", None) => {
                return Err(at.missing(
                    "security_lake",
                    "encoding = \"parquet\" writes Security Lake objects: add [sinks.security_lake] with source_name, account_id and region",
                ));
            }
            ("ndjson", Some(_)) => {
                return Err(at.err(
                    "security_lake",
                    "(set)",
                    "only read with encoding = \"parquet\"",
                ));
            }
            _ => {
                return Err(at.err(
                    "encoding",
                    format!("{:?}", self.encoding),
                    "expected \"ndjson\" or \"parquet\"",
                ));
            }
        }
        if !matches!(self.compression.as_str(), "gzip" | "zstd" | "none") {
            return Err(at.err(
                "compression",
                format!("{:?}", self.compression),
                "expected \"gzip\", \"zstd\" or \"none\"",
            ));
        }
        if !(1..=1_000_000).contains(&self.object_max_events) {
            return Err(at.err(
                "object_max_events",
                self.object_max_events,
                "must be an integer from 1 to 1000000",
            ));
        }
        if self.object_max_bytes < 1024 {
            return Err(at.err(
                "object_max_bytes",
                self.object_max_bytes,
                "must be at least 1KiB",
            ));
        }
        if !matches!(self.validate_probe.as_str(), "write" | "list" | "none") {
            return Err(at.err(
                "validate_probe",
                format!("{:?}", self.validate_probe),
                "expected \"write\", \"list\" or \"none\"",
            ));
        }
        at.nonzero("object_max_age", self.object_max_age)?;
        at.nonzero("timeout", self.timeout)?;
        Ok(())
    }

    fn cleartext(&self, at: &KeyPath, component: &str) -> Result<Option<Insecure>, ConfigError> {
        let Some(endpoint) = &self.endpoint else {
            return Ok(None);
        };
        let Ok(u) = reqwest::Url::parse(endpoint) else {
            return Ok(None);
        };
        let shown = crate::http::url::redact_url(endpoint);
        cleartext::check(
            at,
            component,
            &Transport {
                key: "endpoint",
                shown: &shown,
                host: u.host_str().unwrap_or_default(),
                encrypted: u.scheme() == "https",
                credential: Some("the signed request (access key id, signature)"),
            },
            self.allow_insecure,
        )
    }

    fn batch_timeout(&self) -> Option<Duration> {
        Some(self.object_max_age)
    }

    fn default_format(&self) -> crate::format::Format {
        if self.encoding == "parquet" {
            crate::format::Format::Ocsf
        } else {
            crate::format::Format::default()
        }
    }

    fn validate_format(
        &self,
        at: &KeyPath,
        format: crate::format::Format,
    ) -> Result<(), ConfigError> {
        if self.encoding == "parquet" && format != crate::format::Format::Ocsf {
            return Err(at.err(
                "encoding",
                "\"parquet\"",
                format!(
                    "Parquet objects hold OCSF records only: set format = \"ocsf\", not {:?}",
                    format.as_str()
                ),
            ));
        }
        Ok(())
    }

    fn default_batch_max_events(&self) -> Option<usize> {
        Some(self.object_max_events)
    }

    fn probe(&self) -> Option<futures_util::future::BoxFuture<'static, Result<String, String>>> {
        if self.validate_probe == "none" {
            return None;
        }
        let cfg = self.clone();
        Some(Box::pin(async move { super::probe(&cfg).await }))
    }

    fn build(&self, ctx: BuildContext<'_>) -> anyhow::Result<Box<dyn Sink>> {
        Ok(Box::new(super::ObjectStoreSink::new(self, ctx)?))
    }
}
