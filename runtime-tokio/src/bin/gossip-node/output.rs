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
                for byte in payload {
                    write!(out, "{byte:02x}")?;
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

/// Writes `payload` as text (see [`Output::Text`]): valid UTF-8 without bytes to escape,
/// the usual case, goes out as it is.
fn write_escaped(out: &mut impl Write, payload: &[u8]) -> io::Result<()> {
    if !payload.iter().any(|&b| needs_escape(b)) {
        if let Ok(text) = std::str::from_utf8(payload) {
            return out.write_all(text.as_bytes());
        }
    }
    for chunk in payload.utf8_chunks() {
        let valid = chunk.valid().as_bytes();
        let mut start = 0;
        for (at, &byte) in valid.iter().enumerate() {
            if needs_escape(byte) {
                out.write_all(&valid[start..at])?;
                match byte {
                    b'\\' => out.write_all(b"\\\\")?,
                    b'\n' => out.write_all(b"\\n")?,
                    b'\r' => out.write_all(b"\\r")?,
                    b'\t' => out.write_all(b"\\t")?,
                    _ => write!(out, "\\x{byte:02x}")?,
                }
                start = at + 1;
            }
        }
        out.write_all(&valid[start..])?;
        for byte in chunk.invalid() {
            write!(out, "\\x{byte:02x}")?;
        }
    }
    Ok(())
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
