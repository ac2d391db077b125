//! Standard Webhooks 1.0 signing (https://www.standardwebhooks.com): the `webhook-id`,
//! `webhook-timestamp` and `webhook-signature` headers. The signature is
//! `v1,<base64(HMAC-SHA256(key, "<id>.<timestamp>.<body>"))>` where key is the base64-decoded
//! text after `whsec_`; during a rotation every configured secret signs and the signatures are
//! space-separated. `body` is the exact bytes sent — after gzip when compression is on.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::event::Event;

/// Decodes `whsec_<base64>` (the prefix is optional) into the HMAC key.
pub fn decode_secret(secret: &str) -> Result<Vec<u8>, String> {
    let text = secret.trim();
    let b64 = text.strip_prefix("whsec_").unwrap_or(text);
    let key = STANDARD.decode(b64).map_err(|_| {
        "not a Standard Webhooks secret: expected whsec_ followed by base64".to_string()
    })?;
    if key.is_empty() {
        return Err("the signing secret is empty".into());
    }
    Ok(key)
}

/// Signs requests with one or more secrets (keyed HMAC states, cloned per request).
#[derive(Clone)]
pub struct Signer {
    macs: Vec<Hmac<Sha256>>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({} secret(s))", self.macs.len())
    }
}

impl Signer {
    /// A signer for `secrets` (at least one).
    pub fn new(secrets: &[SecretString]) -> Result<Signer, String> {
        if secrets.is_empty() {
            return Err("no signing secret".into());
        }
        let macs = secrets
            .iter()
            .map(|s| {
                let key = decode_secret(s.expose_secret())?;
                Hmac::<Sha256>::new_from_slice(&key).map_err(|e| e.to_string())
            })
            .collect::<Result<_, String>>()?;
        Ok(Signer { macs })
    }

    /// The `webhook-signature` value for `body` sent with `id` at `timestamp`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let ts = timestamp.to_string();
        let mut header = String::with_capacity(self.macs.len() * 48);
        for (i, mac) in self.macs.iter().enumerate() {
            let mut mac = mac.clone();
            mac.update(id.as_bytes());
            mac.update(b".");
            mac.update(ts.as_bytes());
            mac.update(b".");
            mac.update(body);
            if i > 0 {
                header.push(' ');
            }
            header.push_str("v1,");
            STANDARD.encode_string(mac.finalize().into_bytes(), &mut header);
        }
        header
    }
}

/// The `webhook-id` of a POST: `msg_` + base64url(SHA-256 of the sink name and the event ids
/// it carries). The same events sent by the same sink get the same id on every retry, so
/// receivers can deduplicate; different sinks never share ids.
pub fn webhook_id(sink: &str, events: &[Event]) -> String {
    let mut h = Sha256::new();
    h.update(sink.as_bytes());
    for e in events {
        h.update(b"\n");
        h.update(e.event_id.as_bytes());
    }
    let mut id = String::from("msg_");
    URL_SAFE_NO_PAD.encode_string(h.finalize(), &mut id);
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks reference libraries (and their test suites).
    #[test]
    fn signs_like_the_reference_implementation() {
        let signer =
            Signer::new(&[SecretString::from("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]).unwrap();
        let sig = signer.sign(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn rotation_signs_with_every_secret() {
        let signer = Signer::new(&[
            SecretString::from("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            SecretString::from("whsec_c2Vjb25k"),
        ])
        .unwrap();
        let sig = signer.sign("msg_1", 1, b"{}");
        let parts: Vec<&str> = sig.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert!(parts.iter().all(|p| p.starts_with("v1,")));
        assert_ne!(parts[0], parts[1]);
    }

    #[test]
    fn secrets_must_be_base64() {
        assert!(decode_secret("whsec_not base64!").is_err());
        assert!(decode_secret("whsec_").is_err());
        assert_eq!(decode_secret("whsec_c2Vjb25k").unwrap(), b"second");
        assert_eq!(decode_secret("c2Vjb25k").unwrap(), b"second");
    }

    #[test]
    fn ids_depend_on_sink_and_events_only() {
        let ev = |id: &str| Event {
            seq: 1,
            event_id: id.into(),
            kind: crate::event::EventKind::Activity,
            org_id: "o".into(),
            occurred_at: String::new(),
            observed_at: String::new(),
            payload: "{}".into(),
        };
        let a = webhook_id("siem", &[ev("a"), ev("b")]);
        assert_eq!(a, webhook_id("siem", &[ev("a"), ev("b")]));
        assert_ne!(a, webhook_id("siem", &[ev("a")]));
        assert_ne!(a, webhook_id("other", &[ev("a"), ev("b")]));
        assert!(a.starts_with("msg_") && a.len() == 4 + 43, "{a}");
    }
}
