//! The runtime adapters under test: one [`TestNode`] implementation over any
//! [`Runtime`], and per runtime only how a plain thread blocks on it. A new runtime needs
//! an [`Executor`] impl here and one line in the suite's `conformance!` invocation.

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use gossip_core::Stats;
use gossip_net::{GossipNode, NetConfig, PeerInfo, Runtime};
use gossip_smol::Smol;
use gossip_tokio::Tokio;

use crate::TestNode;

/// A runtime the test thread can block on.
pub trait Executor: Runtime {
    /// The runtime's name, for messages.
    const NAME: &'static str;
    /// Runs `future` to completion on this runtime, from a plain thread.
    fn block_on<F: Future>(future: F) -> F::Output;
}

/// Every tokio node runs on one shared multi-threaded runtime (as an application would
/// run several nodes), with a worker per core.
impl Executor for Tokio {
    const NAME: &'static str = "tokio";
    fn block_on<F: Future>(future: F) -> F::Output {
        static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
        let runtime = RUNTIME.get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .expect("tokio runtime")
        });
        runtime.block_on(future)
    }
}

/// smol nodes run on smol's global executor (`SMOL_THREADS` sets its threads).
impl Executor for Smol {
    const NAME: &'static str = "smol";
    fn block_on<F: Future>(future: F) -> F::Output {
        smol::block_on(future)
    }
}

/// A node on runtime `R`, driven from a plain test thread.
pub struct Node<R: Executor> {
    node: Option<GossipNode<R>>,
}

/// Starts a node on runtime `R`: a [`Starter`](crate::Starter).
pub fn start<R: Executor>(config: NetConfig) -> Box<dyn TestNode> {
    let node = R::block_on(GossipNode::<R>::start(config)).expect("node starts");
    Box::new(Node { node: Some(node) })
}

/// `future`'s output, or `None` if `timeout` passes first.
async fn within<R: Runtime, T>(timeout: Duration, future: impl Future<Output = T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    futures_lite::future::or(async { Some(future.await) }, async {
        R::sleep_until(deadline).await;
        None
    })
    .await
}

impl<R: Executor> Node<R> {
    fn node(&self) -> &GossipNode<R> {
        self.node.as_ref().expect("running")
    }
}

impl<R: Executor> TestNode for Node<R> {
    fn runtime(&self) -> &'static str {
        R::NAME
    }

    fn addr(&self) -> SocketAddr {
        self.node().local_addr()
    }

    fn publish(&self, payload: &[u8]) {
        R::block_on(self.node().publish(payload.to_vec())).expect("publish");
    }

    fn recv(&mut self, timeout: Duration) -> Option<Vec<u8>> {
        let node = self.node.as_mut().expect("running");
        R::block_on(within::<R, _>(timeout, node.next_delivery()))
            .flatten()
            .map(|d| d.payload.to_vec())
    }

    fn dial(&self, addr: SocketAddr) {
        R::block_on(self.node().dial(addr)).expect("dial");
    }

    fn discard_deliveries(&mut self) {
        drop(self.node.as_mut().expect("running").take_deliveries());
    }

    fn stats(&self) -> Stats {
        R::block_on(self.node().stats()).expect("stats")
    }

    fn peers(&self) -> Vec<PeerInfo> {
        R::block_on(self.node().peers()).expect("peers")
    }

    fn wait_for_peers(&self, count: usize, timeout: Duration) -> bool {
        let wait = self.node().wait_for_peers(count);
        matches!(R::block_on(within::<R, _>(timeout, wait)), Some(Ok(())))
    }

    fn shutdown(mut self: Box<Self>) {
        if let Some(node) = self.node.take() {
            R::block_on(node.shutdown(Duration::from_secs(1)));
        }
    }
}
