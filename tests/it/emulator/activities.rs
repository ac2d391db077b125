//! The activity list: strict date validation by default, the lenient and date-only modes, every
//! window switch over HTTP (whole days, zone offset, cap, visibility delay), inclusive bounds,
//! late visibility, newest-first order, the `createdAt` format, realistic generated data, a
//! million rows in one response, and seeded determinism.

use chrono::{DateTime, Duration as ChronoDuration, FixedOffset, Utc};
use clickhouse_audit_exporter::emulator::{
    ACTIVITY_TYPES, DateValidation, Emulator, EmulatorHandle, EmulatorOptions, WindowSemantics,
};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::{Duration, Instant};

use super::{activities, ids, org_path, start, unlimited};
use crate::support::api::{Api, enc};

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn empty() -> EmulatorOptions {
    EmulatorOptions {
        history: Duration::ZERO,
        ..unlimited()
    }
}

/// The four activities the date tests look for, around 2024-03-05.
fn add_march_fifth(h: &EmulatorHandle) {
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
}

fn q(from: &str, to: &str) -> String {
    format!("?from_date={}&to_date={}", enc(from), enc(to))
}

/// Asserts a 400 `BAD_REQUEST` whose message mentions the date (what the client's fallback needs).
async fn refused(api: &Api, h: &EmulatorHandle, query: &str) {
    let r = api.get(&format!("{}/activities{query}", org_path(h))).await;
    assert_eq!(r.status, 400, "{query}");
    assert!(
        r.error().starts_with("BAD_REQUEST: ") && r.error().contains("date"),
        "{query}: {}",
        r.error()
    );
}

#[tokio::test]
async fn strict_by_default_exactly_three_fraction_digits_with_a_zone() {
    let (h, api) = start(empty()).await;
    assert_eq!(h.emulator.window().dates, DateValidation::Strict);
    add_march_fifth(&h);
    let cases = [
        (
            q("2024-03-05T10:00:00.000Z", "2024-03-06T00:00:00.000Z"),
            vec!["next-day", "last-second", "morning"],
        ),
        (
            q(
                "2024-03-05T12:00:01.000+02:00",
                "2024-03-06T01:00:00.000+01:00",
            ),
            vec!["next-day", "last-second"],
        ),
        (
            q("2024-03-05", "2024-03-05"),
            vec!["last-second", "morning"],
        ),
        (q("2024-03-04", "2024-03-04T23:59:59.000Z"), vec!["before"]),
    ];
    for (query, want) in cases {
        assert_eq!(ids(&activities(&api, &h, &query).await), want, "{query}");
    }
    for zone in ["Z", "+02:00"] {
        for frac in ["", ".0", ".00", ".000000"] {
            let from = format!("2024-03-05T10:00:00{frac}{zone}");
            refused(&api, &h, &format!("?from_date={}", enc(&from))).await;
            refused(
                &api,
                &h,
                &q("2024-03-05", &format!("2024-03-06T00:00:00{frac}{zone}")),
            )
            .await;
        }
    }
    // Zone-less date-times: their fate live is unknown, so strict refuses them.
    refused(
        &api,
        &h,
        &format!("?from_date={}", enc("2024-03-05T10:00:00.000")),
    )
    .await;
    refused(
        &api,
        &h,
        &format!("?to_date={}", enc("2024-03-05T10:00:00")),
    )
    .await;
}

#[tokio::test]
async fn lenient_dates_accept_every_iso_form_with_inclusive_bounds() {
    let (h, api) = start(empty()).await;
    h.emulator.set_date_validation(DateValidation::Lenient);
    add_march_fifth(&h);
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
        // RFC 3339 with Z or an offset, any number of fraction digits.
        (
            q("2024-03-05T10:00:00Z", "2024-03-06T00:00:00Z"),
            vec!["next-day", "last-second", "morning"],
        ),
        (
            q(
                "2024-03-05T12:00:01+02:00",
                "2024-03-06T01:00:00.000000+01:00",
            ),
            vec!["next-day", "last-second"],
        ),
        (q("2024-03-04", "2024-03-04T23:59:59.5Z"), vec!["before"]),
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
    h.emulator.set_date_validation(DateValidation::DateOnly);
    let strict_form = format!("?from_date={}", enc("2024-03-05T00:00:00.000Z"));
    refused(&api, &h, &strict_form).await;
    refused(
        &api,
        &h,
        &format!("?from_date={}", enc("2024-03-05T00:00:00")),
    )
    .await;
    let base = format!("{}/activities", org_path(&h));
    assert_eq!(
        api.get(&format!("{base}?from_date=2024-03-05&to_date=2024-03-06"))
            .await
            .status,
        200
    );
    h.emulator.set_date_validation(DateValidation::Strict);
    assert_eq!(api.get(&format!("{base}{strict_form}")).await.status, 200);
    // The older switch still means the same.
    h.emulator.set_accept_datetime_params(false);
    assert_eq!(h.emulator.window().dates, DateValidation::DateOnly);
    refused(&api, &h, &strict_form).await;
    h.emulator.set_accept_datetime_params(true);
    assert_eq!(api.get(&format!("{base}{strict_form}")).await.status, 200);
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

#[tokio::test]
async fn whole_days_ignore_the_time_part() {
    let (h, api) = start(empty()).await;
    add_march_fifth(&h);
    let org = &h.emulator.org_ids()[0];
    let t = "2024-03-06T23:59:59Z";
    h.emulator.add_activity(
        org,
        json!({"id": "day-after-end", "type": "user_login"}),
        at(t),
        at(t),
    );
    let query = q("2024-03-05T12:00:00.000Z", "2024-03-06T03:00:00.000+02:00");
    let exact = ["next-day", "last-second"];
    assert_eq!(ids(&activities(&api, &h, &query).await), exact);
    h.emulator.set_whole_days(true);
    assert_eq!(
        ids(&activities(&api, &h, &query).await),
        ["day-after-end", "next-day", "last-second", "morning"],
        "whole days 03-05 and 03-06 as written"
    );
    h.emulator.set_whole_days(false);
    assert_eq!(ids(&activities(&api, &h, &query).await), exact);
}

#[tokio::test]
async fn zone_offset_shifts_zone_less_values_only() {
    let (h, api) = start(empty()).await;
    let org = &h.emulator.org_ids()[0];
    for (id, t) in [
        ("utc-07:59", "2024-03-05T07:59:59Z"),
        ("utc-08:00", "2024-03-05T08:00:00Z"),
        ("utc-18:00", "2024-03-05T18:00:00Z"),
        ("next-07:59", "2024-03-06T07:59:59Z"),
        ("next-08:00", "2024-03-06T08:00:00Z"),
    ] {
        h.emulator
            .add_activity(org, json!({"id": id, "type": "user_login"}), at(t), at(t));
    }
    let day = q("2024-03-05", "2024-03-05");
    assert_eq!(
        ids(&activities(&api, &h, &day).await),
        ["utc-18:00", "utc-08:00", "utc-07:59"]
    );
    h.emulator.set_zone_offset(FixedOffset::west_opt(8 * 3600));
    assert_eq!(
        ids(&activities(&api, &h, &day).await),
        ["next-07:59", "utc-18:00", "utc-08:00"],
        "2024-03-05 at -8h = [08:00Z, next 07:59:59.999Z]"
    );
    // Values with Z or an offset are unaffected.
    let zoned = q("2024-03-05T08:00:00.000Z", "2024-03-05T10:00:00.000+02:00");
    assert_eq!(ids(&activities(&api, &h, &zoned).await), ["utc-08:00"]);
    // Naive date-times need lenient validation, then read at the offset too.
    let naive = q("2024-03-05T10:00:00.000", "2024-03-05T23:59:59.999");
    refused(&api, &h, &naive).await;
    h.emulator.set_date_validation(DateValidation::Lenient);
    assert_eq!(
        ids(&activities(&api, &h, &naive).await),
        ["next-07:59", "utc-18:00"],
        "10:00 at -8h = 18:00Z"
    );
    h.emulator.set_zone_offset(FixedOffset::east_opt(2 * 3600));
    assert_eq!(
        ids(&activities(&api, &h, &day).await),
        ["utc-18:00", "utc-08:00", "utc-07:59"],
        "2024-03-05 at +2h = [03-04T22:00Z, 21:59:59.999Z]"
    );
    assert_eq!(
        ids(&activities(&api, &h, &q("2024-03-05T10:00:00", "2024-03-06T09:59:59")).await),
        ["next-07:59", "utc-18:00", "utc-08:00"]
    );
}

#[tokio::test]
async fn cap_keeps_the_newest_of_the_window_silently() {
    let (h, api) = start(empty()).await;
    let org = h.emulator.org_ids()[0].clone();
    let now = h.emulator.now();
    h.emulator
        .generate_activities(&org, 100, now - ChronoDuration::days(2), now);
    let all = activities(&api, &h, "").await;
    assert_eq!(all.len(), 100);
    h.emulator.set_activity_cap(Some(10));
    let capped = activities(&api, &h, "").await;
    assert_eq!(ids(&capped), ids(&all[..10]));
    // Within a window the cap keeps that window's newest.
    let day = now.date_naive().pred_opt().unwrap().to_string();
    let in_day = |list: &[Value]| -> Vec<String> {
        list.iter()
            .filter(|a| a["createdAt"].as_str().unwrap().starts_with(&day))
            .map(|a| a["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let want = in_day(&all);
    assert!(want.len() > 10, "{}", want.len());
    let capped_day = activities(&api, &h, &q(&day, &day)).await;
    assert_eq!(
        ids(&capped_day),
        want[..10].iter().map(String::as_str).collect::<Vec<_>>()
    );
    h.emulator.set_activity_cap(None);
    assert_eq!(activities(&api, &h, "").await.len(), 100);

    // Set at construction too.
    let (h2, api2) = start(EmulatorOptions {
        window: WindowSemantics {
            cap: Some(5),
            ..WindowSemantics::default()
        },
        ..unlimited()
    })
    .await;
    assert_eq!(activities(&api2, &h2, "").await.len(), 5);
}

#[tokio::test]
async fn visibility_delay_hides_every_activity_until_it_is_old_enough() {
    let (h, api) = start(empty()).await;
    let org = &h.emulator.org_ids()[0];
    let now = h.emulator.now();
    let old = h.emulator.add_activity(
        org,
        json!({"type": "user_login"}),
        now - ChronoDuration::minutes(50),
        now - ChronoDuration::minutes(50),
    );
    let recent = h.emulator.add_activity(
        org,
        json!({"type": "user_logout"}),
        now - ChronoDuration::minutes(10),
        now - ChronoDuration::minutes(10),
    );
    assert_eq!(activities(&api, &h, "").await.len(), 2);
    h.emulator
        .set_visibility_delay(Duration::from_secs(40 * 60));
    assert_eq!(ids(&activities(&api, &h, "").await), [old.as_str()]);
    let until_now = q(
        "2000-01-01",
        &(now + ChronoDuration::hours(1))
            .format("%Y-%m-%dT%H:%M:%S.000Z")
            .to_string(),
    );
    assert_eq!(ids(&activities(&api, &h, &until_now).await), [old.as_str()]);
    let one = format!("{}/activities/{recent}", org_path(&h));
    assert_eq!(api.get(&one).await.status, 404);
    // 31 minutes later the recent one is 41 minutes old.
    h.emulator.set_clock_skew(ChronoDuration::minutes(31));
    assert_eq!(
        ids(&activities(&api, &h, &until_now).await),
        [recent.as_str(), old.as_str()]
    );
    assert_eq!(api.get(&one).await.status, 200);
}
