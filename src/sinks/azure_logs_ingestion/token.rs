//! Microsoft Entra access tokens for the Logs Ingestion API: the OAuth2 client-credentials grant
//! (`POST {authority_host}/{tenant_id}/oauth2/v2.0/token`, form `client_id`, `client_secret`,
//! `grant_type=client_credentials`, `scope`) or a managed identity (`GET` the Azure Instance
//! Metadata Service with `Metadata: true`). A token is cached with its `expires_in` and fetched
//! anew ahead of expiry — 5 minutes before, or at 90 % of a shorter lifetime — or at once when
//! the ingestion endpoint refuses it (`invalidate`). Refusals name Entra's AADSTS code with a fix;
//! neither the secret nor a token ever reaches a message.

use std::time::{Duration, Instant};

use reqwest::Url;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::http::{self, Answer, StatusClass};
use crate::sinks::SinkError;

/// Refresh this long before expiry at most (Microsoft's libraries use 5 minutes).
const REFRESH_AHEAD: Duration = Duration::from_secs(300);

/// How tokens are obtained.
pub enum Grant {
    ClientSecret {
        /// `{authority_host}/{tenant_id}/oauth2/v2.0/token`.
        url: Url,
        client_id: String,
        secret: SecretString,
        scope: String,
    },
    /// The IMDS URL with its query (`api-version`, `resource`, `client_id`).
    ManagedIdentity { url: Url },
}

/// A cached token: the `Authorization` value and when to fetch the next one.
struct Cached {
    header: HeaderValue,
    refresh_at: Instant,
}

pub struct Tokens {
    client: reqwest::Client,
    grant: Grant,
    /// The token URL for messages (no query).
    shown: String,
    cached: Option<Cached>,
    /// Tokens fetched so far (for the log line of a refresh).
    fetched: u64,
}

/// A token endpoint's answer: success fields, or Entra's error fields.
#[derive(Debug, Default, Deserialize)]
struct TokenReply {
    #[serde(default)]
    access_token: Option<SecretString>,
    #[serde(default)]
    token_type: Option<String>,
    /// A number from Entra, a string from IMDS.
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
    #[serde(default)]
    error_codes: Vec<u64>,
}

impl Tokens {
    pub fn new(client: reqwest::Client, grant: Grant) -> Tokens {
        let shown = match &grant {
            Grant::ClientSecret { url, .. } | Grant::ManagedIdentity { url } => {
                http::url::redact_url(url.as_str())
            }
        };
        Tokens {
            client,
            grant,
            shown,
            cached: None,
            fetched: 0,
        }
    }

    /// The `Authorization: Bearer …` value, from the cache while fresh; `true` when it was just
    /// fetched (a refusal of a fresh token is not worth a second try).
    pub async fn bearer(&mut self) -> Result<(HeaderValue, bool), SinkError> {
        if let Some(c) = &self.cached
            && Instant::now() < c.refresh_at
        {
            return Ok((c.header.clone(), false));
        }
        let (header, lifetime) = self.fetch().await?;
        let ahead = REFRESH_AHEAD.min(lifetime / 10);
        self.cached = Some(Cached {
            header: header.clone(),
            refresh_at: Instant::now() + lifetime.saturating_sub(ahead),
        });
        self.fetched += 1;
        if self.fetched > 1 {
            tracing::debug!(
                token_url = %self.shown,
                lifetime_s = lifetime.as_secs(),
                "fetched a new Microsoft Entra access token"
            );
        }
        Ok((header, true))
    }

    /// Forgets the cached token (the ingestion endpoint refused it).
    pub fn invalidate(&mut self) {
        self.cached = None;
    }

    async fn fetch(&self) -> Result<(HeaderValue, Duration), SinkError> {
        let target = format!("Microsoft Entra token endpoint {}", self.shown);
        let answer = match &self.grant {
            Grant::ClientSecret {
                url,
                client_id,
                secret,
                scope,
            } => {
                let mut form = Url::parse("http://form.invalid/").expect("a fixed URL parses");
                form.query_pairs_mut()
                    .append_pair("client_id", client_id)
                    .append_pair("client_secret", secret.expose_secret())
                    .append_pair("grant_type", "client_credentials")
                    .append_pair("scope", scope);
                let body = form.query().unwrap_or_default().as_bytes().to_vec();
                let mut headers = HeaderMap::new();
                headers.insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/x-www-form-urlencoded"),
                );
                http::post(&self.client, url.clone(), headers, body, None, &target).await?
            }
            Grant::ManagedIdentity { url } => {
                let resp = self
                    .client
                    .get(url.clone())
                    .header("Metadata", "true")
                    .send()
                    .await
                    .map_err(|e| {
                        SinkError::transient(format!(
                            "managed identity: {target}: {} (is this running on an Azure VM \
                             with a managed identity?)",
                            http::describe(&e)
                        ))
                    })?;
                Answer::read(resp).await
            }
        };
        let reply: TokenReply = serde_json::from_str(&answer.text).unwrap_or_default();
        if answer.class() != StatusClass::Success {
            return Err(self.refused(&answer, &reply, &target));
        }
        let token = reply.access_token.as_ref().ok_or_else(|| {
            SinkError::transient(format!(
                "{target} answered {} without access_token",
                answer.status
            ))
        })?;
        if let Some(kind) = &reply.token_type
            && !kind.eq_ignore_ascii_case("bearer")
        {
            return Err(SinkError::Unauthorized(format!(
                "{target} issued a {kind:?} token; the Logs Ingestion API takes Bearer tokens"
            )));
        }
        let mut header = HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
            .map_err(|_| {
                SinkError::transient(format!("{target}: the token is not a header value"))
            })?;
        header.set_sensitive(true);
        let secs = match &reply.expires_in {
            Some(serde_json::Value::Number(n)) => n.as_u64(),
            Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        }
        .unwrap_or(300);
        Ok((header, Duration::from_secs(secs.max(1))))
    }

    /// The error for a failed token request: Entra's refusals (400/401 with an `error`) are
    /// `Unauthorized` naming the AADSTS code and its fix; 429/5xx and IMDS's 404/410 retry.
    fn refused(&self, answer: &Answer, reply: &TokenReply, target: &str) -> SinkError {
        let description = reply
            .error_description
            .as_deref()
            .map(|d| http::excerpt(d.lines().next().unwrap_or(d), 300))
            .unwrap_or_else(|| http::excerpt(&answer.text, 200));
        let code = reply
            .error_codes
            .first()
            .copied()
            .or_else(|| aadsts(&description));
        let mut message = format!(
            "{target} answered {} ({}: {description})",
            answer.status,
            reply.error.as_deref().unwrap_or("error")
        );
        if let Some(code) = code {
            message.push_str(&format!("; AADSTS{code}: {}", hint(code)));
        }
        let imds = matches!(self.grant, Grant::ManagedIdentity { .. });
        match answer.status.as_u16() {
            // IMDS: the identity is still being set up; retry.
            404 | 410 if imds => SinkError::Transient {
                message,
                retry_after: answer.retry_after,
            },
            400 | 401 | 403 if imds => SinkError::Unauthorized(format!(
                "{message}; check that the VM has a managed identity (and managed_identity_client_id)"
            )),
            400 | 401 | 403 => SinkError::Unauthorized(message),
            _ => http::sink_error(
                match answer.class() {
                    StatusClass::Batch | StatusClass::Endpoint => StatusClass::Unauthorized,
                    other => other,
                },
                answer,
                message,
            ),
        }
    }
}

/// The number of the first `AADSTS<digits>` in `text`.
fn aadsts(text: &str) -> Option<u64> {
    let at = text.find("AADSTS")? + 6;
    let digits: String = text[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// What to fix for the AADSTS codes a client-credentials grant meets.
pub fn hint(code: u64) -> &'static str {
    match code {
        7000215 => {
            "invalid client secret: set client_secret to the secret's Value (not its Secret ID) \
             from the app registration's Certificates & secrets"
        }
        7000222 => "the client secret has expired: create a new one and update client_secret",
        700016 => {
            "application not found in the tenant: check client_id (Application (client) ID) and \
             tenant_id, and that the app is registered in that tenant"
        }
        90002 | 900023 | 90013 => {
            "tenant not found: check tenant_id (Directory (tenant) ID) and, for sovereign clouds, \
             authority_host"
        }
        7000112 => "the application is disabled in the tenant: enable it",
        500011 => {
            "the resource of the scope is not in the tenant: check scope (default \
             https://monitor.azure.com//.default)"
        }
        70011 => "invalid scope: use https://monitor.azure.com//.default",
        53003 => "blocked by a Conditional Access policy for this service principal",
        _ => "see https://login.microsoftonline.com/error?code=<number>",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aadsts_codes_are_read_from_descriptions() {
        assert_eq!(
            aadsts("AADSTS7000215: Invalid client secret provided."),
            Some(7000215)
        );
        assert_eq!(aadsts("x AADSTS90002: Tenant 'y' not found"), Some(90002));
        assert_eq!(aadsts("nothing"), None);
        assert_eq!(aadsts("AADSTS"), None);
        assert!(hint(700016).contains("client_id"));
    }
}
