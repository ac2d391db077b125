//! URLs in configs: `HttpUrl` (a configured URL whose `Debug` hides user info and query, so a
//! config struct can derive `Debug`), `redact_url` for logs and errors, and the check every
//! http(s) key runs (`HttpUrl::check`: parses, http/https with a host, no credentials in it).

use reqwest::Url;
use serde::Deserialize;

use crate::values::{ConfigError, KeyPath};

/// A configured http(s) URL, kept as written. Shown only redacted.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct HttpUrl(String);

impl HttpUrl {
    pub fn new(url: impl Into<String>) -> Self {
        HttpUrl(url.into())
    }

    /// The URL as written (may hold a credential: never log it).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The URL for logs and errors.
    pub fn redacted(&self) -> String {
        redact_url(&self.0)
    }

    /// Parses and checks the URL of key `key` under `at`: http or https, with a host, without
    /// user info (credentials go in their own keys). `example` ends the message on a bad one.
    pub fn check(&self, at: &KeyPath, key: &str, example: &str) -> Result<Url, ConfigError> {
        let shown = format!("{:?}", self.redacted());
        let url = Url::parse(&self.0).map_err(|e| at.err(key, &shown, e))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(at.err(
                key,
                &shown,
                format!("must be an http(s) URL with a host, e.g. {example}"),
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(at.err(
                key,
                &shown,
                "must not carry credentials: put them in the sink's own keys",
            ));
        }
        Ok(url)
    }
}

impl std::fmt::Debug for HttpUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

/// The URL without user info, query and fragment (any may hold a credential), for logs and
/// errors.
pub fn redact_url(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        Err(_) => "<invalid url>".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_errors_never_show_user_info_or_query() {
        let url = HttpUrl::new("https://user:pw@host.invalid:8088/p?token=abc#x");
        let debug = format!("{url:?}");
        assert_eq!(debug, "\"https://host.invalid:8088/p\"");
        let at = KeyPath::sink(0, "s");
        let err = url.check(&at, "url", "https://host:8088").unwrap_err().0;
        assert!(err.contains("must not carry credentials"), "{err}");
        assert!(!err.contains("pw") && !err.contains("abc"), "{err}");
        let err = HttpUrl::new("ftp://host.invalid/")
            .check(&at, "url", "https://host:8088")
            .unwrap_err()
            .0;
        assert!(err.contains("e.g. https://host:8088"), "{err}");
        assert!(
            HttpUrl::new("http://127.0.0.1:1/x")
                .check(&at, "url", "")
                .is_ok()
        );
    }
}
