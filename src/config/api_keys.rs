//! `[[api.keys]]`: several API keys in one process (issue 16), each with its own organizations
//! and rate-limit budget, and `KeySpec`, what one key resolves to (name, credentials,
//! organizations, budget) whichever form configured it: the list, or the single-key `[api]`
//! form, which is the one-element list.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::api::{ApiConfig, Credentials};
use crate::values::{ConfigError, KeyPath, read_secret_file};

/// One `[[api.keys]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// Name in logs, metric labels (`key`) and `/status`; default `key-` + the last 4
    /// characters of `key_id` (the console's "key suffix"). Never the secret.
    #[serde(default)]
    pub name: Option<String>,
    /// The API key id (HTTP Basic user name).
    #[serde(default = "default_key_id")]
    pub key_id: String,
    /// The key secret inline; or `key_secret_file`, or `key_secret_env`: exactly one.
    #[serde(default)]
    pub key_secret: Option<SecretString>,
    /// File holding the key secret (trailing newline ignored).
    #[serde(default)]
    pub key_secret_file: Option<PathBuf>,
    /// Name of an environment variable holding the key secret.
    #[serde(default)]
    pub key_secret_env: Option<String>,
    /// Organizations to export through this key; empty = every organization it can see.
    #[serde(default)]
    pub organizations: Vec<String>,
    /// This key's own budget; default `api.rate_limit_requests`.
    #[serde(default)]
    pub rate_limit_requests: Option<u32>,
    /// This key's own window; default `api.rate_limit_window`.
    #[serde(default, with = "humantime_serde")]
    pub rate_limit_window: Option<Duration>,
}

fn default_key_id() -> String {
    String::new()
}

/// One API key, resolved: what a `Client` is built from.
#[derive(Debug)]
pub struct KeySpec {
    /// `api.keys[i]`, or `api` for the single-key form (for messages).
    pub at: String,
    pub name: String,
    pub credentials: Credentials,
    /// Empty: every organization the key can see.
    pub organizations: Vec<String>,
    pub rate_limit_requests: u32,
    pub rate_limit_window: Duration,
}

/// `key-` + the last 4 characters of the key id.
pub fn default_name(key_id: &str) -> String {
    let chars: Vec<char> = key_id.chars().collect();
    let tail: String = chars[chars.len().saturating_sub(4)..].iter().collect();
    format!("key-{tail}")
}

impl ApiKeyConfig {
    fn path(i: usize) -> KeyPath {
        KeyPath::section(&format!("api.keys[{i}]"))
    }

    /// The configured or derived name.
    pub fn name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| default_name(&self.key_id))
    }
}

impl ApiConfig {
    /// The list form's checks: not mixed with the single-key form, a key id and exactly one
    /// secret form per key, non-zero budgets, unique names and key ids.
    pub(super) fn validate_keys(&self) -> Result<(), ConfigError> {
        if self.keys.is_empty() {
            return Ok(());
        }
        let single: Vec<&str> = [
            ("api.key_id", self.key_id.is_some()),
            ("api.key_secret", self.key_secret.is_some()),
            ("api.key_secret_file", self.key_secret_file.is_some()),
            ("api.organizations", !self.organizations.is_empty()),
        ]
        .into_iter()
        .filter_map(|(k, set)| set.then_some(k))
        .collect();
        if !single.is_empty() {
            return Err(ConfigError(format!(
                "config keys `api.keys` and `{}` are both set: use either the [[api.keys]] list or the single-key [api] form, not both",
                single.join("`, `")
            )));
        }
        let (mut names, mut ids) = (HashSet::new(), HashSet::new());
        for (i, k) in self.keys.iter().enumerate() {
            let at = ApiKeyConfig::path(i);
            if k.key_id.trim().is_empty() {
                return Err(at.missing("key_id", "each [[api.keys]] needs its key id"));
            }
            let secrets = [
                k.key_secret.is_some(),
                k.key_secret_file.is_some(),
                k.key_secret_env.is_some(),
            ];
            match secrets.iter().filter(|s| **s).count() {
                0 => {
                    return Err(at.missing(
                        "key_secret",
                        "set one of key_secret, key_secret_file, key_secret_env",
                    ));
                }
                1 => {}
                _ => {
                    return Err(at.table_err(
                        "more than one of key_secret, key_secret_file, key_secret_env is set: keep one",
                    ));
                }
            }
            let name = k.name();
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                return Err(at.err(
                    "name",
                    format!("{name:?}"),
                    "must be non-empty letters, digits, '-', '_' or '.' (it is a metric label)",
                ));
            }
            if !names.insert(name.clone()) {
                return Err(at.err(
                    "name",
                    format!("{name:?}"),
                    "duplicate key name (set a distinct `name` on each key)",
                ));
            }
            if !ids.insert(k.key_id.as_str()) {
                return Err(at.err(
                    "key_id",
                    format!("{:?}", k.key_id),
                    "the same key is listed twice",
                ));
            }
            if k.rate_limit_requests == Some(0) {
                return Err(at.err("rate_limit_requests", 0, "must be at least 1"));
            }
            if let Some(w) = k.rate_limit_window {
                at.nonzero("rate_limit_window", w)?;
            }
        }
        Ok(())
    }

    /// Every configured key, resolved (secrets read now): the `[[api.keys]]` list in config
    /// order, or the single-key `[api]` form as a one-element list.
    pub fn key_specs(&self) -> Result<Vec<KeySpec>, ConfigError> {
        if self.keys.is_empty() {
            let credentials = self.credentials()?;
            return Ok(vec![KeySpec {
                at: "api".into(),
                name: default_name(&credentials.key_id),
                credentials,
                organizations: self.organizations.clone(),
                rate_limit_requests: self.rate_limit_requests,
                rate_limit_window: self.rate_limit_window,
            }]);
        }
        self.keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let at = format!("api.keys[{i}]");
                let key_secret = if let Some(s) = &k.key_secret {
                    s.clone()
                } else if let Some(path) = &k.key_secret_file {
                    read_secret_file(path, &format!("{at}.key_secret_file"))?
                } else {
                    let var = k.key_secret_env.as_deref().unwrap_or_default();
                    let value = std::env::var(var).map_err(|_| {
                        ConfigError::key(
                            &format!("{at}.key_secret_env"),
                            format!("{var:?}"),
                            "the environment variable is not set",
                        )
                    })?;
                    SecretString::from(value)
                };
                if key_secret.expose_secret().is_empty() {
                    return Err(ConfigError(format!(
                        "the API key secret of `{at}` ({:?}) is empty",
                        k.name()
                    )));
                }
                Ok(KeySpec {
                    name: k.name(),
                    credentials: Credentials {
                        key_id: k.key_id.clone(),
                        key_secret,
                    },
                    organizations: k.organizations.clone(),
                    rate_limit_requests: k.rate_limit_requests.unwrap_or(self.rate_limit_requests),
                    rate_limit_window: k.rate_limit_window.unwrap_or(self.rate_limit_window),
                    at,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn cfg(api: &str) -> Result<Config, ConfigError> {
        Config::from_toml(
            &format!("{api}\n[[sinks]]\nname = \"out\"\ntype = \"stdout\"\n"),
            Some(Default::default()),
        )
    }

    #[test]
    fn the_list_resolves_with_per_key_budgets_and_derived_names() {
        let c = cfg(r#"
[api]
rate_limit_requests = 7
[[api.keys]]
key_id = "AAAA1234"
key_secret = "s1"
organizations = ["o1"]
[[api.keys]]
name = "staging"
key_id = "BBBB5678"
key_secret = "s2"
rate_limit_requests = 3
rate_limit_window = "5s"
"#)
        .unwrap();
        let specs = c.api.key_specs().unwrap();
        assert_eq!(specs[0].name, "key-1234");
        assert_eq!(specs[0].organizations, ["o1"]);
        assert_eq!(
            (specs[0].rate_limit_requests, specs[0].rate_limit_window),
            (7, Duration::from_secs(10))
        );
        assert_eq!(specs[1].name, "staging");
        assert_eq!(
            (specs[1].rate_limit_requests, specs[1].rate_limit_window),
            (3, Duration::from_secs(5))
        );
        assert!(!format!("{specs:?}").contains("s2"), "no secret in Debug");
    }

    #[test]
    fn mistakes_are_named() {
        let both = cfg("[api]\nkey_id = \"x\"\n[[api.keys]]\nkey_id = \"a\"\nkey_secret = \"s\"")
            .unwrap_err()
            .0;
        assert!(
            both.contains("`api.keys`") && both.contains("`api.key_id`"),
            "{both}"
        );
        let dup = cfg("[[api.keys]]\nkey_id = \"a1234\"\nkey_secret = \"s\"\n[[api.keys]]\nkey_id = \"b1234\"\nkey_secret = \"s\"")
            .unwrap_err()
            .0;
        assert!(
            dup.contains("api.keys[1].name") && dup.contains("key-1234"),
            "{dup}"
        );
        let two = cfg("[[api.keys]]\nkey_id = \"a\"\nkey_secret = \"s\"\nkey_secret_env = \"E\"")
            .unwrap_err()
            .0;
        assert!(
            two.contains("api.keys[0]") && two.contains("keep one"),
            "{two}"
        );
        let none = cfg("[[api.keys]]\nkey_id = \"a\"").unwrap_err().0;
        assert!(none.contains("api.keys[0].key_secret"), "{none}");
        let env =
            cfg("[[api.keys]]\nkey_id = \"a\"\nkey_secret_env = \"CH_AUDIT_TEST_UNSET_VAR_16\"")
                .unwrap()
                .api
                .key_specs()
                .unwrap_err()
                .0;
        assert!(
            env.contains("api.keys[0].key_secret_env")
                && env.contains("CH_AUDIT_TEST_UNSET_VAR_16"),
            "{env}"
        );
    }
}
