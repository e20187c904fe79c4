//! How delivered messages are written to stdout: one record per message, whatever its
//! bytes.

use std::io::{self, Write};

/// The stdout format, `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// One line per message. UTF-8 text is written as it is, except that `\` is written
    /// `\\`, newline `\n`, carriage return `\r`, tab `\t`, other control bytes and bytes
    /// that are not UTF-8 `\xHH`: a payload with a newline is still one line, and the
    /// bytes can be recovered exactly
    Text,
    /// One line per message: the payload in lowercase hex
    Hex,
    /// For programs: each message as a 4-byte big-endian length and the payload bytes,
    /// the wire's own framing
    Binary,
    /// Nothing: the node only relays (deliveries are not even kept)
    None,
}

impl Output {
    /// Appends the record for `payload` to `out`.
    pub fn write(self, out: &mut impl Write, payload: &[u8]) -> io::Result<()> {
        match self {
            Output::Text => {
                write_escaped(out, payload)?;
                out.write_all(b"\n")
            }
            Output::Hex => {
                // Through a small buffer: one write call per 256 bytes, not per byte.
                let mut line = [0; 512];
                for chunk in payload.chunks(line.len() / 2) {
                    for (pair, &byte) in line.chunks_exact_mut(2).zip(chunk) {
                        pair.copy_from_slice(&hex(byte));
                    }
                    out.write_all(&line[..2 * chunk.len()])?;
                }
                out.write_all(b"\n")
            }
            Output::Binary => {
                let len = u32::try_from(payload.len()).map_err(io::Error::other)?;
                out.write_all(&len.to_be_bytes())?;
                out.write_all(payload)
            }
            Output::None => Ok(()),
        }
    }
}

/// Whether `byte` (ASCII) must be escaped in text output.
fn needs_escape(byte: u8) -> bool {
    byte < 0x20 || byte == 0x7f || byte == b'\\'
}

/// The two lowercase hex digits of `byte`.
fn hex(byte: u8) -> [u8; 2] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    [
        DIGITS[usize::from(byte >> 4)],
        DIGITS[usize::from(byte & 0xf)],
    ]
}

/// Writes `payload` as text (see [`Output::Text`]): valid UTF-8 without bytes to escape,
/// the usual case, goes out as it is. UTF-8 is checked with the standard library's
/// validation (word at a time over ASCII); each stretch of invalid bytes is escaped.
fn write_escaped(out: &mut impl Write, payload: &[u8]) -> io::Result<()> {
    let mut rest = payload;
    loop {
        let (valid, invalid) = match std::str::from_utf8(rest) {
            Ok(_) => (rest, &[][..]),
            Err(error) => {
                let (valid, after) = rest.split_at(error.valid_up_to());
                let bad = error.error_len().unwrap_or(after.len());
                (valid, &after[..bad])
            }
        };
        write_escaped_utf8(out, valid)?;
        for &byte in invalid {
            let [high, low] = hex(byte);
            out.write_all(&[b'\\', b'x', high, low])?;
        }
        rest = &rest[valid.len() + invalid.len()..];
        if rest.is_empty() {
            return Ok(());
        }
    }
}

/// Where the first byte of `text` from `from` on that needs escaping is, if any.
/// Checks 32 bytes at a time without branching on each, so that the compiler turns it
/// into vector compares: most text has nothing to escape.
fn next_to_escape(text: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    for chunk in text[from..].chunks(32) {
        if chunk
            .iter()
            .fold(false, |any, &byte| any | needs_escape(byte))
        {
            return chunk
                .iter()
                .position(|&byte| needs_escape(byte))
                .map(|i| at + i);
        }
        at += chunk.len();
    }
    None
}

/// Writes valid UTF-8 `text` with the bytes that [need it](needs_escape) escaped.
fn write_escaped_utf8(out: &mut impl Write, text: &[u8]) -> io::Result<()> {
    let mut start = 0;
    while let Some(at) = next_to_escape(text, start) {
        let byte = text[at];
        out.write_all(&text[start..at])?;
        let [high, low] = hex(byte);
        let escape: &[u8] = match byte {
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            _ => &[b'\\', b'x', high, low],
        };
        out.write_all(escape)?;
        start = at + 1;
    }
    out.write_all(&text[start..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(payload: &[u8]) -> String {
        let mut out = Vec::new();
        Output::Text.write(&mut out, payload).expect("to a vector");
        String::from_utf8(out).expect("text output is UTF-8")
    }

    /// The inverse of the text escaping, for the tests.
    fn unescape(line: &str) -> Vec<u8> {
        let mut bytes = Vec::new();
        let mut chars = line.strip_suffix('\n').expect("one line").chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                bytes.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                continue;
            }
            match chars.next().expect("escape") {
                '\\' => bytes.push(b'\\'),
                'n' => bytes.push(b'\n'),
                'r' => bytes.push(b'\r'),
                't' => bytes.push(b'\t'),
                'x' => {
                    let hex: String = chars.by_ref().take(2).collect();
                    bytes.push(u8::from_str_radix(&hex, 16).expect("hex"));
                }
                other => panic!("unknown escape \\{other}"),
            }
        }
        bytes
    }

    #[test]
    fn text_is_one_line_and_plain_text_is_unchanged() {
        assert_eq!(text("héllo, wörld".as_bytes()), "héllo, wörld\n");
        assert_eq!(text(b""), "\n");
        assert_eq!(text(b"two\nlines"), "two\\nlines\n");
        assert_eq!(text(b"a\\b\tc\r\x00\x7f"), "a\\\\b\\tc\\r\\x00\\x7f\n");
        assert_eq!(text(b"bad \xff\xfe utf-8"), "bad \\xff\\xfe utf-8\n");
    }

    #[test]
    fn text_gives_back_every_byte() {
        // Every byte value, alone and among text, and a cut multi-byte character.
        let mut payloads: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b'x', b, b'y']).collect();
        payloads.push("€uro".as_bytes()[..2].to_vec());
        payloads.push(b"\\x41 is not A".to_vec());
        for payload in payloads {
            let line = text(&payload);
            assert_eq!(line.matches('\n').count(), 1, "{line:?}");
            assert_eq!(unescape(&line), payload, "{line:?}");
        }
    }

    #[test]
    fn escapes_are_found_across_the_scan_chunks() {
        // The scan checks 32 bytes at a time: escapes on both sides of each boundary,
        // at both ends, and invalid UTF-8 between them.
        for at in [0, 1, 30, 31, 32, 33, 63, 64, 65, 98, 99] {
            let mut payload = vec![b'a'; 100];
            payload[at] = b'\n';
            payload[(at + 37) % 100] = 0xff;
            let line = text(&payload);
            assert_eq!(line.matches('\n').count(), 1, "{line:?}");
            assert_eq!(unescape(&line), payload, "{line:?}");
        }
        let long = "é".repeat(40) + "\t" + &"z".repeat(40);
        assert_eq!(text(long.as_bytes()), long.replace('\t', "\\t") + "\n");
    }

    #[test]
    fn hex_is_two_digits_per_byte_whatever_the_length() {
        let every_byte: Vec<u8> = (0..=255u8).cycle().take(600).collect();
        let mut out = Vec::new();
        Output::Hex
            .write(&mut out, &every_byte)
            .expect("to a vector");
        let expected: String = every_byte.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(out, (expected + "\n").into_bytes());
    }

    #[test]
    fn hex_binary_and_none() {
        let mut out = Vec::new();
        Output::Hex
            .write(&mut out, b"\x00\xffA")
            .expect("to a vector");
        Output::Binary.write(&mut out, b"hi").expect("to a vector");
        Output::None
            .write(&mut out, b"ignored")
            .expect("to a vector");
        assert_eq!(out, b"00ff41\n\x00\x00\x00\x02hi");
    }
}
