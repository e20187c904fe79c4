//! The driver task: owns the core, feeds it events and carries out its actions.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use gossip_core::transport::{Closed, Connection, Engine, NetConfig, SocketEvent};
use gossip_core::{Delivery, Frames, Node, PublishError, PublishOutcome, Stats};
use smol::channel::{bounded, unbounded, Receiver, Sender, TrySendError};
use smol::future::FutureExt;
use smol::net::{TcpListener, TcpStream};
use smol::{Task, Timer};

use crate::connection;
use crate::dialler;

/// Events the driver waits for, from connections, diallers and the application.
#[derive(Debug)]
pub(crate) enum Event {
    /// A connection is up. `closed` is dropped when it goes away (diallers wait on it).
    Connected {
        stream: TcpStream,
        addr: SocketAddr,
        closed: Option<Sender<()>>,
    },
    Socket(SocketEvent),
    Command(Command),
}

/// Requests from the application.
#[derive(Debug)]
pub(crate) enum Command {
    Publish(Bytes, Sender<Result<PublishOutcome, PublishError>>),
    Stats(Sender<Stats>),
    /// Keep a connection to this address too (no-op if already dialling it).
    Dial(SocketAddr),
    Shutdown(Duration, Sender<()>),
}

/// Peers connected now, and a signal for whoever waits on a change.
#[derive(Debug, Default)]
pub(crate) struct PeerCount {
    pub(crate) count: AtomicUsize,
    pub(crate) changed: event_listener::Event,
}

/// The driver's handle on one connection's tasks.
struct SmolConnection {
    frames: Sender<Vec<Frames>>,
    reader: Task<()>,
    writer: Task<()>,
    /// Where `finish` leaves the writer for the driver's shutdown to await or cancel.
    lingering: Lingering,
    /// Dropped with the connection, which wakes the dialler that made it.
    _on_close: Option<Sender<()>>,
}

/// Writers of finished connections, still sending what was queued.
type Lingering = Arc<Mutex<Vec<Task<()>>>>;

impl Connection for SmolConnection {
    fn send(&mut self, frames: Vec<Frames>) {
        // The writer may already have ended; its Closed event is on the way.
        let _ = self.frames.try_send(frames);
    }

    fn close(self) {
        // Dropping a smol task cancels it.
        drop(self.reader);
        drop(self.writer);
    }

    fn finish(self) {
        // Closing `frames` lets the writer send what is queued, then close; the driver's
        // shutdown bounds how long it may take.
        drop(self.reader);
        if let Ok(mut lingering) = self.lingering.lock() {
            lingering.push(self.writer);
        }
    }
}

pub(crate) struct Driver {
    engine: Engine<SmolConnection>,
    config: NetConfig,
    events_tx: Sender<Event>,
    deliveries: Sender<Delivery>,
    peer_count: Arc<PeerCount>,
    /// Addresses with a dialler.
    dialling: HashSet<SocketAddr>,
    tasks: Vec<Task<()>>,
    lingering: Lingering,
}

enum Wake {
    Event(Option<Event>),
    Timeout,
}

impl Driver {
    pub(crate) fn spawn(
        core: Node,
        config: NetConfig,
        listener: TcpListener,
        deliveries: Sender<Delivery>,
        peer_count: Arc<PeerCount>,
    ) -> (Sender<Event>, Task<()>) {
        // Readers wait when the queue is full: a busy driver slows its peers down
        // instead of buffering without bound.
        let (events_tx, events) = bounded(config.event_queue.max(1));
        let mut driver = Driver {
            engine: Engine::new(core),
            events_tx: events_tx.clone(),
            deliveries,
            peer_count,
            dialling: HashSet::new(),
            tasks: Vec::new(),
            lingering: Lingering::default(),
            config,
        };
        driver
            .tasks
            .push(smol::spawn(accept_loop(listener, events_tx.clone())));
        for addr in driver.config.dial_targets() {
            driver.dial(addr);
        }
        let task = smol::spawn(async move { driver.run(events).await });
        (events_tx, task)
    }

    async fn run(mut self, events: Receiver<Event>) {
        loop {
            let deadline = self.engine.poll_timeout();
            let wake = async { Wake::Event(events.recv().await.ok()) }
                .or(async {
                    sleep_until(deadline).await;
                    Wake::Timeout
                })
                .await;
            let now = Instant::now();
            let event = match wake {
                Wake::Timeout => {
                    self.engine.handle_timeout(now);
                    self.after_event().await;
                    continue;
                }
                Wake::Event(None) => return,
                Wake::Event(Some(event)) => event,
            };
            match event {
                Event::Connected {
                    stream,
                    addr,
                    closed,
                } => self.connected(stream, addr, closed),
                Event::Socket(event) => self.engine.handle_socket(now, event),
                Event::Command(Command::Publish(payload, reply)) => {
                    let _ = reply.try_send(self.engine.publish(now, payload));
                }
                Event::Command(Command::Stats(reply)) => {
                    let _ = reply.try_send(self.engine.stats());
                }
                Event::Command(Command::Dial(addr)) => self.dial(addr),
                Event::Command(Command::Shutdown(deadline, reply)) => {
                    self.shutdown(deadline).await;
                    let _ = reply.try_send(());
                    return;
                }
            }
            self.after_event().await;
        }
    }

    /// Starts a dialler for `addr` unless one runs already: one connection per address.
    fn dial(&mut self, addr: SocketAddr) {
        if self.dialling.insert(addr) {
            let (initial, max) = (self.config.redial_initial, self.config.redial_max);
            let events = self.events_tx.clone();
            self.tasks
                .push(smol::spawn(dialler::run(addr, initial, max, events)));
        }
    }

    fn connected(&mut self, stream: TcpStream, addr: SocketAddr, on_close: Option<Sender<()>>) {
        let peer = self.engine.next_peer();
        let _ = stream.set_nodelay(true);
        let (frames, queued) = unbounded();
        let events = self.events_tx.clone();
        let reader = smol::spawn(connection::read_loop(
            peer,
            stream.clone(),
            self.config.read_chunk,
            events.clone(),
        ));
        let writer = smol::spawn(connection::write_loop(peer, stream, queued, events));
        tracing::info!(%peer, %addr, "connected");
        let connection = SmolConnection {
            frames,
            reader,
            writer,
            lingering: self.lingering.clone(),
            _on_close: on_close,
        };
        self.engine.connected(Instant::now(), addr, connection);
    }

    /// Logs closed connections, hands deliveries to the application and updates the peer
    /// count.
    async fn after_event(&mut self) {
        for Closed { peer, addr, reason } in self.engine.drain_closed() {
            match reason {
                Some(reason) => tracing::warn!(%peer, %addr, %reason, "disconnected peer"),
                None => tracing::info!(%peer, %addr, "connection closed"),
            }
        }
        while let Some(delivery) = self.engine.next_delivery() {
            // Waits only while the application is behind: backpressure to the peers. A
            // dropped receiver means the application does not want deliveries.
            match self.deliveries.try_send(delivery) {
                Err(TrySendError::Full(delivery)) => {
                    let _ = self.deliveries.send(delivery).await;
                }
                Ok(()) | Err(TrySendError::Closed(_)) => {}
            }
        }
        let open = self.engine.connection_count();
        if self.peer_count.count.swap(open, Ordering::AcqRel) != open {
            self.peer_count.changed.notify(usize::MAX);
        }
    }

    async fn shutdown(mut self, deadline: Duration) {
        self.tasks.clear(); // cancels the acceptor and the diallers
        self.engine.finish_all();
        let writers =
            std::mem::take(&mut *self.lingering.lock().unwrap_or_else(|e| e.into_inner()));
        // Past the deadline the race drops the writers still running, which cancels them.
        let finished = async {
            for writer in writers {
                writer.await;
            }
            true
        }
        .or(async {
            Timer::after(deadline).await;
            false
        })
        .await;
        if !finished {
            tracing::warn!("shutdown deadline passed with output still queued");
        }
        self.peer_count.changed.notify(usize::MAX);
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => {
            Timer::at(at).await;
        }
        None => std::future::pending().await,
    }
}

async fn accept_loop(listener: TcpListener, events: Sender<Event>) {
    loop {
        match listener.accept().await {
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
                Timer::after(Duration::from_millis(100)).await;
            }
        }
    }
}
