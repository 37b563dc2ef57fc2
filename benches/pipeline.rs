//! Times each step of the pipeline on one model: load, analyse, splice, encode, save and the
//! tract validation. `cargo bench --bench pipeline -- [MODEL] [ITERATIONS]`; the model defaults to
//! the committed bottleneck fixture. Prints the median of each step in milliseconds.

use se_inject::rewrite::{Position, SeOptions};
use se_inject::{analysis, graph, onnx, rewrite, validate};
use std::path::PathBuf;
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let model = PathBuf::from(
        args.first()
            .map_or("fixtures/resnet_bottleneck_dynamo.onnx", String::as_str),
    );
    let iterations: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(5);
    let opts = SeOptions {
        position: Position::Standard,
        ..SeOptions::default()
    };
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("bench.se.onnx");
    let steps = ["load", "analyse", "splice", "encode", "save", "validate"];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); steps.len()];
    for _ in 0..iterations {
        let mut lap = Instant::now();
        let mut mark = |i: usize, times: &mut Vec<Vec<f64>>| {
            times[i].push(lap.elapsed().as_secs_f64() * 1e3);
            lap = Instant::now();
        };
        let m = onnx::load(&model)?;
        mark(0, &mut times);
        let view = graph::GraphView::new(m.graph())?;
        let a = analysis::analyse(&view)?;
        mark(1, &mut times);
        let s = rewrite::splice(&view, &a, &opts)?;
        mark(2, &mut times);
        let mut rewritten = m.clone();
        rewritten.proto.graph = Some(s.graph);
        if rewritten.storage == onnx::Storage::External {
            rewritten.external_tensors.extend(s.added_initializers);
        }
        let before = validate::ModelSource::from_model(&m);
        let after = validate::ModelSource::from_model(&rewritten);
        mark(3, &mut times);
        onnx::save(&rewritten, &out)?;
        mark(4, &mut times);
        let opts = validate::ValidateOptions::default();
        let v = validate::validate(&before, &after, &opts, &|_| {})?;
        anyhow::ensure!(v.ok, "validation failed: {:?}", v.reason);
        mark(5, &mut times);
    }
    println!(
        "{} ({} iterations), median ms per step:",
        model.display(),
        iterations
    );
    for (step, t) in steps.iter().zip(times) {
        println!("  {step:<9} {:>10.2}", median(t));
    }
    Ok(())
}
