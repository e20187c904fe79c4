//! Per-connection tasks: a reader (socket to driver) and a writer (driver to socket).

use std::io::IoSlice;
use std::net::Shutdown;

use bytes::BytesMut;
use gossip_core::transport::{SocketEvent, WriteQueue, SLICES_PER_WRITE};
use gossip_core::{Frames, PeerId};
use smol::channel::{Receiver, Sender};
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::TcpStream;

use crate::driver::Event;

/// Reads into one buffer per connection and passes each read to the driver.
pub(crate) async fn read_loop(
    peer: PeerId,
    mut socket: TcpStream,
    read_chunk: usize,
    events: Sender<Event>,
) {
    // Kept initialised at `read_chunk` bytes: after a read is split off, only the split
    // part is zeroed again.
    let mut buffer = BytesMut::new();
    loop {
        buffer.resize(read_chunk.max(1), 0);
        match socket.read(&mut buffer).await {
            Ok(0) => break,
            Ok(read) => {
                let chunk = buffer.split_to(read).freeze();
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
/// write to the driver. Ends when the driver closes the channel (after writing what is
/// left) or the socket fails.
pub(crate) async fn write_loop(
    peer: PeerId,
    mut socket: TcpStream,
    frames: Receiver<Vec<Frames>>,
    events: Sender<Event>,
) {
    let mut queue = WriteQueue::default();
    loop {
        if queue.is_empty() {
            match frames.recv().await {
                Ok(batch) => queue.extend(batch),
                Err(_) => break,
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
    let _ = socket.shutdown(Shutdown::Write);
}
