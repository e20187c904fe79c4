//! The application's end of the delivery stream, which tells the node what it took.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_channel::{Receiver, Sender};
use gossip_core::Delivery;

/// The messages a node delivers, oldest first. The node counts what waits here against
/// [`Config::delivery_queue_bytes`](gossip_core::Config::delivery_queue_bytes) until
/// [`next`](Self::next) takes it: an application that falls behind slows the network
/// down like a slow peer, and one that stops taking is left behind after
/// `slow_peer_timeout` (its deliveries are dropped, counted in
/// [`Stats::deliveries_dropped`](gossip_core::Stats::deliveries_dropped), until it takes
/// again). Dropping it tells the node the application takes nothing: the node only
/// relays.
#[derive(Debug)]
pub struct Deliveries {
    receiver: Receiver<Delivery>,
    taken: Arc<Taken>,
}

impl Deliveries {
    pub(crate) fn new(receiver: Receiver<Delivery>, taken: Arc<Taken>) -> Self {
        Deliveries { receiver, taken }
    }

    /// The next message, or `None` once the node has stopped.
    pub async fn next(&mut self) -> Option<Delivery> {
        let delivery = self.receiver.recv().await.ok()?;
        self.taken.add(1, delivery.payload.len());
        Some(delivery)
    }

    /// The next message if one is waiting now, without waiting: to write out a batch
    /// before flushing, say.
    pub fn try_next(&mut self) -> Option<Delivery> {
        let delivery = self.receiver.try_recv().ok()?;
        self.taken.add(1, delivery.payload.len());
        Some(delivery)
    }
}

impl Drop for Deliveries {
    fn drop(&mut self) {
        // What was waiting is the application's to drop: taken, as far as the node goes.
        self.receiver.close();
        let (mut count, mut bytes) = (0, 0);
        while let Ok(delivery) = self.receiver.try_recv() {
            count += 1;
            bytes += delivery.payload.len();
        }
        self.taken.add(count, bytes);
    }
}

/// Deliveries the application took since the driver last looked, and a wake-up for it.
#[derive(Debug)]
pub(crate) struct Taken {
    count: AtomicUsize,
    bytes: AtomicUsize,
    /// Holds at most one wake-up: the driver takes all the counts at once.
    wake: Sender<()>,
}

impl Taken {
    /// A counter, and where the driver waits for it to move.
    pub(crate) fn new() -> (Arc<Self>, Receiver<()>) {
        let (wake, woken) = async_channel::bounded(1);
        let taken = Taken {
            count: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
            wake,
        };
        (Arc::new(taken), woken)
    }

    fn add(&self, count: usize, bytes: usize) {
        if count > 0 {
            self.bytes.fetch_add(bytes, Ordering::AcqRel);
            self.count.fetch_add(count, Ordering::AcqRel);
            let _ = self.wake.try_send(());
        }
    }

    /// How many deliveries of how many payload bytes were taken since the last call.
    pub(crate) fn collect(&self) -> (usize, usize) {
        let count = self.count.swap(0, Ordering::AcqRel);
        let bytes = self.bytes.swap(0, Ordering::AcqRel);
        (count, bytes)
    }
}
