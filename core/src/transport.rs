//! Runtime-neutral helpers shared by the socket adapters: batching queued frames into
//! vectored writes, and the redial backoff. Pure data structures, no I/O.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::time::Duration;

use crate::Frame;

/// Frames waiting to be written to one socket, handed out as [`IoSlice`]s so that many
/// frames go out in one vectored write without copying their payloads.
///
/// ```
/// use std::io::{IoSlice, Write};
/// use bytes::Bytes;
/// use gossip_core::{transport::WriteQueue, Frame, MessageId};
///
/// let mut queue = WriteQueue::default();
/// for text in ["ab", "cde"] {
///     queue.push(Frame::new(MessageId::of(text.as_bytes()), Bytes::from(text)).unwrap());
/// }
/// let mut socket = Vec::new(); // stands in for a TcpStream
/// while !queue.is_empty() {
///     let mut slices = [IoSlice::new(&[]); 64];
///     let count = queue.io_slices(&mut slices);
///     let written = socket.write_vectored(&slices[..count])?;
///     queue.advance(written);
/// }
/// assert_eq!(socket, b"\0\0\0\x02ab\0\0\0\x03cde");
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct WriteQueue {
    frames: VecDeque<Frame>,
    /// Bytes of the front frame already written.
    written_of_front: usize,
    pending_bytes: usize,
}

impl WriteQueue {
    /// Appends a frame.
    pub fn push(&mut self, frame: Frame) {
        self.pending_bytes += frame.wire_len();
        self.frames.push_back(frame);
    }

    /// Whether everything has been written.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Wire bytes not yet written.
    pub fn pending_bytes(&self) -> usize {
        self.pending_bytes
    }

    /// Fills `out` with the unwritten bytes, front first, and returns how many slices it
    /// filled. Empty slices are skipped.
    pub fn io_slices<'a>(&'a self, out: &mut [IoSlice<'a>]) -> usize {
        let mut filled = 0;
        let mut skip = self.written_of_front;
        for frame in &self.frames {
            for part in [&frame.header()[..], &frame.payload()[..]] {
                // Only the front frame has a written prefix to skip.
                let cut = skip.min(part.len());
                skip -= cut;
                let part = &part[cut..];
                if part.is_empty() {
                    continue;
                }
                if filled == out.len() {
                    return filled;
                }
                out[filled] = IoSlice::new(part);
                filled += 1;
            }
        }
        filled
    }

    /// Marks `written` bytes as written (as returned by the socket). Returns how many
    /// bytes were actually pending, never more than `written`.
    pub fn advance(&mut self, written: usize) -> usize {
        let mut left = written.min(self.pending_bytes);
        let advanced = left;
        self.pending_bytes -= left;
        while left > 0 {
            let Some(front) = self.frames.front() else {
                break;
            };
            let remaining = front.wire_len() - self.written_of_front;
            if left < remaining {
                self.written_of_front += left;
                break;
            }
            left -= remaining;
            self.written_of_front = 0;
            self.frames.pop_front();
        }
        advanced
    }
}

impl Extend<Frame> for WriteQueue {
    fn extend<I: IntoIterator<Item = Frame>>(&mut self, frames: I) {
        for frame in frames {
            self.push(frame);
        }
    }
}

/// Capped exponential backoff for redialling a peer: `initial`, then doubling up to
/// `max`, back to `initial` after [`reset`](Self::reset) (a successful connection).
///
/// ```
/// use std::time::Duration;
/// use gossip_core::transport::Backoff;
///
/// let ms = Duration::from_millis;
/// let mut backoff = Backoff::new(ms(100), ms(350));
/// let delays: Vec<_> = (0..4).map(|_| backoff.next_delay()).collect();
/// assert_eq!(delays, [ms(100), ms(200), ms(350), ms(350)]);
/// backoff.reset();
/// assert_eq!(backoff.next_delay(), ms(100));
/// ```
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Delays start at `initial` and never exceed `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max,
            next: initial.min(max),
        }
    }

    /// The delay before the next attempt; doubles the one after.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = delay.saturating_mul(2).min(self.max);
        delay
    }

    /// Starts over from the initial delay.
    pub fn reset(&mut self) {
        self.next = self.initial.min(self.max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MessageId;
    use bytes::Bytes;

    fn frame(payload: &'static [u8]) -> Frame {
        Frame::new(MessageId::of(payload), Bytes::from_static(payload)).unwrap()
    }

    fn collect(queue: &WriteQueue, max_slices: usize) -> Vec<u8> {
        let mut slices = vec![IoSlice::new(&[]); max_slices];
        let count = queue.io_slices(&mut slices);
        slices[..count].iter().flat_map(|s| s.to_vec()).collect()
    }

    #[test]
    fn partial_writes_resume_mid_header_and_mid_payload() {
        let mut queue = WriteQueue::default();
        queue.push(frame(b"hello"));
        queue.push(frame(b""));
        queue.push(frame(b"xy"));
        let mut wire = Vec::new();
        for step in [2, 5, 1, 4, 100] {
            let bytes = collect(&queue, 8);
            let take = step.min(bytes.len());
            wire.extend_from_slice(&bytes[..take]);
            assert_eq!(queue.advance(take), take);
        }
        assert!(queue.is_empty());
        assert_eq!(queue.pending_bytes(), 0);
        assert_eq!(wire, b"\0\0\0\x05hello\0\0\0\0\0\0\0\x02xy");
    }

    #[test]
    fn slice_limit_is_respected() {
        let mut queue = WriteQueue::default();
        for _ in 0..10 {
            queue.push(frame(b"abc"));
        }
        assert_eq!(collect(&queue, 3), b"\0\0\0\x03abc\0\0\0\x03");
    }

    #[test]
    fn advancing_past_the_end_is_clamped() {
        let mut queue = WriteQueue::default();
        queue.push(frame(b"a"));
        assert_eq!(queue.advance(100), 5);
        assert!(queue.is_empty());
    }
}

/// How a socket adapter runs a node: where it listens, whom it dials, and its limits.
/// Shared by every runtime adapter, so switching runtime does not change configuration.
///
/// ```
/// use gossip_core::transport::NetConfig;
/// let peer = "127.0.0.1:7000".parse().unwrap();
/// let config = NetConfig::new("127.0.0.1:0".parse().unwrap()).with_peers([peer, peer]);
/// assert_eq!(config.dial_targets(), [peer]);
/// ```
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// Address to listen on (port 0 picks a free one).
    pub listen: std::net::SocketAddr,
    /// Addresses to dial, and redial whenever the connection drops or the dial fails.
    pub peers: Vec<std::net::SocketAddr>,
    /// The core's limits and policies.
    pub core: crate::Config,
    /// First redial delay. Default 100 ms.
    pub redial_initial: Duration,
    /// Largest redial delay. Default 5 s.
    pub redial_max: Duration,
    /// Bytes read from a socket at most per read call. Default 64 KiB.
    pub read_chunk: usize,
    /// Deliveries buffered for the application before the node stops reading from its
    /// peers (backpressure). Default 1024.
    pub delivery_queue: usize,
}

impl NetConfig {
    /// Defaults, listening on `listen` and dialling no one.
    pub fn new(listen: std::net::SocketAddr) -> Self {
        NetConfig {
            listen,
            peers: Vec::new(),
            core: crate::Config::default(),
            redial_initial: Duration::from_millis(100),
            redial_max: Duration::from_secs(5),
            read_chunk: 64 * 1024,
            delivery_queue: 1024,
        }
    }

    /// The same, dialling `peers`.
    pub fn with_peers(mut self, peers: impl IntoIterator<Item = std::net::SocketAddr>) -> Self {
        self.peers.extend(peers);
        self
    }

    /// The addresses to dial, each once however often it is listed, so that an address
    /// never has two dialled connections.
    pub fn dial_targets(&self) -> Vec<std::net::SocketAddr> {
        let mut targets = self.peers.clone();
        targets.sort_unstable();
        targets.dedup();
        targets
    }

    /// The same, with `core` limits.
    pub fn with_core(mut self, core: crate::Config) -> Self {
        self.core = core;
        self
    }
}

/// The adapter's side of one connection, as the [`Connections`] registry needs it.
pub trait Connection {
    /// Queues a frame for this connection's writer. Called only for frames the core
    /// accounted for, so an unbounded channel here is bounded by
    /// [`Config::peer_queue_bytes`](crate::Config::peer_queue_bytes). May hold frames
    /// back until [`flush`](Self::flush), to hand them over in one batch.
    fn send(&mut self, frame: Frame);
    /// Hands frames held back by [`send`](Self::send) to the writer. Called once after
    /// each round of actions.
    fn flush(&mut self) {}
    /// Stops the connection's tasks and closes its socket now.
    fn close(self);
    /// Stops reading, lets the writer send what is queued, then closes (shutdown).
    fn finish(self);
}

/// The connections an adapter has open, keyed by the [`PeerId`](crate::PeerId)s it
/// gave the core, and the code that carries out the core's actions on them. Runtime
/// adapters share it so that only the socket loops differ between them.
#[derive(Debug)]
pub struct Connections<C> {
    open: std::collections::HashMap<crate::PeerId, (std::net::SocketAddr, C)>,
    next_peer: u64,
}

impl<C> Default for Connections<C> {
    fn default() -> Self {
        Connections {
            open: std::collections::HashMap::new(),
            next_peer: 0,
        }
    }
}

/// A connection closed by the core, for the adapter to log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed {
    /// The peer's id.
    pub peer: crate::PeerId,
    /// The remote address.
    pub addr: std::net::SocketAddr,
    /// Why the core dropped it.
    pub reason: crate::DisconnectReason,
}

impl<C: Connection> Connections<C> {
    /// The id the next [`add`](Self::add) will use, so the adapter can start the
    /// connection's tasks with it first.
    pub fn next_peer(&self) -> crate::PeerId {
        crate::PeerId(self.next_peer)
    }

    /// Registers a connection under [`next_peer`](Self::next_peer) and tells the core.
    pub fn add(
        &mut self,
        core: &mut crate::Node,
        now: std::time::Instant,
        addr: std::net::SocketAddr,
        connection: C,
    ) -> crate::PeerId {
        let peer = self.next_peer();
        self.next_peer += 1;
        self.open.insert(peer, (addr, connection));
        core.peer_connected(now, peer);
        peer
    }

    /// Forgets a connection whose socket closed and tells the core. Returns its address
    /// and handle, or `None` if it was already gone.
    pub fn remove(
        &mut self,
        core: &mut crate::Node,
        now: std::time::Instant,
        peer: crate::PeerId,
    ) -> Option<(std::net::SocketAddr, C)> {
        core.peer_disconnected(now, peer);
        self.open.remove(&peer)
    }

    /// Connections open now.
    pub fn len(&self) -> usize {
        self.open.len()
    }

    /// Whether no connection is open.
    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// Carries out the core's pending actions: frames go to their connection (flushed
    /// once at the end, so each writer gets one batch), closed connections are closed and
    /// appended to `closed`, deliveries are appended to `deliveries` for the adapter to
    /// hand to the application.
    pub fn carry_out(
        &mut self,
        core: &mut crate::Node,
        deliveries: &mut Vec<crate::Delivery>,
        closed: &mut Vec<Closed>,
    ) {
        while let Some(action) = core.poll_action() {
            match action {
                crate::Action::Send { peer, frame } => {
                    if let Some((_, connection)) = self.open.get_mut(&peer) {
                        connection.send(frame);
                    }
                }
                crate::Action::Deliver(delivery) => deliveries.push(delivery),
                crate::Action::Disconnect { peer, reason } => {
                    if let Some((addr, connection)) = self.open.remove(&peer) {
                        connection.close();
                        closed.push(Closed { peer, addr, reason });
                    }
                }
            }
        }
        for (_, connection) in self.open.values_mut() {
            connection.flush();
        }
    }

    /// Finishes every connection: no more reads, queued output still goes out.
    pub fn finish_all(&mut self) {
        for (_, (_, connection)) in self.open.drain() {
            connection.finish();
        }
    }
}
