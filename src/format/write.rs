//! Byte writers every encoder shares: JSON string literals and escaped contents, verbatim JSON
//! payloads kept on one line, and decimal integers. They append to a caller-owned buffer and
//! never fail. Also used by the webhook, ClickHouse and Splunk HEC sinks (via `format::`).

/// Appends the JSON text `payload`, trimmed, with each CR and LF turned into a space. In valid
/// JSON a raw line break can only be whitespace between tokens (inside strings it is escaped),
/// so the value is unchanged, but a pretty-printed API answer no longer splits an NDJSON record
/// over several lines (found by the `formats` fuzz target, issue 8). Compact payloads, the API's
/// usual form, are copied in one piece.
pub fn push_verbatim(out: &mut Vec<u8>, payload: &str) {
    let bytes = payload.trim().as_bytes();
    if !bytes.contains(&b'\n') && !bytes.contains(&b'\r') {
        out.extend_from_slice(bytes);
        return;
    }
    out.extend(bytes.iter().map(|&b| match b {
        b'\n' | b'\r' => b' ',
        b => b,
    }));
}

/// Appends `s` as a JSON string literal.
pub fn push_json_str(out: &mut Vec<u8>, s: &str) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    push_json_str_contents(out, s);
    out.push(b'"');
}

/// Appends `s` JSON-escaped, without the quotes (RFC 8259: `"`, `\\` and control characters;
/// everything else, including non-ASCII, verbatim). Runs of plain bytes are copied at once.
pub fn push_json_str_contents(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b >= 0x20 && b != b'"' && b != b'\\' {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        start = i + 1;
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            _ => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ]),
        }
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Appends an integer in decimal.
pub fn push_int(out: &mut Vec<u8>, v: i64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut n = v.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if v < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&buf[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_escape_like_serde_json() {
        for s in [
            "",
            "plain",
            "q\"b\\",
            "nl\n\r\t\u{8}\u{c}\u{0}\u{1f}\u{7f}",
            "ü€😀",
            "\u{2028}",
        ] {
            let mut out = Vec::new();
            push_json_str(&mut out, s);
            assert_eq!(out, serde_json::to_vec(s).unwrap(), "{s:?}");
        }
    }

    #[test]
    fn integers_print_like_display() {
        for v in [0, 7, -7, 1_741_083_330_000, i64::MIN, i64::MAX] {
            let mut out = Vec::new();
            push_int(&mut out, v);
            assert_eq!(out, v.to_string().into_bytes());
        }
    }
}
