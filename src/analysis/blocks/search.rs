//! The detectors as searchers, one list in priority order, and the search that runs them.
//!
//! Each searcher looks at one [`Scope`]: the elementwise merges, the Concats, or the chains left
//! outside the blocks found at merges. At a merge, the searchers of its scope are asked in the
//! order of [`SEARCHERS`]; the first that finds a block has the merge, and the reasons the
//! others gave are dropped. A merge no searcher takes keeps every distinct reason given, in that
//! order. A block one of whose paths raises the resolution of a map that is not pooled (an
//! Upsample, a Resize, a transposed convolution) is a fusion of maps from different stages, a
//! neck's or a decoder's, and no block: its merge is rejected as such, whichever searcher found it.
//!
//! A new kind of block is a detector file with its searcher, one entry here, its row in
//! [`super::KINDS`] and its row in the README's table.

use super::{outermost, Block, Cx, Found, Rejection};
use crate::onnx::op::Op;
use std::collections::HashSet;

/// What a searcher looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scope {
    /// Elementwise merges (Add, Sum), in topological order. A block whose merge lies in
    /// another's transformation from the same input is part of it (RepVGG's chain of Adds).
    Adds,
    /// Concats, last first, skipping those inside a module already found (a dense layer's
    /// Concat inside its dense block, a split branch inside an Inception module), and those
    /// inside a block found at an Add (an Inception-ResNet branch). Dense blocks written one
    /// layer at a time are then joined.
    Concats,
    /// What is left once every merge is looked at: chains of convolutions with no merge.
    Chains,
}

impl Scope {
    /// Every scope, in the order the search runs them.
    const ALL: [Scope; 3] = [Scope::Adds, Scope::Concats, Scope::Chains];

    /// Whether merge node `op` is one this scope looks at.
    fn takes(self, op: Op) -> bool {
        match self {
            Scope::Adds => op.adds(),
            Scope::Concats => op == Op::Concat,
            Scope::Chains => false,
        }
    }
}

/// One detector: where it looks and what it finds there.
pub(super) trait Searcher: Sync {
    fn scope(&self) -> Scope;

    /// The block whose merge is node `m` (scopes [`Scope::Adds`] and [`Scope::Concats`]):
    /// Ok(None) when `m` is not a merge of this searcher's kind, a rejection when it is one
    /// but does not make a block.
    fn at_merge(&self, _cx: &Cx, _m: usize) -> Found {
        Ok(None)
    }

    /// The blocks among the chains outside `merged.blocks`, the blocks found at merges, and
    /// outside the prediction heads found there ([`Scope::Chains`]).
    fn in_chains(&self, _cx: &Cx, _merged: &Merged) -> Vec<Block> {
        Vec::new()
    }
}

/// Every searcher, in priority order.
pub(super) static SEARCHERS: [&dyn Searcher; 7] = [
    &super::residual::Residuals,
    &super::shuffle::ShuffleUnits,
    &super::dual::DualPaths,
    &super::csp::FusedModules,
    &super::concat::Concats,
    &super::inverted::InvertedWithoutMerge,
    &super::plain::PlainChains,
];

/// What the searchers found: the blocks, unordered, and the merges no searcher took, each with
/// every reason given.
pub(super) struct Searched {
    pub blocks: Vec<Block>,
    pub rejected: Vec<(usize, Vec<Rejection>)>,
}

/// What the chain searchers see of the merges: the blocks found there, and the prediction heads
/// (merges a searcher found whose map then leaves the spatial domain), whose nodes are no block's.
pub(super) struct Merged {
    pub blocks: Vec<Block>,
    pub heads: Vec<Block>,
}

impl Merged {
    /// Whether node `n` belongs to a block or a head found at a merge.
    pub fn covers(&self, n: usize) -> bool {
        self.blocks.iter().chain(&self.heads).any(|b| b.covers(n))
    }
}

/// Runs every scope's `searchers` (in their priority order) over the graph; `order` is the
/// nodes in topological order.
pub(super) fn search(cx: &Cx, searchers: &[&dyn Searcher], order: &[usize]) -> Searched {
    let mut found = Searched {
        blocks: Vec::new(),
        rejected: Vec::new(),
    };
    let mut heads = Vec::new();
    for scope in Scope::ALL {
        let searchers: Vec<&dyn Searcher> = searchers
            .iter()
            .copied()
            .filter(|s| s.scope() == scope)
            .collect();
        match scope {
            Scope::Adds => {
                let (blocks, rejected) =
                    at_merges(cx, scope, &searchers, order, HashSet::new(), &mut heads);
                found.blocks = outermost(blocks, true);
                found.rejected.extend(rejected);
            }
            Scope::Concats => {
                let covered: HashSet<usize> = found
                    .blocks
                    .iter()
                    .chain(&heads)
                    .flat_map(Block::covered)
                    .collect();
                let last_first: Vec<usize> = order.iter().rev().copied().collect();
                let (mut modules, mut rejected) =
                    at_merges(cx, scope, &searchers, &last_first, covered, &mut heads);
                modules.reverse();
                rejected.reverse();
                found.rejected.extend(rejected);
                // A module whose Concat lies inside a bigger module (Inception v3's split
                // 1×3 / 3×1 branches), or a dense-layer Concat inside its dense block, is part
                // of that block.
                found
                    .blocks
                    .extend(cx.join_dense_runs(outermost(modules, false)));
            }
            Scope::Chains => {
                let merged = Merged {
                    blocks: std::mem::take(&mut found.blocks),
                    heads: std::mem::take(&mut heads),
                };
                let chains: Vec<Block> = searchers
                    .iter()
                    .flat_map(|s| s.in_chains(cx, &merged))
                    .filter(|b| !cx.is_head(b))
                    .collect();
                found.blocks = merged.blocks;
                found.blocks.extend(chains);
            }
        }
    }
    found
}

/// The blocks the searchers find at the merges of `scope`, visited in `order`; with `covered`
/// growing by each block's nodes (but its merge) so that merges inside a block found are not
/// looked at. A block found that is a prediction head goes to `heads`, its merge rejected.
fn at_merges(
    cx: &Cx,
    scope: Scope,
    searchers: &[&dyn Searcher],
    order: &[usize],
    mut covered: HashSet<usize>,
    heads: &mut Vec<Block>,
) -> (Vec<Block>, Vec<(usize, Vec<Rejection>)>) {
    let (mut blocks, mut rejected) = (Vec::new(), Vec::new());
    let skips = scope == Scope::Concats;
    for &m in order {
        if !scope.takes(Op::of(cx.view.node(m))) || covered.contains(&m) {
            continue;
        }
        let mut reasons = Vec::new();
        let mut block = None;
        for s in searchers {
            match s.at_merge(cx, m) {
                Ok(Some(b)) => {
                    if let Some(node) = cx.fusion(&b) {
                        reasons.push(Rejection::Fusion(node));
                    } else if cx.is_head(&b) {
                        reasons.push(Rejection::Head);
                        covered.extend(b.covered());
                        heads.push(b);
                    } else {
                        block = Some(b);
                    }
                    break;
                }
                Ok(None) => {}
                // Two searchers may stop at the same step (the fork of a Concat).
                Err(reason) if !reasons.contains(&reason) => reasons.push(reason),
                Err(_) => {}
            }
        }
        match block {
            Some(b) => {
                // A module that nests blocks leaves the Concats inside it to be found too.
                if skips && !b.kind.nests() {
                    cx.charge(b.nodes.len());
                    covered.extend(b.covered().filter(|&n| n != m));
                }
                blocks.push(b);
            }
            None if !reasons.is_empty() => rejected.push((m, reasons)),
            None => {}
        }
    }
    (blocks, rejected)
}

#[cfg(test)]
mod tests {
    use super::super::{detect_with, residual::Residuals};
    use super::*;
    use crate::analysis::existing;
    use crate::analysis::features::Features;
    use crate::graph::GraphView;
    use crate::testutil::GraphBuilder;

    /// Rejects every elementwise merge with `0`.
    struct Refuses(Rejection);

    impl Searcher for Refuses {
        fn scope(&self) -> Scope {
            Scope::Adds
        }

        fn at_merge(&self, _cx: &Cx, _m: usize) -> Found {
            Err(self.0.clone())
        }
    }

    /// Blocks and rejections `searchers` find in a ResNet of two basic blocks.
    fn run(searchers: &[&dyn Searcher]) -> (usize, Vec<(usize, Vec<Rejection>)>) {
        let g = GraphBuilder::resnet_basic(&[2]);
        let view = GraphView::new(&g).expect("view");
        let feats = Features::new(&view);
        let gates = existing::find(&view, &feats);
        let det = detect_with(&view, &feats, &gates, u64::MAX, searchers);
        (det.blocks.len(), det.rejected)
    }

    #[test]
    fn the_first_searcher_to_find_a_block_has_the_merge() {
        let refuses = Refuses(Rejection::NoShortcut);
        let (blocks, rejected) = run(&[&refuses, &Residuals]);
        assert_eq!((blocks, rejected.len()), (2, 0));
        let (blocks, rejected) = run(&[&Residuals, &refuses]);
        assert_eq!((blocks, rejected.len()), (2, 0));
    }

    #[test]
    fn a_merge_no_searcher_takes_keeps_every_reason_in_order() {
        let (a, b) = (Refuses(Rejection::NoShortcut), Refuses(Rejection::Budget));
        let (blocks, rejected) = run(&[&a, &b]);
        assert_eq!(blocks, 0);
        assert_eq!(rejected.len(), 2, "one entry per Add");
        for (_, reasons) in &rejected {
            assert_eq!(reasons, &[Rejection::NoShortcut, Rejection::Budget]);
        }
    }

    #[test]
    fn the_registry_lists_each_searcher_once_by_scope() {
        let scopes: Vec<Scope> = SEARCHERS.iter().map(|s| s.scope()).collect();
        let mut sorted = scopes.clone();
        sorted.sort_by_key(|s| Scope::ALL.iter().position(|a| a == s));
        assert_eq!(
            scopes, sorted,
            "searchers listed scope by scope, in search order"
        );
    }
}
