//! One test per block detector, on graphs from [`crate::testutil::GraphBuilder`]: the kinds and
//! channels of the blocks found, and the stages as (N, C), each derived by hand from what the
//! test builds. Every map is 8×8 and no convolution is strided, so stages split only where the
//! kind or the channels change, or at a MaxPool.

use super::{analyse, BlockKind};
use crate::graph::GraphView;
use crate::testutil::{blocks_and_stages as found, GraphBuilder, Halves};
use anyhow::Result;
use BlockKind::{Dense, Inception, InvertedResidual, Plain, Residual, Shuffle};

#[test]
fn residual_basic_blocks() -> Result<()> {
    // Stem 3→64, then basic blocks 64→64, 64→64 | 64→128 (projection), 128→128: four residual
    // blocks, two stages of two.
    let g = GraphBuilder::resnet_basic(&[2, 2]);
    let (blocks, stages) = found(&g)?;
    assert_eq!(
        blocks,
        vec![
            (Residual, 64),
            (Residual, 64),
            (Residual, 128),
            (Residual, 128)
        ]
    );
    assert_eq!(stages, vec![(2, 64), (2, 128)]);
    Ok(())
}

#[test]
fn residual_bottleneck_blocks_with_projection() -> Result<()> {
    // Stem 3→64, then bottlenecks 64→256 (projection), 256→256 | 256→512 (projection): three
    // residual blocks on their outputs, stages (2, 256), (1, 512).
    let g = GraphBuilder::resnet_bottleneck(&[2, 1], 16, 1);
    let view = GraphView::new(&g)?;
    let a = analyse(&view)?;
    let projection: Vec<bool> = a.blocks.iter().map(|b| b.projection()).collect();
    assert_eq!(projection, vec![true, false, true]);
    let (blocks, stages) = found(&g)?;
    assert_eq!(
        blocks,
        vec![(Residual, 256), (Residual, 256), (Residual, 512)]
    );
    assert_eq!(stages, vec![(2, 256), (1, 512)]);
    Ok(())
}

#[test]
fn inverted_residual_with_and_without_add() -> Result<()> {
    // 8 → expand 48 → dw → project 16 (no Add: the channels change), then 16 → expand 96 → dw
    // → project 16 + input (the Add). Both inverted residuals of 16: one stage of two.
    let mut g = GraphBuilder::new(8);
    let a = g.inverted_residual("input", 8, 48, 16, false);
    let b = g.inverted_residual(&a, 16, 96, 16, true);
    let (blocks, stages) = found(&g.finish(&b))?;
    assert_eq!(blocks, vec![(InvertedResidual, 16), (InvertedResidual, 16)]);
    assert_eq!(stages, vec![(2, 16)]);
    Ok(())
}

#[test]
fn inception_modules() -> Result<()> {
    // 8 → branches 4 + 8 + 4 = 16, then 16 → 8 + 16 = 24: two modules, one stage each.
    let mut g = GraphBuilder::new(8);
    let a = g.inception("input", 8, &[4, 8, 4]);
    let b = g.inception(&a, 16, &[8, 16]);
    let (blocks, stages) = found(&g.finish(&b))?;
    assert_eq!(blocks, vec![(Inception, 16), (Inception, 24)]);
    assert_eq!(stages, vec![(1, 16), (1, 24)]);
    Ok(())
}

#[test]
fn dense_block_of_one_concat() -> Result<()> {
    // 8 channels, three layers of growth 4, the last Concat gathering all: 8 + 3·4 = 20, one
    // dense block (the layers' own Concats are inside it).
    let mut g = GraphBuilder::new(8);
    let d = g.dense_block("input", 8, 4, 3);
    let (blocks, stages) = found(&g.finish(&d))?;
    assert_eq!(blocks, vec![(Dense, 20)]);
    assert_eq!(stages, vec![(1, 20)]);
    Ok(())
}

#[test]
fn dense_block_concatenated_pairwise() -> Result<()> {
    // 8 channels, three layers of growth 4, each Concat adding one layer: 12, 16, 20 wide.
    // Each Concat keeps its own input, and each continues the map the one before grew: the
    // whole run is one dense block of 20, as with one Concat.
    let mut g = GraphBuilder::new(8);
    let d = g.dense_block_pairwise("input", 8, 4, 3);
    let (blocks, stages) = found(&g.finish(&d))?;
    assert_eq!(blocks, vec![(Dense, 20)]);
    assert_eq!(stages, vec![(1, 20)]);
    Ok(())
}

/// Two stride-1 ShuffleNet v2 units on 16 channels, halved by `how`: two shuffle blocks of 16
/// (the unit's output after the channel shuffle), one stage of two.
fn shuffle_units(how: Halves) -> Result<()> {
    let mut g = GraphBuilder::new(16);
    let a = g.shuffle_unit("input", 16, how);
    let b = g.shuffle_unit(&a, 16, how);
    let (blocks, stages) = found(&g.finish(&b))?;
    assert_eq!(blocks, vec![(Shuffle, 16), (Shuffle, 16)], "{how:?}");
    assert_eq!(stages, vec![(2, 16)], "{how:?}");
    Ok(())
}

#[test]
fn shuffle_units_split() -> Result<()> {
    shuffle_units(Halves::Split)
}

#[test]
fn shuffle_units_sliced() -> Result<()> {
    shuffle_units(Halves::Slices)
}

#[test]
fn plain_chain_split_at_max_pools() -> Result<()> {
    // conv 3→8, 8→8 | MaxPool | 8→16, 16→16 | MaxPool | 16→16, 16→16: one plain block per
    // conv + ReLU; the last two stages have equal channels and are split by the MaxPool alone.
    let g = GraphBuilder::plain_chain(&[(2, 8), (2, 16), (2, 16)]);
    let (blocks, stages) = found(&g)?;
    assert_eq!(
        blocks,
        vec![
            (Plain, 8),
            (Plain, 8),
            (Plain, 16),
            (Plain, 16),
            (Plain, 16),
            (Plain, 16)
        ]
    );
    assert_eq!(stages, vec![(2, 8), (2, 16), (2, 16)]);
    Ok(())
}

#[test]
fn no_convolution_no_block() {
    // input → Relu → GlobalAveragePool: nothing to detect; the error lists the ops.
    let mut g = GraphBuilder::new(8);
    let r = g.relu("input");
    let p = g.node("GlobalAveragePool", &[&r], vec![]);
    let g = g.finish(&p);
    let err = match GraphView::new(&g).map(|v| analyse(&v).map(|_| ())) {
        Ok(Err(e)) => format!("{e:#}"),
        other => panic!(
            "expected an analysis error, got {:?}",
            other.map(|r| r.is_ok())
        ),
    };
    assert!(err.starts_with("no block found"), "{err}");
    assert!(
        err.ends_with("the graph holds 1 GlobalAveragePool, 1 Relu"),
        "{err}"
    );
}
