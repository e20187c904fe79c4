//! Per-connection tasks: a reader (socket to driver) and a writer (driver to socket).

use std::io::IoSlice;

use bytes::BytesMut;
use gossip_core::transport::{SocketEvent, WriteQueue, SLICES_PER_WRITE};
use gossip_core::{Frames, PeerId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;

use crate::driver::Event;

/// Reads into one buffer per connection and passes each read to the driver.
pub(crate) async fn read_loop(
    peer: PeerId,
    mut socket: OwnedReadHalf,
    read_chunk: usize,
    events: mpsc::Sender<Event>,
) {
    let mut buffer = BytesMut::with_capacity(read_chunk);
    loop {
        buffer.reserve(read_chunk);
        match socket.read_buf(&mut buffer).await {
            Ok(0) => break,
            Ok(_) => {
                let chunk = buffer.split().freeze();
                if events
                    .send(Event::Socket(SocketEvent::Received(peer, chunk)))
                    .await
                    .is_err()
                {
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
/// write to the driver. Ends when the driver drops the sender (after writing what is
/// left) or the socket fails.
pub(crate) async fn write_loop(
    peer: PeerId,
    mut socket: OwnedWriteHalf,
    mut frames: mpsc::UnboundedReceiver<Vec<Frames>>,
    events: mpsc::Sender<Event>,
) {
    let mut queue = WriteQueue::default();
    loop {
        if queue.is_empty() {
            match frames.recv().await {
                Some(batch) => queue.extend(batch),
                None => break,
            }
        }
        while let Ok(batch) = frames.try_recv() {
            queue.extend(batch);
        }
        let written = {
            let mut slices = [IoSlice::new(&[]); SLICES_PER_WRITE];
            let count = queue.io_slices(&mut slices);
            socket.write_vectored(&slices[..count]).await
        };
        match written {
            Ok(0) | Err(_) => {
                let _ = events.send(Event::Socket(SocketEvent::Closed(peer))).await;
                return;
            }
            Ok(written) => {
                let flushed = queue.advance(written);
                if events
                    .send(Event::Socket(SocketEvent::Flushed(peer, flushed)))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    }
    let _ = socket.shutdown().await;
}
