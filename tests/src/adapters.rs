//! The runtime adapters under test. A new runtime needs a [`TestNode`] here and one line
//! in the suite's `conformance!` invocation.

use std::net::SocketAddr;
use std::time::Duration;

use gossip_core::transport::NetConfig;
use gossip_core::Stats;

use crate::TestNode;

/// `gossip-tokio`, every node on one shared multi-threaded runtime (as an application
/// would run several nodes), with a worker per core.
pub struct Tokio {
    runtime: &'static tokio::runtime::Runtime,
    node: Option<gossip_tokio::GossipNode>,
}

fn shared_tokio_runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("tokio runtime")
    })
}

impl Tokio {
    /// Starts a node.
    pub fn start(config: NetConfig) -> Box<dyn TestNode> {
        let runtime = shared_tokio_runtime();
        let node = runtime
            .block_on(gossip_tokio::GossipNode::start(config))
            .expect("node starts");
        Box::new(Tokio {
            runtime,
            node: Some(node),
        })
    }

    fn node(&self) -> &gossip_tokio::GossipNode {
        self.node.as_ref().expect("running")
    }
}

impl TestNode for Tokio {
    fn runtime(&self) -> &'static str {
        "tokio"
    }

    fn addr(&self) -> SocketAddr {
        self.node().local_addr()
    }

    fn publish(&self, payload: &[u8]) {
        let node = self.node();
        self.runtime
            .block_on(node.publish(payload.to_vec()))
            .expect("publish");
    }

    fn recv(&mut self, timeout: Duration) -> Option<Vec<u8>> {
        let node = self.node.as_mut().expect("running");
        let delivery = self
            .runtime
            .block_on(async { tokio::time::timeout(timeout, node.next_delivery()).await });
        delivery.ok().flatten().map(|d| d.payload.to_vec())
    }

    fn dial(&self, addr: SocketAddr) {
        self.runtime.block_on(self.node().dial(addr)).expect("dial");
    }

    fn discard_deliveries(&mut self) {
        drop(self.node.as_mut().expect("running").take_deliveries());
    }

    fn stats(&self) -> Stats {
        self.runtime.block_on(self.node().stats()).expect("stats")
    }

    fn wait_for_peers(&self, count: usize, timeout: Duration) -> bool {
        let wait = self.node().wait_for_peers(count);
        let result = self
            .runtime
            .block_on(async { tokio::time::timeout(timeout, wait).await });
        matches!(result, Ok(Ok(())))
    }

    fn shutdown(mut self: Box<Self>) {
        if let Some(node) = self.node.take() {
            self.runtime.block_on(node.shutdown(Duration::from_secs(1)));
        }
    }
}

/// `gossip-smol`, on smol's global executor.
pub struct Smol {
    node: Option<gossip_smol::GossipNode>,
}

async fn within<T>(timeout: Duration, future: impl std::future::Future<Output = T>) -> Option<T> {
    smol::future::or(async { Some(future.await) }, async {
        smol::Timer::after(timeout).await;
        None
    })
    .await
}

impl Smol {
    /// Starts a node.
    pub fn start(config: NetConfig) -> Box<dyn TestNode> {
        let node = smol::block_on(gossip_smol::GossipNode::start(config)).expect("node starts");
        Box::new(Smol { node: Some(node) })
    }

    fn node(&self) -> &gossip_smol::GossipNode {
        self.node.as_ref().expect("running")
    }
}

impl TestNode for Smol {
    fn runtime(&self) -> &'static str {
        "smol"
    }

    fn addr(&self) -> SocketAddr {
        self.node().local_addr()
    }

    fn publish(&self, payload: &[u8]) {
        smol::block_on(self.node().publish(payload.to_vec())).expect("publish");
    }

    fn recv(&mut self, timeout: Duration) -> Option<Vec<u8>> {
        let node = self.node.as_mut().expect("running");
        smol::block_on(within(timeout, node.next_delivery()))
            .flatten()
            .map(|d| d.payload.to_vec())
    }

    fn dial(&self, addr: SocketAddr) {
        smol::block_on(self.node().dial(addr)).expect("dial");
    }

    fn discard_deliveries(&mut self) {
        drop(self.node.as_mut().expect("running").take_deliveries());
    }

    fn stats(&self) -> Stats {
        smol::block_on(self.node().stats()).expect("stats")
    }

    fn wait_for_peers(&self, count: usize, timeout: Duration) -> bool {
        let wait = self.node().wait_for_peers(count);
        matches!(smol::block_on(within(timeout, wait)), Some(Ok(())))
    }

    fn shutdown(mut self: Box<Self>) {
        if let Some(node) = self.node.take() {
            smol::block_on(node.shutdown(Duration::from_secs(1)));
        }
    }
}
