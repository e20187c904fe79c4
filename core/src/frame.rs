//! The wire format: a 4-byte big-endian length `N`, then `N` payload bytes.
//!
//! [`FrameDecoder`] turns a byte stream that arrives in arbitrary pieces into payloads;
//! [`Frame`] is one outgoing frame whose payload buffer is shared, never copied, between
//! every peer it is sent to.
//!
//! Zero-length frames are ordinary messages with an empty payload (id `blake3("")`): the
//! tutorial node this protocol comes from floods them like any other, so we do too.

use bytes::{Buf, Bytes, BytesMut};
use thiserror::Error;

use crate::MessageId;

/// Bytes in a frame header (the big-endian `u32` length).
pub const HEADER_LEN: usize = 4;

/// A peer broke the framing rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum FrameError {
    /// The length prefix announced a payload larger than the configured maximum. The
    /// decoder never allocates for such a length.
    #[error("frame length {len} exceeds the maximum of {max} bytes")]
    TooLarge {
        /// The announced payload length.
        len: u64,
        /// The configured maximum payload length.
        max: usize,
    },
}

/// Incremental decoder for one peer's byte stream.
///
/// Feed it whatever the socket returned with [`extend`](Self::extend), then take complete
/// payloads with [`next_frame`](Self::next_frame). A payload is split off the internal
/// buffer without copying. A length prefix over `max_frame_len` is reported as soon as
/// its four bytes are in, before any payload is buffered, so a hostile peer can make the
/// decoder hold at most `max_frame_len + 4` bytes of one frame (plus whatever one
/// `extend` call passed in beyond it).
///
/// ```
/// use gossip_core::FrameDecoder;
///
/// let mut decoder = FrameDecoder::new(1024);
/// decoder.extend(&[0, 0, 0, 3, b'a']);
/// assert_eq!(decoder.next_frame(), Ok(None)); // incomplete
/// decoder.extend(b"bc");
/// assert_eq!(decoder.next_frame().unwrap().unwrap(), &b"abc"[..]);
/// assert_eq!(decoder.next_frame(), Ok(None));
/// ```
#[derive(Debug)]
pub struct FrameDecoder {
    buffer: BytesMut,
    max_frame_len: usize,
}

impl FrameDecoder {
    /// A decoder that rejects payloads longer than `max_frame_len` bytes.
    pub fn new(max_frame_len: usize) -> Self {
        FrameDecoder {
            buffer: BytesMut::new(),
            max_frame_len,
        }
    }

    /// Appends bytes received from the peer.
    pub fn extend(&mut self, data: &[u8]) {
        self.buffer.extend_from_slice(data);
    }

    /// Bytes received but not yet returned as a frame.
    pub fn buffered_len(&self) -> usize {
        self.buffer.len()
    }

    /// Bytes allocated for the internal buffer.
    pub fn capacity(&self) -> usize {
        self.buffer.capacity()
    }

    /// Returns the next complete payload, `Ok(None)` if more bytes are needed, or an
    /// error if the stream is invalid. After an error the stream cannot be resynchronised:
    /// the peer must be disconnected.
    pub fn next_frame(&mut self) -> Result<Option<Bytes>, FrameError> {
        let Some(header) = self.buffer.first_chunk::<HEADER_LEN>() else {
            return Ok(None);
        };
        let announced = u32::from_be_bytes(*header);
        let len = usize::try_from(announced)
            .ok()
            .filter(|len| *len <= self.max_frame_len)
            .ok_or(FrameError::TooLarge {
                len: u64::from(announced),
                max: self.max_frame_len,
            })?;
        let available = self.buffer.len() - HEADER_LEN;
        if available < len {
            // Make room for the rest of this frame once, not piecemeal. Bounded by
            // `max_frame_len`, which was checked above.
            self.buffer.reserve(len - available);
            return Ok(None);
        }
        self.buffer.advance(HEADER_LEN);
        Ok(Some(self.buffer.split_to(len).freeze()))
    }
}

/// One outgoing frame: a header and a payload buffer shared by every copy.
///
/// Cloning a `Frame` bumps a reference count; it never copies the payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    header: [u8; HEADER_LEN],
    payload: Bytes,
    id: MessageId,
}

impl Frame {
    /// Frames `payload`, whose id the caller has already computed.
    ///
    /// Returns `None` if the payload does not fit a `u32` length prefix.
    pub fn new(id: MessageId, payload: Bytes) -> Option<Self> {
        let len = u32::try_from(payload.len()).ok()?;
        Some(Frame {
            header: len.to_be_bytes(),
            payload,
            id,
        })
    }

    /// The 4-byte length prefix.
    pub fn header(&self) -> &[u8; HEADER_LEN] {
        &self.header
    }

    /// The payload.
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// The id of the message this frame carries.
    pub fn id(&self) -> MessageId {
        self.id
    }

    /// Bytes this frame occupies on the wire: header plus payload.
    pub fn wire_len(&self) -> usize {
        HEADER_LEN + self.payload.len()
    }

    /// Appends the wire bytes to `out` (a copy; runtimes that can write vectored should
    /// use [`transport::WriteQueue`](crate::transport::WriteQueue) instead).
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.header);
        out.extend_from_slice(&self.payload);
    }
}

/// Encodes one payload as wire bytes. A convenience for tests and tools.
///
/// # Panics
/// If the payload is longer than `u32::MAX` bytes.
///
/// ```
/// assert_eq!(gossip_core::frame::encode(b"hi"), [0, 0, 0, 2, b'h', b'i']);
/// ```
pub fn encode(payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("payload longer than u32::MAX");
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(decoder.buffer.capacity() < 1024);
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
