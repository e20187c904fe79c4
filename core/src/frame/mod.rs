//! The wire format: a 4-byte big-endian length `N`, then `N` payload bytes.
//!
//! [`FrameDecoder`] turns a byte stream that arrives in arbitrary pieces into payloads;
//! [`Frames`] is what goes out to a peer: one frame, or a run of consecutive frames
//! forwarded as they were read, its bytes shared, never copied, between every peer it is
//! sent to.
//!
//! Zero-length frames are ordinary messages with an empty payload (id `blake3("")`): the
//! tutorial node this protocol comes from floods them like any other, so we do too.

mod decoder;
mod frames;

use thiserror::Error;

pub use decoder::FrameDecoder;
pub use frames::{Frames, Payloads};

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
