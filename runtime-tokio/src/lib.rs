//! # gossip-tokio
//!
//! Runs a [`gossip_core::Node`] over real TCP on tokio: [`gossip_net`]'s driver on the
//! [`Tokio`] runtime. Switching to smol is the `use` line (`gossip_smol::GossipNode`) and
//! the executor the future runs on; configuration and behaviour are the same.
//!
//! ```no_run
//! use gossip_tokio::{GossipNode, NetConfig};
//!
//! # async fn run() -> Result<(), gossip_tokio::StartError> {
//! let config = NetConfig::new("127.0.0.1:7001".parse().unwrap())
//!     .with_peers(["127.0.0.1:7000".parse().unwrap()]);
//! let mut node = GossipNode::start(config).await?;
//! node.publish(&b"hello"[..]).await.expect("fits");
//! while let Some(message) = node.next_delivery().await {
//!     println!("{}", String::from_utf8_lossy(&message.payload));
//! }
//! # Ok(()) }
//! ```
//!
//! Call [`GossipNode::start`] from within a tokio runtime: the node's tasks are spawned
//! on it.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

gossip_net::runtime_api!(Tokio);

/// The tokio [`Runtime`]: tasks on the current runtime, tokio's timer and sockets.
#[derive(Debug, Clone, Copy)]
pub struct Tokio;

/// A tokio task that is aborted when dropped.
#[derive(Debug)]
pub struct Task(tokio::task::JoinHandle<()>);

impl Future for Task {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // An aborted or panicked task has ended too.
        Pin::new(&mut self.0).poll(cx).map(|_| ())
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The read half of a tokio TCP stream.
#[derive(Debug)]
pub struct Reader(OwnedReadHalf);

/// The write half of a tokio TCP stream.
#[derive(Debug)]
pub struct Writer(OwnedWriteHalf);

impl Runtime for Tokio {
    gossip_net::tcp_items!(TcpListener, TcpStream, Reader, Writer);
    type Task = Task;

    fn spawn(future: impl Future<Output = ()> + Send + 'static) -> Task {
        Task(tokio::spawn(future))
    }

    async fn sleep_until(deadline: Instant) {
        tokio::time::sleep_until(deadline.into()).await;
    }

    fn split(stream: TcpStream) -> io::Result<(Reader, Writer)> {
        stream.set_nodelay(true)?;
        let (reader, writer) = stream.into_split();
        Ok((Reader(reader), Writer(writer)))
    }
}

impl gossip_net::SocketRead for Reader {
    async fn read(&mut self, buffer: &mut BytesMut, max: usize) -> io::Result<Bytes> {
        // Reads into the spare capacity: nothing is zeroed first. `reserve` may leave
        // more room than `max`; the limit keeps each read within it.
        buffer.reserve(max);
        self.0.read_buf(&mut (&mut *buffer).limit(max)).await?;
        Ok(buffer.split().freeze())
    }
}

impl gossip_net::SocketWrite for Writer {
    async fn write_vectored(&mut self, slices: &[IoSlice<'_>]) -> io::Result<usize> {
        self.0.write_vectored(slices).await
    }

    async fn shutdown(&mut self) {
        let _ = self.0.shutdown().await;
    }
}
