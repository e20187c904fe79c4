//! Keeps one connection to a configured peer address, redialling with backoff.

use std::net::SocketAddr;
use std::time::Duration;

use gossip_core::transport::Backoff;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use crate::driver::Event;

/// Dials `addr`, hands the connection to the driver, waits for it to close, and starts
/// over, waiting between attempts as [`Backoff`] says (a connection that held starts the
/// delays over). At most one connection to `addr` exists at a time.
pub(crate) async fn run(
    addr: SocketAddr,
    initial: Duration,
    max: Duration,
    events: mpsc::Sender<Event>,
) {
    let mut backoff = Backoff::new(initial, max);
    loop {
        match TcpStream::connect(addr).await {
            Ok(stream) => {
                let connected_at = std::time::Instant::now();
                let (closed, on_close) = oneshot::channel();
                let event = Event::Connected {
                    stream,
                    addr,
                    closed: Some(closed),
                };
                if events.send(event).await.is_err() {
                    return;
                }
                // Resolves (with an error) when the driver drops the connection.
                let _ = on_close.await;
                backoff.connection_ended(connected_at.elapsed());
            }
            Err(error) => {
                tracing::debug!(%addr, %error, "dial failed");
            }
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}
