//! What gossip-net asks of the operating system's sockets, whatever the runtime: TCP
//! keepalive and a small unsent part of the send buffer on every connection, and a
//! listen backlog for bursts of connections.
//!
//! Keepalive: a flood connection carries nothing but messages, so without it a peer
//! that vanished without a word (its host gone, a NAT that forgot the connection) would
//! look connected for as long as the network is quiet, and its address would never be
//! dialled again.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use socket2::{Domain, SockRef, Socket, TcpKeepalive, Type};

/// Unanswered probes after which the kernel closes the connection.
pub const KEEPALIVE_PROBES: u32 = 3;

/// Turns TCP keepalive on for `stream`: probes after `idle` without traffic, then every
/// `idle / 3`; [`KEEPALIVE_PROBES`] unanswered ones close the connection, so a peer
/// that vanished is noticed about `2 × idle` after the connection fell quiet (where
/// the system lets the interval and count be set; elsewhere its own defaults apply).
/// A runtime calls it through [`tcp_items!`](crate::tcp_items).
#[doc(hidden)]
pub fn set_keepalive<'a, S>(stream: &'a S, idle: Duration) -> io::Result<()>
where
    SockRef<'a>: From<&'a S>,
{
    let keepalive = TcpKeepalive::new().with_time(idle);
    #[cfg(any(
        target_os = "linux",
        target_os = "android",
        target_os = "macos",
        target_os = "windows",
        target_os = "freebsd"
    ))]
    let keepalive = keepalive
        .with_interval(idle / 3)
        .with_retries(KEEPALIVE_PROBES);
    SockRef::from(stream).set_tcp_keepalive(&keepalive)
}

/// Limits what the kernel holds unsent for `stream` to about `bytes`
/// (`TCP_NOTSENT_LOWAT`): the socket takes no more writes while more than that waits to
/// be sent, and is writable again as soon as less does. Linux and Android only;
/// elsewhere it returns an `Unsupported` error. A runtime calls it through
/// [`tcp_items!`](crate::tcp_items).
#[doc(hidden)]
pub fn set_kernel_unsent_bytes<'a, S>(stream: &'a S, bytes: u32) -> io::Result<()>
where
    SockRef<'a>: From<&'a S>,
{
    #[cfg(any(target_os = "linux", target_os = "android"))]
    return SockRef::from(stream).set_tcp_notsent_lowat(bytes);
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = (stream, bytes);
        Err(io::ErrorKind::Unsupported.into())
    }
}

/// A listener on `addr` holding up to `backlog` connections not accepted yet (capped by
/// the system's `somaxconn`), non-blocking, for a runtime to take over
/// (`TryFrom<std::net::TcpListener>`, as tokio's and async-net's have). A runtime calls
/// it through [`tcp_items!`](crate::tcp_items).
#[doc(hidden)]
pub fn listener(addr: SocketAddr, backlog: u32) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    // As the standard library does on Unix: a restarted node can listen again at once.
    #[cfg(unix)]
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn a_listener_accepts_and_takes_its_port_again_after_a_restart() {
        let first = listener("127.0.0.1:0".parse().unwrap(), 8).unwrap();
        let addr = first.local_addr().unwrap();
        let client = TcpStream::connect(addr).unwrap();
        first.set_nonblocking(false).unwrap();
        let (accepted, _) = first.accept().unwrap();
        drop((first, accepted, client));
        // The accepted connection lingers in TIME_WAIT; the port is free to listen on.
        listener(addr, 8).expect("listening again on the same port");
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn the_kernel_unsent_bytes_are_limited_to_what_was_asked() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        set_kernel_unsent_bytes(&stream, 128 * 1024).unwrap();
        assert_eq!(
            SockRef::from(&stream).tcp_notsent_lowat().unwrap(),
            128 * 1024
        );
    }

    #[test]
    fn keepalive_is_on_with_the_idle_time_asked_for() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        assert!(
            !SockRef::from(&stream).keepalive().unwrap(),
            "off by default"
        );
        set_keepalive(&stream, Duration::from_secs(30)).unwrap();
        let socket = SockRef::from(&stream);
        assert!(socket.keepalive().unwrap());
        #[cfg(target_os = "linux")]
        {
            assert_eq!(
                socket.tcp_keepalive_time().unwrap(),
                Duration::from_secs(30)
            );
            assert_eq!(
                socket.tcp_keepalive_interval().unwrap(),
                Duration::from_secs(10)
            );
            assert_eq!(socket.tcp_keepalive_retries().unwrap(), KEEPALIVE_PROBES);
        }
    }
}
