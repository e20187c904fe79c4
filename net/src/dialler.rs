//! The tasks that make connections: a dialler per peer address and the acceptor.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use async_channel::Sender;

use crate::backoff::Backoff;
use crate::driver::Event;
use crate::runtime::Runtime;

/// Dials `addr`, hands the connection to the driver, waits for it to close, and starts
/// over, waiting between attempts as [`Backoff`] says (a connection that held starts the
/// delays over). At most one connection to `addr` exists at a time.
pub(crate) async fn dial<R: Runtime>(
    addr: SocketAddr,
    mut backoff: Backoff,
    events: Sender<Event<R>>,
) {
    loop {
        match R::connect(addr).await {
            Ok(stream) => {
                let connected_at = Instant::now();
                let (closed, on_close) = async_channel::bounded::<()>(1);
                let event = Event::Connected {
                    stream,
                    addr,
                    closed: Some(closed),
                };
                if events.send(event).await.is_err() {
                    return;
                }
                // Fails when the driver drops the connection (and with it `closed`).
                let _ = on_close.recv().await;
                backoff.connection_ended(connected_at.elapsed());
                let retry_in = backoff.next_delay();
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
                    closed: None,
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
