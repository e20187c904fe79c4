//! The tasks that make connections: a dialler per peer address and the acceptor.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use async_channel::Sender;

use crate::backoff::Backoff;
use crate::driver::Event;
use crate::engine::Redial;
use crate::peer_address::PeerAddress;
use crate::runtime::Runtime;

/// What the driver gets with a dialled connection.
#[derive(Debug)]
pub(crate) struct Dialled {
    /// Dropped when the connection closes; a [`Redial`] may come first.
    pub(crate) closed: Sender<Redial>,
    /// Dial plain: the peer did not answer a plumtree preamble before.
    pub(crate) plain: bool,
    /// The first plain connection's: when the connection that went unanswered opened
    /// (see [`Redial::Plain`]).
    pub(crate) missed_since: Option<Instant>,
}

/// Dials `target`, hands the connection to the driver, waits for it to close, and
/// starts over, waiting between attempts as [`Backoff`] says (a connection that held
/// starts the delays over). At most one connection to `target` exists at a time. The
/// driver's [`Redial`] hint, if any, changes that: dial plain from now on, stop (the
/// address is this node's), or wait the longest delay (another connection to that node
/// is kept). A name is resolved at every attempt; addresses that are `local` (this
/// node's) are skipped, and a name that resolves to nothing else is not dialled.
pub(crate) async fn dial<R: Runtime>(
    target: PeerAddress,
    local: SocketAddr,
    mut backoff: Backoff,
    events: Sender<Event<R>>,
) {
    let mut plain = false;
    let mut missed_since = None;
    loop {
        match connect::<R>(&target, local).await {
            Ok(Some((stream, addr))) => {
                let connected_at = Instant::now();
                let (closed, on_close) = async_channel::bounded::<Redial>(1);
                let dialled = Some(Dialled {
                    closed,
                    plain,
                    missed_since: missed_since.take(),
                });
                let event = Event::Connected {
                    stream,
                    addr,
                    dialled,
                };
                if events.send(event).await.is_err() {
                    return;
                }
                // Ends when the driver drops the connection (and with it `closed`).
                let retry_in = match on_close.recv().await {
                    Ok(Redial::Plain { since }) => {
                        tracing::info!(addr = %target, "peer does not speak plumtree: dialling it plain");
                        plain = true;
                        missed_since = Some(since);
                        Duration::ZERO
                    }
                    Ok(Redial::Never) => {
                        tracing::warn!(addr = %target, "this address reaches this node: not dialling it");
                        return;
                    }
                    Ok(Redial::Later) => backoff.longest(),
                    Err(_) => {
                        backoff.connection_ended(connected_at.elapsed());
                        backoff.next_delay()
                    }
                };
                tracing::info!(addr = %target, ?retry_in, "redialling");
                R::sleep_until(Instant::now() + retry_in).await;
            }
            Ok(None) => {
                tracing::warn!(addr = %target, "not dialling this node's own address");
                return;
            }
            Err(error) => {
                let retry_in = backoff.next_delay();
                tracing::info!(addr = %target, %error, ?retry_in, "dial failed");
                R::sleep_until(Instant::now() + retry_in).await;
            }
        }
    }
}

/// Connects to the first address of `target` that takes the connection, skipping
/// `local`'s; `None` if `target` resolves to `local`'s addresses only.
async fn connect<R: Runtime>(
    target: &PeerAddress,
    local: SocketAddr,
) -> io::Result<Option<(R::Stream, SocketAddr)>> {
    let addrs = target.resolve().await?;
    let mut last_error = None;
    for addr in addrs
        .into_iter()
        .filter(|addr| !is_own_address(*addr, local))
    {
        match R::connect(addr).await {
            Ok(stream) => return Ok(Some((stream, addr))),
            Err(error) => last_error = Some(error),
        }
    }
    last_error.map_or(Ok(None), Err)
}

/// Whether dialling `addr` would reach the node listening on `local`: the same address,
/// or the same port on loopback or an unspecified address when the node listens on all
/// addresses. (Another address of this machine's own interfaces is not recognised.)
fn is_own_address(addr: SocketAddr, local: SocketAddr) -> bool {
    let any_local = |ip: std::net::IpAddr| ip.is_loopback() || ip.is_unspecified();
    addr == local
        || (addr.port() == local.port()
            && (addr.ip().is_unspecified()
                || (local.ip().is_unspecified() && any_local(addr.ip()))))
}

/// Accepts connections and hands them to the driver.
pub(crate) async fn accept<R: Runtime>(listener: R::Listener, events: Sender<Event<R>>) {
    loop {
        match R::accept(&listener).await {
            Ok((stream, addr)) => {
                let event = Event::Connected {
                    stream,
                    addr,
                    dialled: None,
                };
                if events.send(event).await.is_err() {
                    return;
                }
            }
            Err(error) => {
                // Typically out of file descriptors: back off instead of spinning.
                tracing::warn!(%error, "accept failed");
                R::sleep_until(Instant::now() + Duration::from_millis(100)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_knows_its_own_address() {
        let own = |addr: &str, local: &str| {
            is_own_address(addr.parse().expect("addr"), local.parse().expect("addr"))
        };
        assert!(own("127.0.0.1:7000", "127.0.0.1:7000"));
        assert!(own("127.0.0.1:7000", "0.0.0.0:7000"));
        assert!(own("0.0.0.0:7000", "127.0.0.1:7000"));
        assert!(own("[::1]:7000", "[::]:7000"));
        assert!(!own("127.0.0.1:7001", "127.0.0.1:7000"));
        assert!(!own("127.0.0.2:7000", "127.0.0.1:7000"));
        assert!(!own("10.0.0.1:7000", "127.0.0.1:7000"));
    }
}
