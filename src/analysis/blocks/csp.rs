//! Compound modules closed by a fusion convolution: a Concat read only by a pointwise
//! convolution that fuses what it gathers.
//!
//! - Cross-stage partial modules (YOLO's C2f, C3, C3k2, CSPNet's stages, ELAN-style
//!   aggregation): one map split in two, by a Split (or Slices) or by two pointwise
//!   convolutions, a chain of units on one part, the parts (with every intermediate, for C2f)
//!   gathered by the Concat and fused by the 1×1 convolution. The module runs from the map it
//!   splits (from the pointwise convolution that made that map, when only the module reads it)
//!   to the fusion convolution's output; its residual units stay blocks of their own, nested in
//!   it.
//! - Spatial pyramid pooling (SPP, SPPF): a map and max pools of it (stride 1) gathered by the
//!   Concat and fused the same way.

use super::search::{Scope, Searcher};
use super::{tail, BlockKind, Cx, Form, Found};
use crate::onnx::op::Op;
use crate::onnx::{attr_i, attr_ints};
use std::collections::BTreeSet;

/// Cross-stage partial modules and pyramid poolings, at Concats.
pub(super) struct FusedModules;

impl Searcher for FusedModules {
    fn scope(&self) -> Scope {
        Scope::Concats
    }

    fn at_merge(&self, cx: &Cx, m: usize) -> Found {
        cx.fused_module(m)
    }
}

impl Cx<'_, '_> {
    /// The module whose Concat is node `m`, when a pointwise fusion convolution alone reads it
    /// and its parts are split from one map or pool it; Ok(None) otherwise.
    fn fused_module(&self, m: usize) -> Found {
        let view = self.view;
        let Some(inputs) = self.channel_concat(m)? else {
            return Ok(None);
        };
        let Some(cat) = view.node(m).output.first() else {
            return Ok(None);
        };
        let fusion = match view.consumers(cat) {
            [only] if !view.is_graph_output(cat) && self.is_fusion_conv(only.node) => only.node,
            _ => return Ok(None),
        };
        let (fork, fork_node) = self.fork(m, &inputs)?;
        let paths = inputs
            .iter()
            .map(|i| self.region(i, &fork, fork_node))
            .collect::<Result<Vec<_>, _>>()?;
        let all: BTreeSet<usize> = paths.iter().flatten().copied().collect();
        let kind = if self.pools_fork(&inputs, &paths, &fork) {
            BlockKind::PyramidPool
        } else if self.convs(&all) > 0 && self.splits_fork(&all, &paths, &fork) {
            BlockKind::Csp
        } else {
            return Ok(None);
        };
        let (fused, out, _) = tail(view, fusion);
        let mut nodes: Vec<usize> = all.iter().copied().collect();
        nodes.extend(fused);
        let mut input = fork.clone();
        // The pointwise convolution that made the map the module splits or pools belongs to
        // it (C2f's cv1, SPPF's cv1) when nothing outside the module reads that map.
        let split_inside = all.iter().any(|&n| Op::of(view.node(n)).splits());
        if split_inside || kind == BlockKind::PyramidPool {
            if let Some((stem, stem_input)) = self.stem(&fork, &nodes, m) {
                nodes.extend(stem);
                input = stem_input;
            }
        }
        let name = super::naming::merge_block_name(view.node(m), m);
        let form = Form::Concat { merge: m };
        Ok(self.block_ending_at(kind, name, form, input, nodes, out))
    }

    /// Whether node `n` is a pointwise convolution of stride 1 in one group.
    fn is_fusion_conv(&self, n: usize) -> bool {
        let node = self.view.node(n);
        let unit_strides = attr_ints(node, "strides").is_none_or(|s| s.iter().all(|&v| v == 1));
        Op::of(node) == Op::Conv && self.is_pointwise(n) && unit_strides
    }

    /// Whether one input is the fork itself and every other path holds only max pools of
    /// stride 1 (SPPF's chain, SPP's parallel pools).
    fn pools_fork(&self, inputs: &[&String], paths: &[BTreeSet<usize>], fork: &str) -> bool {
        let pool = |n: &usize| {
            let node = self.view.node(*n);
            Op::of(node) == Op::MaxPool
                && attr_ints(node, "strides").is_none_or(|s| s.iter().all(|&v| v == 1))
        };
        inputs.iter().any(|i| *i == fork)
            && paths.iter().filter(|p| !p.is_empty()).count() >= 1
            && paths.iter().all(|p| p.iter().all(pool))
    }

    /// Whether the parts come from one map split in two: a Split or Slice of the fork starts
    /// the paths, or two pointwise convolutions read the fork and one of them is a whole path
    /// (C3's `cv2(x)` beside `m(cv1(x))`).
    fn splits_fork(&self, all: &BTreeSet<usize>, paths: &[BTreeSet<usize>], fork: &str) -> bool {
        let view = self.view;
        let reads_fork = |n: usize| view.node(n).input.first().map(String::as_str) == Some(fork);
        if all
            .iter()
            .any(|&n| Op::of(view.node(n)).splits() && reads_fork(n))
        {
            return true;
        }
        let convs: Vec<usize> = all
            .iter()
            .copied()
            .filter(|&n| {
                Op::of(view.node(n)) == Op::Conv
                    && reads_fork(n)
                    && self.is_pointwise(n)
                    && attr_i(view.node(n), "group").unwrap_or(1) == 1
            })
            .collect();
        let whole_path = |c: usize| {
            let (own, _, _) = tail(view, c);
            paths
                .iter()
                .any(|p| !p.is_empty() && p.iter().all(|n| own.contains(n)))
        };
        convs.len() >= 2 && convs.iter().any(|&c| whole_path(c))
    }

    /// The pointwise convolution (with its normalisation and activation) whose output is
    /// `fork`, when only `module`'s nodes and merge `m` read the map it writes (as a feature:
    /// a Shape may read it too): its nodes and the tensor it reads.
    fn stem(&self, fork: &str, module: &[usize], m: usize) -> Option<(Vec<usize>, String)> {
        let view = self.view;
        let mut t = fork;
        for _ in 0..4 {
            let p = view.producer_node(t)?;
            if Op::of(view.node(p)) == Op::Conv {
                let (nodes, out, _) = tail(view, p);
                // Readers of its shape alone (a Shape before the Slices a chunk is exported
                // as) read no feature.
                let read_inside = view.consumers(fork).iter().all(|i| {
                    i.node == m
                        || module.contains(&i.node)
                        || !view
                            .node(i.node)
                            .output
                            .iter()
                            .any(|o| self.feats.is_feature(o))
                });
                if out != fork
                    || !self.is_pointwise(p)
                    || !read_inside
                    || view.is_graph_output(fork)
                {
                    return None;
                }
                let input = view.node(p).input.first()?.clone();
                return Some((nodes, input));
            }
            t = view.node(p).input.first()?;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use crate::analysis::BlockKind;
    use crate::testutil::{analysis_of, kinds, stage_shapes, GraphBuilder};

    /// An ultralytics bottleneck on `c` channels: 3×3, ReLU, 3×3, + x, ReLU.
    fn unit(g: &mut GraphBuilder, x: &str, c: i64) -> String {
        g.basic(x, c, c, false)
    }

    /// A C2f module after a strided stem conv:
    ///
    /// ```text
    /// x0(16) ─ cv1 1×1 16→16 ─ Split ─┬─ y0(8) ─────────────────────────────┐
    ///                                  └─ y1(8) ─ unit ─ u1 ─ unit ─ u2 ──── Concat(32) ─ cv2 1×1 32→16
    ///                                              (y1, u1 enter the Concat too)
    /// ```
    /// Two residual units of 8 channels nested in one csp module of 16 that runs from x0
    /// (cv1 is read by the Split only) to cv2's ReLU.
    #[test]
    fn a_c2f_module_nests_its_units() {
        let mut g = GraphBuilder::new(3);
        let x0 = g.conv_s2("input", 3, 16);
        let x0 = g.relu(&x0);
        let y = g.conv(&x0, 16, 16, 1, 1);
        let y = g.relu(&y);
        let parts = g.split(&y, &[8, 8]);
        let u1 = unit(&mut g, &parts[1], 8);
        let u2 = unit(&mut g, &u1, 8);
        let cat = g.concat(&[&parts[0], &parts[1], &u1, &u2]);
        let out = g.conv(&cat, 32, 16, 1, 1);
        let out = g.relu(&out);
        let g = g.finish(&out);
        let a = analysis_of(&g).expect("blocks");
        assert_eq!(
            kinds(&a),
            [
                (BlockKind::Residual, 8),
                (BlockKind::Residual, 8),
                (BlockKind::Csp, 16)
            ]
        );
        let module = &a.blocks[2];
        assert_eq!(
            (module.input.as_str(), module.output.as_str()),
            (x0.as_str(), out.as_str())
        );
        assert_eq!(a.blocks[0].parent, Some(2));
        assert_eq!(a.blocks[1].parent, Some(2));
        assert_eq!(module.parent, None);
        // Units and modules are grouped apart.
        assert_eq!(stage_shapes(&a), [(2, 8), (1, 16)]);
    }

    /// A C3 module: two 1×1 convs read x0, one starts the units, the other is a whole path:
    ///
    /// ```text
    /// x0(16) ─┬─ cv1 1×1 16→8 ─ unit ─ unit ─┐
    ///         └─ cv2 1×1 16→8 ──────────────── Concat(16) ─ cv3 1×1 16→16
    /// ```
    /// One csp module from x0 (no Split inside: the module starts at the map both convs read),
    /// its two units nested.
    #[test]
    fn a_c3_module_splits_by_two_convolutions() {
        let mut g = GraphBuilder::new(3);
        let x0 = g.conv_s2("input", 3, 16);
        let x0 = g.relu(&x0);
        let a1 = g.conv(&x0, 16, 8, 1, 1);
        let a1 = g.relu(&a1);
        let u = unit(&mut g, &a1, 8);
        let u = unit(&mut g, &u, 8);
        let b1 = g.conv(&x0, 16, 8, 1, 1);
        let b1 = g.relu(&b1);
        let cat = g.concat(&[&u, &b1]);
        let out = g.conv(&cat, 16, 16, 1, 1);
        let out = g.relu(&out);
        let g = g.finish(&out);
        let a = analysis_of(&g).expect("blocks");
        assert_eq!(
            kinds(&a),
            [
                (BlockKind::Residual, 8),
                (BlockKind::Residual, 8),
                (BlockKind::Csp, 16)
            ]
        );
        assert_eq!(a.blocks[2].input, x0);
        assert_eq!(a.blocks[2].output, out);
        assert!(a.blocks[..2].iter().all(|b| b.parent == Some(2)));
    }

    /// SPPF: cv1, three 5×5 max pools of stride 1 in a chain, every one gathered:
    ///
    /// ```text
    /// x0(16) ─ cv1 1×1 16→8 ─ y ─ pool ─ p1 ─ pool ─ p2 ─ pool ─ p3
    ///                          Concat(y, p1, p2, p3) (32) ─ cv2 1×1 32→16
    /// ```
    /// One pyramid-pool block from x0 to cv2's ReLU; with strided pools it is none.
    #[test]
    fn sppf_is_a_pyramid_pool_and_strided_pools_are_not() {
        for strided in [false, true] {
            let mut g = GraphBuilder::new(3);
            let x0 = g.conv_s2("input", 3, 16);
            let x0 = g.relu(&x0);
            let y = g.conv(&x0, 16, 8, 1, 1);
            let y = g.relu(&y);
            let pool = |g: &mut GraphBuilder, x: &str| {
                if strided {
                    g.max_pool(x)
                } else {
                    g.max_pool_same(x, 5)
                }
            };
            let p1 = pool(&mut g, &y);
            let p2 = pool(&mut g, &p1);
            let p3 = pool(&mut g, &p2);
            let cat = g.concat(&[&y, &p1, &p2, &p3]);
            let out = g.conv(&cat, 32, 16, 1, 1);
            let out = g.relu(&out);
            let g = g.finish(&out);
            let found = analysis_of(&g).map(|a| {
                let pyramid: Vec<_> = a
                    .blocks
                    .iter()
                    .filter(|b| b.kind == BlockKind::PyramidPool)
                    .map(|b| (b.input.clone(), b.output.clone(), b.channels))
                    .collect();
                pyramid
            });
            if strided {
                assert!(found.map_or(true, |p| p.is_empty()), "strided pools");
            } else {
                assert_eq!(found.expect("blocks"), [(x0, out, 16)]);
            }
        }
    }

    /// A Concat fused by a 3×3 convolution is no csp module: the inception module stays one.
    #[test]
    fn a_spatial_fusion_is_no_csp_module() {
        let mut g = GraphBuilder::new(8);
        let a1 = g.conv("input", 8, 4, 1, 1);
        let a1 = g.relu(&a1);
        let b1 = g.conv("input", 8, 4, 1, 1);
        let b1 = g.relu(&b1);
        let b1 = g.conv(&b1, 4, 4, 3, 1);
        let b1 = g.relu(&b1);
        let cat = g.concat(&[&a1, &b1]);
        let out = g.conv(&cat, 8, 8, 3, 1);
        let out = g.relu(&out);
        let g = g.finish(&out);
        let a = analysis_of(&g).expect("blocks");
        assert_eq!(kinds(&a)[0], (BlockKind::Inception, 8));
    }
}
