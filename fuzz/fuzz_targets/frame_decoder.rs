//! Arbitrary bytes, fed to the frame decoder in arbitrary chunk sizes: it never panics,
//! never holds much more than one maximal frame, and yields exactly what a simple
//! reference decoder yields from the whole input at once.
#![no_main]

use arbitrary::Arbitrary;
use bytes::Bytes;
use gossip_core::{FrameDecoder, FrameError, HEADER_LEN};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input {
    max_frame_len: u16,
    chunk_sizes: Vec<u8>,
    data: Vec<u8>,
}

/// Decodes the whole input in one pass, as plainly as possible.
fn reference(data: &[u8], max: usize) -> (Vec<Vec<u8>>, Option<FrameError>) {
    let mut frames = Vec::new();
    let mut rest = data;
    while rest.len() >= HEADER_LEN {
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        if len > max {
            let error = FrameError::TooLarge {
                len: len as u64,
                max,
            };
            return (frames, Some(error));
        }
        if rest.len() < HEADER_LEN + len {
            break;
        }
        frames.push(rest[HEADER_LEN..HEADER_LEN + len].to_vec());
        rest = &rest[HEADER_LEN + len..];
    }
    (frames, None)
}

fuzz_target!(|input: Input| {
    let max = usize::from(input.max_frame_len);
    let mut decoder = FrameDecoder::new(max);
    let mut frames = Vec::new();
    let mut error = None;
    let mut rest = &input.data[..];
    let mut sizes = input.chunk_sizes.iter().cycle();
    let mut largest_chunk = 0;
    'feed: while !rest.is_empty() {
        let size = sizes
            .next()
            .map_or(rest.len(), |&s| usize::from(s).max(1))
            .min(rest.len());
        let (chunk, tail) = rest.split_at(size);
        largest_chunk = largest_chunk.max(size);
        rest = tail;
        // Odd sizes go in as owned buffers, even ones as borrowed slices.
        if size % 2 == 1 {
            decoder.push(Bytes::copy_from_slice(chunk));
        } else {
            decoder.extend(chunk);
        }
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => frames.push(frame.to_vec()),
                Ok(None) => break,
                Err(e) => {
                    error = Some(e);
                    break 'feed;
                }
            }
        }
        // At most one incomplete frame (and its header) is ever held.
        assert!(decoder.buffered_len() < HEADER_LEN + max + size.max(HEADER_LEN));
        // Allocation never runs ahead of one maximal frame plus the largest chunk fed
        // (the buffer keeps its capacity, and grows by doubling).
        assert!(decoder.capacity() <= 2 * (HEADER_LEN + max + largest_chunk) + 64);
    }
    assert_eq!((frames, error), reference(&input.data, max));
});
