//! # gossip-net
//!
//! Runs a [`gossip_core::Node`] over real TCP, on any async runtime that implements
//! [`Runtime`]: this crate is the one async driver, written once; `gossip-tokio` and
//! `gossip-smol` are its two runtimes (the split of `quinn` over `quinn-proto`). It only
//! moves bytes: it owns the listener, the sockets and the timer, feeds what it reads into
//! the core and carries out the core's actions. Every protocol policy (framing, limits,
//! seen set, slow peers) lives in the core.
//!
//! Most applications use it through an adapter, whose `GossipNode` is this crate's
//! [`GossipNode`] on that runtime:
//!
//! ```no_run
//! use gossip_net::NetConfig;
//! # async fn run<R: gossip_net::Runtime>() -> Result<(), gossip_net::StartError> {
//! let config = NetConfig::new("127.0.0.1:7001".parse().unwrap())
//!     .with_peers(["127.0.0.1:7000".parse().unwrap()]);
//! let mut node = gossip_net::GossipNode::<R>::start(config).await?;
//! node.publish(&b"hello"[..]).await.expect("fits");
//! while let Some(message) = node.next_delivery().await {
//!     println!("{}", String::from_utf8_lossy(&message.payload));
//! }
//! # Ok(()) }
//! ```
//!
//! ## Structure
//!
//! One driver task owns the core (with its open connections: the `Engine`). Each connection has a reader task (socket to driver, one
//! buffer per connection, each read handed over whole so payloads are slices of it) and
//! a writer task (driver to socket, many frames per vectored write). Each configured
//! peer has a dialler task that redials with capped exponential backoff; one task
//! accepts. All of them talk to the driver over one bounded event queue
//! ([`NetConfig::event_queue`]), so a driver that falls behind slows its readers, and
//! TCP slows their peers.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod backoff;
mod config;
mod connection;
mod deliveries;
mod dialler;
mod driver;
mod engine;
mod error;
mod handle;
mod hello;
mod log_limit;
mod peer_address;
mod runtime;
mod socket_options;
mod write_queue;

pub use config::NetConfig;
pub use deliveries::Deliveries;
pub use error::{NetConfigError, NodeError, StartError};
pub use handle::{GossipNode, PeerInfo, Publisher};
pub use peer_address::{PeerAddress, PeerAddressError};
pub use runtime::{Runtime, SocketRead, SocketWrite};
#[doc(hidden)]
pub use socket_options::{listener, set_keepalive, set_kernel_unsent_bytes};

/// Declares, in a runtime crate, the names applications use, so that every runtime
/// offers the same API and switching runtime is a `use` line: re-exports of
/// [`Deliveries`], [`NetConfig`], [`NetConfigError`], [`NodeError`], [`PeerAddress`],
/// [`PeerInfo`], [`Runtime`] and [`StartError`], and `GossipNode` and `Publisher` as type
/// aliases on `$runtime`.
///
/// ```ignore
/// gossip_net::runtime_api!(Tokio); // in gossip-tokio: gossip_tokio::GossipNode, ...
/// ```
#[macro_export]
macro_rules! runtime_api {
    ($runtime:ty) => {
        pub use $crate::{
            Deliveries, NetConfig, NetConfigError, NodeError, PeerAddress, PeerInfo, Runtime,
            StartError,
        };
        /// A gossip node on this crate's runtime.
        pub type GossipNode = $crate::GossipNode<$runtime>;
        /// Publishes into a [`GossipNode`] from any task.
        pub type Publisher = $crate::Publisher<$runtime>;
    };
}

/// Writes, inside an `impl Runtime`, the TCP items: the runtime's four socket types (a
/// listener and a stream with the usual async API, `Listener::try_from(std_listener)`,
/// `listener.local_addr()`, `listener.accept().await`, `Stream::connect(addr).await`,
/// `stream.local_addr()`, as tokio's and async-net's have; the stream's read and write
/// halves, which `split` makes) and the seven methods that delegate to that API (the
/// listener is made here, with a larger backlog, and keepalive and the kernel's unsent
/// bytes are set through `socket2`), so that a runtime only says which types.
///
/// ```ignore
/// impl Runtime for Tokio {
///     gossip_net::tcp_items!(TcpListener, TcpStream, Reader, Writer);
///     // Task; spawn, sleep_until, split
/// }
/// ```
#[macro_export]
macro_rules! tcp_items {
    ($listener:ty, $stream:ty, $reader:ty, $writer:ty) => {
        type Listener = $listener;
        type Stream = $stream;
        type Reader = $reader;
        type Writer = $writer;

        async fn bind(addr: ::std::net::SocketAddr, backlog: u32) -> ::std::io::Result<$listener> {
            <$listener>::try_from($crate::listener(addr, backlog)?)
        }

        fn local_addr(listener: &$listener) -> ::std::io::Result<::std::net::SocketAddr> {
            listener.local_addr()
        }

        async fn accept(
            listener: &$listener,
        ) -> ::std::io::Result<($stream, ::std::net::SocketAddr)> {
            listener.accept().await
        }

        async fn connect(addr: ::std::net::SocketAddr) -> ::std::io::Result<$stream> {
            <$stream>::connect(addr).await
        }

        fn socket_local_addr(stream: &$stream) -> ::std::io::Result<::std::net::SocketAddr> {
            stream.local_addr()
        }

        fn set_keepalive(stream: &$stream, idle: ::std::time::Duration) -> ::std::io::Result<()> {
            $crate::set_keepalive(stream, idle)
        }

        fn set_kernel_unsent_bytes(stream: &$stream, bytes: u32) -> ::std::io::Result<()> {
            $crate::set_kernel_unsent_bytes(stream, bytes)
        }
    };
}
