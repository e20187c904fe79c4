//! Stdin, one message per line: lines are bytes (any encoding), each held up to the
//! largest payload the node accepts, so a long line (a binary file piped in) costs no
//! more memory than one message.

use std::io;

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// One line of input, without its `\n` (or `\r\n`).
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A line that fits in a message.
    Message(Vec<u8>),
    /// A line longer than the largest message, skipped: its length.
    TooLong(usize),
}

/// Reads lines of at most `max` bytes from `reader`.
pub struct Lines<R> {
    reader: R,
    max: usize,
}

impl<R: AsyncBufRead + Unpin> Lines<R> {
    /// Lines of at most `max` bytes (longer ones are [`Line::TooLong`]).
    pub fn new(reader: R, max: usize) -> Self {
        Lines { reader, max }
    }

    /// The next line; `None` at the end of input. A last line without `\n` counts.
    pub async fn next(&mut self) -> io::Result<Option<Line>> {
        // Room for a `\r` that is stripped after the line is whole.
        let keep = self.max.saturating_add(1);
        let mut line = Vec::new();
        let mut len = 0usize;
        loop {
            let buffer = self.reader.fill_buf().await?;
            if buffer.is_empty() {
                if len == 0 {
                    return Ok(None);
                }
                break;
            }
            let newline = buffer.iter().position(|&b| b == b'\n');
            let part = &buffer[..newline.unwrap_or(buffer.len())];
            let room = keep.saturating_sub(line.len());
            line.extend_from_slice(&part[..part.len().min(room)]);
            len = len.saturating_add(part.len());
            let consumed = part.len() + usize::from(newline.is_some());
            self.reader.consume(consumed);
            if newline.is_some() {
                break;
            }
        }
        if line.last() == Some(&b'\r') && len <= keep {
            line.pop();
            len -= 1;
        }
        Ok(Some(match len <= self.max {
            true => Line::Message(line),
            false => Line::TooLong(len),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], max: usize) -> Vec<Line> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            // A small buffer, so lines span several reads.
            let mut lines = Lines::new(tokio::io::BufReader::with_capacity(3, input), max);
            let mut all = Vec::new();
            while let Some(line) = lines.next().await.expect("reads") {
                all.push(line);
            }
            all
        })
    }

    fn message(bytes: &[u8]) -> Line {
        Line::Message(bytes.to_vec())
    }

    #[test]
    fn lines_are_bytes_in_any_encoding() {
        let input = b"first\n\xff\xfe latin-1\r\n\nlast without newline";
        assert_eq!(
            lines(input, 100),
            [
                message(b"first"),
                message(b"\xff\xfe latin-1"),
                message(b""),
                message(b"last without newline"),
            ]
        );
    }

    #[test]
    fn a_line_longer_than_a_message_is_skipped_and_the_next_one_read() {
        let input = b"12345\n123456\n1234\r\n12345\r\nok";
        assert_eq!(
            lines(input, 5),
            [
                message(b"12345"),
                Line::TooLong(6),
                message(b"1234"),
                message(b"12345"),
                message(b"ok"),
            ]
        );
    }
}
