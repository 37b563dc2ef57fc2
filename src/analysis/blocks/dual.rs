//! Dual-path blocks (DPN): one transformation whose output T is cut in two along channels, and a
//! shortcut S (the block input, or a projection of it) cut the same way; the first parts are
//! added (a residual path), the rest concatenated (a dense path), in one Concat:
//! `Concat(S[:a] + T[:a], S[a:], T[a:])`. The block's channels are T's, the same for every
//! block of a stage, while the map it writes grows by T's dense part.

use super::residual::Path;
use super::search::{Scope, Searcher};
use super::{Block, BlockKind, Cx, Form, Found, Rejection, Shortcut};
use crate::analysis::features::Layout;
use crate::onnx::attr_i;
use crate::onnx::op::Op;
use std::collections::BTreeSet;

/// The cut parts a dual-path Concat gathers: each part's node and the tensor it cuts.
struct Parts {
    /// The Add (or Sum) of the two first parts.
    add: usize,
    /// Per part, the Slice / Split node and the tensor it reads.
    cuts: Vec<(usize, String)>,
}

/// Dual-path blocks, at Concats.
pub(super) struct DualPaths;

impl Searcher for DualPaths {
    fn scope(&self) -> Scope {
        Scope::Concats
    }

    fn at_merge(&self, cx: &Cx, m: usize) -> Found {
        cx.dual_path(m)
    }
}

impl Cx<'_, '_> {
    /// The dual-path block whose Concat is node `m`; Ok(None) when the Concat does not gather
    /// cut parts of two maps.
    pub(super) fn dual_path(&self, m: usize) -> Found {
        let Some(parts) = self.cut_parts(m) else {
            return Ok(None);
        };
        let sources: BTreeSet<&String> = parts.cuts.iter().map(|(_, s)| s).collect();
        let [a, b] = sources.into_iter().collect::<Vec<_>>()[..] else {
            return Ok(None);
        };
        let Some(inputs) = self.channel_concat(m)? else {
            return Ok(None);
        };
        let (fork, fork_node) = self.fork(m, &inputs)?;
        let fork = fork.as_str();
        let path = |t| self.path_from(fork, fork_node, t);
        let (pa, pb) = (path(a)?, path(b)?);
        // A pre-activation projection (BN, ReLU, 1×1 conv) is not linear, but it holds fewer
        // convolutions than the transformation.
        let (branch, short) = match self.branch_and_shortcut(pa, pb) {
            Err(Rejection::NoShortcut) => {
                let (pa, pb) = (path(a)?, path(b)?);
                match self.convs(&pa.region).cmp(&self.convs(&pb.region)) {
                    std::cmp::Ordering::Greater => (pa, pb),
                    std::cmp::Ordering::Less => (pb, pa),
                    std::cmp::Ordering::Equal => return Err(Rejection::NoShortcut),
                }
            }
            other => other?,
        };
        if self.convs(&branch.region) == 0 {
            return Err(Rejection::NoConvInBranch);
        }
        let channels = self
            .feats
            .channels(branch.tensor)
            .ok_or(Rejection::UnknownChannels)?;
        let node = self.view.node(m);
        let mut joins: Vec<usize> = parts.cuts.iter().map(|&(c, _)| c).collect();
        joins.push(parts.add);
        let shortcut = Shortcut {
            projection: self.convs(&short.region) > 0,
            nodes: self.order(short.region),
            output: short.tensor.clone(),
            slot: 0,
            branch_slot: 0,
        };
        Ok(Some(Block {
            kind: BlockKind::DualPath,
            name: super::naming::merge_block_name(node, m),
            input: fork.to_string(),
            nodes: self.order(branch.region),
            output: branch.tensor.clone(),
            end: node.output.first().cloned().unwrap_or_default(),
            channels,
            dtype: self.dtype(branch.tensor),
            form: Form::DualPath {
                merge: m,
                shortcut,
                joins: self.order(joins),
            },
            parent: None,
        }))
    }

    /// The path from `fork` to `t`.
    fn path_from<'t>(
        &self,
        fork: &str,
        fork_node: Option<usize>,
        t: &'t String,
    ) -> Result<Path<'t>, Rejection> {
        Ok(Path {
            region: self.region(t, fork, fork_node)?,
            tensor: t,
            slot: 0,
        })
    }

    /// The parts Concat `m` gathers when they are cut from maps along channels, one input being
    /// the Add of two parts.
    fn cut_parts(&self, m: usize) -> Option<Parts> {
        let view = self.view;
        let mut add = None;
        let mut leaves: Vec<&String> = Vec::new();
        for i in &view.node(m).input {
            let p = view.producer_node(i)?;
            let node = view.node(p);
            if Op::of(node).adds() && node.input.len() == 2 {
                if add.replace(p).is_some() {
                    return None;
                }
                leaves.extend(&node.input);
            } else {
                leaves.push(i);
            }
        }
        let cuts = leaves
            .into_iter()
            .map(|t| self.cut_of(t))
            .collect::<Option<Vec<_>>>()?;
        // The Add's parts (the first two when it is the first input, wherever it is otherwise)
        // come from the two different maps.
        let add = add?;
        let at = view
            .node(m)
            .input
            .iter()
            .position(|i| view.producer_node(i) == Some(add))?;
        (cuts.get(at)?.1 != cuts.get(at + 1)?.1).then_some(Parts { add, cuts })
    }

    /// The Slice or Split that cuts tensor `t` from a map along its channels, and that map.
    fn cut_of(&self, t: &str) -> Option<(usize, String)> {
        let c = self.view.producer_node(t)?;
        let node = self.view.node(c);
        let x = node.input.first()?;
        let layout = self.feats.get(x).map_or(Layout::NCHW, |f| f.layout);
        let on_channels = match Op::of(node) {
            Op::Split => layout.is_channel_axis(attr_i(node, "axis").unwrap_or(0)),
            Op::Slice => self.feats.channels(t) != self.feats.channels(x),
            _ => false,
        };
        on_channels.then(|| (c, x.clone()))
    }
}

#[cfg(test)]
mod tests {
    use crate::analysis::BlockKind;
    use crate::testutil::{analysis_of, kinds, GraphBuilder};

    /// `x[:, a:b]` along channels.
    fn cut(g: &mut GraphBuilder, x: &str, a: i64, b: i64) -> String {
        let (start, end, axes) = (g.ints(&[a]), g.ints(&[b]), g.ints(&[1]));
        g.node("Slice", &[x, &start, &end, &axes], vec![])
    }

    /// Two dual-path blocks on 16 channels, the first with an identity shortcut, the second
    /// with a 1×1 projection 20 → 16:
    ///
    /// ```text
    /// x ─ 1×1 → 8 ─ Relu ─ 3×3 ─ Relu ─ 1×1 → 12 = T ─ T[:8] ─┐
    /// │                                        └──── T[8:] ───┼─ Concat(x[:8] + T[:8], x[8:], T[8:])
    /// ├─ x[:8] ───────────────────────────────────────────────┘  = 8 + 8 + 4 = 20
    /// └─ x[8:]
    /// ```
    /// Both are one block of T's 12 channels; the projection keeps the map at 20.
    #[test]
    fn a_cut_transformation_and_shortcut_are_one_block() {
        let mut g = GraphBuilder::new(16);
        let mut x = "input".to_string();
        for (cin, project) in [(16, false), (20, true)] {
            let a = g.conv(&x, cin, 8, 1, 1);
            let a = g.relu(&a);
            let b = g.conv(&a, 8, 8, 3, 1);
            let b = g.relu(&b);
            let t = g.conv(&b, 8, 12, 1, 1);
            let s = if project {
                g.conv(&x, cin, 16, 1, 1)
            } else {
                x.clone()
            };
            let (t1, t2) = (cut(&mut g, &t, 0, 8), cut(&mut g, &t, 8, 12));
            let (s1, s2) = (cut(&mut g, &s, 0, 8), cut(&mut g, &s, 8, i64::MAX));
            let sum = g.add(&s1, &t1);
            x = g.concat(&[&sum, &s2, &t2]);
        }
        let a = analysis_of(&g.finish(&x)).expect("blocks");
        assert_eq!(
            kinds(&a),
            [(BlockKind::DualPath, 12), (BlockKind::DualPath, 12)]
        );
        let projections: Vec<bool> = a.blocks.iter().map(|b| b.projection()).collect();
        assert_eq!(projections, [false, true]);
        assert_eq!(a.features.channels(&a.blocks[1].end), Some(20));
    }
}
