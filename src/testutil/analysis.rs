//! What the analysis finds in a built graph, in the shapes the tests compare.

use crate::onnx::GraphProto;

/// What the analysis finds in `g`: (kind, channels) per block, (N, C) per stage.
pub type Found = (
    Vec<(crate::analysis::BlockKind, usize)>,
    Vec<(usize, usize)>,
);

/// The analysis of `g`.
pub fn analysis_of(g: &GraphProto) -> anyhow::Result<crate::analysis::Analysis> {
    crate::analysis::analyse(&crate::graph::GraphView::new(g)?)
}

/// (kind, channels) per block of `a`.
pub fn kinds(a: &crate::analysis::Analysis) -> Vec<(crate::analysis::BlockKind, usize)> {
    a.blocks.iter().map(|b| (b.kind, b.channels)).collect()
}

/// (N, C) per stage of `a`.
pub fn stage_shapes(a: &crate::analysis::Analysis) -> Vec<(usize, usize)> {
    a.stages
        .iter()
        .map(|s| (s.blocks.len(), s.channels))
        .collect()
}

/// The blocks and stages the analysis finds in `g`.
pub fn blocks_and_stages(g: &GraphProto) -> anyhow::Result<Found> {
    let a = analysis_of(g)?;
    Ok((kinds(&a), stage_shapes(&a)))
}

/// The report of `splice` (no validation, nothing written), compute counted at the declared
/// input shape.
pub fn report_of(
    view: &crate::graph::GraphView,
    analysis: &crate::analysis::Analysis,
    splice: &crate::rewrite::Splice,
    opts: &crate::rewrite::SeOptions,
    model: &str,
) -> crate::report::Report {
    crate::report::Report::new(crate::report::Parts {
        model,
        view,
        analysis,
        splice,
        opts,
        input_shape: None,
        validation: None,
        output: None,
        data_file: None,
    })
    .expect("the rewritten graph is well formed")
}
