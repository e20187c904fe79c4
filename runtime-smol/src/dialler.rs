//! Keeps one connection to a configured peer address, redialling with backoff.

use std::net::SocketAddr;
use std::time::Duration;

use gossip_core::transport::Backoff;
use smol::channel::{bounded, Sender};
use smol::net::TcpStream;
use smol::Timer;

use crate::driver::Event;

/// Dials `addr`, hands the connection to the driver, waits for it to close, and starts
/// over, waiting between attempts as [`Backoff`] says (a connection that held starts the
/// delays over). At most one connection to `addr` exists at a time.
pub(crate) async fn run(addr: SocketAddr, initial: Duration, max: Duration, events: Sender<Event>) {
    let mut backoff = Backoff::new(initial, max);
    loop {
        match TcpStream::connect(addr).await {
            Ok(stream) => {
                let connected_at = std::time::Instant::now();
                let (closed, on_close) = bounded::<()>(1);
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
            }
            Err(error) => {
                tracing::debug!(%addr, %error, "dial failed");
            }
        }
        Timer::after(backoff.next_delay()).await;
    }
}
