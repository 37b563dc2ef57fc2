//! The splice: for each selected block, where SE goes (the [`site::rule`] table resolved
//! against the read-only graph view), then one patch applied to a copy of the graph, then the
//! invariants checked on the result.

pub mod names;
pub mod options;
pub mod patch;
pub mod se;
pub mod site;

pub use options::{Gate, Init, Level, Names, Position, SeOptions, Squeeze};
pub use site::{rule, Rule, SkipReason};

use crate::analysis::blocks::after_activation;
use crate::analysis::features::Layout;
use crate::analysis::{Analysis, Block};
use crate::graph::GraphView;
use crate::onnx::GraphProto;
use anyhow::Result;
use patch::{Patch, Site};
use rand::rngs::ChaCha8Rng;
use rand::SeedableRng;

/// The decision for one block.
#[derive(Debug, Clone)]
pub struct Decision {
    /// Channels of the tensor SE lands on.
    pub channels: usize,
    pub hidden: usize,
    /// Parameters the block adds (0 when skipped).
    pub params: u64,
    /// Why the block gets no SE, when it gets none.
    pub skipped: Option<SkipReason>,
}

/// The result of a splice.
pub struct Splice {
    pub graph: GraphProto,
    /// Per block, in the analysis order.
    pub decisions: Vec<Decision>,
    /// Names of the initializers added.
    pub added_initializers: Vec<String>,
    /// What each SE block put in the graph, in the order of the blocks.
    pub inserted: Vec<patch::Inserted>,
}

/// Whether block `i` takes SE at `level`: a unit nested in a module only at unit or all, or
/// where the position has no place in its module (a CSP module has no shortcut, so at
/// identity its residual units take SE); a module holding units only at module or all.
fn level(analysis: &Analysis, i: usize, opts: &SeOptions) -> Result<(), SkipReason> {
    let block = &analysis.blocks[i];
    let parent = block.parent.and_then(|p| analysis.blocks.get(p));
    if let (Some(module), Level::Module) = (parent, opts.level) {
        if rule(module.kind, opts.position) != Rule::Skip {
            return Err(SkipReason::UnitOfModule(module.name.clone()));
        }
    }
    let units = analysis
        .blocks
        .iter()
        .filter(|b| b.parent == Some(i))
        .count();
    if units > 0 && opts.level == Level::Unit {
        return Err(SkipReason::HoldsUnits(units));
    }
    Ok(())
}

/// Where SE goes in block `i` of the analysis, or why it goes nowhere: the stage selection, the
/// placement rule, then SE already there.
fn place(
    view: &GraphView,
    analysis: &Analysis,
    i: usize,
    opts: &SeOptions,
) -> Result<Site, SkipReason> {
    let block: &Block = &analysis.blocks[i];
    let stage = analysis
        .stages
        .iter()
        .find(|s| s.blocks.contains(&i))
        .map_or(0, |s| s.index);
    if opts.stages.as_ref().is_some_and(|s| !s.contains(&stage)) {
        return Err(SkipReason::StageNotSelected);
    }
    if !opts.names.selects(&block.name) {
        return Err(SkipReason::NameNotSelected);
    }
    level(analysis, i, opts)?;
    let cx = site::Context {
        view,
        feats: &analysis.features,
    };
    let site = rule(block.kind, opts.position).resolve(block, opts.position, &cx)?;
    if let Err(why) = analysis.features.poolable(site.tensor()) {
        return Err(SkipReason::NotPoolable {
            tensor: site.tensor().to_string(),
            why,
        });
    }
    if opts.force {
        return Ok(site);
    }
    if holds_se(view, analysis, block) {
        return Err(SkipReason::SeInBlock);
    }
    if analysis.se_at(site.tensor()) {
        return Err(SkipReason::SeHere);
    }
    Ok(site)
}

/// Whether an SE gate already sits in `block` or at its edge, whichever position put it
/// there: in its transformation or shortcut, on its input, or on its output (before or after the
/// activation that follows it).
fn holds_se(view: &GraphView, analysis: &Analysis, block: &Block) -> bool {
    let after = after_activation(view, &block.end);
    let edges = [block.end.as_str(), after, block.output.as_str()];
    analysis.gates.iter().any(|g| {
        block.nodes.contains(&g.mul)
            || block.shortcut().is_some_and(|s| s.nodes.contains(&g.mul))
            || g.output == block.input
            || edges.contains(&g.input.as_str())
    })
}

/// Plans and applies the splice of SE blocks into the analysed graph.
pub fn splice(view: &GraphView, analysis: &Analysis, opts: &SeOptions) -> Result<Splice> {
    splice_with(view, analysis, opts, se::Weights::Drawn)
}

/// The splice for a report: the same graph, its new weights carrying their dims but no values
/// (nothing is drawn; counting parameters and compute needs only dims).
pub fn plan(view: &GraphView, analysis: &Analysis, opts: &SeOptions) -> Result<Splice> {
    splice_with(view, analysis, opts, se::Weights::DimsOnly)
}

fn splice_with(
    view: &GraphView,
    analysis: &Analysis,
    opts: &SeOptions,
    weights: se::Weights,
) -> Result<Splice> {
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let mut patch = Patch::default();
    let mut decisions = Vec::with_capacity(analysis.blocks.len());
    // The block of each planned insert, and the parameters planned so far.
    let mut planned: Vec<usize> = Vec::new();
    let mut added = 0u64;
    for (i, block) in analysis.blocks.iter().enumerate() {
        let placed =
            place(view, analysis, i, opts).and_then(|site| match patch.taken_by(view, &site) {
                Some(p) => Err(SkipReason::SiteTaken(
                    analysis.blocks[planned[p]].name.clone(),
                )),
                None => Ok(site),
            });
        let site = match placed {
            Ok(site) => site,
            Err(reason) => {
                decisions.push(Decision {
                    channels: block.channels,
                    hidden: 0,
                    params: 0,
                    skipped: Some(reason),
                });
                continue;
            }
        };
        let c = site.channels();
        added = added.saturating_add(se::check_size(c, opts, site.tensor(), added)?);
        let layout = analysis
            .features
            .get(site.tensor())
            .map_or(Layout::NCHW, |f| f.layout);
        let se = se::build(
            &format!("{}/se", block.name),
            c,
            block.dtype,
            layout,
            opts,
            weights,
            &mut rng,
        )?;
        let params = se.initializers.iter().map(crate::onnx::tensor::numel).sum();
        patch.insert(view, i, site, se)?;
        planned.push(i);
        decisions.push(Decision {
            channels: c,
            hidden: se::hidden_width(c, opts.ratio),
            params,
            skipped: None,
        });
    }
    let applied = patch.apply(view)?;
    Ok(Splice {
        graph: applied.graph,
        decisions,
        added_initializers: applied.added_initializers,
        inserted: applied.inserted,
    })
}

#[cfg(test)]
mod tests;
