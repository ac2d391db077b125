//! Leaf types for configuration values, shared by `config` and every sink config without either
//! importing the other: `ConfigError` (exit 2, names the key and value), `KeyPath` (where a key
//! lives, for those messages), secret files, and sizes (`"64MiB"`). Depends on nothing in the
//! crate.

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

/// A configuration or usage error: the process exits with code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl ConfigError {
    /// "config key `key` = value: why".
    pub fn key(key: &str, value: impl Display, why: impl Display) -> Self {
        ConfigError(format!("config key `{key}` = {value}: {why}"))
    }
}

/// Where a group of keys lives in the config (`api`, `activities`, `sinks[2]` of sink "siem"),
/// so that every message about one of them says the same thing the same way.
#[derive(Debug, Clone)]
pub struct KeyPath {
    /// `api`, `sinks[2]`.
    table: String,
    /// The sink's name, shown after the key.
    sink: Option<String>,
}

impl KeyPath {
    /// A top-level section such as `api`.
    pub fn section(name: &str) -> Self {
        KeyPath {
            table: name.to_string(),
            sink: None,
        }
    }

    /// The `index`th `[[sinks]]` table, named `name`.
    pub fn sink(index: usize, name: &str) -> Self {
        KeyPath {
            table: format!("sinks[{index}]"),
            sink: Some(name.to_string()),
        }
    }

    /// The full name of `key` (`sinks[2].url`).
    pub fn name(&self, key: &str) -> String {
        format!("{}.{key}", self.table)
    }

    fn whose(&self) -> String {
        match &self.sink {
            Some(name) => format!(" (sink {name:?})"),
            None => String::new(),
        }
    }

    /// "config key `sinks[2].url` = "…" (sink "siem"): why".
    pub fn err(&self, key: &str, value: impl Display, why: impl Display) -> ConfigError {
        ConfigError(format!(
            "config key `{}` = {value}{}: {why}",
            self.name(key),
            self.whose()
        ))
    }

    /// "config key `sinks[2].token` is missing (sink "siem"): why".
    pub fn missing(&self, key: &str, why: impl Display) -> ConfigError {
        ConfigError(format!(
            "config key `{}` is missing{}: {why}",
            self.name(key),
            self.whose()
        ))
    }

    /// A message about the table as a whole.
    pub fn table_err(&self, why: impl Display) -> ConfigError {
        ConfigError(format!(
            "config table `{}`{}: {why}",
            self.table,
            self.whose()
        ))
    }

    /// A secret given inline (`key`) or as a file (`key_file`): both set is an error; neither set
    /// is one when `required` (the message says `hint`).
    pub fn one_secret<A, B>(
        &self,
        key: &str,
        inline: &Option<A>,
        file: &Option<B>,
        required: Option<&str>,
    ) -> Result<(), ConfigError> {
        match (inline, file) {
            (Some(_), Some(_)) => Err(ConfigError(format!(
                "config keys `{}` and `{key}_file` are both set{}: keep one",
                self.name(key),
                self.whose()
            ))),
            (None, None) => match required {
                Some(hint) => Err(self.missing(key, hint)),
                None => Ok(()),
            },
            _ => Ok(()),
        }
    }

    /// A duration that must not be zero.
    pub fn nonzero(&self, key: &str, d: Duration) -> Result<(), ConfigError> {
        if d.is_zero() {
            return Err(self.err(key, "\"0s\"", "must be greater than zero"));
        }
        Ok(())
    }
}

/// Reads a secret from a file, trimming one trailing newline; errors name the key and path.
pub fn read_secret_file(path: &Path, key: &str) -> Result<SecretString, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::key(key, path.display(), format!("cannot read: {e}")))?;
    Ok(SecretString::from(
        text.trim_end_matches(['\r', '\n']).to_string(),
    ))
}

/// The secret given inline or in a file (read now; `file_key` names it in errors); `None` when
/// neither is set. `KeyPath::one_secret` has already refused both.
pub fn resolve_secret(
    inline: &Option<SecretString>,
    file: &Option<PathBuf>,
    file_key: &str,
) -> Result<Option<SecretString>, ConfigError> {
    match (inline, file) {
        (Some(secret), _) => Ok(Some(secret.clone())),
        (None, Some(path)) => read_secret_file(path, file_key).map(Some),
        (None, None) => Ok(None),
    }
}

/// Parses a size such as `100MiB`, `64KiB`, `1GB`, `512` (bytes).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let num: f64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a size such as 100MiB"))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" | "kB" => 1000,
        "KiB" => 1 << 10,
        "MB" => 1000 * 1000,
        "MiB" => 1 << 20,
        "GB" => 1000 * 1000 * 1000,
        "GiB" => 1 << 30,
        other => {
            return Err(format!(
                "{text:?}: unknown size unit {other:?} (use B, KiB, MiB, GiB, KB, MB, GB)"
            ));
        }
    };
    let bytes = num * mult as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(format!("{text:?} is out of range"));
    }
    Ok(bytes as u64)
}

/// Deserializes a size (`"100MiB"` or a plain number of bytes).
pub fn de_size<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        N(u64),
        S(String),
    }
    match Size::deserialize(d)? {
        Size::N(n) => Ok(n),
        Size::S(s) => parse_size(&s).map_err(serde::de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_and_decimal_units() {
        assert_eq!(parse_size("100MiB").unwrap(), 100 * 1024 * 1024);
        assert_eq!(parse_size("1KB").unwrap(), 1000);
        assert_eq!(parse_size("512").unwrap(), 512);
        assert!(
            parse_size("12 parsecs")
                .unwrap_err()
                .contains("unknown size unit")
        );
        assert!(parse_size("MiB").is_err());
    }

    #[test]
    fn key_paths_name_the_key_the_sink_and_the_fix() {
        let at = KeyPath::sink(2, "siem");
        assert_eq!(
            at.err("url", "\"x\"", "bad").0,
            "config key `sinks[2].url` = \"x\" (sink \"siem\"): bad"
        );
        let both = at
            .one_secret("token", &Some(1), &Some(2), None)
            .unwrap_err();
        assert_eq!(
            both.0,
            "config keys `sinks[2].token` and `token_file` are both set (sink \"siem\"): keep one"
        );
        let none = at
            .one_secret::<u8, u8>("token", &None, &None, Some("set token or token_file"))
            .unwrap_err();
        assert!(none.0.contains("`sinks[2].token` is missing"), "{}", none.0);
        assert!(at.one_secret::<u8, u8>("token", &None, &None, None).is_ok());
        assert_eq!(
            KeyPath::section("api").err("base_url", 1, "no").0,
            "config key `api.base_url` = 1: no"
        );
    }
}
