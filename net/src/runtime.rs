//! What the driver needs from an async runtime: the whole per-runtime cost of running a
//! node.

use std::future::Future;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

/// An async runtime the driver can run on: tasks, a timer and TCP. `gossip-tokio` and
/// `gossip-smol` implement it on unit structs; a third runtime is one more `impl`.
///
/// Every method is an associated function (no `self`): a runtime is chosen by type, as
/// in `GossipNode<Tokio>`.
///
/// ```
/// # use std::future::Future;
/// # use std::io::{self, IoSlice};
/// # use std::net::SocketAddr;
/// # use std::time::{Duration, Instant};
/// # use bytes::{Bytes, BytesMut};
/// use gossip_net::{Runtime, SocketRead, SocketWrite};
///
/// /// A runtime with no network at all: every connect and bind fails.
/// struct Offline;
/// struct NoSocket;
/// impl SocketRead for NoSocket {
///     async fn read(&mut self, _: &mut BytesMut, _: usize) -> io::Result<Bytes> {
///         Ok(Bytes::new())
///     }
/// }
/// impl SocketWrite for NoSocket {
///     async fn write_vectored(&mut self, _: &[IoSlice<'_>]) -> io::Result<usize> {
///         Ok(0)
///     }
///     async fn shutdown(&mut self) {}
/// }
/// /// Runs the future on a thread; nothing cancels it.
/// struct Thread;
/// impl Future for Thread {
///     type Output = ();
///     fn poll(self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<()> {
///         std::task::Poll::Ready(())
///     }
/// }
/// impl Runtime for Offline {
///     type Listener = ();
///     type Stream = NoSocket;
///     type Reader = NoSocket;
///     type Writer = NoSocket;
///     type Task = Thread;
///     fn spawn(_: impl Future<Output = ()> + Send + 'static) -> Thread { Thread }
///     async fn sleep_until(_: Instant) {}
///     async fn bind(_: SocketAddr, _: u32) -> io::Result<()> {
///         Err(io::ErrorKind::Unsupported.into())
///     }
///     fn local_addr(_: &()) -> io::Result<SocketAddr> {
///         Err(io::ErrorKind::Unsupported.into())
///     }
///     async fn accept(_: &()) -> io::Result<(NoSocket, SocketAddr)> {
///         Err(io::ErrorKind::Unsupported.into())
///     }
///     async fn connect(_: SocketAddr) -> io::Result<NoSocket> {
///         Err(io::ErrorKind::Unsupported.into())
///     }
///     fn socket_local_addr(_: &NoSocket) -> io::Result<SocketAddr> {
///         Err(io::ErrorKind::Unsupported.into())
///     }
///     fn set_keepalive(_: &NoSocket, _: Duration) -> io::Result<()> {
///         Err(io::ErrorKind::Unsupported.into())
///     }
///     fn set_kernel_unsent_bytes(_: &NoSocket, _: u32) -> io::Result<()> {
///         Err(io::ErrorKind::Unsupported.into())
///     }
///     fn split(_: NoSocket) -> io::Result<(NoSocket, NoSocket)> {
///         Ok((NoSocket, NoSocket))
///     }
/// }
/// ```
pub trait Runtime: Send + Sync + Sized + 'static {
    /// A bound TCP listener.
    type Listener: Send + Sync + 'static;
    /// A connected TCP socket.
    type Stream: Send + 'static;
    /// The read half of a connected TCP socket.
    type Reader: SocketRead;
    /// The write half of a connected TCP socket.
    type Writer: SocketWrite;
    /// A spawned task. Dropping it cancels the task; awaiting it waits until the task
    /// has ended (finished or cancelled).
    type Task: Future<Output = ()> + Send + Unpin + 'static;

    /// Runs `future` in the background.
    fn spawn(future: impl Future<Output = ()> + Send + 'static) -> Self::Task;

    /// Resolves at `deadline` (at once if it has passed).
    fn sleep_until(deadline: Instant) -> impl Future<Output = ()> + Send;

    /// Binds a TCP listener that holds up to `backlog` connections not accepted yet
    /// ([`NetConfig::listen_backlog`](crate::NetConfig::listen_backlog)).
    fn bind(
        addr: SocketAddr,
        backlog: u32,
    ) -> impl Future<Output = io::Result<Self::Listener>> + Send;

    /// The address `listener` is bound to.
    fn local_addr(listener: &Self::Listener) -> io::Result<SocketAddr>;

    /// Accepts the next connection; returns it with the peer's address.
    fn accept(
        listener: &Self::Listener,
    ) -> impl Future<Output = io::Result<(Self::Stream, SocketAddr)>> + Send;

    /// Connects to `addr`.
    fn connect(addr: SocketAddr) -> impl Future<Output = io::Result<Self::Stream>> + Send;

    /// The local address of a connected socket (with the peer's, it tells a connection
    /// this node made to itself).
    fn socket_local_addr(stream: &Self::Stream) -> io::Result<SocketAddr>;

    /// Turns TCP keepalive on for a connected socket, probing after `idle` without
    /// traffic ([`NetConfig::keepalive`](crate::NetConfig::keepalive)).
    fn set_keepalive(stream: &Self::Stream, idle: Duration) -> io::Result<()>;

    /// Limits the bytes the kernel holds unsent for a connected socket to about `bytes`
    /// ([`NetConfig::kernel_unsent_bytes`](crate::NetConfig::kernel_unsent_bytes)).
    fn set_kernel_unsent_bytes(stream: &Self::Stream, bytes: u32) -> io::Result<()>;

    /// Turns Nagle's algorithm off (the driver writes whole batches; Nagle would only
    /// delay them) and splits `stream` into halves that a reader and a writer task can
    /// use at the same time.
    fn split(stream: Self::Stream) -> io::Result<(Self::Reader, Self::Writer)>;
}

/// The read half of a TCP socket.
pub trait SocketRead: Send + 'static {
    /// Waits for bytes and returns up to `max` of them, or an empty `Bytes` at the end of
    /// the stream. `buffer` is this socket's own read buffer, the same on every call and
    /// empty at first: read into its spare capacity where the runtime can, or keep
    /// zeroed space in it between calls, and return the bytes read split off from it, so
    /// that the read's payloads can be sliced from it without a copy.
    fn read(
        &mut self,
        buffer: &mut BytesMut,
        max: usize,
    ) -> impl Future<Output = io::Result<Bytes>> + Send;
}

/// The write half of a TCP socket.
pub trait SocketWrite: Send + 'static {
    /// Writes from `slices` in order, in one system call where the runtime can, and
    /// returns how many bytes were written (0 means the socket can take no more).
    fn write_vectored(
        &mut self,
        slices: &[IoSlice<'_>],
    ) -> impl Future<Output = io::Result<usize>> + Send;

    /// Closes the write direction (the peer reads the end of the stream) once all that
    /// was written has been handed to the socket. Errors are ignored: the connection is
    /// going away.
    fn shutdown(&mut self) -> impl Future<Output = ()> + Send;
}
