//! A batch's encoded records back to back in one reused buffer (`ends[i]` ends record `i`) and
//! their cut into request bodies of at most N bytes: the one home of "encode each event, then
//! split the batch by size" for the sinks that send several records per request (webhook,
//! elasticsearch, azure_logs_ingestion).

use std::ops::Range;

/// The records of one batch. `clear`, then per event append to `buf()` and call `end()`.
#[derive(Debug, Default)]
pub struct Records {
    buf: Vec<u8>,
    ends: Vec<usize>,
}

/// How a body frames its records, in bytes: `overhead + per_record × n` besides the records
/// (a JSON array of n: `[`, `]` and n − 1 commas = 1 + n; NDJSON: n newlines).
#[derive(Debug, Clone, Copy)]
pub struct Framing {
    /// Bytes besides the records and their separators.
    pub overhead: usize,
    /// Bytes per record besides its own (`,` or `\n`).
    pub per_record: usize,
}

impl Framing {
    pub const JSON_ARRAY: Framing = Framing {
        overhead: 1,
        per_record: 1,
    };
    pub const NDJSON: Framing = Framing {
        overhead: 0,
        per_record: 1,
    };
    /// Records that carry their own line ends (Elasticsearch action + source pairs).
    pub const CONCATENATED: Framing = Framing {
        overhead: 0,
        per_record: 0,
    };
}

impl Records {
    pub fn with_capacity(bytes: usize) -> Records {
        Records {
            buf: Vec::with_capacity(bytes),
            ends: Vec::new(),
        }
    }

    pub fn clear(&mut self) {
        self.buf.clear();
        self.ends.clear();
    }

    /// Where the next record is appended; `end` closes it.
    pub fn buf(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Closes the record appended since the last `end`.
    pub fn end(&mut self) {
        self.ends.push(self.buf.len());
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    fn start(&self, i: usize) -> usize {
        if i == 0 { 0 } else { self.ends[i - 1] }
    }

    /// Record `i`.
    pub fn record(&self, i: usize) -> &[u8] {
        &self.buf[self.start(i)..self.ends[i]]
    }

    /// The records of `range` back to back, as one slice.
    pub fn span(&self, range: Range<usize>) -> &[u8] {
        if range.is_empty() {
            return &[];
        }
        &self.buf[self.start(range.start)..self.ends[range.end - 1]]
    }

    /// The size of a body holding `range` framed as `framing`.
    pub fn body_len(&self, range: Range<usize>, framing: Framing) -> usize {
        self.span(range.clone()).len() + framing.overhead + framing.per_record * range.len()
    }

    /// Consecutive ranges covering every record, each of whose bodies stays within
    /// `max_bytes`, except a record too big for any body alone: it forms a range of its own
    /// (check with `body_len`: a sink sends it anyway or sets it apart).
    pub fn chunks(&self, max_bytes: usize, framing: Framing) -> Vec<Range<usize>> {
        let mut chunks = Vec::new();
        let mut from = 0;
        for i in 0..self.len() {
            if i > from && self.body_len(from..i + 1, framing) > max_bytes {
                chunks.push(from..i);
                from = i;
            }
        }
        if from < self.len() {
            chunks.push(from..self.len());
        }
        chunks
    }

    /// A body of `range` as a JSON array (`[r1,r2,…]`).
    pub fn json_array(&self, range: Range<usize>) -> Vec<u8> {
        let mut body = Vec::with_capacity(self.body_len(range.clone(), Framing::JSON_ARRAY));
        body.push(b'[');
        for i in range.clone() {
            if i > range.start {
                body.push(b',');
            }
            body.extend_from_slice(self.record(i));
        }
        body.push(b']');
        body
    }

    /// A body of `range` as NDJSON (each record and a newline).
    pub fn ndjson(&self, range: Range<usize>) -> Vec<u8> {
        let mut body = Vec::with_capacity(self.body_len(range.clone(), Framing::NDJSON));
        for i in range {
            body.extend_from_slice(self.record(i));
            body.push(b'\n');
        }
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(sizes: &[usize]) -> Records {
        let mut r = Records::default();
        for (n, &size) in sizes.iter().enumerate() {
            r.buf().extend(std::iter::repeat_n(b'a' + n as u8, size));
            r.end();
        }
        r
    }

    #[test]
    fn chunks_cover_every_record_once_within_the_limit_and_lone_giants_go_alone() {
        let r = records(&[3, 3, 3, 20, 3, 3]);
        // JSON array: [aaa,bbb] is 9 bytes; 10 fits two of 3 (9) but not three (13).
        let chunks = r.chunks(10, Framing::JSON_ARRAY);
        assert_eq!(chunks, vec![0..2, 2..3, 3..4, 4..6]);
        for c in &chunks {
            let len = r.body_len(c.clone(), Framing::JSON_ARRAY);
            assert!(len <= 10 || c.len() == 1, "{c:?}: {len}");
            assert_eq!(r.json_array(c.clone()).len(), len);
        }
        assert!(
            r.body_len(3..4, Framing::JSON_ARRAY) > 10,
            "the giant alone"
        );
        let ndjson = r.chunks(8, Framing::NDJSON);
        assert_eq!(ndjson, vec![0..2, 2..3, 3..4, 4..6]);
        assert_eq!(r.ndjson(0..2), b"aaa\nbbb\n");
        assert_eq!(r.span(1..3), b"bbbccc");
        assert_eq!(r.chunks(100, Framing::CONCATENATED), vec![0..6]);
    }

    #[test]
    fn empty_batches_have_no_chunks_and_reuse_keeps_no_old_record() {
        let mut r = records(&[4, 4]);
        r.clear();
        assert!(r.is_empty());
        assert!(r.chunks(10, Framing::NDJSON).is_empty());
        r.buf().extend_from_slice(b"x");
        r.end();
        assert_eq!(r.json_array(0..1), b"[x]");
    }
}
