//! The application's end of the delivery stream, which tells the node what it took.

use std::collections::VecDeque;
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
    /// The driver sends the deliveries of each of its turns as one batch.
    receiver: Receiver<Vec<Delivery>>,
    /// The rest of the batch being taken.
    batch: VecDeque<Delivery>,
    taken: Arc<Taken>,
}

impl Deliveries {
    pub(crate) fn new(receiver: Receiver<Vec<Delivery>>, taken: Arc<Taken>) -> Self {
        Deliveries {
            receiver,
            batch: VecDeque::new(),
            taken,
        }
    }

    /// The next message, or `None` once the node has stopped.
    pub async fn next(&mut self) -> Option<Delivery> {
        while self.batch.is_empty() {
            self.batch = self.receiver.recv().await.ok()?.into();
        }
        self.take()
    }

    /// The next message if one is waiting now, without waiting: to write out a batch
    /// before flushing, say.
    pub fn try_next(&mut self) -> Option<Delivery> {
        while self.batch.is_empty() {
            self.batch = self.receiver.try_recv().ok()?.into();
        }
        self.take()
    }

    fn take(&mut self) -> Option<Delivery> {
        let delivery = self.batch.pop_front()?;
        self.taken.add(1, delivery.payload.len());
        Some(delivery)
    }
}

impl Drop for Deliveries {
    fn drop(&mut self) {
        // What was waiting is the application's to drop: taken, as far as the node goes.
        self.receiver.close();
        let mut waiting: Vec<Delivery> = self.batch.drain(..).collect();
        while let Ok(batch) = self.receiver.try_recv() {
            waiting.extend(batch);
        }
        let bytes = waiting.iter().map(|delivery| delivery.payload.len()).sum();
        self.taken.add(waiting.len(), bytes);
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

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use gossip_core::PeerId;

    fn delivery(payload: &'static [u8]) -> Delivery {
        Delivery::new(Bytes::from_static(payload), PeerId(1))
    }

    /// Deliveries that were sent the batches [a, bb], [], [ccc]; their sender and counts.
    fn three_in_three_batches() -> (Deliveries, async_channel::Sender<Vec<Delivery>>, Arc<Taken>) {
        let (sender, receiver) = async_channel::unbounded();
        let (taken, _woken) = Taken::new();
        let deliveries = Deliveries::new(receiver, taken.clone());
        for batch in [
            vec![delivery(b"a"), delivery(b"bb")],
            vec![],
            vec![delivery(b"ccc")],
        ] {
            sender.try_send(batch).unwrap();
        }
        (deliveries, sender, taken)
    }

    #[test]
    fn batches_come_out_one_message_at_a_time_and_each_is_counted_when_taken() {
        let (mut deliveries, _sender, taken) = three_in_three_batches();
        let first = futures_lite::future::block_on(deliveries.next()).unwrap();
        assert_eq!(first.payload, &b"a"[..]);
        assert_eq!(taken.collect(), (1, 1));
        let rest: Vec<Bytes> = std::iter::from_fn(|| deliveries.try_next())
            .map(|d| d.payload)
            .collect();
        assert_eq!(rest, [&b"bb"[..], b"ccc"]);
        assert_eq!(taken.collect(), (2, 5));
        assert!(deliveries.try_next().is_none());
    }

    #[test]
    fn what_was_not_taken_counts_as_taken_when_dropped() {
        let (mut deliveries, sender, taken) = three_in_three_batches();
        deliveries.try_next().unwrap();
        drop(deliveries);
        assert_eq!(taken.collect(), (3, 6));
        assert!(sender.is_closed());
    }
}
