//! A stand-in for the minimal tutorial node this project grew from, faults included: it
//! floods each new payload to every peer (echoing it to the sender too), remembers every
//! id forever, dials its peers once at start, and uses one thread per connection.
//! Interoperability tests run our nodes against it.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread;

/// A running tutorial node.
pub struct TutorialNode {
    addr: SocketAddr,
    shared: Arc<Shared>,
    delivered: Receiver<Vec<u8>>,
}

struct Shared {
    peers: Mutex<Vec<TcpStream>>,
    seen: Mutex<HashSet<[u8; 32]>>,
    delivered: Mutex<Sender<Vec<u8>>>,
}

impl TutorialNode {
    /// Listens on a free loopback port and dials `peers` once.
    pub fn start(peers: &[SocketAddr]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, delivered) = channel();
        let shared = Arc::new(Shared {
            peers: Mutex::new(Vec::new()),
            seen: Mutex::new(HashSet::new()),
            delivered: Mutex::new(tx),
        });
        for &peer in peers {
            let stream = TcpStream::connect(peer).expect("tutorial node dials once");
            Shared::add(&shared, stream);
        }
        let accepting = shared.clone();
        thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                Shared::add(&accepting, stream);
            }
        });
        TutorialNode {
            addr,
            shared,
            delivered,
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Peers connected (dialled or accepted).
    pub fn peer_count(&self) -> usize {
        self.shared.peers.lock().expect("lock").len()
    }

    /// Floods a payload of its own.
    pub fn publish(&self, payload: &[u8]) {
        self.shared.flood(payload);
    }

    /// The next payload it received and had not seen, within `timeout`.
    pub fn recv(&self, timeout: std::time::Duration) -> Option<Vec<u8>> {
        self.delivered.recv_timeout(timeout).ok()
    }
}

impl Shared {
    fn add(shared: &Arc<Shared>, stream: TcpStream) {
        let reader = stream.try_clone().expect("clone");
        shared.peers.lock().expect("lock").push(stream);
        let shared = shared.clone();
        thread::spawn(move || shared.read_loop(reader));
    }

    fn read_loop(&self, mut stream: TcpStream) {
        loop {
            let mut header = [0u8; 4];
            if stream.read_exact(&mut header).is_err() {
                return;
            }
            // The tutorial's fault: it allocates whatever length the peer claims.
            let mut payload = vec![0u8; u32::from_be_bytes(header) as usize];
            if stream.read_exact(&mut payload).is_err() {
                return;
            }
            let id = *blake3::hash(&payload).as_bytes();
            if self.seen.lock().expect("lock").insert(id) {
                let _ = self.delivered.lock().expect("lock").send(payload.clone());
                self.flood(&payload);
            }
        }
    }

    /// Writes the frame to every peer, the sender included, one write per frame.
    fn flood(&self, payload: &[u8]) {
        self.seen
            .lock()
            .expect("lock")
            .insert(*blake3::hash(payload).as_bytes());
        let mut frame = (payload.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(payload);
        for peer in self.peers.lock().expect("lock").iter_mut() {
            let _ = peer.write_all(&frame);
        }
    }
}
