//! Splices of built graphs: the paper's numbers, every position, well-formed outputs.

use super::*;
use crate::analysis::analyse;
use crate::report::count_params;
use crate::testutil::GraphBuilder;

fn opts(position: Position, bias: bool) -> SeOptions {
    SeOptions {
        position,
        bias,
        ..SeOptions::default()
    }
}

fn stage_shape(a: &Analysis) -> Vec<(usize, usize)> {
    a.stages
        .iter()
        .map(|s| (s.blocks.len(), s.channels))
        .collect()
}

fn added(g: &GraphProto, position: Position, bias: bool) -> u64 {
    let view = GraphView::new(g).unwrap();
    let a = analyse(&view).unwrap();
    let s = splice(&view, &a, &opts(position, bias)).unwrap();
    count_params(&s.graph) - count_params(g)
}

#[test]
fn resnet50_matches_the_paper() {
    let g = GraphBuilder::resnet_bottleneck(&[3, 4, 6, 3], 64, 1);
    let view = GraphView::new(&g).unwrap();
    let a = analyse(&view).unwrap();
    assert_eq!(
        stage_shape(&a),
        vec![(3, 256), (4, 512), (6, 1024), (3, 2048)]
    );
    // (2/16)·(3·256² + 4·512² + 6·1024² + 3·2048²) = 2,514,944 weights; biases add
    // Σ N_s·(C_s + C_s/16) = 3·272 + 4·544 + 6·1088 + 3·2176 = 16,048.
    assert_eq!(added(&g, Position::Standard, false), 2_514_944);
    assert_eq!(added(&g, Position::Standard, true), 2_530_992);
}

/// A report's plan is the written splice without the values: the same nodes, the same
/// weights' names and dims (so the same counts), no data.
#[test]
fn a_plan_is_the_splice_without_values() {
    let g = GraphBuilder::resnet_bottleneck(&[3, 4, 6, 3], 64, 1);
    let view = GraphView::new(&g).unwrap();
    let a = analyse(&view).unwrap();
    let o = opts(Position::Standard, true);
    let (written, planned) = (splice(&view, &a, &o).unwrap(), plan(&view, &a, &o).unwrap());
    assert_eq!(written.graph.node, planned.graph.node);
    assert_eq!(count_params(&planned.graph) - count_params(&g), 2_530_992);
    let dims = |s: &Splice| -> Vec<(Option<String>, Vec<i64>)> {
        let new = s.graph.initializer.iter().skip(g.initializer.len());
        new.map(|t| (t.name.clone(), t.dims.clone())).collect()
    };
    assert_eq!(dims(&written), dims(&planned));
    let new = planned.graph.initializer.iter().skip(g.initializer.len());
    assert!(new
        .clone()
        .all(|t| t.raw_data.is_none() && t.float_data.is_empty()));
    assert_eq!(new.count(), 64);
}

#[test]
fn resnext50_has_resnet50_stages() {
    let g = GraphBuilder::resnet_bottleneck(&[3, 4, 6, 3], 128, 32);
    let view = GraphView::new(&g).unwrap();
    let a = analyse(&view).unwrap();
    assert_eq!(
        stage_shape(&a),
        vec![(3, 256), (4, 512), (6, 1024), (3, 2048)]
    );
    assert_eq!(added(&g, Position::Standard, true), 2_530_992);
}

#[test]
fn resnet18_stages() {
    let g = GraphBuilder::resnet_basic(&[2, 2, 2, 2]);
    let view = GraphView::new(&g).unwrap();
    let a = analyse(&view).unwrap();
    assert_eq!(stage_shape(&a), vec![(2, 64), (2, 128), (2, 256), (2, 512)]);
    assert_eq!(
        a.blocks.iter().map(|b| b.projection()).collect::<Vec<_>>(),
        [false, false, true, false, true, false, true, false]
    );
    // (2/16)·2·(64² + 128² + 256² + 512²) = 87,040.
    assert_eq!(added(&g, Position::Standard, false), 87_040);
}

#[test]
fn inner_lands_on_the_bottleneck_width() {
    let g = GraphBuilder::resnet_bottleneck(&[3, 4, 6, 3], 64, 1);
    // SE_3×3: 2·Σ N_s·(C_s/4)²/16 = (2/16)·(3·64² + 4·128² + 6·256² + 3·512²) = 157,184.
    assert_eq!(added(&g, Position::Inner, false), 157_184);
}

#[test]
fn pre_lands_on_the_block_input() {
    let g = GraphBuilder::resnet_bottleneck(&[1, 1], 64, 1);
    // Block inputs carry 64 and 256 channels: 2·64·4 + 2·256·16 = 8,704.
    assert_eq!(added(&g, Position::Pre, false), 8_704);
}

#[test]
fn every_position_keeps_the_graph_well_formed() {
    let g = GraphBuilder::resnet_basic(&[2, 1, 2]);
    for p in [
        Position::Standard,
        Position::Pre,
        Position::Post,
        Position::Identity,
        Position::Inner,
    ] {
        let view = GraphView::new(&g).unwrap();
        let a = analyse(&view).unwrap();
        let s = splice(&view, &a, &opts(p, true)).unwrap();
        let after = GraphView::new(&s.graph).unwrap();
        assert!(after.is_ordered(), "{p:?}");
        assert!(s.decisions.iter().all(|d| d.skipped.is_none()), "{p:?}");
        assert_eq!(
            s.graph.node.len(),
            g.node.len() + 6 * a.blocks.len(),
            "{p:?}"
        );
        let mut names: Vec<&str> = s
            .graph
            .node
            .iter()
            .filter_map(|n| n.name.as_deref())
            .collect();
        let n = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n, "{p:?}: node names are unique");
    }
}

#[test]
fn post_keeps_graph_output_names() {
    let g = GraphBuilder::resnet_basic(&[1]);
    // The last block's activation feeds the pooling; make the activation itself the output.
    let mut g2 = g.clone();
    let pool = g2.node.pop().unwrap();
    g2.output[0].name = Some(pool.input[0].clone());
    let view = GraphView::new(&g2).unwrap();
    let a = analyse(&view).unwrap();
    let s = splice(&view, &a, &opts(Position::Post, true)).unwrap();
    let out = s.graph.output[0].name.clone().unwrap();
    assert_eq!(out, pool.input[0]);
    let last = s.graph.node.last().unwrap();
    assert_eq!(last.op_type.as_deref(), Some("Mul"));
    assert_eq!(last.output[0], out);
}

#[test]
fn existing_se_is_refused_without_force() {
    let g = GraphBuilder::resnet_basic(&[2]);
    let view = GraphView::new(&g).unwrap();
    let a = analyse(&view).unwrap();
    let once = splice(&view, &a, &opts(Position::Standard, true)).unwrap();
    let view2 = GraphView::new(&once.graph).unwrap();
    let a2 = analyse(&view2).unwrap();
    assert_eq!(a2.gates.len(), a2.blocks.len());
    let again = splice(&view2, &a2, &opts(Position::Standard, true)).unwrap();
    assert!(again
        .decisions
        .iter()
        .all(|d| d.skipped == Some(SkipReason::SeInBlock)));
    let mut forced = opts(Position::Standard, true);
    forced.force = true;
    let twice = splice(&view2, &a2, &forced).unwrap();
    assert!(twice.decisions.iter().all(|d| d.skipped.is_none()));
}

/// Two residual blocks sharing the start of their branches (as in DLA's aggregation):
///
/// ```text
/// x ─┬─ conv A ─ relu ─┬─ conv B ─ Add ─┐
///    │                 └─ conv C ─ Add ─┴─ Add (no shortcut: not a block)
///    └──────────────────────────────┴┘
/// ```
/// At `pre` both would scale x for conv A: the first block keeps the site.
#[test]
fn a_site_taken_by_an_earlier_block_is_skipped() {
    let mut g = GraphBuilder::new(8);
    let a = g.conv("input", 8, 8, 3, 1);
    let a = g.relu(&a);
    let b = g.conv(&a, 8, 8, 3, 1);
    let y1 = g.add(&b, "input");
    let c = g.conv(&a, 8, 8, 3, 1);
    let y2 = g.add(&c, "input");
    let y = g.add(&y1, &y2);
    let g = g.finish(&y);
    let view = GraphView::new(&g).unwrap();
    let a = analyse(&view).unwrap();
    assert_eq!(a.blocks.len(), 2);
    let s = splice(&view, &a, &opts(Position::Pre, true)).unwrap();
    assert_eq!(s.decisions[0].skipped, None);
    assert_eq!(
        s.decisions[1].skipped,
        Some(SkipReason::SiteTaken(a.blocks[0].name.clone()))
    );
    // 8 channels, h = max(1, round(8/16)) = 1: 2·8·1 + 1 + 8 = 25.
    assert_eq!(count_params(&s.graph) - count_params(&g), 25);
}

/// A second run refuses every block whatever the position of the first run: an SE gate
/// in a block or at its edge (input, output) counts as present. Checked on a plain chain,
/// where SE sits between blocks, and on inverted residuals without an Add.
#[test]
fn se_from_any_earlier_position_is_found() {
    let mut chain = GraphBuilder::new(3);
    let mut x = "input".to_string();
    for (cin, cout) in [(3, 8), (8, 8), (8, 16)] {
        let c = chain.conv(&x, cin, cout, 3, 1);
        x = chain.relu(&c);
    }
    let chain = chain.finish(&x);
    let mut inverted = GraphBuilder::new(8);
    let mut x = "input".to_string();
    for _ in 0..2 {
        let e = inverted.conv(&x, 8, 32, 1, 1);
        let e = inverted.relu(&e);
        let d = inverted.conv(&e, 32, 32, 3, 32);
        let d = inverted.relu(&d);
        x = inverted.conv(&d, 32, 8, 1, 1);
    }
    let inverted = inverted.finish(&x);
    for g in [chain, inverted] {
        for first in Position::ALL {
            let view = GraphView::new(&g).unwrap();
            let a = analyse(&view).unwrap();
            let once = splice(&view, &a, &opts(first, true)).unwrap();
            if once.decisions.iter().all(|d| d.skipped.is_some()) {
                continue; // identity and inner have no meaning here: nothing to find
            }
            let view2 = GraphView::new(&once.graph).unwrap();
            let a2 = analyse(&view2).unwrap();
            for second in Position::ALL {
                let again = splice(&view2, &a2, &opts(second, true)).unwrap();
                let injected = again.decisions.iter().filter(|d| d.skipped.is_none());
                assert_eq!(injected.count(), 0, "{first:?} then {second:?}");
            }
        }
    }
}

/// A block within the per-block bound (2^29) past the total bound (2^28): an error before
/// any weight is drawn. 12,000 channels at r = 1 with biases: 2·12000² + 2·12000 =
/// 288,024,000 parameters.
#[test]
fn the_total_of_added_parameters_is_bounded() {
    let mut g = GraphBuilder::new(12_000);
    let x = g.basic("input", 12_000, 12_000, false);
    let g = g.finish(&x);
    let view = GraphView::new(&g).unwrap();
    let a = analyse(&view).unwrap();
    let mut o = opts(Position::Standard, true);
    o.ratio = 1;
    let err = splice(&view, &a, &o).err().map(|e| e.to_string());
    assert!(err.is_some_and(|e| e.contains("288024000 parameters or more")));
}

#[test]
fn same_seed_same_weights() {
    let g = GraphBuilder::resnet_basic(&[2, 1]);
    let view = GraphView::new(&g).unwrap();
    let a = analyse(&view).unwrap();
    let run = |seed| {
        let mut o = opts(Position::Standard, true);
        o.seed = seed;
        splice(&view, &a, &o).unwrap().graph
    };
    assert_eq!(run(7), run(7));
    assert_ne!(run(7), run(8));
}

/// A block of a random network: basic (0), bottleneck (1) or inception (2), its output
/// channels, and the inception branch widths.
type Spec = (u8, i64, Vec<i64>);

fn build(specs: &[Spec]) -> GraphProto {
    let mut g = GraphBuilder::new(3);
    let x = g.conv("input", 3, 8, 3, 1);
    let mut x = g.relu(&x);
    let mut cin = 8;
    for (kind, c, widths) in specs {
        match kind {
            0 => {
                x = g.basic(&x, cin, *c, cin != *c);
                cin = *c;
            }
            1 => {
                x = g.bottleneck(&x, cin, (*c / 4).max(1), *c, 1);
                cin = *c;
            }
            _ => {
                x = g.inception(&x, cin, widths);
                cin = widths.iter().sum();
            }
        }
    }
    let p = g.node("GlobalAveragePool", &[&x], vec![]);
    g.finish(&p)
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
    #[test]
    fn random_networks_stay_well_formed(
        specs in proptest::collection::vec(
            (0u8..3, 1i64..48, proptest::collection::vec(1i64..12, 2..5)),
            1..7,
        ),
        ratio in 1usize..33,
        bias: bool,
        pos in 0usize..5,
    ) {
        let position = [Position::Standard, Position::Pre, Position::Post, Position::Identity, Position::Inner][pos];
        let g = build(&specs);
        let view = GraphView::new(&g).unwrap();
        let a = analyse(&view).unwrap();
        proptest::prop_assert_eq!(a.blocks.len(), specs.len());
        let mut o = opts(position, bias);
        o.ratio = ratio;
        let s = splice(&view, &a, &o).unwrap();
        let after = GraphView::new(&s.graph).unwrap();
        proptest::prop_assert!(after.is_ordered());
        let mut names: Vec<&str> = s.graph.node.iter().filter_map(|n| n.name.as_deref()).collect();
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        proptest::prop_assert_eq!(names.len(), n);
        // Σ (2·C·h + h + C) over the injected blocks, h = max(1, round(C / r)).
        let expected: u64 = s
            .decisions
            .iter()
            .filter(|d| d.skipped.is_none())
            .map(|d| {
                let c = d.channels as u64;
                let h = ((c + ratio as u64 / 2) / ratio as u64).max(1);
                2 * c * h + if bias { h + c } else { 0 }
            })
            .sum();
        proptest::prop_assert_eq!(count_params(&s.graph) - count_params(&g), expected);
        let injected = s.decisions.iter().filter(|d| d.skipped.is_none()).count();
        proptest::prop_assert_eq!(s.graph.node.len(), g.node.len() + 6 * injected);
    }
}

/// The splice says what each SE block put in the graph: one record per injected block, in
/// block order, each naming the block's site and the nodes it added. Together they are every
/// node the rewrite added, each once.
#[test]
fn each_insert_records_its_block_site_and_nodes() {
    let g = GraphBuilder::resnet_bottleneck(&[2, 1], 16, 1);
    let view = GraphView::new(&g).unwrap();
    let a = analyse(&view).unwrap();
    for position in [Position::Standard, Position::Post, Position::Identity] {
        let s = splice(&view, &a, &opts(position, true)).unwrap();
        let injected: Vec<usize> = (0..a.blocks.len())
            .filter(|&b| s.decisions[b].skipped.is_none())
            .collect();
        let blocks: Vec<usize> = s.inserted.iter().map(|i| i.block).collect();
        assert_eq!(blocks, injected, "{position:?}");
        let mut all: Vec<usize> = s.inserted.iter().flat_map(|i| i.nodes.clone()).collect();
        // SE blocks of this build: squeeze, two FCs, ReLU, sigmoid, scale.
        assert!(
            s.inserted.iter().all(|i| i.nodes.len() == 6),
            "{position:?}"
        );
        all.sort();
        all.dedup();
        assert_eq!(all.len(), s.graph.node.len() - g.node.len(), "{position:?}");
        let old: std::collections::HashSet<_> = g.node.iter().map(|n| n.name.clone()).collect();
        assert!(all.iter().all(|&n| !old.contains(&s.graph.node[n].name)));
        for ins in &s.inserted {
            // It reads the site, or takes over its name and writes the scaled map under it.
            let node = |n: &usize| &s.graph.node[*n];
            let touches = |n: &usize| {
                node(n).input.contains(&ins.tensor) || node(n).output.contains(&ins.tensor)
            };
            assert!(
                ins.nodes.iter().any(touches),
                "{position:?}: {}",
                ins.tensor
            );
        }
    }
}
