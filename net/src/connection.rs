//! One connection: a reader task (socket to driver), a writer task (driver to socket),
//! and the driver's handle on both.

use std::io::IoSlice;

use async_channel::{Receiver, Sender};
use bytes::BytesMut;
use gossip_core::{Frames, PeerId};

use crate::driver::Event;
use crate::engine::{Connection, Redial, SocketEvent};
use crate::runtime::{Runtime, SocketRead, SocketWrite};
use crate::write_queue::{WriteQueue, SLICES_PER_WRITE};
use gossip_core::plumtree::wire::PREAMBLE_LEN;

/// The driver's handle on one connection's tasks. Dropping it cancels both and so closes
/// the socket.
pub(crate) struct Link<R: Runtime> {
    frames: Sender<Outgoing>,
    /// One message per read the reader may make.
    grants: Sender<()>,
    /// Held to be cancelled with the link.
    _reader: R::Task,
    writer: R::Task,
    /// Dropped with the link, which wakes the dialler that made it; a [`Redial`] sent
    /// on it first says how to dial again.
    on_close: Option<Sender<Redial>>,
}

/// What the writer task writes, in order.
pub(crate) enum Outgoing {
    /// This node's plumtree preamble (not queued in the core, not reported flushed).
    Preamble([u8; PREAMBLE_LEN]),
    /// Frames the core queued.
    Frames(Vec<Frames>),
}

impl<R: Runtime> Link<R> {
    /// Starts the reader and writer tasks for `peer` over `reader` and `writer`.
    pub(crate) fn start(
        peer: PeerId,
        (reader, writer): (R::Reader, R::Writer),
        read_chunk: usize,
        events: &Sender<Event<R>>,
        on_close: Option<Sender<Redial>>,
    ) -> Self {
        let (frames, queued) = async_channel::unbounded();
        // Unbounded, but the engine never grants more than `READ_AHEAD` at a time.
        let (grants, granted) = async_channel::unbounded();
        let read_loop = read_loop(peer, reader, read_chunk, granted, events.clone());
        Link {
            frames,
            grants,
            _reader: R::spawn(read_loop),
            writer: R::spawn(write_loop(peer, writer, queued, events.clone())),
            on_close,
        }
    }

    /// Stops reading and returns the writer, which sends what is queued, closes the
    /// socket's write direction and ends; awaiting it waits for that, dropping it cuts
    /// it short.
    pub(crate) fn finish(self) -> R::Task {
        // Closing `frames` (dropped with the rest) tells the writer nothing more comes.
        self.writer
    }
}

impl<R: Runtime> Connection for Link<R> {
    fn send(&mut self, frames: Vec<Frames>) {
        // The writer may already have ended; its Closed event is on the way.
        let _ = self.frames.try_send(Outgoing::Frames(frames));
    }

    fn send_preamble(&mut self, preamble: [u8; PREAMBLE_LEN]) {
        let _ = self.frames.try_send(Outgoing::Preamble(preamble));
    }

    fn redial(&mut self, hint: Redial) {
        if let Some(on_close) = &self.on_close {
            let _ = on_close.try_send(hint);
        }
    }

    fn grant_reads(&mut self, count: usize) {
        for _ in 0..count {
            let _ = self.grants.try_send(());
        }
    }
}

/// Reads from the socket and passes each read to the driver, until the socket ends; one
/// read per grant, so that while the core wants nothing from this peer the socket is
/// not read and TCP's window closes on it.
async fn read_loop<R: Runtime>(
    peer: PeerId,
    mut socket: R::Reader,
    read_chunk: usize,
    granted: Receiver<()>,
    events: Sender<Event<R>>,
) {
    let mut buffer = BytesMut::new();
    while granted.recv().await.is_ok() {
        match socket.read(&mut buffer, read_chunk.max(1)).await {
            Ok(chunk) if chunk.is_empty() => break,
            Ok(chunk) => {
                let event = Event::Socket(SocketEvent::Received(peer, chunk));
                if events.send(event).await.is_err() {
                    return;
                }
            }
            Err(error) => {
                tracing::debug!(%peer, %error, "read failed");
                break;
            }
        }
    }
    let _ = events.send(Event::Socket(SocketEvent::Closed(peer))).await;
}

/// Writes queued frames, as many per vectored write as are waiting, and reports each
/// write to the driver. Ends when the driver closes the channel (after writing what is
/// left) or the socket fails.
async fn write_loop<R: Runtime>(
    peer: PeerId,
    mut socket: R::Writer,
    frames: Receiver<Outgoing>,
    events: Sender<Event<R>>,
) {
    let mut queue = WriteQueue::default();
    loop {
        if queue.is_empty() {
            match frames.recv().await {
                Ok(Outgoing::Frames(batch)) => queue.extend(batch),
                Ok(Outgoing::Preamble(preamble)) => {
                    // Sent before the core knows the peer: nothing is queued yet.
                    let event = match write_all(&mut socket, &preamble).await {
                        Ok(()) => SocketEvent::PreambleSent(peer),
                        Err(_) => SocketEvent::Closed(peer),
                    };
                    let closed = matches!(event, SocketEvent::Closed(_));
                    if events.send(Event::Socket(event)).await.is_err() || closed {
                        return;
                    }
                    continue;
                }
                Err(_) => break,
            }
        }
        // A preamble only ever comes first, before any frame: the core does not know
        // the peer until the protocol is settled.
        while let Ok(Outgoing::Frames(batch)) = frames.try_recv() {
            queue.extend(batch);
        }
        let written = {
            let mut slices = [IoSlice::new(&[]); SLICES_PER_WRITE];
            let count = queue.io_slices(&mut slices);
            socket.write_vectored(&slices[..count]).await
        };
        let event = match written {
            Ok(0) | Err(_) => SocketEvent::Closed(peer),
            Ok(written) => SocketEvent::Flushed(peer, queue.advance(written)),
        };
        let closed = matches!(event, SocketEvent::Closed(_));
        if events.send(Event::Socket(event)).await.is_err() || closed {
            return;
        }
    }
    socket.shutdown().await;
}

/// Writes all of `bytes`.
async fn write_all<W: SocketWrite>(socket: &mut W, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        match socket.write_vectored(&[IoSlice::new(bytes)]).await? {
            0 => return Err(std::io::ErrorKind::WriteZero.into()),
            written => bytes = &bytes[written..],
        }
    }
    Ok(())
}
