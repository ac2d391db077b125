//! A real Kafka-protocol broker for the kafka sink tests: `tansu broker` (crates.io `tansu`,
//! installed by `.ci/run` with `cargo install tansu --features dynostore`) with in-memory storage
//! on a loopback port picked at run time, optionally requiring SASL authentication. Topics are
//! created and read back with rskafka's own controller and partition clients. A broker can be
//! stopped and started again on the same port (in-memory storage starts empty: the tests
//! recreate the topic, as an operator would).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use rskafka::client::partition::{OffsetAt, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};
use tokio::process::{Child, Command};

use super::wait::wait_until;

pub struct Tansu {
    pub port: u16,
    authentication: bool,
    child: Option<Child>,
}

/// The tansu binary: `$TANSU`, else `tansu` in `$CARGO_HOME/bin` or `~/.cargo/bin`.
pub fn binary() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("TANSU") {
        return Some(PathBuf::from(p));
    }
    let home = std::env::var("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|_| std::env::var("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .ok()?;
    let p = home.join("bin/tansu");
    p.exists().then_some(p)
}

/// Whether tansu is installed (else the test skips or fails: `support::require`).
pub fn available() -> bool {
    super::require::installed(
        binary().is_some(),
        "tansu",
        "cargo install tansu --features dynostore",
    )
}

impl Tansu {
    pub async fn start(authentication: bool) -> Tansu {
        let mut t = Tansu {
            port: super::net::free_port(false),
            authentication,
            child: None,
        };
        t.spawn().await;
        t
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    async fn spawn(&mut self) {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let mut cmd = Command::new(binary().expect("tansu installed"));
        cmd.arg("broker")
            .arg("--listener-url")
            .arg(&url)
            .arg("--advertised-listener-url")
            .arg(&url)
            .arg("--storage-engine")
            .arg("memory://tansu/")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        if self.authentication {
            cmd.arg("--authentication");
        }
        self.child = Some(cmd.spawn().expect("starting tansu"));
        let port = self.port;
        wait_until("tansu listening", Duration::from_secs(20), async || {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
                .map(|_| ())
        })
        .await;
    }

    pub async fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill().await;
            let _ = c.wait().await;
        }
    }

    pub async fn restart(&mut self) {
        self.stop().await;
        self.spawn().await;
    }

    pub async fn client(&self) -> Client {
        ClientBuilder::new(vec![self.address()])
            .build()
            .await
            .expect("rskafka client to tansu")
    }

    /// Creates `topic` with `partitions` partitions.
    pub async fn create_topic(&self, topic: &str, partitions: i32) {
        let client = self.client().await;
        client
            .controller_client()
            .unwrap()
            .create_topic(topic, partitions, 1, 5_000)
            .await
            .unwrap_or_else(|e| panic!("creating topic {topic}: {e}"));
    }

    /// Every record of `topic` as (partition, key, value, headers).
    pub async fn consume(&self, topic: &str) -> Vec<Consumed> {
        let client = self.client().await;
        let topics = client.list_topics().await.unwrap();
        let partitions = topics
            .into_iter()
            .find(|t| t.name == topic)
            .map(|t| t.partitions)
            .unwrap_or_default();
        let mut out = Vec::new();
        for p in partitions {
            let pc = client
                .partition_client(topic, p, UnknownTopicHandling::Retry)
                .await
                .unwrap();
            let end = pc.get_offset(OffsetAt::Latest).await.unwrap();
            let mut offset = pc.get_offset(OffsetAt::Earliest).await.unwrap();
            while offset < end {
                let (records, _high) = pc.fetch_records(offset, 1..4_000_000, 1_000).await.unwrap();
                if records.is_empty() {
                    break;
                }
                for r in records {
                    offset = r.offset + 1;
                    out.push(Consumed {
                        partition: p,
                        key: String::from_utf8(r.record.key.unwrap_or_default()).unwrap(),
                        value: r.record.value.unwrap_or_default(),
                        headers: r.record.headers,
                    });
                }
            }
        }
        out
    }
}

#[derive(Debug, Clone)]
pub struct Consumed {
    pub partition: i32,
    pub key: String,
    pub value: Vec<u8>,
    pub headers: std::collections::BTreeMap<String, Vec<u8>>,
}
