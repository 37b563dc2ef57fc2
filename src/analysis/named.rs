//! Feature maps named on the command line (`--at`), taken as they are: each map is a block of
//! kind [`BlockKind::Named`] whose SE every reader of the map reads, with no detection. A name
//! that is no tensor, is given twice, or names a map SE cannot pool is refused in one line.

use super::blocks::{Block, BlockKind, Form};
use super::{existing, stages, Analysis, Features};
use crate::graph::GraphView;
use crate::shown::shown;
use anyhow::{anyhow, bail, Result};
use std::collections::HashSet;

/// The analysis of `view` with one block per map of `tensors`, in topological order.
pub fn at_maps(view: &GraphView, tensors: &[String]) -> Result<Analysis> {
    if tensors.is_empty() {
        bail!("--at names no tensor");
    }
    let feats = Features::new(view);
    crate::graph::attributes::check_channels(view.graph, &|t| feats.dims(t))?;
    let gates = existing::find(view, &feats);
    let mut seen = HashSet::new();
    let mut blocks = Vec::with_capacity(tensors.len());
    for t in tensors {
        if !seen.insert(t.as_str()) {
            bail!("--at names '{}' twice", shown(t));
        }
        if view.producer(t).is_none() {
            bail!("--at: the graph has no tensor '{}'", shown(t));
        }
        feats
            .poolable(t)
            .map_err(|why| anyhow!("--at: '{}' cannot take SE: {why}", shown(t)))?;
        let f = feats
            .get(t)
            .ok_or_else(|| anyhow!("--at: '{}' is no feature map", shown(t)))?;
        let channels = f
            .channels
            .ok_or_else(|| anyhow!("--at: the channel count of '{}' is unknown", shown(t)))?;
        blocks.push(Block {
            kind: BlockKind::Named,
            name: t.clone(),
            input: t.clone(),
            nodes: view.producer_node(t).into_iter().collect(),
            output: t.clone(),
            end: t.clone(),
            channels,
            dtype: f.dtype,
            form: Form::Chain,
            parent: None,
        });
    }
    blocks.sort_by_key(|b| b.nodes.first().map_or(0, |&n| view.rank[n] + 1));
    let stages = stages::group(view, &blocks);
    Ok(Analysis {
        blocks,
        stages,
        features: feats,
        gates,
        work: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::GraphBuilder;

    /// `input ─ conv 8→8 ─ Relu ─ MaxPool ─ conv 8→16 ─ Relu`: the two Relu outputs named out
    /// of order come back in graph order, one stage each (8 and 16 channels).
    #[test]
    fn named_maps_are_blocks_in_graph_order() {
        let mut g = GraphBuilder::new(8);
        let a = g.conv("input", 8, 8, 3, 1);
        let a = g.relu(&a);
        let p = g.max_pool(&a);
        let b = g.conv(&p, 8, 16, 3, 1);
        let b = g.relu(&b);
        let graph = g.finish(&b);
        let view = GraphView::new(&graph).expect("view");
        let an = at_maps(&view, &[b.clone(), a.clone()]).expect("named");
        let got: Vec<(&str, usize)> = an
            .blocks
            .iter()
            .map(|x| (x.output.as_str(), x.channels))
            .collect();
        assert_eq!(got, [(a.as_str(), 8), (b.as_str(), 16)]);
        assert_eq!(an.stages.len(), 2);
        let twice = at_maps(&view, &[a.clone(), a.clone()])
            .err()
            .expect("twice");
        assert!(twice.to_string().contains("twice"), "{twice}");
        let none = at_maps(&view, &["nope".into()]).err().expect("no tensor");
        assert!(none.to_string().contains("no tensor 'nope'"), "{none}");
    }
}
