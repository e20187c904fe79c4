//! The driver task: owns the core, feeds it events and carries out its actions.

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_channel::{Receiver, Sender};
use bytes::Bytes;
use futures_lite::future;
use gossip_core::{Delivery, Direction, Node, PublishError, PublishOutcome, Stats};

use crate::backoff::Backoff;
use crate::connection::Link;
use crate::deliveries::Taken;
use crate::dialler;
use crate::dialler::Dialled;
use crate::engine::{Closed, Engine, Origin, SocketEvent};
use crate::handle::{PeerCount, PeerInfo};
use crate::log_limit::{LogLimit, Severity, Suppressed, LINES_PER_SECOND};
use crate::peer_address::PeerAddress;
use crate::runtime::Runtime;
use crate::NetConfig;

/// Events the driver waits for, from connections, diallers and the application.
pub(crate) enum Event<R: Runtime> {
    /// A connection is up. `dialled` is set for a connection a dialler made: it is
    /// dropped when the connection goes away (the dialler waits on it, and may be told
    /// how to dial again), and says whether to dial plain.
    Connected {
        stream: R::Stream,
        addr: SocketAddr,
        dialled: Option<Dialled>,
    },
    Socket(SocketEvent),
    Command(Command),
}

/// Requests from the application.
#[derive(Debug)]
pub(crate) enum Command {
    Publish(Bytes, Sender<Result<PublishOutcome, PublishError>>),
    Stats(Sender<Stats>),
    Peers(Sender<Vec<PeerInfo>>),
    /// Keep a connection to this peer too (no-op if already dialling it).
    Dial(PeerAddress),
    Shutdown(Duration, Sender<()>),
}

/// Messages not delivered to someone, logged at most once a second: nothing is lost
/// silently, and a flood of losses is one line a second.
#[derive(Debug, Default)]
struct Losses {
    /// Counters as last logged: shed, dropped for the application, lost with a
    /// disconnected peer, application stalls, plumtree messages missed.
    logged: (u64, u64, u64, u64, u64),
    next_check: Option<Instant>,
}

impl Losses {
    fn log<C: crate::engine::Connection>(
        &mut self,
        now: Instant,
        engine: &Engine<C>,
        config: &NetConfig,
    ) {
        if self.next_check.is_some_and(|at| now < at) {
            return;
        }
        self.next_check = Some(now + Duration::from_secs(1));
        let stats = engine.stats();
        let counters = (
            stats.frames_shed,
            stats.deliveries_dropped,
            stats.frames_lost_on_disconnect,
            stats.application_stalls,
            stats.messages_missed,
        );
        let (shed, dropped, lost, stalls, missed) = self.logged;
        if counters.3 > stalls {
            let timeout = config.core.slow_peer_timeout;
            tracing::warn!(
                ?timeout,
                "the application took no delivery while its queue was full: deliveries \
                 are dropped for it until it takes one"
            );
        }
        if counters.0 > shed || counters.1 > dropped || counters.2 > lost {
            tracing::warn!(
                shed = counters.0 - shed,
                dropped_for_application = counters.1 - dropped,
                lost_with_disconnected_peers = counters.2 - lost,
                "messages not delivered to someone"
            );
        }
        if counters.4 > missed {
            tracing::warn!(
                missed = counters.4 - missed,
                "messages announced to this node never came, though it grafted them from \
                 every announcer (the announcers' connections went before they answered)"
            );
        }
        self.logged = counters;
    }
}

/// Why the driver woke up.
enum Wake<R: Runtime> {
    Event(Event<R>),
    Timeout,
    /// The application took deliveries.
    Taken,
    /// Every sender is gone: nothing can happen any more.
    Closed,
}

/// Events handled back to back before the driver lets other tasks on its thread run:
/// a busy queue must not keep the readers and writers it wakes from running.
const EVENTS_PER_TURN: usize = 128;

pub(crate) struct Driver<R: Runtime> {
    engine: Engine<Link<R>>,
    config: NetConfig,
    events_tx: Sender<Event<R>>,
    /// Deliveries go to the application a batch per turn: one wake-up of a waiting
    /// reader per batch, not per message.
    deliveries: Sender<Vec<Delivery>>,
    /// What the application took, and the wake-up when it does.
    taken: Arc<Taken>,
    peer_count: Arc<PeerCount>,
    /// Addresses with a dialler.
    dialling: HashSet<PeerAddress>,
    /// The acceptor and the diallers.
    tasks: Vec<R::Task>,
    /// Where the listener is bound, so that the node does not dial itself.
    local_addr: SocketAddr,
    /// What was last logged of messages not delivered to someone.
    losses: Losses,
    /// Lines about single connections logged this second.
    log_limit: LogLimit,
    /// Publishes waiting for the core to take new messages (it is full), oldest first;
    /// each caller awaits its reply.
    waiting: VecDeque<(Bytes, Sender<Result<PublishOutcome, PublishError>>)>,
}

impl<R: Runtime> Driver<R> {
    /// Starts the driver task, the acceptor on `listener` and a dialler per configured
    /// peer. Returns where to send commands, and the driver task.
    pub(crate) fn spawn(
        core: Node,
        config: NetConfig,
        (listener, local_addr): (R::Listener, SocketAddr),
        (deliveries, taken, woken): (Sender<Vec<Delivery>>, Arc<Taken>, Receiver<()>),
        peer_count: Arc<PeerCount>,
    ) -> (Sender<Event<R>>, R::Task) {
        // Readers wait when the queue is full: a busy driver slows its peers down
        // instead of buffering without bound.
        let (events_tx, events) = async_channel::bounded(config.event_queue.max(1));
        let mut driver = Driver {
            engine: Engine::new(core),
            events_tx: events_tx.clone(),
            deliveries,
            taken,
            peer_count,
            dialling: HashSet::new(),
            tasks: vec![R::spawn(dialler::accept(listener, events_tx.clone()))],
            waiting: VecDeque::new(),
            losses: Losses::default(),
            log_limit: LogLimit::default(),
            local_addr,
            config,
        };
        for addr in driver.config.dial_targets() {
            driver.dial(addr);
        }
        let peer_count = driver.peer_count.clone();
        let task = R::spawn(async move {
            driver.run(events, woken).await;
            // The event queue is closed now: wake whoever waits for peers to see that.
            peer_count.wake_all();
        });
        (events_tx, task)
    }

    async fn run(mut self, events: Receiver<Event<R>>, woken: Receiver<()>) {
        let mut handled = 0;
        loop {
            let now = Instant::now();
            let (count, bytes) = self.taken.collect();
            if count > 0 {
                self.engine.handle_delivered(now, count, bytes);
                self.after_event();
            }
            let deadline = self.engine.poll_timeout();
            if deadline.is_some_and(|at| at <= now) {
                // Checked here, not only when the timer wins the race below, so that a
                // stream of events cannot hold back what is due.
                self.engine.handle_timeout(now);
                self.after_event();
                continue;
            }
            handled += 1;
            if handled % EVENTS_PER_TURN == 0 {
                future::yield_now().await;
            }
            let timer = async {
                match deadline {
                    Some(at) => R::sleep_until(at).await,
                    None => future::pending().await,
                }
                Wake::Timeout
            };
            let event = async {
                match events.recv().await {
                    Ok(event) => Wake::Event(event),
                    Err(_) => Wake::Closed,
                }
            };
            // The driver holds a sender of `woken` itself: it never closes.
            let taken = async {
                let _ = woken.recv().await;
                Wake::Taken
            };
            let event = match future::or(event, future::or(taken, timer)).await {
                Wake::Event(event) => event,
                // Due now, or deliveries taken: handled at the top of the loop.
                Wake::Timeout | Wake::Taken => continue,
                Wake::Closed => return,
            };
            let now = Instant::now();
            match event {
                Event::Connected {
                    stream,
                    addr,
                    dialled,
                } => self.connected(now, stream, addr, dialled),
                Event::Socket(event) => self.engine.handle_socket(now, event),
                Event::Command(Command::Publish(payload, reply)) => {
                    let (len, max) = (payload.len(), self.engine.config().max_frame_len);
                    if len > max {
                        let _ = reply.try_send(Err(PublishError::TooLarge { len, max }));
                    } else {
                        self.waiting.push_back((payload, reply));
                    }
                }
                Event::Command(Command::Stats(reply)) => {
                    let _ = reply.try_send(self.engine.stats());
                }
                Event::Command(Command::Peers(reply)) => {
                    let _ = reply.try_send(self.engine.peers());
                }
                Event::Command(Command::Dial(addr)) => self.dial(addr),
                Event::Command(Command::Shutdown(deadline, reply)) => {
                    self.shutdown(deadline).await;
                    let _ = reply.try_send(());
                    return;
                }
            }
            self.after_event();
        }
    }

    /// Starts the tasks of a new connection and hands it to the core.
    fn connected(
        &mut self,
        now: Instant,
        stream: R::Stream,
        addr: SocketAddr,
        dialled: Option<Dialled>,
    ) {
        let local = R::socket_local_addr(&stream).ok();
        if let Some(idle) = self.config.keepalive {
            if let Err(error) = R::set_keepalive(&stream, idle) {
                tracing::debug!(%addr, %error, "cannot turn TCP keepalive on");
            }
        }
        if let Some(bytes) = self.config.kernel_unsent_bytes {
            if let Err(error) = R::set_kernel_unsent_bytes(&stream, bytes) {
                tracing::debug!(%addr, %error, "cannot limit the kernel's unsent bytes");
            }
        }
        let socket = match R::split(stream) {
            Ok(socket) => socket,
            Err(error) => {
                // Dropping `on_close` tells a dialler to try again.
                if self.admit_line(Severity::Warn) {
                    tracing::warn!(%addr, %error, "cannot set up connection");
                }
                return;
            }
        };
        let (direction, plain, missed_since, on_close) = match dialled {
            Some(Dialled {
                closed,
                plain,
                missed_since,
            }) => (Direction::Outbound, plain, missed_since, Some(closed)),
            None => (Direction::Inbound, false, None, None),
        };
        let peer = self.engine.next_peer();
        let read_chunk = self.config.read_chunk;
        let link = Link::start(peer, socket, read_chunk, &self.events_tx, on_close);
        if self.admit_line(Severity::Info) {
            tracing::info!(%peer, %addr, %direction, "connected");
        }
        let origin = Origin {
            addr,
            local,
            direction,
            plain,
            missed_since,
        };
        let timeout = self.config.preamble_timeout;
        self.engine.connected(now, origin, link, timeout);
    }

    /// Starts a dialler for `target` unless one runs already (one connection per
    /// address). The dialler skips this node's own addresses, and stops if `target`
    /// has no other.
    fn dial(&mut self, target: PeerAddress) {
        if self.dialling.insert(target.clone()) {
            let backoff = Backoff::new(self.config.redial_initial, self.config.redial_max);
            let events = self.events_tx.clone();
            let dial = dialler::dial(target, self.local_addr, backoff, events);
            self.tasks.push(R::spawn(dial));
        }
    }

    /// Publishes what waits, as long as the core takes it; logs closed connections and
    /// losses, hands deliveries to the application and updates the peer count.
    fn after_event(&mut self) {
        let now = Instant::now();
        self.losses.log(now, &self.engine, &self.config);
        while self.engine.can_publish() {
            let Some((payload, reply)) = self.waiting.pop_front() else {
                break;
            };
            // Taken unless it does not fit the queues: then it waits, first in line,
            // until they have drained (the core is congested meanwhile).
            match self.engine.publish(Instant::now(), payload.clone()) {
                Err(PublishError::Congested) => {
                    self.waiting.push_front((payload, reply));
                    break;
                }
                outcome => {
                    let _ = reply.try_send(outcome);
                }
            }
        }
        let settled: Vec<_> = self.engine.drain_settled().collect();
        for (peer, addr, plumtree) in settled {
            if self.admit_line(Severity::Info) {
                let protocol = if plumtree { "plumtree" } else { "flood" };
                tracing::info!(%peer, %addr, protocol, "protocol settled");
            }
        }
        let closed: Vec<Closed> = self.engine.drain_closed().collect();
        for Closed { peer, addr, reason } in closed {
            let severity = match reason {
                Some(_) => Severity::Warn,
                None => Severity::Info,
            };
            if !self.admit_line(severity) {
                continue;
            }
            match reason {
                Some(reason) => tracing::warn!(%peer, %addr, %reason, "disconnected peer"),
                None => tracing::info!(%peer, %addr, "connection closed"),
            }
        }
        if let Some(suppressed) = self.log_limit.roll(now) {
            log_suppressed(suppressed);
        }
        loop {
            // Never waits: what the application has not taken is the core's to count
            // (`delivery_queue_bytes`). A dropped receiver takes everything at once.
            let batch: Vec<Delivery> = std::iter::from_fn(|| self.engine.next_delivery()).collect();
            if batch.is_empty() {
                break;
            }
            let Err(unsent) = self.deliveries.try_send(batch) else {
                break;
            };
            let unsent = unsent.into_inner();
            let count = unsent.len();
            let bytes = unsent.iter().map(|delivery| delivery.payload.len()).sum();
            // Room in the application's queue can release held messages: go round.
            self.engine.handle_delivered(Instant::now(), count, bytes);
        }
        self.peer_count.set(self.engine.connection_count());
    }

    /// Whether a line about one connection, of `severity`, may be logged now (see
    /// [`LogLimit`]); logs the summary of the last second's suppressed lines first.
    fn admit_line(&mut self, severity: Severity) -> bool {
        let (admitted, suppressed) = self.log_limit.admit(Instant::now(), severity);
        if let Some(suppressed) = suppressed {
            log_suppressed(suppressed);
        }
        admitted
    }

    /// Stops accepting, dialling and reading; gives the writers up to `deadline` to send
    /// what is queued, then closes every socket.
    async fn shutdown(mut self, deadline: Duration) {
        let give_up = Instant::now() + deadline;
        self.tasks.clear(); // cancels the acceptor and the diallers
        let writers: Vec<R::Task> = self.engine.drain_connections().map(Link::finish).collect();
        let flushed = async {
            for writer in writers {
                writer.await;
            }
            true
        };
        // Past the deadline the race drops the writers still running, which cancels them.
        let timed_out = async {
            R::sleep_until(give_up).await;
            false
        };
        if !future::or(flushed, timed_out).await {
            tracing::warn!("shutdown deadline passed with output still queued");
        }
    }
}

/// One line for the lines `suppressed` stands for, as severe as the most severe of them.
fn log_suppressed(suppressed: Suppressed) {
    let (lines, limit) = (suppressed.lines, LINES_PER_SECOND);
    match suppressed.severity {
        Severity::Warn => tracing::warn!(
            suppressed = lines,
            limit_per_second = limit,
            "connection log lines suppressed in the last second"
        ),
        Severity::Info => tracing::info!(
            suppressed = lines,
            limit_per_second = limit,
            "connection log lines suppressed in the last second"
        ),
    }
}
