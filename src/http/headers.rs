//! `headers` tables of the HTTP-like sinks (webhook, otlp): extra request headers whose values
//! may be credentials (`Authorization`, `X-Api-Key`, `x-honeycomb-team`), so `Debug` shows the
//! names only, the checks name the key but never the value, and the built `HeaderMap` marks
//! every value sensitive.

use std::collections::BTreeMap;

use anyhow::Context;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;

use crate::values::{ConfigError, KeyPath};

/// Extra request headers; `Debug` shows the names, never the values.
#[derive(Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct Headers(pub BTreeMap<String, String>);

impl std::fmt::Debug for Headers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

impl Headers {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Checks key `key` (`headers`) under `at`: valid names and values, none of `reserved`
    /// (lowercase names the sink sets itself).
    pub fn check(&self, at: &KeyPath, key: &str, reserved: &[&str]) -> Result<(), ConfigError> {
        for (name, value) in &self.0 {
            if HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(at.err(key, format!("{name:?}"), "not a valid header name"));
            }
            if HeaderValue::from_str(value).is_err() {
                return Err(at.err(
                    &format!("{key}.{name}"),
                    "<value>",
                    "not a valid header value (printable ASCII, no line breaks)",
                ));
            }
            if reserved.contains(&name.to_ascii_lowercase().as_str()) {
                return Err(at.err(
                    key,
                    format!("{name:?}"),
                    "this header is set by the sink itself",
                ));
            }
        }
        Ok(())
    }

    /// The headers as a map, every value marked sensitive (kept out of reqwest's `Debug`).
    pub fn to_map(&self) -> anyhow::Result<HeaderMap> {
        let mut map = HeaderMap::new();
        for (name, value) in &self.0 {
            let mut value = HeaderValue::from_str(value)
                .with_context(|| format!("header {name:?}: invalid value"))?;
            value.set_sensitive(true);
            map.insert(
                HeaderName::from_bytes(name.as_bytes())
                    .with_context(|| format!("header {name:?}: invalid name"))?,
                value,
            );
        }
        Ok(map)
    }
}
