//! Groups consecutive blocks of one kind and equal output channels into stages, split where the
//! resolution changes (VGG's last two 512-channel stages are two stages).

use super::{Block, BlockKind};
use crate::graph::GraphView;
use crate::onnx::attr_ints;
use crate::onnx::op::Op;

/// A stage: consecutive blocks of one kind with the same output channels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// 1-based, as the report prints it.
    pub index: usize,
    pub kind: BlockKind,
    pub channels: usize,
    /// Indices into the block list.
    pub blocks: Vec<usize>,
    /// Name of the first node of the stage (to find it in a graph viewer).
    pub first_node: String,
}

fn strided(view: &GraphView, n: usize) -> bool {
    let node = view.node(n);
    Op::of(node).strides() && attr_ints(node, "strides").is_some_and(|s| s.iter().any(|&v| v > 1))
}

/// Whether the map is downsampled between the block before, `prev`, and `b`: a strided
/// convolution or pooling outside both.
fn downsamples(view: &GraphView, b: &Block, prev: &Block) -> bool {
    // Walk back from the block's input to the previous block's output.
    let mut t = b.input.as_str();
    for _ in 0..16 {
        if t == prev.end {
            return false;
        }
        let Some(p) = view.producer_node(t) else {
            return false;
        };
        if strided(view, p) {
            return true;
        }
        t = match view.node(p).input.first() {
            Some(i) => i,
            None => return false,
        };
    }
    false
}

/// Whether two blocks have the kind and channels of one stage.
fn alike(a: &Block, b: &Block) -> bool {
    a.kind == b.kind && a.channels == b.channels
}

/// Groups `blocks` (in topological order) into stages: runs of blocks of one kind and output
/// channels, split where the resolution changes. A downsampling between two blocks splits
/// there. A stride inside a block splits before it, unless the block ends its run: ResNet v1
/// and RepVGG stride in a stage's first block, ResNet v2 in its last, and the channels that
/// change after it tell the stages apart.
pub fn group(view: &GraphView, blocks: &[Block]) -> Vec<Stage> {
    // Blocks nested in others (a CSP module's units) are grouped among the blocks of their
    // own depth: a module and its units never share a stage, and modules either side of a
    // module's units still do.
    let depth = |mut i: usize| {
        let mut d = 0;
        while let Some(p) = blocks[i].parent.filter(|_| d < blocks.len()) {
            (i, d) = (p, d + 1);
        }
        d
    };
    let depths: Vec<usize> = (0..blocks.len()).map(depth).collect();
    let mut stages: Vec<Stage> = Vec::new();
    for level in depths
        .iter()
        .copied()
        .collect::<std::collections::BTreeSet<_>>()
    {
        let members: Vec<usize> = (0..blocks.len()).filter(|&i| depths[i] == level).collect();
        stages.extend(group_run(view, blocks, &members));
    }
    stages.sort_by_key(|s| s.blocks.first().copied());
    for (i, s) in stages.iter_mut().enumerate() {
        s.index = i + 1;
    }
    stages
}

/// The stages of the blocks `members` (indices into `blocks`, in order), each block compared
/// with the member before it.
fn group_run(view: &GraphView, blocks: &[Block], members: &[usize]) -> Vec<Stage> {
    let mut stages: Vec<Stage> = Vec::new();
    for (k, &i) in members.iter().enumerate() {
        let b = &blocks[i];
        let ends_run = members
            .get(k + 1)
            .is_none_or(|&next| !alike(b, &blocks[next]));
        let same = |s: &Stage| {
            let prev = &blocks[members[k - 1]];
            alike(prev, b)
                && s.kind == b.kind
                && !downsamples(view, b, prev)
                && (ends_run || !b.nodes.iter().any(|&n| strided(view, n)))
        };
        match stages.last_mut() {
            Some(s) if same(s) => s.blocks.push(i),
            _ => stages.push(Stage {
                index: 0,
                kind: b.kind,
                channels: b.channels,
                blocks: vec![i],
                first_node: b.first_node(view),
            }),
        }
    }
    stages
}

#[cfg(test)]
mod tests {
    use crate::onnx::AttributeProto;
    use crate::testutil::{analysis_of, stage_shapes, GraphBuilder};

    fn strides2() -> AttributeProto {
        AttributeProto {
            name: Some("strides".into()),
            ints: vec![2, 2],
            ..Default::default()
        }
    }

    /// A ResNet v2 bottleneck (Keras ResNet50V2): 1×1 → 3×3 → 1×1 on the residual path; in the
    /// last block of a stage the 3×3 has stride 2 and the shortcut is a 1×1 max pool of
    /// stride 2, keeping the channels.
    fn v2_block(g: &mut GraphBuilder, x: &str, cin: i64, cout: i64, last: bool) -> String {
        let a = g.conv(x, cin, cout / 4, 1, 1);
        let a = g.relu(&a);
        let b = g.conv(&a, cout / 4, cout / 4, 3, 1);
        if last {
            let conv = g.graph.node.last_mut().expect("just added");
            conv.attribute.push(strides2());
        }
        let b = g.relu(&b);
        let c = g.conv(&b, cout / 4, cout, 1, 1);
        let short = match (cin != cout, last) {
            (true, _) => g.conv(x, cin, cout, 1, 1),
            (false, true) => g.node(
                "MaxPool",
                &[x],
                vec![
                    crate::testutil::ints_attr("kernel_shape", &[1, 1]),
                    strides2(),
                ],
            ),
            (false, false) => x.to_string(),
        };
        g.add(&c, &short)
    }

    /// Two v2 stages, 3 blocks of 16 channels (the third strided) and 2 of 32: the stride at the
    /// end of the first stage does not split it.
    #[test]
    fn a_stride_in_the_last_block_keeps_the_stage() {
        let mut g = GraphBuilder::new(8);
        let mut x = "input".to_string();
        let mut cin = 8;
        for (cout, n) in [(16, 3), (32, 2)] {
            for i in 0..n {
                x = v2_block(&mut g, &x, cin, cout, i == n - 1 && cout == 16);
                cin = cout;
            }
        }
        let g = g.finish(&x);
        let a = analysis_of(&g).expect("blocks");
        let stages = stage_shapes(&a);
        assert_eq!(stages, [(3, 16), (2, 32)]);
    }

    /// RepVGG: the stem and the first block of the next stage both keep 16 channels, the
    /// first block of the stage strides: a stride inside a block that does not end its run of
    /// equal channels starts a stage, 1 + 2 blocks.
    #[test]
    fn a_stride_in_the_first_block_starts_the_stage() {
        let mut g = GraphBuilder::new(16);
        let mut x = "input".to_string();
        for strided in [false, true, false] {
            x = v2_block(&mut g, &x, 16, 16, strided);
        }
        let g = g.finish(&x);
        let a = analysis_of(&g).expect("blocks");
        let stages = stage_shapes(&a);
        assert_eq!(stages, [(1, 16), (2, 16)]);
    }
}
