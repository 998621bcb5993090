//! Which build-cache objects a prune removes, and in what order: pure, over a graph of nodes.
//!
//! A node is a cache object (a committed snapshot, a record without its snapshot, a cache-mount
//! directory) or something that is not ours to remove but pins its ancestors (an active snapshot
//! of a running build, a committed snapshot kiln's build cache did not make). Each node says how
//! strongly it is held ([`Hold`]); the [`Policy`] decides which holds keep it. What is kept keeps its
//! ancestors (the snapshotter refuses to remove a parent anyway). The rest goes leaves first,
//! least recently used first, until the policy's storage budget is met.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::SystemTime;

/// How strongly a node is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Hold {
    /// In use right now (an active snapshot or view, or what a build in progress may be about to
    /// use), or not build cache at all: never removed.
    InUse,
    /// Something stored refers to it (an image's layer, its base layers) or, for cache mounts,
    /// kept unless everything goes: removed only with `all`.
    Referenced,
    /// Nothing refers to it.
    Dangling,
}

/// One object of the graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Node {
    /// Its name, unique in the graph (a snapshot's name, or a made-up one for other objects).
    pub(super) id: String,
    /// The node it sits on (a snapshot's parent), if any.
    pub(super) parent: Option<String>,
    /// Bytes it holds on its own (0 for what is not build cache).
    pub(super) size: u64,
    /// When it was last used.
    pub(super) last_used: SystemTime,
    /// How strongly it is held.
    pub(super) hold: Hold,
}

/// What a prune may remove.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Policy {
    /// Remove [`Hold::Referenced`] nodes too.
    pub(super) all: bool,
    /// Keep nodes used after this time.
    pub(super) used_after: Option<SystemTime>,
    /// Stop once the nodes left hold at most this many bytes.
    pub(super) keep_storage: Option<u64>,
}

impl Policy {
    /// Whether the node is kept on its own account (its ancestors then are too).
    fn keeps(&self, node: &Node) -> bool {
        let held = match node.hold {
            Hold::InUse => true,
            Hold::Referenced => !self.all,
            Hold::Dangling => false,
        };
        held || self.used_after.is_some_and(|after| node.last_used > after)
    }
}

/// The nodes (indexes into `nodes`) to remove, each after every node sitting on it.
pub(super) fn select(nodes: &[Node], policy: &Policy) -> Vec<usize> {
    let graph = Graph::new(nodes);
    let kept = graph.closure(|node| policy.keeps(node));
    let mut children = vec![0usize; nodes.len()];
    for index in 0..nodes.len() {
        if let Some(parent) = graph.parent(index) {
            children[parent] += 1;
        }
    }
    let mut left: u64 = nodes.iter().map(|n| n.size).sum();
    let mut leaves = BinaryHeap::new();
    let entry = |index: usize| Reverse((nodes[index].last_used, nodes[index].id.as_str(), index));
    for index in 0..nodes.len() {
        if !kept[index] && children[index] == 0 {
            leaves.push(entry(index));
        }
    }
    let mut order = Vec::new();
    while let Some(Reverse((_, _, index))) = leaves.pop() {
        if policy.keep_storage.is_some_and(|budget| left <= budget) {
            break;
        }
        order.push(index);
        left = left.saturating_sub(nodes[index].size);
        if let Some(parent) = graph.parent(index) {
            children[parent] -= 1;
            if children[parent] == 0 && !kept[parent] {
                leaves.push(entry(parent));
            }
        }
    }
    order
}

/// Whether each node is in use: held [`Hold::InUse`], or an ancestor of such a node.
pub(super) fn in_use(nodes: &[Node]) -> Vec<bool> {
    Graph::new(nodes).closure(|node| node.hold == Hold::InUse)
}

/// The nodes with their parent links resolved to indexes.
struct Graph<'a> {
    nodes: &'a [Node],
    by_id: HashMap<&'a str, usize>,
}

impl<'a> Graph<'a> {
    fn new(nodes: &'a [Node]) -> Graph<'a> {
        let by_id = nodes
            .iter()
            .enumerate()
            .map(|(index, node)| (node.id.as_str(), index))
            .collect();
        Graph { nodes, by_id }
    }

    /// The index of a node's parent, if the graph holds it.
    fn parent(&self, index: usize) -> Option<usize> {
        let parent = self.nodes[index].parent.as_deref()?;
        self.by_id.get(parent).copied()
    }

    /// The nodes `seed` picks, and all their ancestors.
    fn closure(&self, seed: impl Fn(&Node) -> bool) -> Vec<bool> {
        let mut marked = vec![false; self.nodes.len()];
        for start in 0..self.nodes.len() {
            if !seed(&self.nodes[start]) {
                continue;
            }
            let mut next = Some(start);
            // Stops at the first marked node: its ancestors are marked already.
            while let Some(index) = next.filter(|i| !marked[*i]) {
                marked[index] = true;
                next = self.parent(index);
            }
        }
        marked
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
    }

    fn node(id: &str, parent: Option<&str>, hold: Hold, last_used: u64, size: u64) -> Node {
        Node {
            id: id.to_owned(),
            parent: parent.map(str::to_owned),
            size,
            last_used: at(last_used),
            hold,
        }
    }

    fn ids(nodes: &[Node], order: &[usize]) -> Vec<String> {
        order.iter().map(|i| nodes[*i].id.clone()).collect()
    }

    /// base <- a <- b <- c (dangling chain on a referenced base), base <- img (referenced).
    fn chain() -> Vec<Node> {
        vec![
            node("layer-base", None, Hold::Referenced, 1, 100),
            node("step-b", Some("step-a"), Hold::Dangling, 30, 10),
            node("step-a", Some("layer-base"), Hold::Dangling, 40, 10),
            node("step-c", Some("step-b"), Hold::Dangling, 20, 10),
            node("step-img", Some("layer-base"), Hold::Referenced, 5, 10),
        ]
    }

    #[test]
    fn dangling_nodes_go_children_first_and_referenced_ones_stay() {
        let nodes = chain();
        let order = select(&nodes, &Policy::default());
        assert_eq!(ids(&nodes, &order), ["step-c", "step-b", "step-a"]);
    }

    #[test]
    fn all_removes_everything_not_in_use_children_first() {
        let nodes = chain();
        let policy = Policy {
            all: true,
            ..Policy::default()
        };
        let order = select(&nodes, &policy);
        // Leaves by last use: step-img (5) before step-c (20); the base only once both chains went.
        assert_eq!(
            ids(&nodes, &order),
            ["step-img", "step-c", "step-b", "step-a", "layer-base"]
        );
    }

    #[test]
    fn a_kept_child_keeps_its_ancestors() {
        let mut nodes = chain();
        // A running build's active snapshot on step-b.
        nodes.push(node("build-1", Some("step-b"), Hold::InUse, 50, 0));
        let policy = Policy {
            all: true,
            ..Policy::default()
        };
        let order = select(&nodes, &policy);
        assert_eq!(ids(&nodes, &order), ["step-img", "step-c"]);
        let used = in_use(&nodes);
        let in_use_ids: Vec<&str> = nodes
            .iter()
            .zip(&used)
            .filter(|(_, u)| **u)
            .map(|(n, _)| n.id.as_str())
            .collect();
        assert_eq!(in_use_ids, ["layer-base", "step-b", "step-a", "build-1"]);
    }

    #[test]
    fn recently_used_nodes_and_their_ancestors_are_kept() {
        let nodes = chain();
        let policy = Policy {
            all: true,
            used_after: Some(at(25)),
            keep_storage: None,
        };
        // step-c (20) goes; step-b (30) is recent, which keeps step-a (40 anyway) and the base.
        let order = select(&nodes, &policy);
        assert_eq!(ids(&nodes, &order), ["step-img", "step-c"]);
    }

    #[test]
    fn keep_storage_stops_once_the_rest_fits_least_recently_used_first() {
        let nodes = chain();
        let policy = Policy {
            all: true,
            used_after: None,
            keep_storage: Some(125),
        };
        // 140 bytes in all: step-img (the oldest leaf) and step-c bring it to 120.
        let order = select(&nodes, &policy);
        assert_eq!(ids(&nodes, &order), ["step-img", "step-c"]);
        let everything = Policy {
            keep_storage: Some(1000),
            ..policy
        };
        assert!(select(&nodes, &everything).is_empty(), "already under budget");
    }

    #[test]
    fn a_parent_outside_the_graph_is_no_obstacle() {
        let nodes = vec![node("step-x", Some("gone"), Hold::Dangling, 1, 1)];
        assert_eq!(select(&nodes, &Policy::default()), [0]);
    }
}
