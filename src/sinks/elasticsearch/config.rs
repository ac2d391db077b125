//! `type = "elasticsearch"` settings (Elasticsearch and OpenSearch `_bulk`): serde data with a
//! documented default per key, checked by `validate` (errors name `sinks[i].key`), the
//! cleartext rule per URL, and `ecs` as this sink's default format. Secrets (`api_key`,
//! `password`, `bearer_token`) are `SecretString`s and URLs `HttpUrl`s, so the derived `Debug`
//! shows none of them.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

use crate::cleartext::{self, Insecure};
use crate::format::Format;
use crate::http::url::HttpUrl;
use crate::sinks::{BuildContext, Sink, SinkSpec};
use crate::values::{ConfigError, KeyPath};

/// `type = "elasticsearch"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ElasticsearchConfig {
    /// Base URL of the cluster, e.g. `https://es.example:9200` (the sink adds `/_bulk`).
    #[serde(default)]
    pub url: Option<HttpUrl>,
    /// Several nodes instead of `url`: a request that cannot reach one (connection refused,
    /// timeout) goes to the next, and the sink stays on the one that answered.
    #[serde(default)]
    pub urls: Vec<HttpUrl>,
    /// Target index, with `strftime` date fields taken from each event's time (UTC):
    /// `%Y %y %G %g %m %d %j %V %U %W %%`. A data stream name works as is (every document is
    /// sent with the `create` op a data stream needs).
    #[serde(default = "default_index")]
    pub index: String,
    /// Ingest pipeline every document goes through (`?pipeline=`).
    #[serde(default)]
    pub pipeline: Option<String>,
    /// API key: the `encoded` value Elasticsearch returns, or `id:api_key` (encoded here).
    /// Sent as `Authorization: ApiKey <base64>`.
    #[serde(default)]
    pub api_key: Option<SecretString>,
    /// File holding the API key (trailing newline ignored).
    #[serde(default)]
    pub api_key_file: Option<PathBuf>,
    /// Basic-auth user (with `password` or `password_file`).
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<SecretString>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// `Authorization: Bearer <token>` (an Elasticsearch service-account or OAuth token).
    #[serde(default)]
    pub bearer_token: Option<SecretString>,
    #[serde(default)]
    pub bearer_token_file: Option<PathBuf>,
    /// `gzip` (default; Elasticsearch and OpenSearch always accept it) or `none`.
    #[serde(
        default = "default_compression",
        deserialize_with = "crate::http::de_gzip"
    )]
    pub compression: bool,
    /// Largest `_bulk` body before compression; a batch is split to stay under it (and under
    /// the cluster's `http.max_content_length`, 100mb by default).
    #[serde(
        default = "default_batch_max_bytes",
        deserialize_with = "crate::values::de_size"
    )]
    pub batch_max_bytes: u64,
    /// How long dispatch may wait to fill a batch before sending a partial one.
    #[serde(default = "default_batch_timeout", with = "humantime_serde")]
    pub batch_timeout: Duration,
    /// Timeout of one `_bulk` request (it includes the indexing).
    #[serde(
        default = "crate::sinks::default_long_timeout",
        with = "humantime_serde"
    )]
    pub timeout: Duration,
    /// PEM file of extra CA certificates to trust (added to the system roots).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Documents the cluster refuses for good (a `_bulk` item answered 400
    /// `mapper_parsing_exception` …) are appended here with the reason and the sink moves on;
    /// unset = the batch is kept and retried at the maximum backoff.
    #[serde(default)]
    pub dead_letter_path: Option<PathBuf>,
    /// Send the credential over plain `http://` to a non-loopback host anyway (WARN at every
    /// start; `clickhouse_audit_insecure_transport` = 1).
    #[serde(default)]
    pub allow_insecure: bool,
}

fn default_index() -> String {
    "clickhouse-audit-%Y.%m.%d".into()
}
fn default_compression() -> bool {
    true
}
fn default_batch_max_bytes() -> u64 {
    5 << 20
}
fn default_batch_timeout() -> Duration {
    Duration::from_secs(1)
}

/// The date fields an `index` may hold: at most one index per day.
const DATE_FIELDS: &[char] = &['Y', 'y', 'G', 'g', 'm', 'd', 'j', 'V', 'U', 'W', '%'];

/// Why `name` cannot be an Elasticsearch index or data stream name, per its rules (lowercase;
/// none of `\ / * ? " < > | , # :` or space; not starting with `-`, `_`, `+`; not `.`/`..`;
/// at most 255 bytes).
pub(super) fn index_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("must not be empty");
    }
    if name.len() > 255 {
        return Some("must be at most 255 bytes");
    }
    if name == "." || name == ".." {
        return Some("must not be . or ..");
    }
    if name.starts_with(['-', '_', '+']) {
        return Some("must not start with -, _ or +");
    }
    if name.chars().any(|c| c.is_uppercase()) {
        return Some("must be lowercase");
    }
    if name.contains(['\\', '/', '*', '?', '"', '<', '>', '|', ' ', ',', '#', ':']) {
        return Some("must not contain \\ / * ? \" < > | , # : or spaces");
    }
    None
}

impl ElasticsearchConfig {
    /// The configured URLs with the key each came from (`url`, `urls[1]`).
    pub(super) fn all_urls(&self) -> Vec<(String, &HttpUrl)> {
        match &self.url {
            Some(url) => vec![("url".to_string(), url)],
            None => self
                .urls
                .iter()
                .enumerate()
                .map(|(i, u)| (format!("urls[{i}]"), u))
                .collect(),
        }
    }

    fn credential(&self) -> Option<&'static str> {
        if self.api_key.is_some() || self.api_key_file.is_some() {
            Some("the API key")
        } else if self.username.is_some() {
            Some("the basic-auth password")
        } else if self.bearer_token.is_some() || self.bearer_token_file.is_some() {
            Some("the bearer token")
        } else {
            None
        }
    }

    fn check_index(&self, at: &KeyPath) -> Result<(), ConfigError> {
        let shown = format!("{:?}", self.index);
        let mut chars = self.index.chars();
        while let Some(c) = chars.next() {
            if c == '%' && !chars.next().is_some_and(|f| DATE_FIELDS.contains(&f)) {
                return Err(at.err(
                    "index",
                    &shown,
                    "only the date fields %Y %y %G %g %m %d %j %V %U %W and %% may follow %",
                ));
            }
        }
        let sample = super::index::IndexName::new(&self.index).render(0);
        if let Some(why) = index_name_problem(&sample) {
            return Err(at.err(
                "index",
                &shown,
                format!("not an index name ({sample:?}): {why}"),
            ));
        }
        Ok(())
    }
}

impl SinkSpec for ElasticsearchConfig {
    fn validate(&self, at: &KeyPath) -> Result<(), ConfigError> {
        match (&self.url, self.urls.is_empty()) {
            (Some(_), false) => return Err(at.table_err("set either url or urls, not both")),
            (None, true) => {
                return Err(at.missing("url", "set url (or urls, a list of nodes)"));
            }
            _ => {}
        }
        for (key, url) in self.all_urls() {
            let parsed = url.check(at, &key, "https://es.example:9200")?;
            if parsed.path().contains("_bulk") || parsed.query().is_some() {
                return Err(at.err(
                    &key,
                    format!("{:?}", url.redacted()),
                    "give the base URL (https://host:9200); the sink adds /_bulk, and the \
                     pipeline has its own key",
                ));
            }
        }
        self.check_index(at)?;
        if let Some(p) = &self.pipeline
            && p.trim().is_empty()
        {
            return Err(at.err("pipeline", "\"\"", "must not be empty (or leave it out)"));
        }
        at.one_secret("api_key", &self.api_key, &self.api_key_file, None)?;
        at.one_secret("password", &self.password, &self.password_file, None)?;
        at.one_secret(
            "bearer_token",
            &self.bearer_token,
            &self.bearer_token_file,
            None,
        )?;
        let password = self.password.is_some() || self.password_file.is_some();
        if password != self.username.is_some() {
            return Err(at.err(
                "username",
                format!("{:?}", self.username.as_deref().unwrap_or("")),
                "basic auth needs both username and password(_file)",
            ));
        }
        let methods = [
            self.api_key.is_some() || self.api_key_file.is_some(),
            self.username.is_some(),
            self.bearer_token.is_some() || self.bearer_token_file.is_some(),
        ];
        if methods.iter().filter(|&&m| m).count() > 1 {
            return Err(at.table_err(
                "set one of api_key(_file), username + password(_file), bearer_token(_file)",
            ));
        }
        if self.batch_max_bytes < 1024 {
            return Err(at.err(
                "batch_max_bytes",
                self.batch_max_bytes,
                "must be at least 1KiB",
            ));
        }
        at.nonzero("timeout", self.timeout)?;
        crate::sinks::dead_letter::validate(
            at,
            "dead_letter_path",
            self.dead_letter_path.as_deref(),
        )
    }

    /// One rule per URL: the credential goes to whichever node answers.
    fn cleartext(&self, at: &KeyPath, component: &str) -> Result<Option<Insecure>, ConfigError> {
        let mut insecure = None;
        for (key, url) in self.all_urls() {
            let found = cleartext::check_url(
                at,
                component,
                &key,
                url.as_str(),
                self.credential(),
                self.allow_insecure,
            )?;
            insecure = insecure.or(found);
        }
        Ok(insecure)
    }

    fn batch_timeout(&self) -> Option<Duration> {
        Some(self.batch_timeout)
    }

    /// ECS documents: what Elastic Security and OpenSearch Security Analytics read, and the
    /// one format with the `@timestamp` a data stream requires.
    fn default_format(&self) -> Format {
        Format::Ecs
    }

    fn build(&self, ctx: BuildContext<'_>) -> anyhow::Result<Box<dyn Sink>> {
        Ok(Box::new(super::ElasticsearchSink::new(
            self,
            ctx.name,
            ctx.format,
            &ctx.metrics,
        )?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(extra: serde_json::Value) -> Result<(), String> {
        let mut v = serde_json::json!({"url": "https://es.example:9200"});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let cfg: ElasticsearchConfig = serde_json::from_value(v).map_err(|e| e.to_string())?;
        cfg.validate(&KeyPath::sink(0, "es")).map_err(|e| e.0)
    }

    #[test]
    fn index_patterns_and_names_follow_elasticsearch_rules() {
        assert!(check(serde_json::json!({})).is_ok());
        assert!(check(serde_json::json!({"index": "logs-clickhouse.audit-default"})).is_ok());
        assert!(check(serde_json::json!({"index": "audit-%G.w%V"})).is_ok());
        for (index, why) in [
            ("Audit-%Y", "lowercase"),
            ("audit-%B", "date fields"),
            ("audit-%H", "date fields"),
            ("audit-%", "date fields"),
            ("_audit", "start with"),
            ("au dit", "spaces"),
            ("a/b", "spaces"),
            ("", "empty"),
        ] {
            let e = check(serde_json::json!({ "index": index })).unwrap_err();
            assert!(
                e.contains("sinks[0].index") && e.contains(why),
                "{index}: {e}"
            );
        }
    }

    #[test]
    fn urls_auth_and_sizes_are_checked_by_key() {
        let e = check(serde_json::json!({"urls": ["https://b:9200"]})).unwrap_err();
        assert!(e.contains("either url or urls"), "{e}");
        let e = check(serde_json::json!({"url": "https://es:9200/_bulk"})).unwrap_err();
        assert!(e.contains("sinks[0].url") && e.contains("base URL"), "{e}");
        let e = check(serde_json::json!({"api_key": "k", "bearer_token": "t"})).unwrap_err();
        assert!(e.contains("set one of"), "{e}");
        let e = check(serde_json::json!({"username": "u"})).unwrap_err();
        assert!(e.contains("sinks[0].username"), "{e}");
        let e = check(serde_json::json!({"batch_max_bytes": 10})).unwrap_err();
        assert!(e.contains("sinks[0].batch_max_bytes"), "{e}");
        let e = check(serde_json::json!({"pipeline": " "})).unwrap_err();
        assert!(e.contains("sinks[0].pipeline"), "{e}");
        let cfg: ElasticsearchConfig = serde_json::from_value(serde_json::json!({
            "urls": ["https://a:9200", "http://b.invalid:9200"], "api_key": "id:secret-key"
        }))
        .unwrap();
        let at = KeyPath::sink(0, "es");
        assert!(cfg.validate(&at).is_ok());
        let e = cfg.cleartext(&at, "sink:es").unwrap_err().0;
        assert!(
            e.contains("sinks[0].urls[1]") && e.contains("API key"),
            "{e}"
        );
        assert!(!format!("{cfg:?}").contains("secret-key"));
    }
}
