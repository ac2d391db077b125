//! Steady-state delivery latency: from the instant an activity becomes visible in the API to
//! the instant it lands in each sink, per sink, at the default `activities.interval` (60 s)
//! and at `interval = "5s"`.
//!
//! `cargo run --release --example latency_bench -- [SECONDS=600] [RATE_PER_S=1]`
//!
//! For each interval an in-process emulator (the real 10 requests / 10 s rate limit on) and
//! the daemon pipeline (`Pipeline::build(cfg)?.run(token)`, what `run` executes) run side by
//! side with three sinks that need no extra server: `file` (the bench tails the file every
//! 10 ms), `webhook` (a raw HTTP/1.1 receiver in this file) and `syslog` over TCP (a raw
//! RFC 6587 octet-counting receiver in this file); all with their default settings
//! (`format = "json"`, file `fsync = true`, webhook `batch_timeout = 1s`). Both intervals run
//! concurrently, each against its own emulator and receivers.
//!
//! Activities are inserted up front with `Emulator::add_activity(org, json, created_at,
//! visible_at)`: one every `1/RATE` s for `SECONDS` s, each visible from a known instant
//! `visible_at` (by the emulator's clock, which is the system clock; at a random point of its
//! `1/RATE` slot, so the samples cover every phase of the poll cycle) and created 10 s before
//! it (the API is eventually consistent; the poller's 15 min overlap covers that). A receiver
//! timestamps an event with the system clock when its bytes arrive; latency = arrival −
//! `visible_at`. That splits into the wait for the next poll (the interval's phase, uniform in
//! `[0, interval)`) and the exporter's own work after the fetch (request, decode, SQLite
//! commit, wake, encode, deliver). The second part is reported separately as "after fetch":
//! arrival − the emulator's arrival time of the first activities request sent after
//! `visible_at` (from the emulator's request log). Events that never arrived are counted.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use clickhouse_audit_exporter::config::Config;
use clickhouse_audit_exporter::daemon::Pipeline;
use clickhouse_audit_exporter::emulator::{Emulator, EmulatorOptions};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// `createdAt` is this long before the activity becomes visible.
const CREATED_BEFORE_VISIBLE: Duration = Duration::from_secs(10);
/// Time for the first cycle (a one-hour backfill) before the first measured activity.
const WARMUP: Duration = Duration::from_secs(5);
/// How often the file sink's output is read.
const FILE_TAIL_EVERY: Duration = Duration::from_millis(10);
const SINKS: [&str; 3] = ["file", "webhook", "syslog"];

/// First arrival per activity index, per sink.
type Arrivals = Arc<Mutex<HashMap<&'static str, HashMap<usize, DateTime<Utc>>>>>;

/// Every `lat-<tag>-<index>` id in `bytes`.
fn ids_in(bytes: &[u8], tag: &str) -> Vec<usize> {
    let needle = format!("lat-{tag}-");
    let needle = needle.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i + needle.len() <= bytes.len() {
        if &bytes[i..i + needle.len()] == needle {
            let digits: Vec<u8> = bytes[i + needle.len()..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .copied()
                .collect();
            if let Ok(n) = std::str::from_utf8(&digits).unwrap_or("").parse() {
                out.push(n);
            }
            i += needle.len() + digits.len();
        } else {
            i += 1;
        }
    }
    out
}

fn record(arrivals: &Arrivals, sink: &'static str, ids: Vec<usize>, at: DateTime<Utc>) {
    let mut all = arrivals.lock().expect("no panics while holding the lock");
    let seen = all.entry(sink).or_default();
    for id in ids {
        seen.entry(id).or_insert(at);
    }
}

/// Minimal HTTP/1.1 receiver: reads a request (Content-Length body), timestamps it, answers 200.
async fn webhook_receiver(listener: TcpListener, tag: String, arrivals: Arrivals) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let (tag, arrivals) = (tag.clone(), arrivals.clone());
        tokio::spawn(async move {
            let mut r = BufReader::new(stream);
            loop {
                let mut len = 0usize;
                let mut line = String::new();
                loop {
                    line.clear();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return; // connection closed
                    }
                    if line == "\r\n" {
                        break;
                    }
                    let lower = line.to_ascii_lowercase();
                    if let Some(v) = lower.strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; len];
                if r.read_exact(&mut body).await.is_err() {
                    return;
                }
                record(&arrivals, "webhook", ids_in(&body, &tag), Utc::now());
                let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                if r.get_mut().write_all(ok).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// Minimal syslog-over-TCP receiver, RFC 6587 octet counting (`LEN SP MSG`).
async fn syslog_receiver(listener: TcpListener, tag: String, arrivals: Arrivals) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let (tag, arrivals) = (tag.clone(), arrivals.clone());
        tokio::spawn(async move {
            let mut r = BufReader::new(stream);
            loop {
                let mut len = Vec::new();
                if r.read_until(b' ', &mut len).await.unwrap_or(0) == 0 {
                    return;
                }
                let Ok(n) = std::str::from_utf8(&len)
                    .unwrap_or("")
                    .trim()
                    .parse::<usize>()
                else {
                    return;
                };
                let mut msg = vec![0; n];
                if r.read_exact(&mut msg).await.is_err() {
                    return;
                }
                record(&arrivals, "syslog", ids_in(&msg, &tag), Utc::now());
            }
        });
    }
}

/// Reads what the file sink appended every `FILE_TAIL_EVERY` (complete lines only).
async fn file_tail(path: PathBuf, tag: String, arrivals: Arrivals, token: CancellationToken) {
    let mut offset = 0usize;
    while !token.is_cancelled() {
        tokio::time::sleep(FILE_TAIL_EVERY).await;
        let Ok(bytes) = tokio::fs::read(&path).await else {
            continue;
        };
        let Some(end) = bytes.iter().rposition(|&b| b == b'\n').map(|p| p + 1) else {
            continue;
        };
        if end > offset {
            record(
                &arrivals,
                "file",
                ids_in(&bytes[offset..end], &tag),
                Utc::now(),
            );
            offset = end;
        }
    }
}

fn config(
    emu_url: &str,
    emu: &Emulator,
    dir: &Path,
    interval: Option<&str>,
    ports: (u16, u16),
) -> Config {
    let interval = interval.map_or(String::new(), |i| format!("interval = \"{i}\""));
    let toml = format!(
        r#"
[api]
base_url = "{emu_url}"
key_id = "{id}"
key_secret = "{secret}"
organizations = ["{org}"]

[activities]
{interval}
initial_lookback = "1h"

[inventory]
enabled = false

[state]
path = "{state}"

[server]
listen = ""

[[sinks]]
name = "file"
type = "file"
path = "{file}"

[[sinks]]
name = "webhook"
type = "webhook"
url = "http://127.0.0.1:{web}/ingest"

[[sinks]]
name = "syslog"
type = "syslog"
address = "127.0.0.1:{syslog}"
protocol = "tcp"
"#,
        id = emu.key_id(),
        secret = emu.key_secret(),
        org = emu.org_ids()[0],
        state = dir.join("state.db").display(),
        file = dir.join("audit.ndjson").display(),
        web = ports.0,
        syslog = ports.1,
    );
    Config::from_toml(&toml, Some(HashMap::new())).expect("the bench config is valid")
}

/// One measured case: its label, the per-sink latency lists and what arrived late or never.
struct Outcome {
    label: String,
    polls: usize,
    rows: Vec<(&'static str, Stats, Stats, usize)>,
    sent: usize,
}

#[derive(Default)]
struct Stats {
    n: usize,
    p50: f64,
    p99: f64,
    max: f64,
}

/// Nearest-rank percentiles of `v` (seconds).
fn stats(mut v: Vec<f64>) -> Stats {
    if v.is_empty() {
        return Stats::default();
    }
    v.sort_by(f64::total_cmp);
    let rank = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    Stats {
        n: v.len(),
        p50: rank(0.50),
        p99: rank(0.99),
        max: v[v.len() - 1],
    }
}

async fn run_case(
    label: &str,
    interval: Option<&str>,
    tag: &str,
    seconds: u64,
    rate: f64,
) -> anyhow::Result<Outcome> {
    let interval_len = interval.map_or(Duration::from_secs(60), |i| {
        humantime::parse_duration(i).expect("a valid duration")
    });
    let emu = Emulator::start(EmulatorOptions {
        history: Duration::from_secs(3600),
        ..EmulatorOptions::default()
    })
    .await?;
    let org = emu.emulator.org_ids()[0].clone();
    let dir = tempfile::tempdir()?;
    let arrivals: Arrivals = Arc::default();
    let web = TcpListener::bind("127.0.0.1:0").await?;
    let syslog = TcpListener::bind("127.0.0.1:0").await?;
    let ports = (web.local_addr()?.port(), syslog.local_addr()?.port());
    tokio::spawn(webhook_receiver(web, tag.to_owned(), arrivals.clone()));
    tokio::spawn(syslog_receiver(syslog, tag.to_owned(), arrivals.clone()));
    let cfg = config(&emu.base_url, &emu.emulator, dir.path(), interval, ports);

    // The measured activities, all inserted now, each visible from its own instant.
    let start = emu.emulator.now() + WARMUP;
    let count = (seconds as f64 * rate) as usize;
    let gap = chrono::Duration::microseconds((1e6 / rate) as i64);
    let before = chrono::Duration::from_std(CREATED_BEFORE_VISIBLE)?;
    // Each at a random instant inside its own slot, so the samples cover every phase of the
    // poll cycle (a fixed lattice would alias with the interval and give a few discrete values).
    let mut rng = fastrand::Rng::with_seed(7);
    let visible: Vec<DateTime<Utc>> = (0..count)
        .map(|i| start + gap * i as i32 + gap * rng.u32(..1000) as i32 / 1000)
        .collect();
    for (i, v) in visible.iter().enumerate() {
        let activity = serde_json::json!({
            "id": format!("lat-{tag}-{i:06}"),
            "type": "service_update_name",
            "actorType": "user",
            "actorId": "b0c5a6f2-1111-4111-8111-111111111111",
            "actorIpAddress": "203.0.113.7",
        });
        emu.emulator.add_activity(&org, activity, *v - before, *v);
    }

    let token = CancellationToken::new();
    let pipeline = Pipeline::build(cfg).await?;
    let run = tokio::spawn(pipeline.run(token.clone()));
    let tail = tokio::spawn(file_tail(
        dir.path().join("audit.ndjson"),
        tag.to_owned(),
        arrivals.clone(),
        token.clone(),
    ));
    // Until the last one is visible, plus one interval and a margin for its delivery.
    let end = *visible.last().unwrap_or(&start) - Utc::now();
    let wait = end.to_std().unwrap_or_default() + interval_len + Duration::from_secs(10);
    tokio::time::sleep(wait).await;
    token.cancel();
    let _ = run.await?;
    let _ = tail.await;

    // Arrival times of the activities requests at the emulator (its clock = system clock).
    let fetches: Vec<DateTime<Utc>> = emu
        .emulator
        .request_log()
        .iter()
        .filter(|r| r.path.ends_with("/activities") && r.status == 200)
        .map(|r| r.wall)
        .collect();
    let all = arrivals.lock().expect("no panics while holding the lock");
    let mut rows = Vec::new();
    for sink in SINKS {
        let got = all.get(sink).cloned().unwrap_or_default();
        let (mut total, mut after) = (Vec::new(), Vec::new());
        for (i, v) in visible.iter().enumerate() {
            let Some(at) = got.get(&i) else { continue };
            total.push((*at - *v).as_seconds_f64());
            if let Some(f) = fetches.iter().find(|f| **f >= *v) {
                after.push((*at - *f).as_seconds_f64());
            }
        }
        let missing = count - total.len();
        rows.push((sink, stats(total), stats(after), missing));
    }
    Ok(Outcome {
        label: label.to_owned(),
        polls: fetches.len(),
        rows,
        sent: count,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(600);
    let rate: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1.0);
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    eprintln!(
        "latency_bench: {rate}/s for {seconds} s per interval (60 s default and 5 s, concurrently)"
    );
    let (default, fast) = tokio::join!(
        run_case("60s (default)", None, "d", seconds, rate),
        run_case("5s", Some("5s"), "f", seconds, rate),
    );
    println!(
        "| interval | sink | events | p50 s | p99 s | max s | after fetch p50 s | after fetch p99 s | missing |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for o in [default?, fast?] {
        for (sink, t, a, missing) in &o.rows {
            println!(
                "| {} | `{sink}` | {} | {:.2} | {:.2} | {:.2} | {:.3} | {:.3} | {missing} |",
                o.label, t.n, t.p50, t.p99, t.max, a.p50, a.p99
            );
        }
        eprintln!(
            "{}: {} activities sent, {} activities requests",
            o.label, o.sent, o.polls
        );
    }
    Ok(())
}
