//! # gossip-smol
//!
//! Runs a [`gossip_core::Node`] over real TCP on smol 2 (async-net, async-io):
//! [`gossip_net`]'s driver on the [`Smol`] runtime. The API is `gossip-tokio`'s, so
//! switching runtime is changing the `use` line (and the executor you run it on).
//!
//! ```no_run
//! use gossip_smol::{GossipNode, NetConfig};
//!
//! smol::block_on(async {
//!     let config = NetConfig::new("127.0.0.1:7001".parse().unwrap())
//!         .with_peers(["127.0.0.1:7000".parse().unwrap()]);
//!     let mut node = GossipNode::start(config).await?;
//!     node.publish(&b"hello"[..]).await.expect("fits");
//!     while let Some(message) = node.next_delivery().await {
//!         println!("{}", String::from_utf8_lossy(&message.payload));
//!     }
//!     Ok::<(), gossip_smol::StartError>(())
//! })?;
//! # Ok::<(), gossip_smol::StartError>(())
//! ```
//!
//! Tasks run on smol's global executor (`SMOL_THREADS` sets its threads).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::future::Future;
use std::io::{self, IoSlice};
use std::net::Shutdown;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::{TcpListener, TcpStream};

gossip_net::runtime_api!(Smol);

/// The smol [`Runtime`]: tasks on smol's global executor, async-io's timer, async-net's
/// sockets.
#[derive(Debug, Clone, Copy)]
pub struct Smol;

/// One side of a TCP stream (async-net streams are shared handles on one socket).
#[derive(Debug)]
pub struct Half(TcpStream);

impl Runtime for Smol {
    gossip_net::tcp_items!(TcpListener, TcpStream, Half, Half);
    /// Dropping a smol task cancels it.
    type Task = smol::Task<()>;

    fn spawn(future: impl Future<Output = ()> + Send + 'static) -> smol::Task<()> {
        smol::spawn(future)
    }

    async fn sleep_until(deadline: Instant) {
        smol::Timer::at(deadline).await;
    }

    fn split(stream: TcpStream) -> io::Result<(Half, Half)> {
        stream.set_nodelay(true)?;
        Ok((Half(stream.clone()), Half(stream)))
    }
}

impl gossip_net::SocketRead for Half {
    async fn read(&mut self, buffer: &mut BytesMut, max: usize) -> io::Result<Bytes> {
        // futures-io reads into initialised memory: `buffer` stays zeroed at `max` bytes
        // between calls, so only what the last read split off is zeroed again.
        buffer.resize(max, 0);
        let read = self.0.read(buffer).await?;
        Ok(buffer.split_to(read).freeze())
    }
}

impl gossip_net::SocketWrite for Half {
    async fn write_vectored(&mut self, slices: &[IoSlice<'_>]) -> io::Result<usize> {
        self.0.write_vectored(slices).await
    }

    async fn shutdown(&mut self) {
        let _ = self.0.shutdown(Shutdown::Write);
    }
}
