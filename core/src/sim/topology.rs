//! Undirected graphs of nodes to simulate: lines, rings, stars, cliques, random graphs.

use std::collections::HashSet;

use super::SimRng;

/// An undirected graph on nodes `0..nodes`, without self-loops or repeated edges.
///
/// ```
/// use gossip_core::sim::Topology;
/// let ring = Topology::ring(4);
/// assert_eq!(ring.edges(), [(0, 1), (1, 2), (2, 3), (0, 3)]);
/// assert!(ring.is_connected());
/// assert_eq!(ring.degree_sum(), 8);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    nodes: usize,
    edges: Vec<(usize, usize)>,
    present: HashSet<(usize, usize)>,
}

impl Topology {
    /// `nodes` nodes and no edges.
    pub fn empty(nodes: usize) -> Self {
        Topology {
            nodes,
            edges: Vec::new(),
            present: HashSet::new(),
        }
    }

    /// Adds the edge `a`–`b`. Self-loops, repeats and out-of-range nodes are ignored;
    /// returns whether the edge was added.
    pub fn add_edge(&mut self, a: usize, b: usize) -> bool {
        let key = (a.min(b), a.max(b));
        if a == b || key.1 >= self.nodes || !self.present.insert(key) {
            return false;
        }
        self.edges.push(key);
        true
    }

    /// `0 – 1 – … – n-1`.
    pub fn line(nodes: usize) -> Self {
        let mut topology = Self::empty(nodes);
        for i in 1..nodes {
            topology.add_edge(i - 1, i);
        }
        topology
    }

    /// A line closed into a cycle.
    pub fn ring(nodes: usize) -> Self {
        let mut topology = Self::line(nodes);
        if nodes > 2 {
            topology.add_edge(nodes - 1, 0);
        }
        topology
    }

    /// Node 0 linked to every other node.
    pub fn star(nodes: usize) -> Self {
        let mut topology = Self::empty(nodes);
        for i in 1..nodes {
            topology.add_edge(0, i);
        }
        topology
    }

    /// Every pair linked.
    pub fn clique(nodes: usize) -> Self {
        let mut topology = Self::empty(nodes);
        for a in 0..nodes {
            for b in a + 1..nodes {
                topology.add_edge(a, b);
            }
        }
        topology
    }

    /// A connected random graph with average degree close to `degree` (at least a
    /// spanning tree): a random tree, then random extra edges. Same seed, same graph.
    pub fn random_connected(nodes: usize, degree: usize, seed: u64) -> Self {
        let mut rng = SimRng::new(seed);
        let mut topology = Self::empty(nodes);
        for i in 1..nodes {
            let parent = rng.below(i as u64) as usize;
            topology.add_edge(parent, i);
        }
        let max_edges = nodes * nodes.saturating_sub(1) / 2;
        let target = (nodes * degree / 2).min(max_edges);
        while topology.edges.len() < target {
            let a = rng.below(nodes as u64) as usize;
            let b = rng.below(nodes as u64) as usize;
            topology.add_edge(a, b);
        }
        topology
    }

    /// Number of nodes.
    pub fn nodes(&self) -> usize {
        self.nodes
    }

    /// The edges, each as `(smaller, larger)`, in the order they were added.
    pub fn edges(&self) -> &[(usize, usize)] {
        &self.edges
    }

    /// Sum of all node degrees: twice the number of edges. Flooding sends each message
    /// over each edge at most once each way, so at most this many frames per message.
    pub fn degree_sum(&self) -> usize {
        2 * self.edges.len()
    }

    /// Whether every node can reach every other.
    pub fn is_connected(&self) -> bool {
        if self.nodes == 0 {
            return true;
        }
        let mut adjacency = vec![Vec::new(); self.nodes];
        for &(a, b) in &self.edges {
            adjacency[a].push(b);
            adjacency[b].push(a);
        }
        let mut reached = vec![false; self.nodes];
        let mut stack = vec![0];
        reached[0] = true;
        while let Some(node) = stack.pop() {
            for &next in &adjacency[node] {
                if !reached[next] {
                    reached[next] = true;
                    stack.push(next);
                }
            }
        }
        reached.into_iter().all(|r| r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_have_the_expected_edge_counts() {
        assert_eq!(Topology::line(5).edges().len(), 4);
        assert_eq!(Topology::ring(5).edges().len(), 5);
        assert_eq!(Topology::star(5).edges().len(), 4);
        assert_eq!(Topology::clique(5).edges().len(), 10);
        assert!(!Topology::empty(2).is_connected());
    }

    #[test]
    fn random_graph_is_connected_with_the_asked_degree() {
        let topology = Topology::random_connected(1000, 8, 1);
        assert!(topology.is_connected());
        assert_eq!(topology.degree_sum(), 8000);
    }
}
