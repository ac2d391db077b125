//! Where each event goes: the `partition` template (Hive-style directories from the event's
//! organization, kind and time) and the plan of one batch's objects — events grouped by
//! partition, cut at `object_max_events` / `object_max_bytes`, each object named after the
//! first and last outbox seq it holds. The plan depends only on the events, so delivering the
//! same events again names the same objects (a redelivery rewrites, never duplicates).

use std::fmt::Write as _;

use crate::event::Event;
use crate::format::time::first_time_ms;

/// One piece of a parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    OrgId,
    Kind,
    Date,
    Year,
    Month,
    Day,
    Hour,
}

/// A parsed `partition` template.
#[derive(Debug, Clone)]
pub struct Template(Vec<Piece>);

impl Template {
    /// Parses `text`; the error says which placeholder or character is wrong.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                pieces.push(Piece::Text(rest[..open].to_string()));
            }
            let close = rest[open..]
                .find('}')
                .ok_or_else(|| "unclosed `{`".to_string())?;
            let name = &rest[open + 1..open + close];
            pieces.push(match name {
                "org_id" => Piece::OrgId,
                "kind" => Piece::Kind,
                "date" => Piece::Date,
                "year" => Piece::Year,
                "month" => Piece::Month,
                "day" => Piece::Day,
                "hour" => Piece::Hour,
                other => {
                    return Err(format!(
                        "unknown placeholder {{{other}}} (use org_id, kind, date, year, month, day, hour)"
                    ));
                }
            });
            rest = &rest[open + close + 1..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
        }
        for p in &pieces {
            if let Piece::Text(t) = p
                && (t.contains('}') || t.contains("..") || t.contains("//"))
            {
                return Err(format!("{t:?}: no `}}`, `..` or `//` outside placeholders"));
            }
        }
        if text.starts_with('/') || text.ends_with('/') {
            return Err("no leading or trailing `/`".to_string());
        }
        Ok(Template(pieces))
    }

    /// The partition directory of `event` (UTC time from `occurred_at`, else `observed_at`).
    pub fn render(&self, event: &Event) -> String {
        let ms = first_time_ms(&[Some(&event.occurred_at), Some(&event.observed_at)]);
        let t = chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default();
        let mut out = String::new();
        for p in &self.0 {
            let _ = match p {
                Piece::Text(s) => write!(out, "{s}"),
                Piece::OrgId => write!(out, "{}", path_safe(&event.org_id)),
                Piece::Kind => write!(out, "{}", event.kind.as_str()),
                Piece::Date => write!(out, "{}", t.format("%Y-%m-%d")),
                Piece::Year => write!(out, "{}", t.format("%Y")),
                Piece::Month => write!(out, "{}", t.format("%m")),
                Piece::Day => write!(out, "{}", t.format("%d")),
                Piece::Hour => write!(out, "{}", t.format("%H")),
            };
        }
        out
    }
}

/// `text` with anything but `[A-Za-z0-9._-]` replaced by `_` (an org id never makes a new
/// directory level or an odd key).
fn path_safe(text: &str) -> String {
    let s: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.chars().all(|c| c == '.') {
        "_".to_string()
    } else {
        s
    }
}

/// One object of a batch: its partition (a directory, or what groups Security Lake objects)
/// and the indexes (into the batch) of its events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned<K = String> {
    pub partition: K,
    pub events: Vec<usize>,
}

impl<K> Planned<K> {
    /// `<prefix>/<dir>/<first seq>-<last seq>.<ext>`, seqs zero-padded to 20 digits so names
    /// sort in outbox order.
    pub fn name_in(&self, batch: &[Event], prefix: &str, dir: &str, ext: &str) -> String {
        let first = self.events.first().map_or(0, |&i| batch[i].seq);
        let last = self.events.last().map_or(0, |&i| batch[i].seq);
        let mut name = String::new();
        if !prefix.is_empty() {
            name.push_str(prefix);
            name.push('/');
        }
        if !dir.is_empty() {
            name.push_str(dir);
            name.push('/');
        }
        let _ = write!(name, "{first:020}-{last:020}.{ext}");
        name
    }
}

impl Planned<String> {
    /// `<prefix>/<partition>/<first seq>-<last seq>.<ext>`.
    pub fn name(&self, batch: &[Event], prefix: &str, ext: &str) -> String {
        self.name_in(batch, prefix, &self.partition, ext)
    }
}

/// The objects of `batch`: grouped by the partition `key_and_size` gives each event (in order
/// of first appearance), each group cut into objects of at most `max_events` events and about
/// `max_bytes` encoded bytes (`key_and_size` also gives an event's encoded size; an object
/// holds at least one event). It is called once per event, in batch order.
pub fn plan<K: PartialEq + Clone>(
    batch: &[Event],
    max_events: usize,
    max_bytes: u64,
    mut key_and_size: impl FnMut(&Event) -> (K, u64),
) -> Vec<Planned<K>> {
    let mut groups: Vec<(K, Vec<(usize, u64)>)> = Vec::new();
    for (i, e) in batch.iter().enumerate() {
        let (p, size) = key_and_size(e);
        match groups.iter_mut().find(|(q, _)| *q == p) {
            Some((_, v)) => v.push((i, size)),
            None => groups.push((p, vec![(i, size)])),
        }
    }
    let mut out = Vec::new();
    for (partition, events) in groups {
        let mut current: Vec<usize> = Vec::new();
        let mut bytes = 0u64;
        for (i, s) in events {
            if !current.is_empty()
                && (current.len() >= max_events || bytes.saturating_add(s) > max_bytes)
            {
                out.push(Planned {
                    partition: partition.clone(),
                    events: std::mem::take(&mut current),
                });
                bytes = 0;
            }
            current.push(i);
            bytes = bytes.saturating_add(s);
        }
        if !current.is_empty() {
            out.push(Planned {
                partition,
                events: current,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventKind;

    fn ev(seq: i64, org: &str, at: &str) -> Event {
        Event {
            seq,
            event_id: format!("activity:{org}:{seq}"),
            kind: EventKind::Activity,
            org_id: org.to_string(),
            occurred_at: at.to_string(),
            observed_at: "2026-01-01T00:00:00Z".to_string(),
            payload: "{}".to_string(),
        }
    }

    #[test]
    fn the_default_template_is_hive_style_by_org_date_and_hour() {
        let t = Template::parse("org_id={org_id}/date={date}/hour={hour}").unwrap();
        let e = ev(1, "o-1", "2026-03-04T05:06:07.123Z");
        assert_eq!(t.render(&e), "org_id=o-1/date=2026-03-04/hour=05");
        let t = Template::parse("{kind}/{year}/{month}/{day}").unwrap();
        assert_eq!(t.render(&e), "activity/2026/03/04");
        let odd = ev(1, "a/../b c", "not a time");
        assert_eq!(
            Template::parse("{org_id}").unwrap().render(&odd),
            "a_.._b_c"
        );
    }

    #[test]
    fn bad_templates_say_what_is_wrong() {
        assert!(Template::parse("x={nope}").unwrap_err().contains("{nope}"));
        assert!(Template::parse("x={date").unwrap_err().contains("unclosed"));
        assert!(Template::parse("/x").is_err());
        assert!(Template::parse("a/../b").is_err());
    }

    #[test]
    fn plans_group_by_partition_cut_by_count_and_size_and_name_by_seq() {
        let batch: Vec<Event> = (1..=7)
            .map(|i| {
                let hour = if i % 2 == 0 { "01" } else { "02" };
                ev(i, "o", &format!("2026-01-01T{hour}:00:00Z"))
            })
            .collect();
        let t = Template::parse("h={hour}").unwrap();
        let p = plan(&batch, 2, u64::MAX, |e| (t.render(e), 10));
        let names: Vec<String> = p.iter().map(|o| o.name(&batch, "pre", "ndjson")).collect();
        assert_eq!(
            names,
            [
                "pre/h=02/00000000000000000001-00000000000000000003.ndjson",
                "pre/h=02/00000000000000000005-00000000000000000007.ndjson",
                "pre/h=01/00000000000000000002-00000000000000000004.ndjson",
                "pre/h=01/00000000000000000006-00000000000000000006.ndjson",
            ]
        );
        let by_size = plan(&batch, 100, 25, |e| (t.render(e), 10));
        assert!(by_size.iter().all(|o| o.events.len() <= 2));
        assert_eq!(by_size.iter().map(|o| o.events.len()).sum::<usize>(), 7);
        // An event bigger than the limit still gets an object of its own.
        assert_eq!(plan(&batch, 100, 1, |e| (t.render(e), 10)).len(), 7);
        // The same events plan the same objects.
        assert_eq!(plan(&batch, 2, u64::MAX, |e| (t.render(e), 10)), p);
    }
}
