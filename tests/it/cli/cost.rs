//! The cost of SE: compute per fixture family worked out by hand, per stage and in total, the
//! picture (--plot) and the timing (--time-runs).
//!
//! One SE block on a map of C channels and H·W positions, hidden width h, with biases, adds
//! 2·C·h MACs (its two FCs); 2·C·H·W + h + C element ops (the squeeze reads the map, the ReLU h,
//! the sigmoid C, the scaling the map again); and 2·C·h + 2·h + 37·C + 2·C·H·W in the
//! profiler's convention (the FCs' bias adds h + C, the squeeze's division per channel 4·C,
//! the sigmoid 32·C).

use super::*;

/// (MACs, element ops, profiler) that SE adds on `n` blocks of C channels, hidden h, H·W
/// positions.
fn se_cost(n: u64, c: u64, h: u64, hw: u64) -> [u64; 3] {
    [
        n * 2 * c * h,
        n * (2 * c * hw + h + c),
        n * (2 * c * h + 2 * h + 37 * c + 2 * c * hw),
    ]
}

fn cost(v: &Value) -> [u64; 3] {
    [u(v, "macs"), u(v, "element_ops"), u(v, "profiler")]
}

/// A group of equal SE blocks: how many, their channels C, hidden width h and positions H·W.
type Group = (u64, u64, u64, u64);

/// What SE adds at the standard position, per family, from the generators' architectures
/// (input 32×32), group by group.
const FAMILIES: &[(&str, &[Group])] = &[
    // Stem 3×3 s1; stages at 32, 16, 8.
    (
        "resnet_basic",
        &[(2, 8, 1, 1024), (1, 16, 1, 256), (2, 32, 2, 64)],
    ),
    (
        "resnet_bottleneck",
        &[(2, 16, 1, 1024), (2, 32, 2, 256), (1, 64, 4, 64)],
    ),
    (
        "resnext_tiny",
        &[(1, 16, 1, 1024), (1, 32, 2, 256), (1, 64, 4, 64)],
    ),
    // Two convs at 32, MaxPool 2, one at 16.
    ("plain_cnn", &[(2, 8, 1, 1024), (1, 16, 1, 256)]),
    // [8, 8, M, 16, 16, M, 32].
    (
        "vgg_tiny",
        &[(2, 8, 1, 1024), (2, 16, 1, 256), (1, 32, 2, 64)],
    ),
    // Stem s2 (16×16, a block of its own), pairs 16 (s1), 32 (s2), 32, 64 (s2).
    (
        "mobilenet_v1_tiny",
        &[
            (1, 8, 1, 256),
            (1, 16, 1, 256),
            (2, 32, 2, 64),
            (1, 64, 4, 16),
        ],
    ),
    // Stem s2 → 16; [1,8,1,1] at 16, [6,16,2,2] at 8, [6,24,2,2] at 4.
    (
        "mobilenet_v2_tiny",
        &[(1, 8, 1, 256), (2, 16, 1, 64), (2, 24, 2, 16)],
    ),
    // Stem at 32, MaxPool 3 s2 ceil → 16: 3a (28), 3b (32); reduction 3×3 s2 → 7: 68, then 48.
    (
        "inception_tiny",
        &[
            (1, 28, 2, 256),
            (1, 32, 2, 256),
            (1, 68, 4, 49),
            (1, 48, 3, 49),
        ],
    ),
    // 3×3 s2 → 15, 3×3 pad 1, MaxPool 3 s2 → 7: Mixed_5b and two Block35 units, all 40.
    ("inception_resnet_tiny", &[(3, 40, 3, 49)]),
    // 7×7 s2 → 16, MaxPool s2 → 8: dense block at 8, transition AvgPool → 4: block at 4.
    ("densenet_tiny", &[(1, 16, 1, 64), (1, 16, 1, 16)]),
    // 3×3 s2 → 16, MaxPool s2 → 8; stages stride 2: 4, 2, 1; SE on the branch, half the unit.
    (
        "shufflenet_v2_tiny",
        &[(2, 8, 1, 16), (2, 16, 1, 4), (2, 32, 2, 1)],
    ),
];

#[test]
fn added_compute_of_every_family_by_hand() {
    for (net, groups) in FAMILIES {
        let want = groups.iter().fold([0; 3], |acc, &(n, c, h, hw)| {
            let k = se_cost(n, c, h, hw);
            [acc[0] + k[0], acc[1] + k[1], acc[2] + k[2]]
        });
        for exporter in ["ts", "dynamo"] {
            let name = format!("{net}_{exporter}");
            let j = json(fixture(&name), &["--report", "macs"]);
            let c = &j["compute"];
            assert_eq!(cost(&c["added"]), want, "{name}");
            assert_eq!(
                u(&j, "macs_after") - u(&j, "macs_before"),
                want[0],
                "{name}"
            );
            let stages: u64 = arr(&j, "stages")
                .iter()
                .map(|s| u(&s["compute"]["added"], "profiler"))
                .sum();
            assert_eq!(
                stages + u(&c["outside_stages"]["added"], "profiler"),
                want[2],
                "{name}"
            );
            assert_eq!(u(&c["outside_stages"]["added"], "profiler"), 0, "{name}");
        }
    }
}

/// resnet_basic before SE, by hand on its 1×3×32×32 input (BatchNorm folded into the convs):
/// - MACs 5,595,456 (tests/cli/output.rs derives them).
/// - element ops: a ReLU after the stem (8·32·32 = 8,192); per basic block a ReLU inside, the
///   Add and the ReLU after it: 3·8,192 twice at 32×32, 3·(16·16·16 = 4,096) once, 3·(32·8·8
///   = 2,048) twice; the global pool reads 2,048. 8,192 + 49,152 + 12,288 + 12,288 + 2,048 =
///   83,968.
/// - profiler: the MACs, a bias add per conv output (stem 8,192; four convs of 8,192; 3·4,096;
///   5·2,048: 63,488) and the Linear's 10, the element ops at weight 1, the pool's division per
///   channel 4·32 = 128 (the dynamo export writes a ReduceMean, which has none):
///   5,595,456 + 63,488 + 10 + 83,968 + 128 = 5,743,050.
#[test]
fn resnet_basic_compute_by_hand() {
    for (name, profiler) in [
        ("resnet_basic_ts", 5_743_050),
        ("resnet_basic_dynamo", 5_742_922),
    ] {
        let j = json(fixture(name), &["--report", "macs"]);
        let c = &j["compute"];
        assert_eq!(cost(&c["before"]), [5_595_456, 83_968, profiler], "{name}");
        // Per stage: stage 1 holds the layer1 convs (4 · 32·32·8·8·9 = 2,359,296 MACs, 4 · 8,192
        // bias adds), each block's inner ReLU, Add and the ReLU after it (6 · 8,192); SE there
        // adds 2 · (16,393; 16,698) (se_cost).
        let s1 = &arr(&j, "stages")[0];
        assert_eq!(
            cost(&s1["compute"]["before"]),
            [2_359_296, 49_152, 2_359_296 + 4 * 8_192 + 49_152]
        );
        assert_eq!(cost(&s1["compute"]["added"]), se_cost(2, 8, 1, 1024));
        // Outside: the stem conv (73,728 MACs + 8,192 bias adds + its ReLU), the pool and
        // the Linear (320 MACs + 10).
        let o = &c["outside_stages"]["before"];
        assert_eq!(u(o, "macs"), 32 * 32 * 8 * 3 * 9 + 320, "{name}");
        // Shares: stage 1 holds 33,396 of the 53,038 added: 63.0%; parameters 50 of 423.
        assert!((f(s1, "compute_share_pct") - 100.0 * 33_396.0 / 53_038.0).abs() < 1e-9);
        assert!((f(s1, "params_share_pct") - 100.0 * 50.0 / 423.0).abs() < 1e-9);
        assert_eq!(u(s1, "hidden"), 1);
    }
}

/// The text: the stage table's new columns and the compute line; --report macs the tables.
#[test]
fn compute_in_the_text_report() {
    let o = run_model(fixture("resnet_basic_ts"), &["--report", "params"]);
    let text = stdout(&o);
    assert!(
        text.contains("compute (profiler total: MACs, bias adds, weighted element ops): 5,743,050 before, 5,796,088 after (+53,038, +0.924%)"),
        "{text}"
    );
    let row: Vec<&str> = text
        .lines()
        .find(|l| l.trim_start().starts_with("1  residual"))
        .unwrap()
        .split_whitespace()
        .collect();
    // stage kind blocks channels formula added share hidden +compute share first-node
    assert_eq!(
        &row[..10],
        &["1", "residual", "2", "8", "16", "50", "11.8%", "1", "33,396", "63.0%"]
    );
    let o = run_model(fixture("resnet_basic_ts"), &["--report", "macs"]);
    let text = stdout(&o);
    assert!(text.contains("  total       5,595,456         320        83,968      49,255       5,743,050      53,038"), "{text}");
    // Five sigmoids of 8, 8, 16, 32, 32 gates at weight 32: 3,072.
    assert!(
        text.contains("Sigmoid                      0 → 5               0           3,072"),
        "{text}"
    );
}

/// --plot without -o writes the picture and no model; with -o both; the SVG parses.
#[test]
fn plot_is_written_as_asked() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("cost.svg");
    let o = run_model(
        fixture("resnet_basic_ts"),
        &["--plot", svg.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(listing(dir.path()), vec!["cost.svg"]);
    let text = std::fs::read_to_string(&svg).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap();
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    assert!(text.contains("+33.4k (63.0%)"), "{text}");
    let out = dir.path().join("m.onnx");
    let o = run_to(
        fixture("resnet_basic_ts"),
        &out,
        &["--no-validate", "--plot", svg.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(listing(dir.path()), vec!["cost.svg", "m.onnx"]);
    // The picture may not replace the model.
    let o = run_to(
        fixture("resnet_basic_ts"),
        &out,
        &["--no-validate", "--plot", out.to_str().unwrap()],
    );
    assert_error(&o, &["--plot", "is the output model"]);
}

/// --time-runs N times each model N times; without it, at least 3 runs; the timing line names
/// the machine.
#[test]
fn timing_runs_and_machine() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.onnx");
    let j = json_to(fixture("resnet_basic_ts"), &out, &["--time-runs", "2"]);
    let t = &j["validation"]["timing"];
    assert_eq!((u(&t["before"], "runs"), u(&t["after"], "runs")), (2, 2));
    assert_eq!(u(&t["machine"], "threads"), 1);
    assert!(f(&t["before"], "min_ms") <= f(&t["before"], "median_ms"));
    assert!(f(&t["before"], "median_ms") <= f(&t["before"], "max_ms"));
    let o = run_to(fixture("plain_cnn_ts"), &out, &[]);
    let text = stdout(&o);
    let line = text
        .lines()
        .find(|l| l.starts_with("timing (tract, 1 thread; "))
        .unwrap_or_else(|| panic!("{text}"));
    let runs: u64 = line
        .split("): ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((3..=20).contains(&runs), "{line}");
    let o = run_model(fixture("plain_cnn_ts"), &["--time-runs", "0"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}
