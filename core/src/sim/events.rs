//! What happens in a simulation as its events come due: bytes arriving over a link, a
//! node's timer, links breaking and coming back, nodes crashing and restarting; and the
//! node's actions carried out over the simulated links.

use std::time::{Duration, Instant};

use super::config::Churn;
use super::link::{link_of, peer_id, RAW_PEER};
use super::schedule::{nanos, Event};
use super::Simulation;
use crate::{Action, Direction, Frames, Node, PeerId, PublishError};

impl Simulation {
    pub(super) fn handle(&mut self, event: Event) {
        match event {
            Event::Arrive { link, side, epoch } => self.arrive(link, side, epoch),
            Event::Timer { node } => {
                if self.nodes[node].timer == Some(self.now) && !self.nodes[node].frozen {
                    self.nodes[node].timer = None;
                    let now = self.instant();
                    if let Some(n) = self.nodes[node].node.as_mut() {
                        n.handle_timeout(now);
                    }
                    self.process(node);
                }
            }
            Event::Reconnect { link } => self.connect(link),
            Event::Crash => {
                let Some(churn) = self.config.churn else {
                    return;
                };
                let victim = self.rng.below(self.nodes.len() as u64) as usize;
                self.crash(victim, churn.downtime);
                self.schedule_crash(churn);
            }
            Event::Restart { node } => {
                let fresh = Node::new(self.config.node_config(node)).expect("validated");
                self.nodes[node].node = Some(fresh);
                for link in self.nodes[node].links.clone() {
                    self.connect(link);
                }
            }
        }
    }

    /// Crashes node `index` now, if it is up: its links break (what was in flight on
    /// them is lost), what waited in its outbox is gone, and it restarts empty after
    /// `downtime`.
    pub(super) fn crash(&mut self, index: usize, downtime: Duration) {
        let Some(node) = self.nodes[index].node.take() else {
            return;
        };
        let crashed = &mut self.nodes[index];
        crashed.frames_received_before += node.stats().frames_in;
        crashed.crashes += 1;
        crashed.timer = None;
        crashed.outbox.clear();
        for link in crashed.links.clone() {
            self.break_link(link, false);
            // The neighbour may act on losing the peer at once.
            let [a, b] = self.links[link].ends;
            self.process(if a == index { b } else { a });
        }
        let at = self.now.saturating_add(nanos(downtime));
        self.schedule.push(at, Event::Restart { node: index });
    }

    pub(super) fn schedule_crash(&mut self, churn: Churn) {
        let gap = self.rng.below(nanos(churn.mean_interval).saturating_mul(2));
        let at = self.now.saturating_add(gap.max(1));
        self.schedule.push(at, Event::Crash);
    }

    /// Opens a connection over `link` if both ends are up.
    pub(super) fn connect(&mut self, link: usize) {
        let [a, b] = self.links[link].ends;
        if self.links[link].up || self.nodes[a].node.is_none() || self.nodes[b].node.is_none() {
            return;
        }
        self.links[link].up = true;
        let now = self.instant();
        let plumtree = [a, b].map(|end| self.config.node_config(end).plumtree.is_some());
        for side in 0..2 {
            let [end, other] = [self.links[link].ends[side], self.links[link].ends[1 - side]];
            if let Some(node) = self.nodes[end].node.as_mut() {
                // The first end of a link dialled the second.
                let direction = [Direction::Outbound, Direction::Inbound][side];
                let peer = peer_id(link, side);
                match plumtree {
                    [true, true] => {
                        node.plumtree_peer_connected(now, peer, direction, other as u64)
                    }
                    _ => node.peer_connected(now, peer, direction),
                }
            }
        }
        self.process(a);
        self.process(b);
    }

    /// Breaks the connection on `link`; both ends that are up are told. With
    /// `reconnect`, it comes back after the configured delay.
    pub(super) fn break_link(&mut self, link: usize, reconnect: bool) {
        let state = &mut self.links[link];
        if !state.up {
            return;
        }
        state.up = false;
        state.epoch += 1;
        state.pipes = Default::default();
        let now = self.instant();
        for side in 0..2 {
            let end = self.links[link].ends[side];
            if let Some(node) = self.nodes[end].node.as_mut() {
                node.peer_disconnected(now, peer_id(link, side));
            }
        }
        if reconnect {
            let at = self.now.saturating_add(nanos(self.config.reconnect_after));
            self.schedule.push(at, Event::Reconnect { link });
        }
    }

    /// Hands the receiver of `link`'s `side` pipe one read of the bytes that arrived.
    pub(super) fn arrive(&mut self, link: usize, side: usize, epoch: u64) {
        let now = self.now;
        let max_read = self.config.max_read.max(1);
        let state = &mut self.links[link];
        if state.epoch != epoch || !state.up {
            return;
        }
        let pipe = &mut state.pipes[side];
        pipe.arrival_scheduled = false;
        let receiver = state.ends[1 - side];
        if pipe.paused || self.nodes[receiver].frozen {
            // The bytes wait in the pipe until the receiver reads again.
            return;
        }
        let arrived = pipe.arrived(now);
        let read_len = if max_read == usize::MAX {
            // Whole reads: everything that arrived, except that a run of frames that
            // arrived whole is read on its own (the rest at once after it), as its bytes
            // then need no copy.
            pipe.whole_front_run(now).unwrap_or(arrived)
        } else {
            self.rng.between(1, max_read.min(arrived) as u64) as usize
        };
        let pipe = &mut self.links[link].pipes[side];
        let buffer = pipe.read(read_len);
        let next_arrival = pipe.next_arrival(now);
        let [sender, receiver] = [self.links[link].ends[side], self.links[link].ends[1 - side]];
        let instant = self.instant();
        if let Some(node) = self.nodes[sender].node.as_mut() {
            node.handle_flushed(instant, peer_id(link, side), buffer.len());
        }
        if let Some(node) = self.nodes[receiver].node.as_mut() {
            node.handle_received_bytes(instant, peer_id(link, 1 - side), buffer);
        }
        if let Some(at) = next_arrival {
            self.links[link].pipes[side].arrival_scheduled = true;
            let epoch = self.links[link].epoch;
            self.schedule.push(at, Event::Arrive { link, side, epoch });
        }
        self.process(sender);
        self.process(receiver);
    }

    /// Carries out everything node `index` asked for, publishes what waits in its
    /// outbox while the node takes it, then re-arms its timer.
    pub(super) fn process(&mut self, index: usize) {
        if self.nodes[index].frozen {
            return;
        }
        let mut published = None;
        loop {
            let Some(node) = self.nodes[index].node.as_mut() else {
                return;
            };
            let mut actions = std::mem::take(&mut self.actions);
            actions.extend(node.drain_actions());
            if actions.is_empty() {
                self.actions = actions;
                if !node.can_publish() {
                    break;
                }
                let Some((payload, track)) = self.nodes[index].outbox.pop_front() else {
                    break;
                };
                let now = self.instant();
                // Checked against `max_frame_len`: it is taken, unless it does not fit the
                // queues; then it waits until they have drained (the node is congested).
                let node = self.nodes[index].node.as_mut();
                let outcome = node.map(|node| node.publish(now, payload.clone()));
                if let Some(Err(PublishError::Congested)) = outcome {
                    self.nodes[index].outbox.push_front((payload, track));
                    break;
                }
                published = Some(track);
                continue;
            }
            self.carry_out(index, &mut actions, published.take());
            self.actions = actions;
        }
        // Carrying out the actions can change the node (flushes, broken links): ask for
        // its deadline afterwards.
        if let Some(node) = self.nodes[index].node.as_ref() {
            let deadline = node.poll_timeout();
            self.arm_timer(index, deadline);
        }
    }

    /// Carries out `actions` of node `index`; `published` is the track of the message
    /// it just published, if these are that publish's actions.
    pub(super) fn carry_out(
        &mut self,
        index: usize,
        actions: &mut Vec<Action>,
        published: Option<usize>,
    ) {
        let mut raw_flushed = Vec::new();
        // The simulated application takes every delivery at once.
        let (mut taken, mut taken_bytes) = (0, 0);
        // Tracked messages delivered here, with their payloads: the Sends that forward
        // them carry the same bytes (a message's Deliver precedes them), or a copy (a
        // node between plain and plumtree peers frames them anew).
        let mut delivered = std::mem::take(&mut self.delivered_at);
        delivered.clear();
        for action in actions.drain(..) {
            match action {
                Action::Send { peer, frames } => {
                    if let Some(track) = published {
                        self.tracker.frames_sent(track, frames.count() as u64);
                    } else if !delivered.is_empty() {
                        for payload in frames.payloads() {
                            let at = payload.as_ptr();
                            let found = delivered
                                .iter()
                                .find(|(p, _)| p.as_ptr() == at)
                                .or_else(|| delivered.iter().find(|(p, _)| p[..] == *payload));
                            if let Some(&(_, track)) = found {
                                self.tracker.frames_sent(track, 1);
                            }
                        }
                    }
                    if peer.0 & RAW_PEER != 0 {
                        raw_flushed.push((peer, frames.wire_len()));
                    } else {
                        self.send(peer, frames);
                    }
                }
                Action::Deliver(delivery) => {
                    taken += 1;
                    taken_bytes += delivery.payload.len();
                    self.payload_bytes_delivered += delivery.payload.len() as u64;
                    let track = self.tracker.get(&delivery.payload);
                    if let Some(track) = track.filter(|_| !delivery.payload.is_empty()) {
                        delivered.push((delivery.payload.clone(), track));
                    }
                    self.record_delivery(index, track, delivery.from)
                }
                Action::Disconnect { peer, reason } => {
                    self.disconnects += 1;
                    if peer.0 & RAW_PEER != 0 {
                        let raw = (peer.0 & !RAW_PEER) as usize;
                        self.raw_peers[raw].disconnected = Some(reason);
                    } else {
                        let redial = self.config.redial_disconnects;
                        self.break_link(link_of(peer).0, redial);
                    }
                }
                // Raw peers are driven by the test, which sends when it likes.
                Action::PauseReading { peer } if peer.0 & RAW_PEER == 0 => {
                    self.set_reading(peer, false)
                }
                Action::ResumeReading { peer } if peer.0 & RAW_PEER == 0 => {
                    self.set_reading(peer, true)
                }
                Action::PauseReading { .. } | Action::ResumeReading { .. } => {}
            }
        }
        self.delivered_at = delivered;
        let now = self.instant();
        if let Some(node) = self.nodes[index].node.as_mut() {
            for (peer, bytes) in raw_flushed {
                node.handle_flushed(now, peer, bytes);
            }
            if taken > 0 {
                node.handle_delivered(now, taken, taken_bytes);
            }
        }
    }

    /// The node holding `peer` reads the pipe from that peer (or stops); bytes that
    /// waited are read at once.
    pub(super) fn set_reading(&mut self, peer: PeerId, reading: bool) {
        let (link, side) = link_of(peer);
        let now = self.now;
        let state = &mut self.links[link];
        if !state.up {
            return;
        }
        let epoch = state.epoch;
        // `ends[side]` holds `peer`: the bytes from that peer come through the other pipe.
        let pipe = &mut state.pipes[1 - side];
        pipe.paused = !reading;
        if reading && !pipe.arrival_scheduled {
            if let Some(at) = pipe.next_arrival(now) {
                pipe.arrival_scheduled = true;
                let side = 1 - side;
                self.schedule.push(at, Event::Arrive { link, side, epoch });
            }
        }
    }

    pub(super) fn arm_timer(&mut self, index: usize, deadline: Option<Instant>) {
        let at = deadline.map(|d| nanos(d.saturating_duration_since(self.start)).max(self.now));
        if at.is_some() && at != self.nodes[index].timer {
            self.nodes[index].timer = at;
            if let Some(at) = at {
                self.schedule.push(at, Event::Timer { node: index });
            }
        }
    }

    pub(super) fn send(&mut self, peer: PeerId, frame: Frames) {
        let (link, side) = link_of(peer);
        self.frames_sent += frame.count() as u64;
        self.wire_bytes += frame.wire_len() as u64;
        if self.config.link_failure > 0.0 && self.rng.chance(self.config.link_failure) {
            self.break_link(link, true);
            return;
        }
        let jitter = self.rng.below(nanos(self.config.jitter).saturating_add(1));
        let state = &mut self.links[link];
        let pipe = &mut state.pipes[side];
        let sent = pipe.transmit(self.now, frame.wire_len(), self.config.bandwidth);
        let at = pipe.push(
            sent.saturating_add(state.latency).saturating_add(jitter),
            frame,
        );
        if !pipe.arrival_scheduled {
            pipe.arrival_scheduled = true;
            let epoch = state.epoch;
            self.schedule.push(at, Event::Arrive { link, side, epoch });
        }
    }

    /// Counts a delivery at node `index` from `from`, of the message of `track` if the
    /// simulation tracks it.
    pub(super) fn record_delivery(&mut self, index: usize, track: Option<usize>, from: PeerId) {
        self.deliveries += 1;
        let Some(track) = track else {
            return;
        };
        let sender = if from.0 & RAW_PEER != 0 {
            None
        } else {
            let (link, side) = link_of(from);
            Some(self.links[link].ends[1 - side])
        };
        self.tracker.delivered(track, index, sender, self.now);
    }
}
