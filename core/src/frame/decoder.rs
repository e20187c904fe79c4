//! [`FrameDecoder`]: a peer's byte stream, in any chunking, into payloads.

use bytes::{Buf, Bytes, BytesMut};

use super::{FrameError, HEADER_LEN};

/// Incremental decoder for one peer's byte stream.
///
/// Hand it each read with [`push`](Self::push) (zero-copy) or [`extend`](Self::extend)
/// (copies the slice once), then take complete payloads with
/// [`next_frame`](Self::next_frame). A payload that lies within one pushed chunk is split
/// off that chunk without copying; one that spans chunks is assembled once, in a buffer of
/// exactly its size. A length prefix over `max_frame_len` is reported as soon as its four
/// bytes are in, before anything is allocated for it, so the decoder never holds more than
/// one partial frame of at most `max_frame_len + 4` bytes beyond the chunk being decoded.
///
/// ```
/// use bytes::Bytes;
/// use gossip_core::FrameDecoder;
///
/// let mut decoder = FrameDecoder::new(1024);
/// decoder.push(Bytes::from_static(&[0, 0, 0, 3, b'a']));
/// assert_eq!(decoder.next_frame(), Ok(None)); // incomplete
/// decoder.extend(b"bc");
/// assert_eq!(decoder.next_frame().unwrap().unwrap(), &b"abc"[..]);
/// assert_eq!(decoder.next_frame(), Ok(None));
/// ```
#[derive(Debug)]
pub struct FrameDecoder {
    /// Bytes received and not looked at yet. Whole frames are split off it.
    unparsed: Bytes,
    /// A frame that began in an earlier chunk, being assembled (at most one frame).
    partial: BytesMut,
    max_frame_len: usize,
}

impl FrameDecoder {
    /// A decoder that rejects payloads longer than `max_frame_len` bytes.
    pub fn new(max_frame_len: usize) -> Self {
        FrameDecoder {
            unparsed: Bytes::new(),
            partial: BytesMut::new(),
            max_frame_len,
        }
    }

    /// Adds a chunk received from the peer. Frames inside it will share its buffer.
    pub fn push(&mut self, data: Bytes) {
        if self.unparsed.is_empty() {
            self.unparsed = data;
        } else {
            // Pushed again before the last chunk was decoded: join the two (rare).
            let mut joined = BytesMut::with_capacity(self.unparsed.len() + data.len());
            joined.extend_from_slice(&self.unparsed);
            joined.extend_from_slice(&data);
            self.unparsed = joined.freeze();
        }
    }

    /// Adds bytes received from the peer, copying them once.
    pub fn extend(&mut self, data: &[u8]) {
        self.push(Bytes::copy_from_slice(data));
    }

    /// Bytes received but not yet returned as a frame.
    pub fn buffered_len(&self) -> usize {
        self.partial.len() + self.unparsed.len()
    }

    /// The whole frames buffered and not returned yet: how many, and their wire bytes.
    /// Counted up to the first frame that is incomplete or too long; none while a frame
    /// is being assembled across chunks.
    pub(crate) fn complete_frames(&self) -> (usize, usize) {
        let (mut count, mut bytes) = (0, 0);
        if !self.partial.is_empty() {
            return (count, bytes);
        }
        let mut rest: &[u8] = &self.unparsed;
        while let Some(header) = rest.first_chunk::<HEADER_LEN>() {
            let len = u32::from_be_bytes(*header) as usize;
            let frame = HEADER_LEN.saturating_add(len);
            if len > self.max_frame_len || rest.len() < frame {
                break;
            }
            count += 1;
            bytes += frame;
            rest = &rest[frame..];
        }
        (count, bytes)
    }

    /// Bytes the decoder holds: the partial frame's allocation plus undecoded input.
    pub fn capacity(&self) -> usize {
        self.partial.capacity() + self.unparsed.len()
    }

    /// Bytes allocated for the frame being assembled across chunks (0 if none): once its
    /// length prefix is in, room for the whole frame.
    pub fn partial_capacity(&self) -> usize {
        match self.partial.is_empty() {
            true => 0,
            false => self.partial.capacity(),
        }
    }

    /// The payload length the frame being assembled announced, once its prefix is in.
    pub fn partial_announced(&self) -> Option<usize> {
        let header = self.partial.first_chunk::<HEADER_LEN>()?;
        Some(u32::from_be_bytes(*header) as usize)
    }

    /// Returns the next complete payload, `Ok(None)` if more bytes are needed, or an
    /// error if the stream is invalid. After an error the stream cannot be resynchronised:
    /// the peer must be disconnected.
    pub fn next_frame(&mut self) -> Result<Option<Bytes>, FrameError> {
        if !self.partial.is_empty() {
            return self.continue_partial();
        }
        let Some(header) = self.unparsed.first_chunk::<HEADER_LEN>() else {
            self.partial.extend_from_slice(&self.unparsed);
            self.unparsed.clear();
            return Ok(None);
        };
        let len = self.checked_len(*header)?;
        if self.unparsed.len() < HEADER_LEN + len {
            // The frame continues in a later chunk: assemble it in a buffer of its size
            // (bounded by `max_frame_len`, checked above).
            self.partial.reserve(HEADER_LEN + len);
            self.partial.extend_from_slice(&self.unparsed);
            self.unparsed.clear();
            return Ok(None);
        }
        self.unparsed.advance(HEADER_LEN);
        Ok(Some(self.unparsed.split_to(len)))
    }

    /// Moves bytes from `unparsed` into the frame being assembled.
    fn continue_partial(&mut self) -> Result<Option<Bytes>, FrameError> {
        self.take_into_partial(HEADER_LEN.saturating_sub(self.partial.len()));
        let Some(&header) = self.partial.first_chunk::<HEADER_LEN>() else {
            return Ok(None);
        };
        let frame_len = HEADER_LEN + self.checked_len(header)?;
        // Once the header is known, size the buffer for the whole frame (a no-op after).
        self.partial.reserve(frame_len - self.partial.len());
        self.take_into_partial(frame_len - self.partial.len());
        if self.partial.len() < frame_len {
            return Ok(None);
        }
        self.partial.advance(HEADER_LEN);
        Ok(Some(self.partial.split().freeze()))
    }

    fn take_into_partial(&mut self, wanted: usize) {
        let take = wanted.min(self.unparsed.len());
        self.partial.extend_from_slice(&self.unparsed[..take]);
        self.unparsed.advance(take);
    }

    fn checked_len(&self, header: [u8; HEADER_LEN]) -> Result<usize, FrameError> {
        let announced = u32::from_be_bytes(header);
        usize::try_from(announced)
            .ok()
            .filter(|len| *len <= self.max_frame_len)
            .ok_or(FrameError::TooLarge {
                len: u64::from(announced),
                max: self.max_frame_len,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::encode;

    #[test]
    fn complete_frames_counts_the_whole_frames_buffered() {
        let mut decoder = FrameDecoder::new(16);
        let mut input = [encode(b"ab"), encode(b""), encode(b"cde")].concat();
        input.extend_from_slice(&encode(b"fgh")[..5]); // one byte of its payload
        decoder.extend(&input);
        assert_eq!(decoder.complete_frames(), (3, 6 + 4 + 7));
        assert_eq!(decoder.next_frame().unwrap().unwrap(), &b"ab"[..]);
        assert_eq!(decoder.complete_frames(), (2, 4 + 7));
        decoder.next_frame().unwrap();
        decoder.next_frame().unwrap();
        assert_eq!(decoder.next_frame(), Ok(None));
        assert_eq!(decoder.complete_frames(), (0, 0), "one being assembled");
        let mut too_long = FrameDecoder::new(2);
        too_long.extend(&[encode(b"ab"), encode(b"abc"), encode(b"a")].concat());
        assert_eq!(too_long.complete_frames(), (1, 6), "up to the one too long");
    }

    #[test]
    fn zero_length_frame_is_an_empty_payload() {
        let mut decoder = FrameDecoder::new(16);
        decoder.extend(&[0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(decoder.next_frame(), Ok(Some(Bytes::new())));
        assert_eq!(decoder.next_frame(), Ok(Some(Bytes::new())));
        assert_eq!(decoder.next_frame(), Ok(None));
    }

    #[test]
    fn frame_of_exactly_the_maximum_is_accepted_and_one_more_is_not() {
        let mut decoder = FrameDecoder::new(3);
        decoder.extend(&encode(b"abc"));
        assert_eq!(decoder.next_frame(), Ok(Some(Bytes::from_static(b"abc"))));
        decoder.extend(&[0, 0, 0, 4]);
        assert_eq!(
            decoder.next_frame(),
            Err(FrameError::TooLarge { len: 4, max: 3 })
        );
    }

    #[test]
    fn huge_length_prefix_is_rejected_without_allocating_for_it() {
        let mut decoder = FrameDecoder::new(1 << 20);
        decoder.extend(&4_000_000_000u32.to_be_bytes());
        assert_eq!(
            decoder.next_frame(),
            Err(FrameError::TooLarge {
                len: 4_000_000_000,
                max: 1 << 20
            })
        );
        assert!(decoder.capacity() < 1024);
    }

    #[test]
    fn partial_header_waits() {
        let mut decoder = FrameDecoder::new(16);
        decoder.extend(&[0, 0]);
        assert_eq!(decoder.next_frame(), Ok(None));
        decoder.extend(&[0, 1, 7]);
        assert_eq!(decoder.next_frame(), Ok(Some(Bytes::from_static(&[7]))));
    }

    #[test]
    fn pushed_chunks_are_split_without_copying_and_spanning_frames_assembled() {
        let mut decoder = FrameDecoder::new(16);
        let mut wire = encode(b"whole");
        wire.extend(encode(b"split"));
        let chunk = Bytes::from(wire);
        let (first, second) = (chunk.slice(..12), chunk.slice(12..));
        decoder.push(first.clone());
        let whole = decoder.next_frame().unwrap().unwrap();
        assert_eq!(
            whole.as_ptr(),
            first[4..].as_ptr(),
            "copied a frame inside one chunk"
        );
        assert_eq!(decoder.next_frame(), Ok(None));
        decoder.push(second);
        assert_eq!(decoder.next_frame(), Ok(Some(Bytes::from_static(b"split"))));
        assert_eq!(decoder.buffered_len(), 0);
    }

    #[test]
    fn pushing_twice_before_decoding_keeps_the_order() {
        let mut decoder = FrameDecoder::new(16);
        decoder.push(Bytes::from(encode(b"a")));
        decoder.push(Bytes::from(encode(b"b")));
        assert_eq!(decoder.next_frame(), Ok(Some(Bytes::from_static(b"a"))));
        assert_eq!(decoder.next_frame(), Ok(Some(Bytes::from_static(b"b"))));
    }

    #[test]
    fn oversized_length_split_across_chunks_is_caught_at_its_fourth_byte() {
        let mut decoder = FrameDecoder::new(16);
        decoder.extend(&[0, 0]);
        assert_eq!(decoder.next_frame(), Ok(None));
        decoder.extend(&[1]);
        assert_eq!(decoder.next_frame(), Ok(None));
        decoder.extend(&[0]);
        assert_eq!(
            decoder.next_frame(),
            Err(FrameError::TooLarge { len: 256, max: 16 })
        );
        assert!(decoder.capacity() < 64);
    }

    /// Found by the frame_decoder fuzz target (a bound in the harness, not a decoder bug):
    /// what the decoder holds is bounded by one maximal frame plus the chunk being
    /// decoded, whatever the sizes of the chunks before it.
    #[test]
    fn holdings_after_a_large_chunk_are_bounded_by_the_next_chunk() {
        let mut decoder = FrameDecoder::new(15);
        let mut big = Vec::new();
        for _ in 0..40 {
            big.extend(encode(&[1; 15]));
        }
        big.extend(&[0, 0, 0, 15, 1, 2]); // and the start of one more frame
        decoder.extend(&big);
        while decoder.next_frame().unwrap().is_some() {}
        assert!(decoder.capacity() <= HEADER_LEN + 15);
        decoder.extend(&[3; 35]);
        assert_eq!(decoder.next_frame().unwrap().unwrap().len(), 15);
        assert!(decoder.capacity() <= HEADER_LEN + 15 + 35);
    }

    #[test]
    fn payload_is_split_without_copying() {
        let mut decoder = FrameDecoder::new(16);
        let mut wire = encode(b"abcd");
        wire.extend(encode(b"efgh"));
        decoder.extend(&wire);
        let first = decoder.next_frame().unwrap().unwrap();
        let second = decoder.next_frame().unwrap().unwrap();
        // Both payloads point into the one buffer the bytes were read into.
        let gap = second.as_ptr() as usize - first.as_ptr() as usize;
        assert_eq!(gap, 4 + HEADER_LEN);
    }
}
