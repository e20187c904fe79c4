//! Test harness: a blocking facade over each runtime adapter, so that one conformance
//! suite (in `tests/conformance.rs`) runs against all of them, and mixes them in one
//! network. Every wait has a bound, so a hung case fails instead of hanging CI.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use gossip_core::Stats;
use gossip_net::{NetConfig, PeerInfo};

pub mod adapters;
pub mod tutorial;

/// The longest any single wait in the suite may take.
pub const WAIT: Duration = Duration::from_secs(20);

/// A running node of some runtime, driven from a plain test thread.
pub trait TestNode: Send {
    /// The runtime's name, for messages.
    fn runtime(&self) -> &'static str;
    /// Where the node listens.
    fn addr(&self) -> SocketAddr;
    /// Publishes a payload; panics if the node refuses it.
    fn publish(&self, payload: &[u8]);
    /// The next delivered payload, or `None` after `timeout`.
    fn recv(&mut self, timeout: Duration) -> Option<Vec<u8>>;
    /// Adds a peer to dial at run time.
    fn dial(&self, addr: SocketAddr);
    /// Drops the delivery stream: the node then only relays.
    fn discard_deliveries(&mut self);
    /// The core's counters.
    fn stats(&self) -> Stats;
    /// What the core observed of each connected peer.
    fn peers(&self) -> Vec<PeerInfo>;
    /// Waits until `count` peers are connected; `false` after `timeout`.
    fn wait_for_peers(&self, count: usize, timeout: Duration) -> bool;
    /// Graceful shutdown.
    fn shutdown(self: Box<Self>);
}

/// Starts a node on one runtime.
pub type Starter = fn(NetConfig) -> Box<dyn TestNode>;

/// A loopback config on a free port, dialling `peers`.
pub fn config(peers: impl IntoIterator<Item = SocketAddr>) -> NetConfig {
    let mut config = NetConfig::new("127.0.0.1:0".parse().expect("valid"));
    config.peers.extend(peers.into_iter().map(Into::into));
    config.redial_initial = Duration::from_millis(20);
    config.redial_max = Duration::from_millis(200);
    // A plumtree peer that answers its preamble later than this is taken for a plain
    // peer for good: on a loaded 2-core CI machine running the whole suite, the default
    // 1 s was passed once.
    config.preamble_timeout = Duration::from_secs(3);
    config
}

/// Waits for `condition` to hold, checking every few milliseconds, for at most `WAIT`.
/// For conditions no event signals (counters of several nodes at once).
pub fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A hand-driven TCP client speaking raw bytes to a node.
pub struct RawPeer {
    stream: TcpStream,
}

/// A connection made some other way (accepted from a node that dialled, say), with
/// `WAIT` as its read and write timeouts.
impl From<TcpStream> for RawPeer {
    fn from(stream: TcpStream) -> Self {
        stream.set_read_timeout(Some(WAIT)).expect("timeout");
        stream.set_write_timeout(Some(WAIT)).expect("timeout");
        RawPeer { stream }
    }
}

impl RawPeer {
    /// Connects to `addr`.
    pub fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect_timeout(&addr, WAIT).expect("connect");
        RawPeer::from(stream)
    }

    /// Sends bytes; returns false if the node already closed the connection.
    pub fn send(&mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).is_ok()
    }

    /// Reads until the node closes the connection; `false` if it stays open for `WAIT`.
    pub fn closed_by_node(&mut self) -> bool {
        let mut sink = [0u8; 4096];
        loop {
            match self.stream.read(&mut sink) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
    }

    /// A second handle on the same connection (to read on one thread while another
    /// writes).
    pub fn try_clone(&self) -> RawPeer {
        RawPeer {
            stream: self.stream.try_clone().expect("clone a TCP stream"),
        }
    }

    /// This end's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.stream
            .local_addr()
            .expect("a connected socket's address")
    }

    /// Reads one frame's payload.
    pub fn read_frame(&mut self) -> Vec<u8> {
        let mut header = [0u8; 4];
        self.stream.read_exact(&mut header).expect("frame header");
        let mut payload = vec![0u8; u32::from_be_bytes(header) as usize];
        self.stream.read_exact(&mut payload).expect("frame payload");
        payload
    }
}

/// Whether Linux runs a keepalive timer on the IPv4 TCP socket from `local` to `remote`
/// (the `tr` column of `/proc/net/tcp` is 2 for it); `None` where that file is not
/// there or has no such socket.
pub fn keepalive_timer_running(local: SocketAddr, remote: SocketAddr) -> Option<bool> {
    let row = proc_net_tcp_row(local, remote)?;
    let timer = row.get(5)?.split(':').next()?;
    Some(timer == "02")
}

/// The bytes Linux holds in the send buffer of the IPv4 TCP socket from `local` to
/// `remote`, unsent or unacknowledged (the `tx_queue` column of `/proc/net/tcp`); `None`
/// where that file is not there or has no such socket.
pub fn send_queue_bytes(local: SocketAddr, remote: SocketAddr) -> Option<u32> {
    let row = proc_net_tcp_row(local, remote)?;
    let tx_queue = row.get(4)?.split(':').next()?;
    u32::from_str_radix(tx_queue, 16).ok()
}

/// The fields of the line of `/proc/net/tcp` for the socket from `local` to `remote`.
fn proc_net_tcp_row(local: SocketAddr, remote: SocketAddr) -> Option<Vec<String>> {
    let hex = |addr: SocketAddr| match addr {
        SocketAddr::V4(v4) => {
            let ip = u32::from_le_bytes(v4.ip().octets());
            Some(format!("{ip:08X}:{:04X}", v4.port()))
        }
        SocketAddr::V6(_) => None,
    };
    let (local, remote) = (hex(local)?, hex(remote)?);
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.get(1) == Some(&local.as_str()) && fields.get(2) == Some(&remote.as_str()))
            .then(|| fields.iter().map(|field| field.to_string()).collect())
    })
}
