//! `kafka` sink: produces each event to `topic` with key = `event_id` (so log compaction and
//! consumers can deduplicate redeliveries), value = the event in the sink's format, headers
//! `kind` and `org_id`. Client: rskafka (pure Rust, no librdkafka build; docs/siem-recipes.md
//! says why), which always produces with `acks = -1` (all in-sync replicas).
//!
//! Partitioning follows the Java client's default for keyed records —
//! `murmur2(key) & 0x7fffffff % partitions` — so an event id always lands in the same
//! partition as it would from any other Kafka producer. A batch is grouped by partition and the
//! partitions are produced concurrently; `deliver` returns only when every partition's broker
//! acknowledged, so dispatch commits the sink position only after the acks. After a failure the
//! whole batch is produced again (rskafka has no idempotent producer: a retry can duplicate —
//! bounded by one batch, with the key to deduplicate on).
//!
//! Errors: SASL authentication or topic/cluster authorization failures are
//! `SinkError::Unauthorized`; anything else (brokers down, leader moves, timeouts, a topic that
//! does not exist yet) is transient, and the client is rebuilt on the next attempt. Settings
//! and their checks are in `config.rs`.

mod config;

pub use self::config::{Compression, KafkaConfig};

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rskafka::client::partition::{Compression as KafkaCompression, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder, Credentials, SaslConfig};
use rskafka::record::Record;
use secrecy::{ExposeSecret, SecretString};

use super::{Sink, SinkError};
use crate::event::Event;
use crate::format::Format;
use crate::values::resolve_secret;

pub struct KafkaSink {
    name: String,
    format: Format,
    brokers: Vec<String>,
    topic: String,
    compression: KafkaCompression,
    sasl: Option<SaslConfig>,
    tls: Option<Arc<rustls::ClientConfig>>,
    timeout: Duration,
    max_request_bytes: usize,
    /// Built on first use and after failures; with the topic's partition clients.
    conn: Option<Connection>,
}

struct Connection {
    client: Client,
    partitions: Vec<rskafka::client::partition::PartitionClient>,
}

impl KafkaSink {
    /// Reads secrets and TLS files now (a bad path fails at startup); connects on first use.
    pub fn new(cfg: &KafkaConfig, name: &str, format: Format) -> anyhow::Result<KafkaSink> {
        let sasl = match &cfg.sasl_mechanism {
            None => None,
            Some(m) => {
                let password = resolve_secret(
                    &cfg.sasl_password,
                    &cfg.sasl_password_file,
                    &format!("sinks.{name}.sasl_password_file"),
                )?
                .unwrap_or_else(|| SecretString::from(""));
                let creds = Credentials::new(
                    cfg.sasl_username.clone().unwrap_or_default(),
                    password.expose_secret().to_string(),
                );
                Some(match m.as_str() {
                    "PLAIN" => SaslConfig::Plain(creds),
                    "SCRAM-SHA-256" => SaslConfig::ScramSha256(creds),
                    _ => SaslConfig::ScramSha512(creds),
                })
            }
        };
        let tls = if cfg.tls || cfg.ca_file.is_some() {
            Some(super::tls::client_config(cfg.ca_file.as_deref())?)
        } else {
            None
        };
        Ok(KafkaSink {
            name: name.to_string(),
            format,
            brokers: cfg.brokers.clone(),
            topic: cfg.topic.clone(),
            compression: match cfg.compression {
                Compression::None => KafkaCompression::NoCompression,
                Compression::Gzip => KafkaCompression::Gzip,
                Compression::Snappy => KafkaCompression::Snappy,
                Compression::Lz4 => KafkaCompression::Lz4,
                Compression::Zstd => KafkaCompression::Zstd,
            },
            sasl,
            tls,
            timeout: cfg.timeout,
            max_request_bytes: usize::try_from(cfg.max_request_bytes).unwrap_or(usize::MAX),
            conn: None,
        })
    }

    async fn connect(&self) -> Result<Connection, rskafka::client::error::Error> {
        let mut builder = ClientBuilder::new(self.brokers.clone())
            .client_id(crate::http::USER_AGENT)
            .backoff_config(rskafka::BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(2),
                base: 2.0,
                // rskafka retries internally — refused SASL credentials included — until this
                // deadline: keep it well inside one delivery attempt, so its last error is what
                // we report (and `once` learns of refused credentials in seconds).
                deadline: Some((self.timeout / 3).min(Duration::from_secs(5))),
            });
        if let Some(sasl) = &self.sasl {
            builder = builder.sasl_config(sasl.clone());
        }
        if let Some(tls) = &self.tls {
            builder = builder.tls_config(tls.clone());
        }
        let client = builder.build().await?;
        let topics = client.list_topics().await?;
        let ids: Vec<i32> = topics
            .into_iter()
            .find(|t| t.name == self.topic)
            .map(|t| t.partitions.into_iter().collect())
            .unwrap_or_default();
        if ids.is_empty() {
            return Err(rskafka::client::error::Error::InvalidResponse(format!(
                "topic {:?} does not exist (create it, or let the brokers auto-create topics)",
                self.topic
            )));
        }
        let mut partitions = Vec::with_capacity(ids.len());
        // Partition ids are 0..n; the default partitioner indexes into that range.
        for id in 0..ids.len() as i32 {
            partitions.push(
                client
                    .partition_client(self.topic.clone(), id, UnknownTopicHandling::Retry)
                    .await?,
            );
        }
        Ok(Connection { client, partitions })
    }

    /// Groups the batch's records by partition, split by `max_request_bytes`.
    fn requests(&self, batch: &[Event], partitions: usize) -> Vec<(usize, Vec<Record>)> {
        let mut by_partition: BTreeMap<usize, Vec<Vec<Record>>> = BTreeMap::new();
        let mut sizes: BTreeMap<usize, usize> = BTreeMap::new();
        let now = chrono::Utc::now();
        for event in batch {
            let mut value = Vec::with_capacity(event.payload.len() + 256);
            self.format.encode(event, &mut value);
            let key = event.event_id.as_bytes().to_vec();
            let p = partition_for(&key, partitions);
            let size = key.len() + value.len() + 64;
            let chunks = by_partition.entry(p).or_default();
            let used = sizes.entry(p).or_default();
            if chunks.is_empty() || (*used + size > self.max_request_bytes && *used > 0) {
                chunks.push(Vec::new());
                *used = 0;
            }
            *used += size;
            let mut headers = BTreeMap::new();
            headers.insert("kind".to_string(), event.kind.as_str().as_bytes().to_vec());
            headers.insert("org_id".to_string(), event.org_id.as_bytes().to_vec());
            if let Some(chunk) = chunks.last_mut() {
                chunk.push(Record {
                    key: Some(key),
                    value: Some(value),
                    headers,
                    timestamp: now,
                });
            }
        }
        by_partition
            .into_iter()
            .flat_map(|(p, chunks)| chunks.into_iter().map(move |c| (p, c)))
            .collect()
    }

    async fn produce(&mut self, batch: &[Event]) -> Result<(), SinkError> {
        if self.conn.is_none() {
            let conn = self.connect().await.map_err(|e| self.classify(&e))?;
            self.conn = Some(conn);
        }
        let Some(conn) = &self.conn else {
            return Err(SinkError::transient("kafka: not connected"));
        };
        let requests = self.requests(batch, conn.partitions.len());
        let compression = self.compression;
        let sends = requests.into_iter().map(|(p, records)| {
            let client = &conn.partitions[p];
            async move { client.produce(records, compression).await }
        });
        for result in futures_util::future::join_all(sends).await {
            result.map_err(|e| self.classify(&e))?;
        }
        let _ = &conn.client;
        Ok(())
    }

    fn classify(&self, e: &rskafka::client::error::Error) -> SinkError {
        let text = e.to_string();
        let brokers = self.brokers.join(",");
        if is_auth_failure(&text) {
            SinkError::Unauthorized(format!(
                "kafka {brokers} topic {}: authentication or authorization failed: {text}",
                self.topic
            ))
        } else {
            SinkError::transient(format!("kafka {brokers} topic {}: {text}", self.topic))
        }
    }
}

/// rskafka's errors nest (connection → SASL → API error); their text names the failure.
fn is_auth_failure(text: &str) -> bool {
    [
        "Sasl",
        "SASL",
        "AuthorizationFailed",
        "AuthenticationFailed",
    ]
    .iter()
    .any(|w| text.contains(w))
}

#[async_trait]
impl Sink for KafkaSink {
    async fn deliver(&mut self, batch: &[Event]) -> Result<(), SinkError> {
        if batch.is_empty() {
            return Ok(());
        }
        let res = match tokio::time::timeout(self.timeout, self.produce(batch)).await {
            Ok(r) => r,
            Err(_) => Err(SinkError::transient(format!(
                "kafka {} topic {}: no acknowledgement within {:?}",
                self.brokers.join(","),
                self.topic,
                self.timeout
            ))),
        };
        if res.is_err() {
            // Rebuild connections and metadata next time (leaders may have moved).
            self.conn = None;
        }
        res
    }
}

impl std::fmt::Debug for KafkaSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the SASL config: rskafka's Credentials derive Debug with the password.
        f.debug_struct("KafkaSink")
            .field("name", &self.name)
            .field("brokers", &self.brokers)
            .field("topic", &self.topic)
            .field("sasl", &self.sasl.is_some())
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

/// Kafka's murmur2 (the Java client's `Utils.murmur2`, seed 0x9747b28c).
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h: u32 = SEED ^ (len as u32);
    let chunks = data.chunks_exact(4);
    let tail = chunks.remainder();
    for c in chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    match tail.len() {
        3 => {
            h ^= u32::from(tail[2]) << 16;
            h ^= u32::from(tail[1]) << 8;
            h ^= u32::from(tail[0]);
            h = h.wrapping_mul(M);
        }
        2 => {
            h ^= u32::from(tail[1]) << 8;
            h ^= u32::from(tail[0]);
            h = h.wrapping_mul(M);
        }
        1 => {
            h ^= u32::from(tail[0]);
            h = h.wrapping_mul(M);
        }
        _ => {}
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The Java client's partition for a keyed record: `toPositive(murmur2(key)) % partitions`.
pub fn partition_for(key: &[u8], partitions: usize) -> usize {
    let positive = (murmur2(key) & 0x7fff_ffff) as usize;
    positive % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values from the Java client's `UtilsTest.testMurmur2`.
    #[test]
    fn murmur2_matches_the_java_client() {
        let cases: &[(&str, i32)] = &[
            ("21", -973932308),
            ("foobar", -790332482),
            ("a-little-bit-long-string", -985981536),
            ("a-little-bit-longer-string", -1486304829),
            (
                "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58897971,
            ),
            ("abc", 479470107),
        ];
        for (input, want) in cases {
            assert_eq!(murmur2(input.as_bytes()), *want, "{input}");
        }
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let cfg: KafkaConfig = serde_json::from_value(serde_json::json!({
            "brokers": ["k:9092"], "topic": "t", "sasl_mechanism": "PLAIN",
            "sasl_username": "u", "sasl_password": "kafka-pw-123",
        }))
        .unwrap();
        assert!(!format!("{cfg:?}").contains("kafka-pw-123"));
    }
}
