//! Encode throughput per output format, on one thread (= per core).
//!
//! `cargo run --release --example encode_bench -- [N]` builds N synthetic activities shaped like
//! the API's (default 200,000; a mix of catalogue types, user/api/system actors, IPv4/IPv6,
//! ~350–450 bytes each), encodes them as NDJSON batches of 500 into a reused buffer — what a
//! sink does — and prints the best of 5 runs per format in events/s and MB/s of output.

use std::hint::black_box;
use std::time::Instant;

use clickhouse_audit_exporter::event::{Event, EventKind};
use clickhouse_audit_exporter::format::{Format, catalog};

fn synthetic(n: usize) -> Vec<Event> {
    let types: Vec<&str> = catalog::types().collect();
    let mut rng = fastrand::Rng::with_seed(42);
    (0..n)
        .map(|i| {
            let ty = types[rng.usize(..types.len())];
            let (actor_type, ip) = match i % 4 {
                0 => ("api", format!("203.0.113.{}", rng.u8(1..255))),
                1 => ("system", String::new()),
                2 => ("user", format!("2001:db8::{:x}", rng.u16(..))),
                _ => ("user", format!("198.51.100.{}", rng.u8(1..255))),
            };
            let payload = format!(
                r#"{{"id":"{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}","createdAt":"2025-03-04T10:{:02}:{:02}Z","type":"{ty}","actorType":"{actor_type}","actorId":"{:08x}-5c1a-4f9e-9d2b-7a3c1e5f9b20","actorDetails":"user{}@example.com","actorIpAddress":"{ip}","organizationId":"2b3f6c1e-8a4d-4e2b-9f1c-3d5e7a9b1c2d","serviceId":"3b1e9f0a-3333-4333-8333-333333333333","userAgent":"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36"}}"#,
                rng.u32(..),
                rng.u16(..),
                rng.u16(..4096),
                rng.u16(..4096),
                rng.u64(..1 << 48),
                i / 60 % 60,
                i % 60,
                rng.u32(..),
                i % 1000,
            );
            Event {
                seq: i as i64,
                event_id: format!("activity:2b3f6c1e-8a4d-4e2b-9f1c-3d5e7a9b1c2d:{i}"),
                kind: EventKind::Activity,
                org_id: "2b3f6c1e-8a4d-4e2b-9f1c-3d5e7a9b1c2d".into(),
                occurred_at: "2025-03-04T10:15:30Z".into(),
                observed_at: "2025-03-04T10:16:00.123456Z".into(),
                payload,
            }
        })
        .collect()
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.replace('_', "").parse().ok())
        .unwrap_or(200_000);
    let events = synthetic(n);
    let avg_in = events.iter().map(|e| e.payload.len()).sum::<usize>() / n;
    println!(
        "{n} synthetic activities, {avg_in} bytes of payload on average; best of 5 runs, one thread"
    );
    println!(
        "{:<6} {:>14} {:>10} {:>12}",
        "format", "events/s", "MB/s", "bytes/event"
    );
    let mut buf = Vec::with_capacity(1 << 20);
    for &format in Format::ALL {
        let mut best = f64::MAX;
        let mut bytes = 0usize;
        for _ in 0..5 {
            bytes = 0;
            let start = Instant::now();
            for batch in events.chunks(500) {
                buf.clear();
                for e in batch {
                    format.encode(e, &mut buf);
                    buf.push(b'\n');
                }
                bytes += buf.len();
                black_box(&buf);
            }
            best = best.min(start.elapsed().as_secs_f64());
        }
        println!(
            "{:<6} {:>14.0} {:>10.1} {:>12}",
            format.as_str(),
            n as f64 / best,
            bytes as f64 / best / 1e6,
            bytes / n
        );
    }
}
