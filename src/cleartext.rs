//! The cleartext-credentials rule (issue 18), checked in this one place for the API and every
//! sink: a credential (API secret, token, password, SASL secret, cloud key) is never sent over
//! a cleartext transport to a non-loopback host. Such a config is a `ConfigError` (exit 2,
//! naming the key, the address and the fix) unless its section sets `allow_insecure = true`;
//! then `Insecure` describes it, and the daemon WARNs at every start and sets
//! `clickhouse_audit_insecure_transport{component}`. Loopback (127.0.0.0/8, ::1, `localhost`)
//! is always allowed: tests and sidecars.

use std::net::IpAddr;

use crate::values::{ConfigError, KeyPath};

/// A cleartext transport that `allow_insecure = true` let through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Insecure {
    /// `api`, or `sink:<name>` (the gauge's label).
    pub component: String,
    /// What crosses the network unprotected and where to, for the WARN.
    pub detail: String,
}

/// One place a credential travels.
pub struct Transport<'a> {
    /// The key holding the address (`url`, `brokers`).
    pub key: &'a str,
    /// The address as it may be shown (redacted URL, `host:port`).
    pub shown: &'a str,
    /// Its host (no brackets for IPv6).
    pub host: &'a str,
    /// TLS protects it (https, `tls = true`).
    pub encrypted: bool,
    /// What would be sent ("the API key secret", "the HEC token"); `None`: no credential.
    pub credential: Option<&'a str>,
}

/// Applies the rule to `transport` of the section at `at` (`component` labels the gauge).
/// `Ok(None)`: nothing sent in clear text; `Ok(Some)`: allowed by `allow_insecure`.
pub fn check(
    at: &KeyPath,
    component: &str,
    transport: &Transport<'_>,
    allow_insecure: bool,
) -> Result<Option<Insecure>, ConfigError> {
    let Some(credential) = transport.credential else {
        return Ok(None);
    };
    if transport.encrypted || is_loopback(transport.host) {
        return Ok(None);
    }
    let detail = format!(
        "{credential} is sent in clear text to {} ({})",
        transport.shown,
        at.name(transport.key)
    );
    if allow_insecure {
        return Ok(Some(Insecure {
            component: component.to_string(),
            detail,
        }));
    }
    Err(at.err(
        transport.key,
        format!("{:?}", transport.shown),
        format!(
            "{credential} would be sent in clear text to a non-loopback host: use TLS \
             (https:// or tls = true), or set `{}` = true to accept the risk",
            at.name("allow_insecure")
        ),
    ))
}

/// The rule for a credential sent to the http(s) URL of key `key` (an unparsable URL is left
/// to the key's own check).
pub fn check_url(
    at: &KeyPath,
    component: &str,
    key: &str,
    url: &str,
    credential: Option<&str>,
    allow_insecure: bool,
) -> Result<Option<Insecure>, ConfigError> {
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return Ok(None);
    };
    let shown = crate::http::url::redact_url(url);
    check(
        at,
        component,
        &Transport {
            key,
            shown: &shown,
            host: parsed.host_str().unwrap_or_default(),
            encrypted: parsed.scheme() == "https",
            credential,
        },
        allow_insecure,
    )
}

/// `localhost` (and `*.localhost`, RFC 6761), 127.0.0.0/8 and ::1 (also IPv4-mapped).
pub fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let lower = host.to_ascii_lowercase();
    if lower == "localhost" || lower.ends_with(".localhost") {
        return true;
    }
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => v4.is_loopback(),
        Ok(IpAddr::V6(v6)) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        Err(_) => false,
    }
}

/// The host of `host:port` (`[v6]:port`, or a bare host).
pub fn host_of(address: &str) -> &str {
    if let Some(rest) = address.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match address.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.chars().all(|c| c.is_ascii_digit()) => {
            host
        }
        _ => address,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transport<'a>(host: &'a str, encrypted: bool, credential: Option<&'a str>) -> Transport<'a> {
        Transport {
            key: "url",
            shown: host,
            host,
            encrypted,
            credential,
        }
    }

    #[test]
    fn loopback_hosts_are_recognised() {
        for host in [
            "localhost",
            "LOCALHOST",
            "a.localhost",
            "127.0.0.1",
            "127.8.9.10",
            "::1",
            "[::1]",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        for host in [
            "10.0.0.1",
            "localhost.invalid",
            "audit-proxy.corp.invalid",
            "::2",
            "0.0.0.0",
        ] {
            assert!(!is_loopback(host), "{host}");
        }
    }

    #[test]
    fn hosts_are_cut_from_addresses() {
        assert_eq!(host_of("kafka.invalid:9092"), "kafka.invalid");
        assert_eq!(host_of("[::1]:9092"), "::1");
        assert_eq!(host_of("kafka.invalid"), "kafka.invalid");
        assert_eq!(host_of("::1"), "::1");
    }

    #[test]
    fn only_a_credential_in_clear_text_to_a_remote_host_is_refused() {
        let at = KeyPath::sink(1, "siem");
        let secret = Some("the HEC token");
        assert_eq!(
            check(
                &at,
                "sink:siem",
                &transport("h.invalid", true, secret),
                false
            )
            .unwrap(),
            None
        );
        assert_eq!(
            check(
                &at,
                "sink:siem",
                &transport("127.0.0.1", false, secret),
                false
            )
            .unwrap(),
            None
        );
        assert_eq!(
            check(
                &at,
                "sink:siem",
                &transport("h.invalid", false, None),
                false
            )
            .unwrap(),
            None
        );
        let err = check(
            &at,
            "sink:siem",
            &transport("h.invalid", false, secret),
            false,
        )
        .unwrap_err()
        .0;
        assert!(
            err.starts_with("config key `sinks[1].url` = \"h.invalid\""),
            "{err}"
        );
        assert!(
            err.contains("the HEC token would be sent in clear text"),
            "{err}"
        );
        assert!(err.contains("`sinks[1].allow_insecure` = true"), "{err}");
        let allowed = check(
            &at,
            "sink:siem",
            &transport("h.invalid", false, secret),
            true,
        )
        .unwrap()
        .unwrap();
        assert_eq!(allowed.component, "sink:siem");
        assert!(allowed.detail.contains("h.invalid"), "{}", allowed.detail);
    }
}
