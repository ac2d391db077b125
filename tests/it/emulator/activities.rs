//! The activity list: the three date forms with inclusive bounds, date-only mode, late
//! visibility, newest-first order, the `createdAt` format, realistic generated data, a
//! million rows in one response, and seeded determinism.

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use clickhouse_audit_exporter::emulator::{ACTIVITY_TYPES, Emulator, EmulatorOptions};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::{Duration, Instant};

use super::{activities, ids, org_path, start, unlimited};
use crate::support::api::enc;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn empty() -> EmulatorOptions {
    EmulatorOptions {
        history: Duration::ZERO,
        ..unlimited()
    }
}

#[tokio::test]
async fn date_params_accept_three_forms_with_inclusive_bounds() {
    let (h, api) = start(empty()).await;
    let org = &h.emulator.org_ids()[0];
    for (id, t) in [
        ("before", "2024-03-04T23:59:59Z"),
        ("morning", "2024-03-05T10:00:00Z"),
        ("last-second", "2024-03-05T23:59:59Z"),
        ("next-day", "2024-03-06T00:00:00Z"),
    ] {
        h.emulator
            .add_activity(org, json!({"id": id, "type": "user_login"}), at(t), at(t));
    }
    let q = |from: &str, to: &str| format!("?from_date={}&to_date={}", enc(from), enc(to));
    let cases = [
        // Date only: a whole UTC day, both ends inclusive.
        (
            q("2024-03-05", "2024-03-05"),
            vec!["last-second", "morning"],
        ),
        // Naive date-times are UTC; the bounds are inclusive.
        (
            q("2024-03-05T10:00:00", "2024-03-05T23:59:59"),
            vec!["last-second", "morning"],
        ),
        (
            q("2024-03-05T10:00:00.000", "2024-03-05T10:00:00.000"),
            vec!["morning"],
        ),
        // RFC 3339 with Z or an offset.
        (
            q("2024-03-05T10:00:00Z", "2024-03-06T00:00:00Z"),
            vec!["next-day", "last-second", "morning"],
        ),
        (
            q("2024-03-05T12:00:01+02:00", "2024-03-06T01:00:00+01:00"),
            vec!["next-day", "last-second"],
        ),
        (q("2024-03-04", "2024-03-04T23:59:59Z"), vec!["before"]),
    ];
    for (query, want) in cases {
        assert_eq!(ids(&activities(&api, &h, &query).await), want, "{query}");
    }
    assert_eq!(activities(&api, &h, "?from_date=2024-03-06").await.len(), 1);
    assert_eq!(activities(&api, &h, "?to_date=2024-03-04").await.len(), 1);
    assert_eq!(activities(&api, &h, "").await.len(), 4);
    for bad in [
        "?from_date=03%2F05%2F2024",
        "?to_date=",
        "?from_date=2024-03-06&to_date=2024-03-05",
    ] {
        let r = api.get(&format!("{}/activities{bad}", org_path(&h))).await;
        assert_eq!(r.status, 400, "{bad}");
        assert!(r.error().starts_with("BAD_REQUEST: "), "{}", r.error());
    }
}

#[tokio::test]
async fn date_only_mode_rejects_datetimes_naming_the_date() {
    let (h, api) = start(empty()).await;
    h.emulator.set_accept_datetime_params(false);
    let base = format!("{}/activities", org_path(&h));
    let r = api
        .get(&format!("{base}?from_date={}", enc("2024-03-05T00:00:00Z")))
        .await;
    assert_eq!(r.status, 400);
    assert!(
        r.error().starts_with("BAD_REQUEST: ") && r.error().contains("date"),
        "{}",
        r.error()
    );
    assert_eq!(
        api.get(&format!("{base}?from_date=2024-03-05&to_date=2024-03-06"))
            .await
            .status,
        200
    );
    h.emulator.set_accept_datetime_params(true);
    assert_eq!(
        api.get(&format!("{base}?from_date={}", enc("2024-03-05T00:00:00Z")))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn late_activities_appear_only_once_visible() {
    let (h, api) = start(empty()).await;
    let org = &h.emulator.org_ids()[0];
    let now = h.emulator.now();
    let id = h.emulator.add_activity(
        org,
        json!({"type": "service_stop"}),
        now - ChronoDuration::minutes(5),
        now + ChronoDuration::hours(1),
    );
    assert!(activities(&api, &h, "").await.is_empty());
    let one = format!("{}/activities/{id}", org_path(&h));
    assert_eq!(api.get(&one).await.status, 404);
    assert_eq!(h.emulator.activity_count(org), 1);
    h.emulator.set_clock_skew(ChronoDuration::hours(2));
    let list = activities(&api, &h, "").await;
    assert_eq!(ids(&list), [id.as_str()]);
    // The createdAt still says when it happened, not when it became visible.
    assert_eq!(
        list[0]["createdAt"],
        (now - ChronoDuration::minutes(5))
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    );
    assert_eq!(api.get(&one).await.status, 200);
}

#[tokio::test]
async fn history_is_newest_first_with_whole_second_timestamps() {
    let (h, api) = start(unlimited()).await;
    let list = activities(&api, &h, "").await;
    assert!(
        (1300..=1500).contains(&list.len()),
        "7 days x 200/day, got {}",
        list.len()
    );
    let times: Vec<&str> = list
        .iter()
        .map(|a| a["createdAt"].as_str().unwrap())
        .collect();
    for t in &times {
        assert_eq!(t.len(), 20, "{t}");
        assert!(
            t.ends_with('Z') && DateTime::parse_from_rfc3339(t).is_ok(),
            "{t}"
        );
    }
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first");
    let org = &h.emulator.org_ids()[0];
    assert!(list.iter().all(|a| a["organizationId"] == org.as_str()));
    let mut unique = HashSet::new();
    assert!(
        list.iter()
            .all(|a| unique.insert(a["id"].as_str().unwrap().to_owned()))
    );
}

#[tokio::test]
async fn generated_activities_are_realistic_and_forward_compatible() {
    let (h, api) = start(empty()).await;
    let org = h.emulator.org_ids()[0].clone();
    let now = h.emulator.now();
    h.emulator
        .generate_activities(&org, 20_000, now - ChronoDuration::days(1), now);
    let list = activities(&api, &h, "").await;
    assert_eq!(list.len(), 20_000);
    let known: HashSet<&str> = ACTIVITY_TYPES.into_iter().collect();
    let kind = |a: &Value| a["type"].as_str().unwrap().to_owned();
    let unknown = list
        .iter()
        .filter(|a| !known.contains(kind(a).as_str()))
        .count();
    assert!(
        (50..=500).contains(&unknown),
        "about 1% unknown types, got {unknown}"
    );
    let declared: HashSet<&str> =
        crate::support::spec::spec().doc["components"]["schemas"]["Activity"]["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
    let extra = list
        .iter()
        .filter(|a| {
            a.as_object()
                .unwrap()
                .keys()
                .any(|k| !declared.contains(k.as_str()))
        })
        .count();
    assert!(
        (50..=500).contains(&extra),
        "about 1% carry unknown fields, got {extra}"
    );
    let actor_types: HashSet<String> = list
        .iter()
        .map(|a| a["actorType"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(actor_types.len(), 4, "{actor_types:?}");
    assert!(
        list.iter()
            .filter(|a| kind(a).starts_with("service_"))
            .all(|a| a["serviceId"].is_string())
    );
    assert!(
        list.iter()
            .filter(|a| kind(a) == "openapi_key_update")
            .all(|a| a["targetKeyId"].is_string() && a["keyUpdateType"].is_string())
    );
    assert!(
        list.iter().any(|a| a["actorIpAddress"]
            .as_str()
            .is_some_and(|ip| ip.contains(':'))),
        "IPv6 actors"
    );
    assert!(
        list.iter()
            .any(|a| a["actorDetails"].as_str().is_some_and(|d| !d.is_ascii())),
        "unicode actors"
    );
    assert!(
        list.iter()
            .filter(|a| a["actorType"] == "user")
            .all(|a| a["userAgent"].is_string() && a["actorIpAddress"].is_string())
    );
    let types: HashSet<String> = list.iter().map(kind).collect();
    assert!(
        types.len() > 120,
        "broad type coverage, got {}",
        types.len()
    );
    // Spread evenly over the window: first and last rows near its ends.
    let first =
        DateTime::parse_from_rfc3339(list.last().unwrap()["createdAt"].as_str().unwrap()).unwrap();
    assert!(
        (first.with_timezone(&Utc) - (now - ChronoDuration::days(1)))
            .num_seconds()
            .abs()
            <= 1
    );
}

#[tokio::test]
async fn a_million_activities_stream_in_one_response() {
    let (h, api) = start(empty()).await;
    let org = h.emulator.org_ids()[0].clone();
    let now = h.emulator.now();
    let started = Instant::now();
    h.emulator
        .generate_activities(&org, 1_000_000, now - ChronoDuration::days(30), now);
    let generated = started.elapsed();
    assert_eq!(h.emulator.activity_count(&org), 1_000_000);
    let started = Instant::now();
    let r = api.get(&format!("{}/activities", org_path(&h))).await;
    let served = started.elapsed();
    assert_eq!(r.status, 200);
    let body = std::str::from_utf8(&r.body).unwrap();
    assert_eq!(
        r.header("content-length")
            .map(|l| l.parse::<usize>().unwrap()),
        Some(body.len())
    );
    assert!(body.starts_with("{\"status\":200,\"requestId\":\"") && body.ends_with("}]}"));
    assert_eq!(body.matches("{\"id\":\"").count(), 1_000_000);
    eprintln!(
        "1M activities: generated in {generated:?}, served {} MB in {served:?}",
        body.len() / 1_000_000
    );
    assert!(
        generated < Duration::from_secs(60),
        "generation took {generated:?}"
    );
}

#[tokio::test]
async fn same_seed_same_data() {
    let opts = |seed| EmulatorOptions {
        seed,
        orgs: 2,
        ..unlimited()
    };
    let (a, b, c) = (
        Emulator::new(opts(7)),
        Emulator::new(opts(7)),
        Emulator::new(opts(8)),
    );
    assert_eq!(a.org_ids(), b.org_ids());
    assert_eq!(a.key_id(), b.key_id());
    for org in a.org_ids() {
        assert_eq!(a.all_activity_ids(&org), b.all_activity_ids(&org));
    }
    assert_ne!(a.org_ids(), c.org_ids());
}
