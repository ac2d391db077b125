//! Fault matrix, sink rows: a webhook receiver down for a while (minutes with
//! `CH_AUDIT_FAULTS_LONG=1`), slow, or answering 400 until fixed; a full disk under the file
//! sink (a small tmpfs); the output file deleted under the sink (logrotate without SIGHUP).
//! The `archive` file sink runs beside each so "never blocks other sinks" is checked too.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::span;
use crate::support::receiver::{Receiver, Reply};
use crate::support::require;
use crate::support::rig::{
    BATCH, Rig, check_bounded, metric_at_least, ready, stop_clean, unready, wait_complete,
};
use crate::support::wait::eventually;
use crate::support::{activity_ids, read_ndjson};

fn webhook(url: &str, extra: &str) -> String {
    format!(
        "[[sinks]]\nname = \"siem\"\ntype = \"webhook\"\nurl = \"{url}\"\nbatch_max_events = {BATCH}\nbatch_timeout = \"50ms\"\n{extra}\n"
    )
}

/// Activity ids in the JSON-array bodies the receiver accepted, repeats included.
pub(super) fn accepted_ids(rx: &Receiver) -> Vec<String> {
    rx.accepted()
        .iter()
        .flat_map(|r| {
            let v: serde_json::Value = serde_json::from_slice(&r.decoded_body()).unwrap();
            v.as_array()
                .unwrap()
                .iter()
                .map(|e| e["activity"]["id"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

async fn webhook_complete(rx: &Receiver, expected: &[String], max_dups: usize) {
    let got = eventually("every activity accepted by the receiver", async || {
        let ids = accepted_ids(rx);
        let set: std::collections::HashSet<&String> = ids.iter().collect();
        expected
            .iter()
            .all(|id| set.contains(id))
            .then_some(ids.clone())
    })
    .await;
    check_bounded(&got, expected, max_dups, "webhook");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_for_a_while_catches_up_and_never_holds_up_the_file_sink() {
    let rig = Rig::new().await;
    let rx = Receiver::start().await;
    rig.configure(&webhook(&rx.url(), ""), "", "");
    let d = rig.start().await;
    webhook_complete(&rx, &rig.expected(), 0).await;
    rx.stop();
    let down = span(Duration::from_secs(4), Duration::from_secs(180));
    let until = tokio::time::Instant::now() + down;
    let mut n = 0;
    while tokio::time::Instant::now() < until {
        rig.add_live(5, &format!("outage-{n}"));
        n += 1;
        // The pace of new activity while the receiver is down (`down` of real time).
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The archive is complete while the receiver is still down.
    rig.archive_complete(0).await;
    metric_at_least(
        &d,
        "clickhouse_audit_sink_failures_total",
        &[("sink", "siem")],
        1.0,
    )
    .await;
    let m = d.scrape().await;
    assert!(m.value("clickhouse_audit_sink_backlog_events", &[("sink", "siem")]) > 0.0);
    assert_eq!(
        m.value(
            "clickhouse_audit_sink_backlog_events",
            &[("sink", "archive")]
        ),
        0.0
    );
    unready(&d, "sink siem").await;
    rx.restart().await;
    // A batch in flight when the receiver went down may arrive twice.
    webhook_complete(&rx, &rig.expected(), BATCH).await;
    ready(&d).await;
    stop_clean(d).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_receiver_within_and_beyond_the_timeout_loses_nothing() {
    let rig = Rig::new().await;
    let rx = Receiver::start().await;
    rig.configure(&webhook(&rx.url(), "timeout = \"1s\""), "", "");
    // Slow but within the timeout, then three answers too late.
    rx.script([
        Reply::Delay(Duration::from_millis(400)),
        Reply::Delay(Duration::from_millis(400)),
        Reply::Delay(Duration::from_secs(3)),
        Reply::Delay(Duration::from_secs(3)),
        Reply::Delay(Duration::from_secs(3)),
    ]);
    let d = rig.start().await;
    rig.add_live(120, "slow");
    metric_at_least(
        &d,
        "clickhouse_audit_sink_failures_total",
        &[("sink", "siem"), ("kind", "transient")],
        1.0,
    )
    .await;
    rig.archive_complete(0).await;
    webhook_complete(&rx, &rig.expected(), 3 * BATCH).await;
    ready(&d).await;
    stop_clean(d).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_answering_400_keeps_the_batch_until_fixed_and_others_flow() {
    let rig = Rig::new().await;
    let rx = Receiver::start().await;
    rx.set_default(Reply::status(400));
    rig.configure(&webhook(&rx.url(), ""), "", "");
    let d = rig.start().await;
    rig.add_live(30, "rejected");
    rig.archive_complete(0).await;
    metric_at_least(
        &d,
        "clickhouse_audit_sink_failures_total",
        &[("sink", "siem"), ("kind", "rejected")],
        3.0,
    )
    .await;
    assert!(accepted_ids(&rx).is_empty());
    unready(&d, "400").await;
    rx.set_default(Reply::ok());
    webhook_complete(&rx, &rig.expected(), 0).await;
    ready(&d).await;
    stop_clean(d).await;
}

/// A tmpfs of `kib` KiB mounted at `dir` for the test's life (needs root).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, kib: u32) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={kib}k,mode=0755"),
                "tmpfs",
            ])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_under_the_file_sink_is_retried_until_space_frees() {
    let rig = Rig::new().await;
    let mnt = rig.path("small");
    let fs = Tmpfs::mount(&mnt, 256);
    if !require::present(
        fs.is_some(),
        "cannot mount a tmpfs (needs root; CI runs as root)",
    ) {
        return;
    }
    // Fill the file system but for a few KiB.
    let filler = mnt.join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let chunk = vec![b'x'; 4096];
    while std::io::Write::write_all(&mut f, &chunk).is_ok() {}
    drop(f);
    let full_out = mnt.join("audit.ndjson");
    rig.configure(
        &format!(
            "[[sinks]]\nname = \"small\"\ntype = \"file\"\npath = \"{}\"\nbatch_max_events = {BATCH}\n",
            full_out.display()
        ),
        "",
        "",
    );
    let d = rig.start().await;
    rig.add_live(30, "disk-full");
    metric_at_least(
        &d,
        "clickhouse_audit_sink_failures_total",
        &[("sink", "small")],
        2.0,
    )
    .await;
    rig.archive_complete(0).await;
    unready(&d, "No space left on device").await;
    // A failed write is cut back: what is in the file is whole lines only.
    let text = std::fs::read_to_string(&full_out).unwrap_or_default();
    assert!(text.is_empty() || text.ends_with('\n'), "no torn line");
    std::fs::remove_file(&filler).unwrap();
    wait_complete(&full_out, &rig.expected(), BATCH).await;
    ready(&d).await;
    stop_clean(d).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_file_deleted_under_the_sink_is_recreated_without_a_signal() {
    let rig = Rig::new().await;
    let d = rig.start().await;
    let first = rig.archive_complete(0).await;
    std::fs::remove_file(&rig.out).unwrap();
    rig.add_live(20, "after-delete");
    let all = rig.expected();
    let new: Vec<String> = all.into_iter().filter(|id| !first.contains(id)).collect();
    assert_eq!(new.len(), 20);
    let got = eventually("the new activities in a new file", async || {
        let ids = activity_ids(&read_ndjson(&rig.out));
        (ids.len() >= 20).then_some(ids)
    })
    .await;
    check_bounded(&got, &new, 0, "recreated file");
    ready(&d).await;
    let logs = stop_clean(d).await;
    assert!(logs.contains("moved or deleted under the sink"), "{logs}");
}
