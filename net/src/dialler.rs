//! The tasks that make connections: a dialler per peer address and the acceptor.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use async_channel::Sender;

use crate::backoff::Backoff;
use crate::driver::Event;
use crate::engine::Redial;
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

/// Dials `addr`, hands the connection to the driver, waits for it to close, and starts
/// over, waiting between attempts as [`Backoff`] says (a connection that held starts the
/// delays over). At most one connection to `addr` exists at a time. The driver's
/// [`Redial`] hint, if any, changes that: dial plain from now on, stop (the address is
/// this node's), or wait the longest delay (another connection to that node is kept).
pub(crate) async fn dial<R: Runtime>(
    addr: SocketAddr,
    mut backoff: Backoff,
    events: Sender<Event<R>>,
) {
    let mut plain = false;
    let mut missed_since = None;
    loop {
        match R::connect(addr).await {
            Ok(stream) => {
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
                        tracing::info!(%addr, "peer does not speak plumtree: dialling it plain");
                        plain = true;
                        missed_since = Some(since);
                        Duration::ZERO
                    }
                    Ok(Redial::Never) => {
                        tracing::warn!(%addr, "this address reaches this node: not dialling it");
                        return;
                    }
                    Ok(Redial::Later) => backoff.longest(),
                    Err(_) => {
                        backoff.connection_ended(connected_at.elapsed());
                        backoff.next_delay()
                    }
                };
                tracing::info!(%addr, ?retry_in, "redialling");
                R::sleep_until(Instant::now() + retry_in).await;
            }
            Err(error) => {
                let retry_in = backoff.next_delay();
                tracing::info!(%addr, %error, ?retry_in, "dial failed");
                R::sleep_until(Instant::now() + retry_in).await;
            }
        }
    }
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
