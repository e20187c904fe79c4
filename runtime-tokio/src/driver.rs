//! The driver task: owns the core, feeds it events and carries out its actions.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use gossip_core::transport::{Closed, Connection, Engine, NetConfig, SocketEvent};
use gossip_core::{Delivery, Frames, Node, PublishError, PublishOutcome, Stats};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::{AbortHandle, JoinHandle, JoinSet};

use crate::connection;
use crate::dialler;

/// Events the driver waits for, from connections, diallers and the application.
#[derive(Debug)]
pub(crate) enum Event {
    /// A connection is up. `closed` is dropped when it goes away (diallers wait on it).
    Connected {
        stream: TcpStream,
        addr: SocketAddr,
        closed: Option<oneshot::Sender<()>>,
    },
    Socket(SocketEvent),
    Command(Command),
}

/// Requests from the application.
#[derive(Debug)]
pub(crate) enum Command {
    Publish(Bytes, oneshot::Sender<Result<PublishOutcome, PublishError>>),
    Stats(oneshot::Sender<Stats>),
    /// Keep a connection to this address too (no-op if already dialling it).
    Dial(SocketAddr),
    Shutdown(Duration, oneshot::Sender<()>),
}

/// The driver's handle on one connection's tasks.
struct TokioConnection {
    frames: mpsc::UnboundedSender<Vec<Frames>>,
    reader: AbortHandle,
    writer: AbortHandle,
    /// Dropped with the connection, which wakes the dialler that made it.
    _on_close: Option<oneshot::Sender<()>>,
}

impl Connection for TokioConnection {
    fn send(&mut self, frames: Vec<Frames>) {
        // The writer may already have ended; its Closed event is on the way.
        let _ = self.frames.send(frames);
    }

    fn close(self) {
        self.reader.abort();
        self.writer.abort();
    }

    fn finish(self) {
        // Dropping `frames` lets the writer send what is queued, then close.
        self.reader.abort();
    }
}

pub(crate) struct Driver {
    engine: Engine<TokioConnection>,
    config: NetConfig,
    events_tx: mpsc::Sender<Event>,
    deliveries: mpsc::Sender<Delivery>,
    /// Peers connected now, for the application to wait on.
    peer_count: watch::Sender<usize>,
    /// Addresses with a dialler.
    dialling: HashSet<SocketAddr>,
    tasks: JoinSet<()>,
    writers: JoinSet<()>,
}

impl Driver {
    pub(crate) fn spawn(
        core: Node,
        config: NetConfig,
        listener: TcpListener,
        deliveries: mpsc::Sender<Delivery>,
        peer_count: watch::Sender<usize>,
    ) -> (mpsc::Sender<Event>, JoinHandle<()>) {
        // Readers wait when the queue is full: a busy driver slows its peers down
        // instead of buffering without bound.
        let (events_tx, events) = mpsc::channel(config.event_queue.max(1));
        let mut driver = Driver {
            engine: Engine::new(core),
            events_tx: events_tx.clone(),
            deliveries,
            peer_count,
            dialling: HashSet::new(),
            tasks: JoinSet::new(),
            writers: JoinSet::new(),
            config,
        };
        driver.tasks.spawn(accept_loop(listener, events_tx.clone()));
        for addr in driver.config.dial_targets() {
            driver.dial(addr);
        }
        let task = tokio::spawn(async move { driver.run(events).await });
        (events_tx, task)
    }

    async fn run(mut self, mut events: mpsc::Receiver<Event>) {
        loop {
            let deadline = self.engine.poll_timeout();
            let event = tokio::select! {
                event = events.recv() => event,
                _ = sleep_until(deadline) => {
                    self.engine.handle_timeout(Instant::now());
                    self.after_event().await;
                    continue;
                }
            };
            let Some(event) = event else { return };
            let now = Instant::now();
            match event {
                Event::Connected {
                    stream,
                    addr,
                    closed,
                } => self.connected(stream, addr, closed),
                Event::Socket(event) => self.engine.handle_socket(now, event),
                Event::Command(Command::Publish(payload, reply)) => {
                    let _ = reply.send(self.engine.publish(now, payload));
                }
                Event::Command(Command::Stats(reply)) => {
                    let _ = reply.send(self.engine.stats());
                }
                Event::Command(Command::Dial(addr)) => self.dial(addr),
                Event::Command(Command::Shutdown(deadline, reply)) => {
                    self.shutdown(deadline).await;
                    let _ = reply.send(());
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
            self.tasks.spawn(dialler::run(addr, initial, max, events));
        }
    }

    fn connected(
        &mut self,
        stream: TcpStream,
        addr: SocketAddr,
        on_close: Option<oneshot::Sender<()>>,
    ) {
        let peer = self.engine.next_peer();
        let _ = stream.set_nodelay(true);
        let (read_half, write_half) = stream.into_split();
        let (frames, queued) = mpsc::unbounded_channel();
        let events = self.events_tx.clone();
        let reader = self.tasks.spawn(connection::read_loop(
            peer,
            read_half,
            self.config.read_chunk,
            events.clone(),
        ));
        let writer = self
            .writers
            .spawn(connection::write_loop(peer, write_half, queued, events));
        tracing::info!(%peer, %addr, "connected");
        let connection = TokioConnection {
            frames,
            reader,
            writer,
            _on_close: on_close,
        };
        self.engine.connected(Instant::now(), addr, connection);
    }

    /// Logs closed connections, hands deliveries to the application, updates the peer
    /// count and reaps finished tasks.
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
        self.peer_count
            .send_if_modified(|count| std::mem::replace(count, open) != open);
        // A JoinSet keeps finished tasks until joined: reap them, or a long-lived node
        // with connection churn would grow without bound.
        while self.tasks.try_join_next().is_some() {}
        while self.writers.try_join_next().is_some() {}
    }

    async fn shutdown(mut self, deadline: Duration) {
        self.tasks.abort_all();
        self.engine.finish_all();
        let flushed = tokio::time::timeout(deadline, async {
            while self.writers.join_next().await.is_some() {}
        })
        .await;
        if flushed.is_err() {
            tracing::warn!("shutdown deadline passed with output still queued");
        }
        self.writers.abort_all();
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

async fn accept_loop(listener: TcpListener, events: mpsc::Sender<Event>) {
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
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
