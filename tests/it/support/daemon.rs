//! Drives the real binary as an operator would: `run` with a config file, JSON logs on stderr
//! (the bound `/metrics` address is read from the "serving" line, so `server.listen` can be
//! `127.0.0.1:0`), signals sent with `kill`, endpoints read over HTTP, `/metrics` parsed.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clickhouse_audit_exporter::emulator::EmulatorHandle;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

use super::config_doc;
use super::wait::{PATIENCE, eventually};

/// A config for the binary: JSON logs, `/metrics` on an ephemeral port, 1 s polls;
/// `api_extra`/`activities_extra` are key lines merged into those tables (overriding).
pub fn daemon_config(
    emu: &EmulatorHandle,
    dir: &Path,
    sinks: &str,
    api_extra: &str,
    activities_extra: &str,
) -> String {
    config_doc(emu, dir, sinks)
        .merge("[log]\nformat = \"json\"\n")
        .replace("server.listen", "127.0.0.1:0")
        .merge_at("api", api_extra)
        .merge_at("activities", activities_extra)
        .to_string()
}

/// The exporter binary with a clean environment (no inherited config, credentials or systemd).
pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_clickhouse-audit-exporter"));
    for var in [
        "CH_AUDIT_CONFIG",
        "CLICKHOUSE_CLOUD_API_KEY",
        "CLICKHOUSE_CLOUD_API_SECRET",
        "CREDENTIALS_DIRECTORY",
        "RUST_LOG",
        "NOTIFY_SOCKET",
        "WATCHDOG_USEC",
        "WATCHDOG_PID",
    ] {
        c.env_remove(var);
    }
    c.kill_on_drop(true);
    c
}

/// A running `clickhouse-audit-exporter run`.
pub struct Daemon {
    child: Child,
    pub pid: u32,
    pub addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
    /// Copies stderr into `stderr`; ends at EOF, once the process (and its children) exit.
    reader: JoinHandle<()>,
    http: reqwest::Client,
}

impl Daemon {
    /// Starts `run -c config` (the config must log JSON and listen on `127.0.0.1:0`) and waits
    /// until it serves.
    pub async fn start(config: &Path, envs: &[(&str, &str)]) -> Daemon {
        let mut cmd = bin();
        cmd.arg("-c")
            .arg(config)
            .arg("run")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("the binary starts");
        let pid = child.id().expect("running");
        let stderr = Arc::new(Mutex::new(String::new()));
        let (addr_tx, mut addr_rx) = tokio::sync::mpsc::unbounded_channel();
        let mut lines = BufReader::new(child.stderr.take().expect("piped")).lines();
        let sink = stderr.clone();
        let reader = tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                    && v["message"]
                        .as_str()
                        .is_some_and(|m| m.starts_with("serving /metrics"))
                    && let Some(addr) = v["addr"].as_str().and_then(|a| a.parse().ok())
                {
                    let _ = addr_tx.send(addr);
                }
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let addr = tokio::time::timeout(PATIENCE, addr_rx.recv())
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| {
                panic!(
                    "the daemon never said where it serves; stderr:\n{}",
                    stderr.lock().unwrap()
                )
            });
        Daemon {
            child,
            pid,
            addr,
            stderr,
            reader,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
        }
    }

    /// Everything the daemon wrote to stderr so far.
    pub fn logs(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// JSON log records (one per line).
    pub fn log_records(&self) -> Vec<serde_json::Value> {
        self.logs()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Waits for a log record whose message contains `needle`; returns it.
    pub async fn wait_log(&self, needle: &str) -> serde_json::Value {
        eventually(&format!("a log line containing {needle:?}"), async || {
            self.log_records()
                .into_iter()
                .find(|r| r["message"].as_str().is_some_and(|m| m.contains(needle)))
        })
        .await
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// GET `path`: (status, body).
    pub async fn get(&self, path: &str) -> (u16, String) {
        let r = self
            .http
            .get(self.url(path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        (r.status().as_u16(), r.text().await.unwrap())
    }

    pub async fn scrape(&self) -> Scrape {
        let (status, text) = self.get("/metrics").await;
        assert_eq!(status, 200);
        Scrape::parse(&text)
    }

    pub async fn status(&self) -> serde_json::Value {
        let (code, body) = self.get("/status").await;
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).expect("/status is JSON")
    }

    /// Sends `signal` (e.g. "HUP", "TERM") with kill(1).
    pub fn signal(&self, signal: &str) {
        let ok = std::process::Command::new("kill")
            .args(["-s", signal, &self.pid.to_string()])
            .status()
            .expect("kill(1) runs")
            .success();
        assert!(ok, "kill -s {signal} {}", self.pid);
    }

    /// SIGTERM, then the exit code (within `PATIENCE`).
    pub async fn stop(mut self) -> (i32, String) {
        self.signal("TERM");
        let status = tokio::time::timeout(PATIENCE, self.child.wait())
            .await
            .expect("the daemon exits after SIGTERM")
            .unwrap();
        // Every last line is read once the reader meets the end of stderr.
        tokio::time::timeout(PATIENCE, &mut self.reader)
            .await
            .expect("stderr reaches its end after the daemon exits")
            .expect("the stderr reader does not panic");
        (status.code().unwrap_or(-1), self.logs())
    }

    /// True while the process runs.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

/// One sample of a scrape.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A parsed Prometheus text exposition.
#[derive(Debug, Clone)]
pub struct Scrape {
    pub text: String,
    pub samples: Vec<Sample>,
}

impl Scrape {
    pub fn parse(text: &str) -> Scrape {
        let samples = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(|l| {
                let (series, value) = l.rsplit_once(' ').expect("name value");
                let value = value
                    .parse()
                    .unwrap_or_else(|_| panic!("bad value in {l:?}"));
                let (name, labels) = match series.split_once('{') {
                    None => (series.to_string(), BTreeMap::new()),
                    Some((n, rest)) => (n.to_string(), parse_labels(rest.trim_end_matches('}'))),
                };
                Sample {
                    name,
                    labels,
                    value,
                }
            })
            .collect();
        Scrape {
            text: text.to_string(),
            samples,
        }
    }

    /// Sample names present (histograms as `_bucket`/`_sum`/`_count`).
    pub fn names(&self) -> BTreeSet<String> {
        self.samples.iter().map(|s| s.name.clone()).collect()
    }

    /// The series of `name` whose labels include `labels`.
    fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&str, &str)],
    ) -> impl Iterator<Item = &'a Sample> {
        self.samples.iter().filter(move |s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
    }

    /// The sum over every series of `name` whose labels include `labels` (0 when none).
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).map(|s| s.value).sum()
    }

    /// The value of the one series of `name` whose labels include `labels`.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let found: Vec<&Sample> = self.matching(name, labels).collect();
        assert!(found.len() <= 1, "{name}{labels:?} matches {found:?}");
        found.first().map(|s| s.value)
    }

    /// Like `get`, but the series must exist.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels)
            .unwrap_or_else(|| panic!("no series {name}{labels:?} in\n{}", self.text))
    }
}

fn parse_labels(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut chars = s.chars().peekable();
    loop {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        let key = key.trim_start_matches(',').trim().to_string();
        if key.is_empty() {
            break;
        }
        assert_eq!(chars.next(), Some('"'), "label value starts with a quote");
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(other) => value.push(other),
                    None => break,
                },
                '"' => break,
                c => value.push(c),
            }
        }
        out.insert(key, value);
    }
    out
}
