//! When `run`'s sweep loop sweeps: the first sweep of a fresh state is one poll interval after
//! start, however the first poll and the loop's first look at the facts interleave.

use super::*;

/// The first poll writes the sweeps' baseline (`last_sweep_ms`) in `begin_cycle`. With the
/// facts already in memory that happens before the sweep loop's first look at them (with 50
/// orgs in one process it did for some orgs, by chance of the store's blocking reads): the loop
/// took the baseline for a finished sweep and put the first one an hour away, silently.
#[tokio::test(start_paused = true)]
async fn the_first_sweep_of_a_fresh_state_is_one_poll_interval_after_start() {
    let Rig {
        clock,
        api,
        poller,
        _dir,
    } = rig(chrono::Duration::zero(), true, sweeping());
    for minute in 0..30 {
        api.add(
            clock.now() - chrono::Duration::minutes(minute),
            chrono::Duration::zero(),
            &format!("a{minute}"),
        );
    }
    let (org, metrics) = (poller.org.clone(), poller.metrics.clone());
    let swept = move || {
        metrics
            .window
            .sweep_last_success
            .with_label_values(&[&org])
            .get()
    };
    // The facts are loaded before the loops start (the ordering that lost the first sweep).
    let loaded = poller.learned.facts.get(&poller.store, &poller.org).await;
    assert_eq!(loaded.unwrap().last_sweep_ms, None, "a fresh state");
    let token = CancellationToken::new();
    let task = tokio::spawn(poller.run(token.clone()));
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(swept(), 0.0, "not before a poll interval");
    tokio::time::sleep(Duration::from_secs(35)).await;
    assert!(
        swept() > 0.0,
        "the first sweep is due one poll interval (60 s) after start, not reconcile_interval"
    );
    token.cancel();
    task.await.unwrap();
}
