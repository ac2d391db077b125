//! Basic-auth parsing and key verification against the inventory's key table. Called by the
//! request pipeline (`server.rs`) before rate limiting; a success stamps the key's `usedAt`.
//!
//! 401 cases: no or malformed `Authorization`, unknown key id, wrong secret, a key switched off
//! with `Emulator::set_credentials_valid`, a disabled key, an expired key. Keys created with
//! `hashData` are checked as the spec describes: base64(SHA-256(value)).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Duration, DurationRound, Utc};
use hyper::header::HeaderValue;
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;

use super::model::{Credential, Key, State};

/// The authenticated key, copied out of the inventory for the rest of the request.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub(crate) key_id: String,
    pub(crate) name: String,
    pub(crate) permissions: Option<BTreeSet<String>>,
    pub(crate) orgs: Vec<String>,
}

impl Caller {
    pub(crate) fn has(&self, permission: &str) -> bool {
        self.permissions
            .as_ref()
            .is_none_or(|p| p.contains(permission))
    }

    pub(crate) fn in_org(&self, org: &str) -> bool {
        self.orgs.iter().any(|o| o == org)
    }
}

/// `(key id, key secret)` from `Authorization: Basic base64(id:secret)`.
pub(crate) fn parse_basic(header: Option<&HeaderValue>) -> Option<(String, String)> {
    let value = header?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

/// base64(SHA-256(s)), the hash form of `ApiKeyHashData`.
pub(crate) fn hash(s: &str) -> String {
    STANDARD.encode(Sha256::digest(s.as_bytes()))
}

fn matches(key: &Key, id: &str, secret: &str) -> Option<bool> {
    match &key.credential {
        Credential::Secret(s) if key.id == id => Some(s == secret),
        Credential::Hashed {
            key_id_hash,
            secret_hash,
            ..
        } if *key_id_hash == hash(id) => Some(*secret_hash == hash(secret)),
        _ => None,
    }
}

/// Verifies the credentials and stamps `usedAt` (minute precision).
///
/// # Errors
/// The 401 message (without the `UNAUTHORIZED: ` prefix).
pub(crate) fn authenticate(
    state: &mut State,
    id: &str,
    secret: &str,
    now: DateTime<Utc>,
) -> Result<Caller, String> {
    let key = state
        .keys
        .iter_mut()
        .find(|k| matches(k, id, secret).is_some())
        .ok_or_else(|| "Invalid API key or secret".to_owned())?;
    if matches(key, id, secret) != Some(true) || !key.credentials_valid {
        return Err("Invalid API key or secret".into());
    }
    if !key.enabled {
        return Err("API key is disabled".into());
    }
    if key.expire_at.is_some_and(|e| e <= now) {
        return Err("API key has expired".into());
    }
    key.used_at = Some(now.duration_trunc(Duration::minutes(1)).unwrap_or(now));
    Ok(Caller {
        key_id: key.id.clone(),
        name: key.name.clone(),
        permissions: key.permissions.clone(),
        orgs: key.orgs.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_basic_credentials() {
        let h = HeaderValue::from_str(&format!("Basic {}", STANDARD.encode("id:se:cret"))).unwrap();
        assert_eq!(parse_basic(Some(&h)), Some(("id".into(), "se:cret".into())));
        let bearer = HeaderValue::from_static("Bearer abc");
        assert_eq!(parse_basic(Some(&bearer)), None);
        assert_eq!(parse_basic(None), None);
    }
}
