//! The driver task: owns the core, feeds it events and carries out its actions.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use gossip_core::transport::NetConfig;
use gossip_core::{Action, Delivery, Node, PeerId, PublishError, PublishOutcome, Stats};
use tokio::net::{TcpListener, TcpStream};
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
    Received(PeerId, Bytes),
    Flushed(PeerId, usize),
    /// The socket closed or failed.
    Closed(PeerId),
    Command(Command),
}

/// Requests from the application.
#[derive(Debug)]
pub(crate) enum Command {
    Publish(Bytes, oneshot::Sender<Result<PublishOutcome, PublishError>>),
    Stats(oneshot::Sender<Stats>),
    Shutdown(Duration, oneshot::Sender<()>),
}

/// Driver-side state of one connection.
struct Connection {
    addr: SocketAddr,
    writer: mpsc::UnboundedSender<gossip_core::Frame>,
    reader: AbortHandle,
    writer_task: AbortHandle,
    _closed: Option<oneshot::Sender<()>>,
}

pub(crate) struct Driver {
    core: Node,
    config: NetConfig,
    events_tx: mpsc::Sender<Event>,
    deliveries: mpsc::Sender<Delivery>,
    /// Peers connected now, for the application to wait on.
    peer_count: watch::Sender<usize>,
    connections: HashMap<PeerId, Connection>,
    next_peer: u64,
    tasks: JoinSet<()>,
    writers: JoinSet<()>,
}

/// Capacity of the driver's event queue. Readers wait when it is full, which is how a
/// busy driver slows its peers down instead of buffering without bound.
const EVENT_QUEUE: usize = 1024;

impl Driver {
    pub(crate) fn spawn(
        core: Node,
        config: NetConfig,
        listener: TcpListener,
        deliveries: mpsc::Sender<Delivery>,
        peer_count: watch::Sender<usize>,
    ) -> (mpsc::Sender<Event>, JoinHandle<()>) {
        let (events_tx, events) = mpsc::channel(EVENT_QUEUE);
        let mut driver = Driver {
            core,
            config,
            events_tx: events_tx.clone(),
            deliveries,
            peer_count,
            connections: HashMap::new(),
            next_peer: 0,
            tasks: JoinSet::new(),
            writers: JoinSet::new(),
        };
        driver.tasks.spawn(accept_loop(listener, events_tx.clone()));
        for addr in driver.config.peers.clone() {
            driver.tasks.spawn(dialler::run(
                addr,
                driver.config.redial_initial,
                driver.config.redial_max,
                events_tx.clone(),
            ));
        }
        let task = tokio::spawn(async move { driver.run(events).await });
        (events_tx, task)
    }

    async fn run(mut self, mut events: mpsc::Receiver<Event>) {
        loop {
            let deadline = self.core.poll_timeout();
            let event = tokio::select! {
                event = events.recv() => event,
                _ = sleep_until(deadline) => {
                    self.core.handle_timeout(Instant::now());
                    self.carry_out_actions().await;
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
                Event::Received(peer, bytes) => self.core.handle_received(now, peer, &bytes),
                Event::Flushed(peer, bytes) => self.core.handle_flushed(now, peer, bytes),
                Event::Closed(peer) => {
                    if let Some(connection) = self.connections.remove(&peer) {
                        tracing::info!(%peer, addr = %connection.addr, "connection closed");
                        connection.reader.abort();
                    }
                    self.core.peer_disconnected(now, peer);
                }
                Event::Command(Command::Publish(payload, reply)) => {
                    let _ = reply.send(self.core.publish(now, payload));
                }
                Event::Command(Command::Stats(reply)) => {
                    let _ = reply.send(self.core.stats());
                }
                Event::Command(Command::Shutdown(deadline, reply)) => {
                    self.shutdown(deadline).await;
                    let _ = reply.send(());
                    return;
                }
            }
            self.carry_out_actions().await;
        }
    }

    fn connected(
        &mut self,
        stream: TcpStream,
        addr: SocketAddr,
        closed: Option<oneshot::Sender<()>>,
    ) {
        let peer = PeerId(self.next_peer);
        self.next_peer += 1;
        let _ = stream.set_nodelay(true);
        let (read_half, write_half) = stream.into_split();
        let (writer, frames) = mpsc::unbounded_channel();
        let reader = self.tasks.spawn(connection::read_loop(
            peer,
            read_half,
            self.config.read_chunk,
            self.events_tx.clone(),
        ));
        let writer_task = self.writers.spawn(connection::write_loop(
            peer,
            write_half,
            frames,
            self.events_tx.clone(),
        ));
        tracing::info!(%peer, %addr, "connected");
        self.connections.insert(
            peer,
            Connection {
                addr,
                writer,
                reader,
                writer_task,
                _closed: closed,
            },
        );
        self.core.peer_connected(Instant::now(), peer);
    }

    async fn carry_out_actions(&mut self) {
        self.carry_out_pending().await;
        self.peer_count.send_if_modified(|count| {
            let now = self.connections.len();
            std::mem::replace(count, now) != now
        });
    }

    async fn carry_out_pending(&mut self) {
        while let Some(action) = self.core.poll_action() {
            match action {
                Action::Send { peer, frame } => {
                    if let Some(connection) = self.connections.get(&peer) {
                        // Unbounded on purpose: the core stops sending to a peer whose
                        // queue is over `peer_queue_bytes`, so this is bounded by it.
                        let _ = connection.writer.send(frame);
                    }
                }
                Action::Deliver(delivery) => {
                    // Waits while the application is behind: backpressure to the peers.
                    let _ = self.deliveries.send(delivery).await;
                }
                Action::Disconnect { peer, reason } => {
                    if let Some(connection) = self.connections.remove(&peer) {
                        tracing::warn!(%peer, addr = %connection.addr, %reason, "disconnecting peer");
                        connection.reader.abort();
                        connection.writer_task.abort();
                    }
                }
            }
        }
    }

    async fn shutdown(mut self, deadline: Duration) {
        self.tasks.abort_all();
        // Dropping the frame senders lets each writer finish its queue and close.
        let readers: Vec<AbortHandle> = self
            .connections
            .values()
            .map(|c| c.reader.clone())
            .collect();
        self.connections.clear();
        for reader in readers {
            reader.abort();
        }
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
