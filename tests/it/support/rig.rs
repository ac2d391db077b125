//! The fault-matrix rig, shared by the fault rows and the security tests: an emulator, a state
//! directory, the `archive` file sink every row checks, a config file for the real binary, and
//! the waits on what a running daemon shows (`/readyz`, metrics, a complete archive).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;
use clickhouse_audit_exporter::emulator::{Emulator, EmulatorHandle, EmulatorOptions};

use super::daemon::{Daemon, daemon_config};
use super::wait::eventually;
use super::{TomlDoc, activity_ids, file_sink, read_ndjson};

/// Batch size of the rig's file sink; re-delivery is bounded by it.
pub const BATCH: usize = 50;

/// An emulator (six hours of history, no rate limit unless asked), a state directory, and the
/// `archive` file sink every row checks.
pub struct Rig {
    pub emu: EmulatorHandle,
    pub org: String,
    pub dir: tempfile::TempDir,
    pub out: PathBuf,
    pub cfg: PathBuf,
}

impl Rig {
    pub async fn new() -> Rig {
        Rig::with(EmulatorOptions {
            history: Duration::from_secs(6 * 3600),
            rate_limit: None,
            ..Default::default()
        })
        .await
    }

    pub async fn with(opts: EmulatorOptions) -> Rig {
        let emu = Emulator::start(opts).await.unwrap();
        let org = emu.emulator.org_ids()[0].clone();
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("archive.ndjson");
        let cfg = dir.path().join("config.toml");
        let rig = Rig {
            emu,
            org,
            dir,
            out,
            cfg,
        };
        rig.configure("", "", "");
        rig
    }

    /// Writes the config: 1 s polls, JSON logs, `/metrics` on an ephemeral port, the
    /// `archive` file sink plus `sinks`; `api`/`activities`/`daemon` lines are added to
    /// those tables.
    pub fn configure(&self, sinks: &str, api: &str, activities: &str) {
        let all = format!("{}{sinks}", file_sink("archive", &self.out, BATCH));
        let toml = daemon_config(&self.emu, self.dir.path(), &all, api, activities);
        let toml = TomlDoc::parse(&toml)
            .set("daemon.sink_max_backoff", "1s")
            .set("daemon.shutdown_grace", "5s")
            .set("server.sink_unready_after", "2s");
        std::fs::write(&self.cfg, toml.to_string()).unwrap();
    }

    /// Rewrites the config file through `edit` (a key path that is not there fails).
    pub fn edit(&self, edit: impl FnOnce(TomlDoc) -> TomlDoc) {
        let doc = TomlDoc::parse(&std::fs::read_to_string(&self.cfg).unwrap());
        std::fs::write(&self.cfg, edit(doc).to_string()).unwrap();
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs `clickhouse-audit-exporter -c <config> ARGS` to its end: (exit code, stdout +
    /// stderr).
    pub async fn cli(&self, args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
        let out = super::daemon::bin()
            .arg("-c")
            .arg(&self.cfg)
            .args(args)
            .envs(env.iter().copied())
            .output()
            .await
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code().unwrap_or(-1), text)
    }

    pub async fn start(&self) -> Daemon {
        Daemon::start(&self.cfg, &[]).await
    }

    /// Records `n` activities created and visible now.
    pub fn add_live(&self, n: usize, tag: &str) {
        for i in 0..n {
            let now = Utc::now();
            self.emu.emulator.add_activity(
                &self.org,
                serde_json::json!({"type": "user_login", "fault": tag, "n": i}),
                now,
                now,
            );
        }
    }

    /// Every activity id the API holds (visible or not), sorted.
    pub fn expected(&self) -> Vec<String> {
        let mut ids = self.emu.emulator.all_activity_ids(&self.org);
        ids.sort();
        ids
    }

    /// Waits until the archive holds every activity; then checks the duplicate bound.
    pub async fn archive_complete(&self, max_dups: usize) -> Vec<String> {
        wait_complete(&self.out, &self.expected(), max_dups).await
    }
}

/// Waits until the NDJSON file at `path` holds every id in `expected`, then asserts no id
/// is there that the API does not hold and at most `max_dups` repeats. Returns the file's ids.
pub async fn wait_complete(path: &Path, expected: &[String], max_dups: usize) -> Vec<String> {
    let ids = eventually(
        &format!("all {} activities in {}", expected.len(), path.display()),
        async || {
            let ids = activity_ids(&read_ndjson(path));
            let seen: std::collections::HashSet<&str> = ids.iter().map(String::as_str).collect();
            expected
                .iter()
                .all(|id| seen.contains(id.as_str()))
                .then_some(ids.clone())
        },
    )
    .await;
    check_bounded(&ids, expected, max_dups, &path.display().to_string());
    ids
}

/// Every id of `got` is expected, every expected id is there, repeats at most `max_dups`.
pub fn check_bounded(got: &[String], expected: &[String], max_dups: usize, what: &str) {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for id in got {
        *counts.entry(id).or_default() += 1;
    }
    for id in expected {
        assert!(counts.contains_key(id.as_str()), "{what}: {id} missing");
    }
    assert_eq!(
        counts.len(),
        expected.len(),
        "{what}: nothing delivered that the API does not hold"
    );
    let dups = got.len() - counts.len();
    assert!(
        dups <= max_dups,
        "{what}: {dups} duplicates, more than {max_dups}"
    );
}

/// Waits for `/readyz` 200.
pub async fn ready(d: &Daemon) {
    eventually("/readyz 200", async || {
        (d.get("/readyz").await.0 == 200).then_some(())
    })
    .await;
}

/// Waits for `/readyz` 503 whose body names `needle`; returns the body.
pub async fn unready(d: &Daemon, needle: &str) -> String {
    eventually(&format!("/readyz 503 naming {needle:?}"), async || {
        let (code, body) = d.get("/readyz").await;
        (code == 503 && body.contains(needle)).then_some(body)
    })
    .await
}

/// Waits until the metric (summed over series matching `labels`) reaches `at_least`.
pub async fn metric_at_least(d: &Daemon, name: &str, labels: &[(&str, &str)], at_least: f64) {
    eventually(&format!("{name}{labels:?} >= {at_least}"), async || {
        let sum = d.scrape().await.sum(name, labels);
        (sum >= at_least).then_some(())
    })
    .await;
}

/// Stops the daemon with SIGTERM: it must exit 0, and no log line may be a panic.
pub async fn stop_clean(d: Daemon) -> String {
    let (code, logs) = d.stop().await;
    assert_eq!(code, 0, "clean exit after the fault; logs:\n{logs}");
    assert!(!logs.contains("panicked"), "{logs}");
    logs
}
