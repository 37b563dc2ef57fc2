//! Where SE goes: [`rule`] reads a kind's placement (its row of `crate::analysis::blocks::KINDS`)
//! at a position, and each rule is resolved against a detected block to the tensor SE reads and
//! the readers that take its output ([`Site`]), or the reason the block gets none
//! ([`SkipReason`]). The README's table is held against [`rule`] by a test.

use super::options::Position;
use super::patch::Site;
pub use crate::analysis::blocks::Rule;
use crate::analysis::blocks::{
    after_activation, split_conv, tail, unit_of_part, Block, BlockKind, Form,
};
use crate::analysis::features::{is_spatial_conv, Features};
use crate::graph::GraphView;
use crate::graph::Inlet;
use crate::onnx::op::Op;
use std::collections::HashSet;

/// The placement table: the rule for a kind of block at a position, from the kind's row.
pub fn rule(kind: BlockKind, position: Position) -> Rule {
    let p = &kind.row().placement;
    match position {
        Position::Standard => p.standard,
        Position::Pre => p.pre,
        Position::Post => p.post,
        Position::Identity => p.identity,
        Position::Inner => p.inner,
    }
}

/// The kinds of block and the placement table as text, for the command's long help.
pub fn table_text() -> String {
    let mut out = String::from("Blocks found (by structure, not by names):\n");
    for kind in BlockKind::ALL {
        out += &format!("  {:<18} {}\n", kind.as_str(), kind.describe());
    }
    out += "\nWhere each --position puts SE, per kind of block:\n";
    let width = |p: Position| {
        let labels = BlockKind::ALL.iter().map(|&k| rule(k, p).label().len());
        labels.max().unwrap_or(0).max(p.as_str().len())
    };
    let mut line = |first: &str, cell: &dyn Fn(Position) -> &'static str| {
        let mut l = format!("  {first:<18}");
        for p in Position::ALL {
            l += &format!("  {:<w$}", cell(p), w = width(p));
        }
        out += l.trim_end();
        out.push('\n');
    };
    line("", &|p| p.as_str());
    for kind in BlockKind::ALL {
        line(kind.as_str(), &|p| rule(kind, p).label());
    }
    out
}

/// Why a block gets no SE.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SkipReason {
    #[error("stage not selected")]
    StageNotSelected,
    #[error("name not selected by --only / --exclude")]
    NameNotSelected,
    /// A block nested in a module, at the module level.
    #[error("a unit of module '{}' (SE on units: --level unit or all)", crate::shown::shown(.0))]
    UnitOfModule(String),
    /// A module holding blocks of its own, at the unit level.
    #[error("its {0} unit(s) take SE at level unit (SE on the module: --level module or all)")]
    HoldsUnits(usize),
    /// The table has no place for the kind at the position, or the block lacks the part the
    /// rule needs (an inverted residual without its Add has no shortcut).
    #[error("{} has no meaning for {} {} block{}", .position.as_str(), .kind.article(), .kind.as_str(),
        if *.position == Position::Identity { ": it has no shortcut" } else { "" })]
    NoMeaning { position: Position, kind: BlockKind },
    #[error("inner has no meaning for a branch of parallel paths (a merge inside it)")]
    ParallelPaths,
    /// The spatial convolution (with its activation) ends the branch: inner would be standard.
    #[error("the spatial convolution ends the branch, where standard puts SE")]
    InnerIsStandard,
    #[error("its residual branch has no spatial convolution")]
    NoSpatialConv,
    #[error("nothing in the block reads its input")]
    InputUnread,
    #[error("'{0}' is read outside the residual branch")]
    ReadOutside(String),
    #[error("the channel count of '{0}' is unknown")]
    UnknownChannels(String),
    /// Another block's SE already takes the site (its readers or its tensor's name): the block
    /// planned first, in topological order, keeps it.
    #[error("its site is taken by the SE of block {0}")]
    SiteTaken(String),
    #[error("an SE block is already present in this block (use --force to add another)")]
    SeInBlock,
    #[error("an SE block is already present here (use --force to add another)")]
    SeHere,
    /// The site's map has no spatial extent to squeeze or no channel axis to scale.
    #[error("'{}' cannot take SE: {why}", crate::shown::shown(.tensor))]
    NotPoolable {
        tensor: String,
        why: crate::analysis::features::NotPoolable,
    },
}

/// What resolving a rule needs to read.
pub struct Context<'c, 'a> {
    pub view: &'c GraphView<'a>,
    pub feats: &'c Features,
}

impl Context<'_, '_> {
    fn channels(&self, t: &str) -> Result<usize, SkipReason> {
        self.feats
            .channels(t)
            .ok_or_else(|| SkipReason::UnknownChannels(t.to_string()))
    }

    /// SE on `t` for the given readers only.
    fn only(&self, t: &str, consumers: Vec<Inlet>) -> Result<Site, SkipReason> {
        Ok(Site::Only {
            tensor: t.to_string(),
            channels: self.channels(t)?,
            consumers,
        })
    }

    /// SE on `t` read by the block's own nodes only.
    fn read_within(&self, block: &Block, t: &str) -> Result<Site, SkipReason> {
        let consumers: Vec<Inlet> = self
            .view
            .consumers(t)
            .iter()
            .copied()
            .filter(|Inlet { node: n, .. }| block.nodes.contains(n))
            .collect();
        if consumers.is_empty() {
            return Err(SkipReason::InputUnread);
        }
        self.only(t, consumers)
    }
}

/// The merge node and the slots the transformation and the path beside it enter.
fn merged(block: &Block) -> Option<(usize, usize, &str, usize)> {
    match &block.form {
        Form::Residual { merge, shortcut }
        | Form::Shuffle {
            merge,
            other: shortcut,
            ..
        } => Some((
            *merge,
            shortcut.branch_slot,
            shortcut.output.as_str(),
            shortcut.slot,
        )),
        Form::Concat { .. } | Form::DualPath { .. } | Form::Chain => None,
    }
}

impl Rule {
    /// Where this rule puts SE in `block`, or why it cannot; `position` names the position in
    /// the reasons.
    pub fn resolve(
        self,
        block: &Block,
        position: Position,
        cx: &Context,
    ) -> Result<Site, SkipReason> {
        let no_meaning = SkipReason::NoMeaning {
            position,
            kind: block.kind,
        };
        match self {
            Rule::Skip => Err(no_meaning),
            Rule::BranchOutput => match merged(block) {
                Some((m, branch_slot, ..)) => cx.only(
                    &block.output,
                    vec![Inlet {
                        node: m,
                        slot: branch_slot,
                    }],
                ),
                None => Ok(Site::All {
                    tensor: block.output.clone(),
                    channels: block.channels,
                }),
            },
            Rule::Shortcut => match (merged(block), &block.form) {
                (Some((m, _, output, slot)), _) => cx.only(output, vec![Inlet { node: m, slot }]),
                // A dual path's shortcut, before it is cut in two.
                (
                    None,
                    Form::DualPath {
                        shortcut, joins, ..
                    },
                ) => {
                    let cuts = cx.view.consumers(&shortcut.output).iter().copied();
                    cx.only(
                        &shortcut.output,
                        cuts.filter(|i| joins.contains(&i.node)).collect(),
                    )
                }
                (None, _) => Err(no_meaning),
            },
            Rule::BlockInput => cx.read_within(block, &block.input),
            Rule::HalfInput => {
                let half = match &block.form {
                    Form::Shuffle {
                        branch_input: Some(h),
                        ..
                    } => h,
                    _ => &block.input,
                };
                cx.read_within(block, half)
            }
            Rule::AfterMerge => {
                let t = after_activation(cx.view, &block.end);
                Ok(Site::All {
                    tensor: t.to_string(),
                    channels: cx.channels(t)?,
                })
            }
            Rule::AfterSpatialConv => after_spatial_conv(block, cx),
        }
    }
}

/// SE after the transformation's first spatial convolution (and the normalisation and
/// activation right after it), for the transformation's readers, which must be all its readers.
/// A branch that merges parallel paths of its own (a Concat or an Add of two maps, one of them
/// holding a convolution the other lacks: Inception-ResNet, GhostNet's ghost modules, RepVGG's
/// 3×3 + 1×1) has no single such place; a convolution split in groups (MixNet) is one
/// convolution, ending at its Concat. A merge of paths that differ by element-wise and
/// statistics ops alone is a normalisation written out (a LayerNorm as Keras exports it), not
/// parallel paths.
fn after_spatial_conv(block: &Block, cx: &Context) -> Result<Site, SkipReason> {
    let view = cx.view;
    let merges_paths = |n: usize| {
        let node = view.node(n);
        let maps: Vec<&String> = node
            .input
            .iter()
            .filter(|i| cx.feats.is_feature(i))
            .collect();
        Op::of(node).merges()
            && maps.len() >= 2
            && split_conv(view, n).is_none()
            && paths_differ_by_a_conv(view, block, &maps)
    };
    if block.nodes.iter().any(|&n| merges_paths(n)) {
        return Err(SkipReason::ParallelPaths);
    }
    let conv = block
        .nodes
        .iter()
        .copied()
        .find(|&n| is_spatial_conv(cx.feats, view, n))
        .ok_or(SkipReason::NoSpatialConv)?;
    // A part of a convolution split in groups: the whole convolution ends at its Concat.
    let conv = unit_of_part(view, conv).unwrap_or(conv);
    let (_, t, _) = tail(view, conv);
    let t = t.as_str();
    let consumers = view.consumers(t).to_vec();
    if t == block.output {
        return Err(SkipReason::InnerIsStandard);
    }
    if consumers.iter().any(|i| !block.nodes.contains(&i.node)) || view.is_graph_output(t) {
        return Err(SkipReason::ReadOutside(t.to_string()));
    }
    cx.only(t, consumers)
}

/// Whether the paths inside `block` to the tensors `maps` differ by a channel-mixing op: one
/// that is an ancestor of some of them but not of all.
fn paths_differ_by_a_conv(view: &GraphView, block: &Block, maps: &[&String]) -> bool {
    let ancestors = |t: &str| -> HashSet<usize> {
        let mut seen = HashSet::new();
        let mut stack: Vec<usize> = view.producer_node(t).into_iter().collect();
        while let Some(n) = stack.pop() {
            if !block.nodes.contains(&n) || !seen.insert(n) {
                continue;
            }
            stack.extend(
                view.node(n)
                    .input
                    .iter()
                    .filter_map(|i| view.producer_node(i)),
            );
        }
        seen
    };
    let sets: Vec<HashSet<usize>> = maps.iter().map(|t| ancestors(t)).collect();
    let mixes = |n: &usize| Op::of(view.node(*n)).mixes_channels();
    let union: HashSet<usize> = sets.iter().flatten().copied().collect();
    union
        .iter()
        .filter(|n| mixes(n))
        .any(|n| sets.iter().any(|s| !s.contains(n)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The README's "What it recognises" table: per kind, the cell of each position.
    fn readme_table() -> Vec<(String, Vec<String>)> {
        let readme = include_str!("../../README.md");
        let mut rows = Vec::new();
        for line in readme.lines().filter(|l| l.starts_with("| ")) {
            let cells: Vec<String> = line
                .trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().to_string())
                .collect();
            if BlockKind::ALL.iter().any(|k| k.as_str() == cells[0]) && cells.len() == 7 {
                rows.push((cells[0].clone(), cells[2..].to_vec()));
            }
        }
        rows
    }

    #[test]
    fn readme_table_is_the_rule_table() {
        let rows = readme_table();
        assert_eq!(rows.len(), BlockKind::ALL.len(), "one README row per kind");
        for kind in BlockKind::ALL {
            let (_, cells) = rows
                .iter()
                .find(|(k, _)| k == kind.as_str())
                .unwrap_or_else(|| panic!("no README row for {}", kind.as_str()));
            for (position, cell) in Position::ALL.iter().zip(cells) {
                let label = rule(kind, *position).label();
                assert!(
                    cell.starts_with(&format!("**{label}**")),
                    "README: {} at {}: '{cell}' does not start with **{label}**",
                    kind.as_str(),
                    position.as_str()
                );
            }
        }
    }

    #[test]
    fn only_kinds_with_a_shortcut_take_identity() {
        for kind in BlockKind::ALL {
            assert_eq!(
                rule(kind, Position::Identity) == Rule::Shortcut,
                kind.has_shortcut(),
                "{}",
                kind.as_str()
            );
            assert_eq!(rule(kind, Position::Standard), Rule::BranchOutput);
        }
    }

    #[test]
    fn reasons_read_as_english() {
        let r = SkipReason::NoMeaning {
            position: Position::Identity,
            kind: BlockKind::Plain,
        };
        assert_eq!(
            r.to_string(),
            "identity has no meaning for a plain block: it has no shortcut"
        );
        let r = SkipReason::NoMeaning {
            position: Position::Inner,
            kind: BlockKind::Dense,
        };
        assert_eq!(r.to_string(), "inner has no meaning for a dense block");
        let r = SkipReason::NoMeaning {
            position: Position::Identity,
            kind: BlockKind::Inception,
        };
        assert_eq!(
            r.to_string(),
            "identity has no meaning for an inception block: it has no shortcut"
        );
    }
}
