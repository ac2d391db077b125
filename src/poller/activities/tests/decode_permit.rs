//! The decode permit shared by every organization's poller (issue 17): two orgs' reads never
//! overlap, and a read that fails or is cancelled gives the permit back.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::poller::decode_permit::DecodePermit;

/// A source whose every read takes `delay` (then fails when `fail`), counting reads in flight
/// across all orgs that share `in_flight`.
struct SlowSource {
    delay: Duration,
    fail: bool,
    in_flight: Arc<AtomicUsize>,
    max_in_flight: Arc<AtomicUsize>,
}

#[async_trait]
impl ActivitySource for SlowSource {
    async fn fetch(&self, _org: &str, _q: WindowQuery) -> Result<Fetched, FetchError> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        // Decremented however the read ends, a cancel included.
        struct Leave<'a>(&'a AtomicUsize);
        impl Drop for Leave<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let _leave = Leave(&self.in_flight);
        tokio::time::sleep(self.delay).await;
        if self.fail {
            return Err(FetchError::Api {
                kind: "timeout",
                message: "no answer within the request timeout".into(),
            });
        }
        Ok(Fetched::default())
    }
}

struct Orgs {
    a: ActivityPoller,
    b: ActivityPoller,
    permit: Arc<DecodePermit>,
    max_in_flight: Arc<AtomicUsize>,
    _dir: tempfile::TempDir,
}

/// Two orgs sharing one permit and one store; org a's reads take `a_delay` (and fail when
/// `a_fails`), org b's take 10 s.
fn orgs(a_delay: Duration, a_fails: bool) -> Orgs {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("state.db")).unwrap();
    let (wake, _) = watch::channel(0);
    let metrics = Arc::new(Metrics::new());
    let permit = Arc::new(DecodePermit::default());
    let (in_flight, max_in_flight) = (Arc::default(), Arc::<AtomicUsize>::default());
    let poller = |org: &str, delay, fail| ActivityPoller {
        org: org.into(),
        source: Arc::new(SlowSource {
            delay,
            fail,
            in_flight: Arc::clone(&in_flight),
            max_in_flight: Arc::clone(&max_in_flight),
        }),
        store: store.clone(),
        settings: settings(),
        metrics: metrics.clone(),
        health: Arc::new(Health::default()),
        wake: wake.clone(),
        clock: Arc::new(ManualClock(Mutex::new(start()), Mutex::new(0))),
        steady_anchor: Mutex::new(None),
        learned: Arc::new(Learned::default()),
        decode: permit.clone(),
    };
    Orgs {
        a: poller("org-a", a_delay, a_fails),
        b: poller("org-b", Duration::from_secs(10), false),
        permit,
        max_in_flight,
        _dir: dir,
    }
}

const MODE: ReadMode = ReadMode {
    day: false,
    splittable: false,
    purpose: Purpose::Poll,
};

/// One read of the last minute.
async fn read(p: &ActivityPoller) -> Result<window::WindowRead, PollError> {
    let to = start().timestamp_millis();
    p.read_window(to - 60_000, to, None, MODE, &WindowFacts::default())
        .await
}

fn waited(p: &ActivityPoller) -> f64 {
    p.metrics
        .decode_permit_wait
        .with_label_values(&[&p.org])
        .get()
}

#[tokio::test(start_paused = true)]
async fn two_orgs_reads_do_not_overlap() {
    let o = orgs(Duration::from_secs(10), false);
    let t0 = tokio::time::Instant::now();
    let (a, b) = tokio::join!(read(&o.a), read(&o.b));
    a.unwrap();
    b.unwrap();
    assert_eq!(
        o.max_in_flight.load(Ordering::SeqCst),
        1,
        "one read at a time"
    );
    assert_eq!(t0.elapsed(), Duration::from_secs(20), "one after the other");
    // The second waited for the first's whole read, and the metric says so.
    assert_eq!(waited(&o.a) + waited(&o.b), 10.0);
    assert!(o.permit.is_free());
}

#[tokio::test(start_paused = true)]
async fn a_failing_read_releases_the_permit() {
    let o = orgs(Duration::from_secs(30), true);
    let (a, b) = tokio::join!(read(&o.a), async {
        // Org b asks while org a holds the permit.
        tokio::time::sleep(Duration::from_secs(1)).await;
        read(&o.b).await
    });
    assert_eq!(a.unwrap_err().kind(), "timeout");
    b.expect("org b reads once org a's read failed");
    assert_eq!(o.max_in_flight.load(Ordering::SeqCst), 1);
    assert_eq!(waited(&o.b), 29.0);
    assert!(o.permit.is_free());
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_read_releases_the_permit() {
    // Org a's read hangs; its poll is dropped (shutdown, or a caller's deadline) after 60 s.
    let o = orgs(Duration::from_secs(24 * 3600), false);
    let t0 = tokio::time::Instant::now();
    let (a, b) = tokio::join!(
        tokio::time::timeout(Duration::from_secs(60), read(&o.a)),
        async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            read(&o.b).await
        }
    );
    assert!(a.is_err(), "org a's read was cancelled");
    b.expect("org b reads once org a's read is gone");
    assert_eq!(t0.elapsed(), Duration::from_secs(70));
    assert!(o.permit.is_free());
}
