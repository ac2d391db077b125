//! The byte side of envelope decoding: a body read from any `io::Read` into a buffer that
//! keeps only the value being read, a scanner that finds where a JSON value ends (strings
//! skipped with `memchr`, brackets counted), and positions (line, column) counted as
//! `serde_json` counts them. The scanner only finds extents; `serde_json::from_slice` then
//! validates every extent, so what is accepted is exactly what serde_json accepts, at slice
//! speed instead of its byte-at-a-time `io::Read` path (issue 17: that path and the byte-by-byte
//! copy into each `RawValue` were a quarter of a 1 M backfill's CPU).

use std::fmt;
use std::io::{self, Read};

use serde_json::error::Category;

/// Bytes read from the source at a time.
const READ_SIZE: usize = 64 * 1024;
/// Bytes past a value's scanned end that serde_json may need to see where it really fails.
const LOOK_AHEAD: usize = 16;

/// A decode failure worded and placed as `serde_json` words and places its own.
#[derive(Debug)]
pub(crate) struct DecodeError {
    pub category: Category,
    /// The message without its position.
    pub message: String,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            f.write_str(&self.message)
        } else {
            write!(
                f,
                "{} at line {} column {}",
                self.message, self.line, self.column
            )
        }
    }
}

impl std::error::Error for DecodeError {}

/// A body being read: `buf[..len]` holds the bytes from absolute offset `dropped` on.
pub(crate) struct Body<R> {
    src: R,
    /// Initialized storage; only `..len` is body.
    buf: Vec<u8>,
    len: usize,
    /// Absolute offset of the next byte to read.
    pub pos: usize,
    eof: bool,
    /// Bytes dropped from the front of `buf`, the newlines among them, and the absolute
    /// offset where the line holding the first kept byte starts.
    dropped: usize,
    dropped_lines: usize,
    line_start: usize,
}

impl<R: Read> Body<R> {
    pub fn new(src: R) -> Self {
        Body {
            src,
            buf: Vec::new(),
            len: 0,
            pos: 0,
            eof: false,
            dropped: 0,
            dropped_lines: 0,
            line_start: 0,
        }
    }

    /// Absolute offset one past the last byte read so far.
    fn end(&self) -> usize {
        self.dropped + self.len
    }

    /// The byte at absolute offset `at`, which must have been read.
    fn at(&self, at: usize) -> u8 {
        self.buf[at - self.dropped]
    }

    /// Bytes `from..to` (absolute), all read.
    pub fn slice(&self, from: usize, to: usize) -> &[u8] {
        &self.buf[from - self.dropped..to - self.dropped]
    }

    /// Reads more, keeping bytes from absolute offset `keep` on. False at the end of the body.
    fn fill(&mut self, keep: usize) -> Result<bool, DecodeError> {
        if self.eof {
            return Ok(false);
        }
        let cut = keep.min(self.pos) - self.dropped;
        if cut >= READ_SIZE && cut * 2 >= self.len {
            let gone = &self.buf[..cut];
            self.dropped_lines += memchr::memchr_iter(b'\n', gone).count();
            if let Some(nl) = memchr::memrchr(b'\n', gone) {
                self.line_start = self.dropped + nl + 1;
            }
            self.buf.copy_within(cut..self.len, 0);
            self.len -= cut;
            self.dropped += cut;
        }
        if self.buf.len() - self.len < READ_SIZE / 2 {
            // Grown (and zeroed) only here, so small reads cost no more than their bytes.
            self.buf.resize(self.len + READ_SIZE, 0);
        }
        let n = loop {
            match self.src.read(&mut self.buf[self.len..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(DecodeError {
                        category: Category::Io,
                        message: e.to_string(),
                        line: 0,
                        column: 0,
                    });
                }
            }
        };
        self.len += n;
        self.eof = n == 0;
        Ok(n > 0)
    }

    /// Skips whitespace; the next byte, not consumed, or `None` at the end of the body.
    pub fn peek(&mut self) -> Result<Option<u8>, DecodeError> {
        loop {
            while self.pos < self.end() {
                match self.at(self.pos) {
                    b' ' | b'\n' | b'\t' | b'\r' => self.pos += 1,
                    b => return Ok(Some(b)),
                }
            }
            if !self.fill(self.pos)? {
                return Ok(None);
            }
        }
    }

    /// `serde_json`'s position of absolute offset `at` (exclusive: the column of the byte
    /// before it, 1-based), as its `position_of_index` counts.
    fn position(&self, at: usize) -> (usize, usize) {
        let head = &self.buf[..at.saturating_sub(self.dropped).min(self.len)];
        let line = self.dropped_lines + memchr::memchr_iter(b'\n', head).count() + 1;
        let start =
            memchr::memrchr(b'\n', head).map_or(self.line_start, |nl| self.dropped + nl + 1);
        (line, at.saturating_sub(start))
    }

    /// An error of ours at the next byte (as serde's `peek_error`), or at the end of the body.
    pub fn error(&self, category: Category, message: &str) -> DecodeError {
        let at = (self.pos + 1).min(self.end());
        let (line, column) = self.position(at);
        DecodeError {
            category,
            message: message.to_string(),
            line,
            column,
        }
    }

    /// `err`, from `serde_json` reading the slice that starts at absolute offset `start`, with
    /// its position moved from the slice to the body.
    pub fn serde_error(&self, err: serde_json::Error, start: usize) -> DecodeError {
        let (l, c) = (err.line(), err.column());
        let full = err.to_string();
        let suffix = format!(" at line {l} column {c}");
        let message = full.strip_suffix(&suffix).unwrap_or(&full).to_string();
        let (line0, col0) = self.position(start + 1);
        let (line, column) = match l {
            0 => (line0, col0),
            1 => (line0, col0 - 1 + c),
            _ => (line0 + l - 1, c),
        };
        DecodeError {
            category: err.classify(),
            message,
            line,
            column,
        }
    }

    /// `read` (serde_json) of bytes `start..end`, errors placed in the body. When serde_json
    /// fails at the slice's end, the scanner's end may not be serde_json's (an invalid escape
    /// such as `"\us"` hides its quote; `-` is cut by the `{` after it): it reads again with
    /// `LOOK_AHEAD` more bytes, to fail where and as reading the whole body fails.
    pub fn read<T>(
        &mut self,
        start: usize,
        end: usize,
        read: impl Fn(&[u8]) -> Result<T, serde_json::Error>,
    ) -> Result<T, DecodeError> {
        let err = match read(self.slice(start, end)) {
            Ok(value) => return Ok(value),
            Err(e) if is_trailing(&e) && !matches!(self.at(start), b'"' | b'{' | b'[') => {
                // A scalar ends before the scanner's end (`2x`, `1.5.3`): take what serde_json
                // read as the value; the caller then meets the next byte where a `,` or a
                // closing bracket belongs, and says so as serde_json would.
                let cut = start + e.column().saturating_sub(1);
                if e.line() == 1 && cut > start {
                    let value =
                        read(self.slice(start, cut)).map_err(|e| self.serde_error(e, start))?;
                    self.pos = cut;
                    return Ok(value);
                }
                return Err(self.serde_error(e, start));
            }
            Err(e) => self.serde_error(e, start),
        };
        if (err.line, err.column) < self.position(end) {
            return Err(err);
        }
        // It failed at the slice's end: what serde_json says there may depend on the bytes after.
        while self.end() < end + LOOK_AHEAD && self.fill(start)? {}
        let more = (end + LOOK_AHEAD).min(self.end());
        match read(self.slice(start, more)) {
            Err(again) if more > end && !is_trailing(&again) => Err(self.serde_error(again, start)),
            _ => Err(err),
        }
    }

    /// Consumes one byte (the one `peek` returned).
    pub fn bump(&mut self) {
        self.pos += 1;
    }

    /// Finds the end of the value starting at the next byte (`peek` returned it) and consumes
    /// it: its absolute range. Strings and brackets are matched, anything else runs to the next
    /// delimiter. A value the body ends inside is handed to serde_json as it is, for its own
    /// "EOF while parsing …" error. `max`: refuse (an error) a value longer than this.
    pub fn value(&mut self, max: usize) -> Result<(usize, usize), DecodeError> {
        let start = self.pos;
        let mut i = start;
        let mut depth = 0usize;
        let mut in_str = false;
        match self.at(start) {
            b'"' => {
                in_str = true;
                i += 1;
            }
            b'{' | b'[' => {
                depth = 1;
                i += 1;
            }
            b',' | b':' | b']' | b'}' => return Err(self.error(Category::Syntax, "expected value")),
            _ => {
                // A number or a literal (or garbage): up to the first byte that cannot be part
                // of one, as far as serde_json reads before it judges.
                loop {
                    while i < self.end() {
                        if !matches!(self.at(i), b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z' | b'.' | b'+' | b'-')
                        {
                            self.pos = i;
                            return Ok((start, i));
                        }
                        i += 1;
                    }
                    if !self.fill(start)? {
                        self.pos = i;
                        return Ok((start, i));
                    }
                }
            }
        }
        loop {
            while i < self.end() {
                if in_str {
                    let rest = &self.buf[i - self.dropped..self.len];
                    match memchr::memchr2(b'"', b'\\', rest) {
                        Some(k) if rest[k] == b'\\' => i += k + 2,
                        Some(k) => {
                            i += k + 1;
                            in_str = false;
                            if depth == 0 {
                                self.pos = i;
                                return Ok((start, i));
                            }
                        }
                        None => i = self.end(),
                    }
                    continue;
                }
                match self.at(i) {
                    b'"' => in_str = true,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            self.pos = i + 1;
                            return Ok((start, i + 1));
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            if i - start > max {
                let (line, column) = self.position(start + 1);
                return Err(DecodeError {
                    category: Category::Data,
                    message: format!("a value of more than {max} bytes outside the `result` list"),
                    line,
                    column,
                });
            }
            if !self.fill(start)? {
                // Ends inside: serde_json words it (EOF while parsing a string/list/object…).
                let end = self.end();
                let err =
                    match serde_json::from_slice::<serde::de::IgnoredAny>(self.slice(start, end)) {
                        Err(e) => self.serde_error(e, start),
                        Ok(_) => self.error(Category::Eof, "EOF while parsing a value"),
                    };
                self.pos = end;
                return Err(err);
            }
        }
    }
}

/// serde_json's "trailing characters" (its code is not public; its wording is stable).
fn is_trailing(e: &serde_json::Error) -> bool {
    e.classify() == Category::Syntax && e.to_string().starts_with("trailing characters")
}
