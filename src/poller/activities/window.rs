//! Reading one activities window, for polls and sweeps alike: fetch (always streamed, so an
//! answer of any size is stored in bounded chunks while it is read), store every activity
//! (dedupe makes re-reads safe), check the answer against the bounds asked and learn from
//! violations, and check an answer whose size looks like a silent cap by fetching the window's
//! two halves.

use chrono::{DateTime, Utc};

use super::check::{AnswerCheck, Diagnosis, pad_for};
use super::facts::{WindowFacts, round, suspicious};
use super::{ActivityPoller, PollError};
use crate::config::DateFormat;
use crate::event::{Event, EventKind};
use crate::poller::{Chunk, Fetched, FetchedActivity, StreamTo, WindowQuery};
use crate::store::NewEvent;

/// Activities per chunk of a streamed answer: a few MiB in flight at most.
const STREAM_BATCH: usize = 2_000;

/// The ids of one answer, hashed (`id_key`): 8 bytes each however long the id, kept in a
/// plain vector and sorted once the answer is complete (`seal`). A cap check compares its parts
/// with it while they stream, so the parts keep no ids at all. (A `HashMap<u64, i64>` of a
/// million-activity answer peaked at 26.7 MiB while it rehashed — heaptrack, issue 17 — a
/// vector of the same ids is 8 MiB and grows by `mremap`, without a copy.)
#[derive(Debug, Default)]
pub(super) struct AnswerIds {
    keys: Vec<u64>,
}

impl AnswerIds {
    fn push(&mut self, key: u64) {
        self.keys.push(key);
    }

    /// Sorted and deduplicated, ready for `contains`.
    fn seal(mut self) -> Self {
        self.keys.sort_unstable();
        self.keys.dedup();
        self.keys.shrink_to_fit();
        self
    }

    /// Whether the (sealed) answer held the id with this key.
    pub(super) fn contains(&self, key: u64) -> bool {
        self.keys.binary_search(&key).is_ok()
    }

    #[cfg(test)]
    pub(super) fn of<'a>(ids: impl IntoIterator<Item = &'a str>) -> Self {
        let mut a = Self::default();
        for id in ids {
            a.push(id_key(id));
        }
        a.seal()
    }
}

/// An activity id as an `AnswerIds` key (SipHash with fixed keys: the same in every run).
pub(super) fn id_key(id: &str) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault};
    BuildHasherDefault::<std::hash::DefaultHasher>::default().hash_one(id)
}

/// A cap check's part is compared with the answer it checks while it streams: an activity the
/// answer did not hold, created before `visible_before` (ms), is evidence of a cap.
#[derive(Clone, Copy)]
pub(super) struct Against<'a> {
    pub answer: &'a AnswerIds,
    pub visible_before: i64,
}

/// What a streamed answer has shown so far.
struct Answer<'a> {
    /// The date format of the request the chunks came from.
    format: Option<DateFormat>,
    check: AnswerCheck,
    /// Collected only where a cap check may need them.
    ids: Option<AnswerIds>,
    /// A cap check's part: the answer it checks.
    against: Option<Against<'a>>,
    /// Activities of this answer that `against` did not hold (each occurrence counted).
    missing: usize,
    read: WindowRead,
}

impl Answer<'_> {
    fn observe(&mut self, activities: &[FetchedActivity]) {
        for a in activities {
            let created = a.created_at.timestamp_millis();
            self.check.observe(created);
            if let Some(ids) = self.ids.as_mut() {
                ids.push(id_key(&a.id));
            }
            if let Some(against) = self.against
                && created < against.visible_before
                && !against.answer.contains(id_key(&a.id))
            {
                self.missing += 1;
            }
        }
    }
}

/// One answer read and stored: what it held, its check, the ids kept for a cap check (sealed)
/// and, for a cap check's part, how many of its activities the checked answer left out.
pub(super) struct Fetch {
    pub read: WindowRead,
    pub check: AnswerCheck,
    pub ids: Option<AnswerIds>,
    pub missing: usize,
}

/// Why a window is read (the `purpose` metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Purpose {
    Poll,
    Sweep,
    CapCheck,
}

impl Purpose {
    fn label(self) -> &'static str {
        match self {
            Purpose::Poll => "poll",
            Purpose::Sweep => "sweep",
            Purpose::CapCheck => "cap_check",
        }
    }
}

/// What reading one window did.
#[derive(Debug, Default)]
pub(super) struct WindowRead {
    /// Activities (and quarantined elements) in the answer.
    pub count: usize,
    pub fetched: u64,
    pub new: u64,
    pub duplicates: u64,
    pub quarantined: u64,
    /// `(createdAt ms, event id)` of each activity this read stored for the first time.
    pub fresh: Vec<(i64, String)>,
    pub server_date: Option<DateTime<Utc>>,
    pub body_bytes: usize,
    /// Requests made (the window, plus a cap check's halves).
    pub requests: u32,
    /// The answer hit a (learned or just detected) silent cap.
    pub capped: bool,
    /// The date format of the request that answered.
    pub format: Option<DateFormat>,
}

/// How a window may be read.
#[derive(Debug, Clone, Copy)]
pub(super) struct ReadMode {
    /// Whole days: streamed, never split.
    pub day: bool,
    /// The window can be split further (a cap check is possible).
    pub splittable: bool,
    pub purpose: Purpose,
}

impl ActivityPoller {
    /// Fetches and stores the window `[from, to]` (widened by the learned pad), checks the
    /// answer, and checks a suspicious answer size for a silent cap.
    ///
    /// # Errors
    /// `PollError::Fetch` from the source (`TooLarge`: split the window), or
    /// `PollError::State` for a store failure.
    pub(super) async fn read_window(
        &self,
        from: i64,
        to: i64,
        max_bytes: Option<usize>,
        mode: ReadMode,
        facts: &WindowFacts,
    ) -> Result<WindowRead, PollError> {
        let q = WindowQuery {
            from: at(from - facts.pad_ms),
            to: at(to + facts.pad_ms),
            max_bytes: if mode.day { None } else { max_bytes },
            background: mode.purpose != Purpose::Poll,
            stream: None,
        };
        let Fetch {
            mut read,
            check,
            ids,
            ..
        } = self.fetch_and_store(q, mode, facts, None).await?;
        self.learn_from(&check, mode.purpose);
        if read.format == Some(DateFormat::Date)
            && !facts.to_date_whole_day
            && check.reaches_last_day()
        {
            let f = self.learned.facts.update(|f| f.to_date_whole_day = true);
            tracing::info!(org = %self.org, "a date-only to_date covers its whole day: day windows ask for their last day only from now on");
            self.publish_facts(&f);
        }
        let facts_now = self.learned.facts.update(|_| {});
        if let Some(cap) = facts_now.cap.filter(|c| read.count > *c) {
            // More than the cap: it was no cap (or it was raised): forget it.
            let f = self.learned.facts.update(|f| f.cap = None);
            tracing::warn!(org = %self.org, cap, count = read.count, "an answer held more activities than the silent cap learned earlier: forgetting that cap");
            self.publish_facts(&f);
        } else if let Some(cap) = facts_now.cap.filter(|c| read.count == *c) {
            read.capped = true;
            self.capped(cap, mode.splittable, from, to);
        } else if suspicious(read.count, &facts_now) {
            // An answer in whole days (day mode, or the first one after stepping down to
            // date-only bounds) cannot be checked by reading parts: they cover the same days.
            let whole_days = mode.day || read.format == Some(DateFormat::Date);
            if !mode.splittable || whole_days {
                // Only a repeat of the largest answer that is also a round number is called
                // out (one round answer is chance) — and not when it is the same activities
                // read again (the same span), e.g. the same day asked twice.
                let previous = *self
                    .learned
                    .largest
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                let repeat =
                    previous.is_some_and(|(n, span)| n == read.count && Some(span) != check.span());
                if read.count == facts_now.max_answer && round(read.count) && repeat {
                    self.unsplittable_suspicion(read.count, from, to);
                }
            } else if let Some(ids) = ids {
                // (Without the answer's ids there is nothing to compare the parts with.)
                let span = check.span().unwrap_or((from, to));
                self.check_for_cap(from, to, span, mode, &facts_now, &mut read, ids)
                    .await?;
            }
        }
        if read.count >= facts_now.max_answer
            && let Some(span) = check.span()
        {
            *self
                .learned
                .largest
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = Some((read.count, span));
        }
        self.learned
            .facts
            .update(|f| f.max_answer = f.max_answer.max(read.count));
        Ok(read)
    }

    /// One request, streamed into the store in bounded chunks while its body is read (memory
    /// is a few chunks whatever the answer's size), checked against the bounds of the date
    /// format that answered. The answer's ids (hashed) are kept only where a cap check may
    /// need them: a splittable window's answer of a suspicious size. A cap check's part is
    /// compared with the answer it checks (`against`) while it streams.
    pub(super) async fn fetch_and_store(
        &self,
        mut q: WindowQuery,
        mode: ReadMode,
        facts: &WindowFacts,
        against: Option<Against<'_>>,
    ) -> Result<Fetch, PollError> {
        self.metrics
            .window
            .requests
            .with_label_values(&[&self.org, mode.purpose.label()])
            .inc();
        let assumed = self.source.date_format();
        let asked_at = self.clock.now().timestamp_millis();
        let (from, to) = (q.from, q.to);
        let check_for = |format: Option<DateFormat>| {
            AnswerCheck::new(
                wire_bounds(format, from, to),
                facts.pad_ms,
                facts.whole_days,
            )
            .asked_at(asked_at)
        };
        let may_check_cap = mode.purpose != Purpose::CapCheck && mode.splittable && !mode.day;
        let fresh = mode.purpose != Purpose::Poll;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Chunk>(2);
        q.stream = Some(StreamTo {
            batch: STREAM_BATCH,
            tx,
        });
        // The chunks carry the date format that answered: a request that stepped down has
        // other bounds, and the check follows them.
        let mut answer = Answer {
            format: assumed,
            check: check_for(assumed),
            ids: may_check_cap.then(AnswerIds::default),
            against,
            missing: 0,
            read: WindowRead::default(),
        };
        let consume = async {
            while let Some(chunk) = rx.recv().await {
                if chunk.format.is_some() && chunk.format != answer.format {
                    answer.format = chunk.format;
                    answer.check = check_for(chunk.format);
                }
                answer.observe(&chunk.activities);
                if let Err(e) = self.store_chunk(chunk, &mut answer.read, fresh).await {
                    // Closed, the channel fails the fetch's next send and the fetch ends.
                    // Left open, a full channel would block the fetch (and this join) forever:
                    // a store failure mid-stream (disk full) hung the poll instead of failing
                    // it (issue 17's benchmark found it).
                    rx.close();
                    return Err(e);
                }
            }
            Ok::<_, anyhow::Error>(())
        };
        // One answer read at a time across the orgs of a key (issue 17); dropped on every way
        // out, so a failed, timed-out or cancelled read frees it.
        let waited = self
            .metrics
            .decode_permit_wait
            .with_label_values(&[&self.org]);
        let permit = self.decode.acquire(&waited).await;
        // `q` (and with it the sender) moves into the fetch, so the channel closes when the
        // fetch ends and the consumer with it.
        let (fetched, consumed) = tokio::join!(self.source.fetch(&self.org, q), consume);
        drop(permit);
        // A store failure first: the fetch only stopped because of it.
        consumed?;
        let fetched: Fetched = fetched?;
        if fetched.format != answer.format {
            // Stepped down with nothing streamed in the new format (an empty answer).
            answer.format = fetched.format;
            answer.check = check_for(fetched.format);
        }
        // A source that could not stream handed the answer back whole.
        let rest = Chunk {
            activities: fetched.activities,
            quarantined: fetched.quarantined,
            format: fetched.format,
        };
        answer.observe(&rest.activities);
        self.store_chunk(rest, &mut answer.read, fresh).await?;
        let Answer {
            check,
            ids,
            read,
            missing,
            ..
        } = answer;
        let wants_ids = suspicious(fetched.count, facts);
        let read = WindowRead {
            count: fetched.count,
            server_date: fetched.server_date,
            body_bytes: fetched.body_bytes,
            requests: 1,
            format: fetched.format,
            ..read
        };
        Ok(Fetch {
            read,
            check,
            ids: ids.filter(|_| wants_ids).map(AnswerIds::seal),
            missing,
        })
    }

    /// Stores one chunk (sorted by createdAt), counts it and wakes the sinks.
    /// `fresh`: collect the `(createdAt, event id)` of the new ones in `read.fresh` (sweeps).
    async fn store_chunk(
        &self,
        chunk: Chunk,
        read: &mut WindowRead,
        fresh: bool,
    ) -> anyhow::Result<()> {
        let Chunk {
            mut activities,
            quarantined,
            ..
        } = chunk;
        if activities.is_empty() && quarantined.is_empty() {
            return Ok(());
        }
        activities.sort_unstable_by(|a, b| {
            a.created_at
                .cmp(&b.created_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        let fetched = activities.len() as u64;
        let events: Vec<NewEvent> = activities
            .into_iter()
            .map(|a: FetchedActivity| NewEvent {
                occurred_ms: a.created_at.timestamp_millis(),
                event_id: Event::activity_id(&self.org, &a.id),
                kind: EventKind::Activity,
                org_id: self.org.clone(),
                occurred_at: a.created_at_raw,
                payload: a.raw,
            })
            .collect();
        let (fresh, stats) = self
            .store
            .insert_collect(&self.org, events, quarantined, fresh)
            .await?;
        // Counted once per element kept: overlaps and sweeps read a kept one again.
        for reason in &stats.quarantined_new_reasons {
            self.metrics
                .activities_quarantined
                .with_label_values(&[&self.org, reason])
                .inc();
        }
        if stats.quarantined_new() > 0 {
            let reasons = &stats.quarantined_new_reasons;
            tracing::warn!(org = %self.org, count = stats.quarantined_new(), ?reasons, "activities without a usable id or createdAt were quarantined in the state DB (not exported); see `state show`");
        }
        let m = &self.metrics;
        m.activities_fetched
            .with_label_values(&[&self.org])
            .inc_by(fetched);
        m.activities_new
            .with_label_values(&[&self.org])
            .inc_by(stats.new);
        m.activities_duplicates
            .with_label_values(&[&self.org])
            .inc_by(stats.duplicates);
        if stats.new > 0 {
            self.wake.send_replace(stats.max_seq);
        }
        read.fetched += fetched;
        read.new += stats.new;
        read.duplicates += stats.duplicates;
        read.quarantined += stats.quarantined_new();
        read.fresh.extend(fresh);
        Ok(())
    }

    /// Counts violations and, the first time a new kind shows, says what it likely means and
    /// switches to the behaviour that is safe for it; asks for a sweep to recover what the
    /// earlier windows may have missed.
    pub(super) fn learn_from(&self, check: &AnswerCheck, purpose: Purpose) {
        if check.violations() == 0 {
            return;
        }
        let v = &self.metrics.window.violations;
        v.with_label_values(&[&self.org, "before"])
            .inc_by(check.before);
        v.with_label_values(&[&self.org, "after"])
            .inc_by(check.after);
        let before = self.learned.facts.update(|_| {});
        let diagnosis = check.diagnose().unwrap_or(Diagnosis::Other);
        let after = self.learned.facts.update(|f| {
            f.violations += check.violations();
            match diagnosis {
                Diagnosis::WholeDays => f.whole_days = true,
                Diagnosis::Shift(s) => f.pad_ms = f.pad_ms.max(pad_for(s)),
                Diagnosis::Other => {}
            }
        });
        let hours = |ms: i64| ms as f64 / 3_600_000.0;
        let (what, action) = match diagnosis {
            Diagnosis::WholeDays => (
                "the API appears to filter by whole UTC days (it ignores the time part)"
                    .to_string(),
                "windows are whole days from now on (day mode)".to_string(),
            ),
            Diagnosis::Shift(s) => (
                format!(
                    "the API read the window shifted by about {:+.1} h: it likely reads zone-less dates in another time zone",
                    hours(s)
                ),
                format!(
                    "every window is widened by {:.0} h on each side from now on",
                    hours(after.pad_ms)
                ),
            ),
            Diagnosis::Other => (
                "the API returned activities far outside the window (it may ignore the bounds)"
                    .to_string(),
                "they are stored; sweeps re-check the recent past".to_string(),
            ),
        };
        let changed = (after.whole_days, after.pad_ms) != (before.whole_days, before.pad_ms);
        if changed || before.violations == 0 {
            tracing::warn!(
                org = %self.org,
                purpose = purpose.label(),
                before = check.before,
                after = check.after,
                max_before_s = check.max_before / 1000,
                max_after_s = check.max_after / 1000,
                "activities answered outside the bounds asked: {what}; {action}; a sweep re-reads the recent past to recover anything missed"
            );
            self.learned.request_sweep();
        }
        self.publish_facts(&after);
    }
    /// Exports the learned facts as gauges (and creates the org's counters at zero, so an
    /// alert on their increase sees the first one).
    pub(super) fn publish_facts(&self, f: &WindowFacts) {
        let w = &self.metrics.window;
        let org = self.org.as_str();
        w.recovered.with_label_values(&[org]);
        for side in ["before", "after"] {
            w.violations.with_label_values(&[org, side]);
        }
        for splittable in ["true", "false"] {
            w.capped.with_label_values(&[org, splittable]);
        }
        for purpose in [Purpose::Poll, Purpose::Sweep, Purpose::CapCheck] {
            w.requests.with_label_values(&[org, purpose.label()]);
        }
        w.cap
            .with_label_values(&[&self.org])
            .set(f.cap.unwrap_or(0) as i64);
        w.day_mode
            .with_label_values(&[&self.org])
            .set(i64::from(self.day_mode(f)));
        w.pad_seconds
            .with_label_values(&[&self.org])
            .set(f.pad_ms as f64 / 1000.0);
        w.effective_overlap
            .with_label_values(&[&self.org])
            .set(self.overlap_ms(f) as f64 / 1000.0);
    }

    /// Day mode: the API takes only date-only bounds, or filters by whole days.
    pub(super) fn day_mode(&self, f: &WindowFacts) -> bool {
        f.whole_days || self.source.date_format() == Some(DateFormat::Date)
    }
}

/// The inclusive UTC range an answer may cover when the server reads the bounds sent as UTC
/// (`api::dates::window_bounds`); exactly `[from, to]` for a source without date formats.
pub(super) fn wire_bounds(
    format: Option<DateFormat>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> (DateTime<Utc>, DateTime<Utc>) {
    match format {
        Some(f) => crate::api::dates::window_bounds(f, from, to),
        None => (from, to),
    }
}

pub(super) fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn activity(id: &str, created_ms: i64) -> FetchedActivity {
        let created_at = at(created_ms);
        FetchedActivity {
            id: id.to_owned(),
            created_at,
            created_at_raw: created_at.to_rfc3339(),
            raw: "{}".into(),
        }
    }

    fn answer(against: Option<Against<'_>>, collect: bool) -> Answer<'_> {
        Answer {
            format: None,
            check: AnswerCheck::new((at(0), at(1_000_000)), 0, false),
            ids: collect.then(AnswerIds::default),
            against,
            missing: 0,
            read: WindowRead::default(),
        }
    }

    #[test]
    fn a_sealed_answer_knows_exactly_the_ids_it_held_once_each() {
        let mut a = answer(None, true);
        a.observe(&[activity("b", 2), activity("a", 1), activity("b", 2)]);
        a.observe(&[activity("c", 3)]);
        let ids = a.ids.take().unwrap().seal();
        assert_eq!(ids.keys.len(), 3, "a repeated id is kept once");
        for id in ["a", "b", "c"] {
            assert!(ids.contains(id_key(id)), "{id}");
        }
        assert!(!ids.contains(id_key("d")));
        assert!(!AnswerIds::default().seal().contains(id_key("a")));
    }

    #[test]
    fn a_part_counts_the_visible_activities_its_answer_left_out_and_keeps_no_ids() {
        let held = AnswerIds::of(["a", "b"]);
        let mut part = answer(
            Some(Against {
                answer: &held,
                visible_before: 100,
            }),
            false,
        );
        part.observe(&[
            activity("a", 10),  // held
            activity("x", 20),  // left out: evidence
            activity("y", 100), // left out but may have become visible since: no evidence
        ]);
        part.observe(&[activity("b", 30), activity("z", 99)]);
        assert_eq!(part.missing, 2);
        assert!(part.ids.is_none());
        assert_eq!(part.check.span(), Some((10, 100)));
    }
}
