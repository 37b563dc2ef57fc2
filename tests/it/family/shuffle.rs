//! ShuffleNet v2: a shuffle block per unit, and where SE sits around each unit's Concat.

use super::Land::At;
use super::{pos, Fam};
use se_inject::onnx::{GraphProto, NodeProto};
use std::collections::{HashMap, HashSet};

/// torchvision ShuffleNetV2([2,2,2], [8,16,32,64,128]): conv 3x3 s2 3→8, MaxPool,
/// three stages of a stride-2 unit (branch1: dw + 1x1; branch2: 1x1, dw s2, 1x1; each
/// C/2 wide) and a stride-1 unit (split in halves, branch2 on one), conv 1x1 64→128,
/// Linear 128→10. One shuffle block per unit; SE at standard on branch2 (C/2).
const SHUFFLENET_PARAMS: u64 = (3 * 8 * 9 + 8)
    // stage 2 (C/2 = 8): unit s2 with input 8, unit s1
    + (8 * 9 + 8) + (8 * 8 + 8) + (8 * 8 + 8) + (8 * 9 + 8) + (8 * 8 + 8)
    + (8 * 8 + 8) + (8 * 9 + 8) + (8 * 8 + 8)
    // stage 3 (C/2 = 16), input 16
    + (16 * 9 + 16) + (16 * 16 + 16) + (16 * 16 + 16) + (16 * 9 + 16) + (16 * 16 + 16)
    + (16 * 16 + 16) + (16 * 9 + 16) + (16 * 16 + 16)
    // stage 4 (C/2 = 32), input 32
    + (32 * 9 + 32) + (32 * 32 + 32) + (32 * 32 + 32) + (32 * 9 + 32) + (32 * 32 + 32)
    + (32 * 32 + 32) + (32 * 9 + 32) + (32 * 32 + 32)
    + (64 * 128 + 128)
    + (128 * 10 + 10); // 18,514

/// Half a unit's channels, per unit: 8, 8, 16, 16, 32, 32.
const HALVES: [super::Land; 6] = [
    At(8, 1),
    At(8, 1),
    At(16, 1),
    At(16, 1),
    At(32, 2),
    At(32, 2),
];

pub const SHUFFLENET_V2_TINY: Fam = Fam {
    net: "shufflenet_v2_tiny",
    params_ts: SHUFFLENET_PARAMS,
    params_dynamo: SHUFFLENET_PARAMS, // the same tensors
    stages: &[("shuffle", 2, 16), ("shuffle", 2, 32), ("shuffle", 2, 64)],
    blocks: &[
        (1, "Concat", 16, false),
        (1, "Concat", 16, false),
        (2, "Concat", 32, false),
        (2, "Concat", 32, false),
        (3, "Concat", 64, false),
        (3, "Concat", 64, false),
    ],
    gates: &[],
    forced: None,
    positions: &[
        // On branch2's output before the Concat: C/2.
        pos("standard", &HALVES),
        // What branch2 reads: the whole unit input of a stride-2 unit (the MaxPool's
        // 8, then 16, 32), the split half of a stride-1 unit (8, 16, 32).
        pos("pre", &HALVES),
        // After the channel shuffle: C.
        pos(
            "post",
            &[
                At(16, 1),
                At(16, 1),
                At(32, 2),
                At(32, 2),
                At(64, 4),
                At(64, 4),
            ],
        ),
        // The other half: branch1's output, or the untouched split half: C/2.
        pos("identity", &HALVES),
        // After branch2's depthwise conv (no activation follows it): C/2.
        pos("inner", &HALVES),
    ],
    extra: Some(shuffle_extra),
};

/// The node producing each tensor.
fn producers(graph: &GraphProto) -> HashMap<&str, &NodeProto> {
    let mut m = HashMap::new();
    for n in &graph.node {
        for o in &n.output {
            m.insert(o.as_str(), n);
        }
    }
    m
}

/// Outputs of the SE scale nodes: a Mul one of whose inputs is a Sigmoid's output.
fn se_outputs(graph: &GraphProto) -> HashSet<&str> {
    let prod = producers(graph);
    graph
        .node
        .iter()
        .filter(|n| n.op_type.as_deref() == Some("Mul"))
        .filter(|n| {
            n.input.iter().any(|i| {
                prod.get(i.as_str())
                    .is_some_and(|p| p.op_type.as_deref() == Some("Sigmoid"))
            })
        })
        .flat_map(|n| n.output.iter().map(String::as_str))
        .collect()
}

/// ShuffleNet: where SE sits relative to each unit's Concat (the Concat feeding the shuffle's
/// Reshape).
fn shuffle_extra(exporter: &str, position: &str, graph: &GraphProto) {
    let what = format!("shufflenet_v2_tiny_{exporter} {position}");
    let prod = producers(graph);
    let se_out = se_outputs(graph);
    let readers: HashSet<&str> = graph
        .node
        .iter()
        .filter(|n| n.op_type.as_deref() == Some("Reshape"))
        .map(|n| n.input[0].as_str())
        .collect();
    let units: Vec<&NodeProto> = graph
        .node
        .iter()
        .filter(|n| n.op_type.as_deref() == Some("Concat") && n.input.len() == 2)
        .filter(|n| readers.contains(n.output[0].as_str()))
        .collect();
    assert_eq!(units.len(), 6, "{what}: shuffle Concats");
    match position {
        // standard: branch2's output is gated; identity: the other half is. Either way exactly
        // one of the Concat's two inputs comes from an SE block.
        "standard" | "identity" => {
            for c in &units {
                let gated = c
                    .input
                    .iter()
                    .filter(|i| se_out.contains(i.as_str()))
                    .count();
                assert_eq!(gated, 1, "{what}: {:?}", c.name);
            }
        }
        // pre: SE feeds only the branch; the other half of a stride-1 unit keeps the raw input,
        // so no Concat input is a split half of an SE output.
        "pre" => {
            let halves_of_se = units
                .iter()
                .flat_map(|c| &c.input)
                .filter(|i| {
                    prod.get(i.as_str()).is_some_and(|p| {
                        matches!(p.op_type.as_deref(), Some("Split" | "Slice"))
                            && se_out.contains(p.input[0].as_str())
                    })
                })
                .count();
            assert_eq!(halves_of_se, 0, "{what}: the shortcut half is gated");
        }
        _ => {}
    }
}
