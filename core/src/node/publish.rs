//! A message published by this node's application.

use std::time::Instant;

use bytes::Bytes;
use thiserror::Error;

use super::Node;
use crate::{MessageId, Overload};

/// What [`Node::publish`] did with a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishOutcome {
    /// New message: marked seen and queued for `peers` peers (those with room in their
    /// queue; the others count as shed).
    Sent {
        /// The message id.
        id: MessageId,
        /// Peers it was queued for.
        peers: usize,
    },
    /// The same payload (so the same id) is still remembered: nothing was sent. Identical
    /// bytes are one message, so publishing them again is a no-op within the retention
    /// window.
    AlreadySeen {
        /// The message id.
        id: MessageId,
    },
}

impl PublishOutcome {
    /// The message id, whatever the outcome.
    pub fn id(&self) -> MessageId {
        match *self {
            PublishOutcome::Sent { id, .. } | PublishOutcome::AlreadySeen { id } => id,
        }
    }
}

/// Why [`Node::publish`] refused a payload. A refused payload is not marked seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum PublishError {
    /// The payload is longer than [`Config::max_frame_len`](crate::Config::max_frame_len).
    #[error("payload of {len} bytes exceeds the maximum of {max}")]
    TooLarge {
        /// The payload length.
        len: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The message does not fit the queues ([`Overload::PauseReading`]): the node is
    /// full, or would be past a budget with it. It takes no new message until its
    /// queues drain. Publish again once [`Node::can_publish`] says so (it says `false`
    /// from now until then); an adapter holds the payload and does that for you.
    #[error("the node's queues are full; publish again once they drain")]
    Congested,
}

impl Node {
    /// Publishes `payload` from this node: marks it seen and queues it for every peer.
    ///
    /// The publisher gets no [`Action::Deliver`](crate::Action::Deliver) for its own
    /// message (it already has it). Publishing bytes that are still remembered returns
    /// [`PublishOutcome::AlreadySeen`] and sends nothing.
    ///
    /// ```
    /// use std::time::Instant;
    /// use gossip_core::{Config, Node, PublishError, PublishOutcome};
    ///
    /// let now = Instant::now();
    /// let mut node = Node::new(Config { max_frame_len: 4, ..Config::default() })?;
    /// assert!(matches!(node.publish(now, &b"ping"[..]), Ok(PublishOutcome::Sent { .. })));
    /// assert!(matches!(node.publish(now, &b"ping"[..]), Ok(PublishOutcome::AlreadySeen { .. })));
    /// assert_eq!(
    ///     node.publish(now, &b"pings"[..]),
    ///     Err(PublishError::TooLarge { len: 5, max: 4 })
    /// );
    /// # Ok::<(), gossip_core::ConfigError>(())
    /// ```
    pub fn publish(
        &mut self,
        now: Instant,
        payload: impl Into<Bytes>,
    ) -> Result<PublishOutcome, PublishError> {
        let payload = payload.into();
        let max = self.config.max_frame_len;
        if payload.len() > max {
            return Err(PublishError::TooLarge {
                len: payload.len(),
                max,
            });
        }
        let refused = match self.can_publish() {
            false => true,
            // Not full, but this message would pass a budget: that queue is full now.
            true => match self.headroom(None).take(payload.len()) {
                Ok(()) => false,
                Err(binding) => {
                    self.mark_full(now, binding);
                    self.settle(now);
                    true
                }
            },
        };
        if refused {
            self.stats.publishes_refused += 1;
            return Err(PublishError::Congested);
        }
        let id = MessageId::of(&payload);
        let identified = self.keying.with_id(id, &payload);
        if !self.seen.insert(identified.key, now) {
            self.stats.duplicates += 1;
            return Ok(PublishOutcome::AlreadySeen { id });
        }
        self.stats.messages_published += 1;
        let peers = self.forward_one(now, None, (identified, payload), 0);
        self.settle(now);
        Ok(PublishOutcome::Sent { id, peers })
    }

    /// Whether [`publish`](Self::publish) may take a new message now: always with
    /// [`Overload::Shed`]; with [`Overload::PauseReading`], while no queue is full. A
    /// message that would still pass a budget is refused with
    /// [`PublishError::Congested`] all the same, and from then on this says `false`
    /// until the queue it did not fit has drained to half: wait for that, then publish
    /// it again.
    pub fn can_publish(&self) -> bool {
        self.config.overload == Overload::Shed || !self.flow.congested()
    }
}
