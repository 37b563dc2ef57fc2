//! The expected analysis and splice of each CNN family fixture, by hand: one table per family,
//! read by the checks of tests/it/families.rs.
//!
//! - hidden width h = max(1, round(C / 16)), half up; h is written by hand next to each C;
//! - one SE block adds 2·C·h + h + C parameters ([`se`]);
//! - params_before counts float initializer elements. Both exporters fold each BatchNorm that
//!   follows a convolution into it (conv weight + a bias of C_out); a BatchNorm that follows a
//!   ReLU / Concat (DenseNet) stays, with 4 tensors of C. Where the two exports differ, the
//!   comment of the net says why (constants kept as nodes or initializers, zero biases dropped or
//!   deduplicated).

mod dense;
mod inception;
mod inverted;
mod plain;
mod se_resnet;
mod shuffle;

pub use super::common::{added, se, Land};

pub const NO_IDENTITY: &str = "identity has no meaning";
pub const NO_INNER: &str = "inner has no meaning";
pub const PRESENT: &str = "already present";
pub const PARALLEL: &str = "inner has no meaning for a branch of parallel paths";

/// One expected block of the analysis: (stage, merge op, channels, existing SE).
pub type Blk = (u64, &'static str, u64, bool);

/// One expected position: its name and where SE lands per block.
pub struct Pos {
    pub name: &'static str,
    pub lands: &'static [Land],
}

/// A position and where SE lands per block.
pub const fn pos(name: &'static str, lands: &'static [Land]) -> Pos {
    Pos { name, lands }
}

/// Extra structural checks of a written model: (exporter, position, graph).
pub type Extra = fn(&str, &str, &se_inject::onnx::GraphProto);

/// One family fixture: what the analysis finds and where SE lands at each position.
pub struct Fam {
    pub net: &'static str,
    /// params_before for the `ts` and the `dynamo` export.
    pub params_ts: u64,
    pub params_dynamo: u64,
    /// (kind, blocks, channels) per stage.
    pub stages: &'static [(&'static str, u64, u64)],
    pub blocks: &'static [Blk],
    /// Channels of the SE gates already in the model.
    pub gates: &'static [u64],
    /// Where standard lands with --force, for a model that already has SE there (the random
    /// init run adds --force then).
    pub forced: Option<&'static [Land]>,
    pub positions: &'static [Pos],
    pub extra: Option<Extra>,
}

impl Fam {
    pub fn params_before(&self, exporter: &str) -> u64 {
        if exporter == "ts" {
            self.params_ts
        } else {
            self.params_dynamo
        }
    }

    pub fn lands(&self, position: &str) -> &'static [Land] {
        self.positions
            .iter()
            .find(|p| p.name == position)
            .unwrap_or_else(|| panic!("{}: no position {position}", self.net))
            .lands
    }
}

/// Every family, in the order of fixtures/generate_families.py.
static ALL: [&Fam; 10] = [
    &plain::VGG_TINY,
    &plain::MOBILENET_V1_TINY,
    &inverted::MOBILENET_V2_TINY,
    &inception::INCEPTION_TINY,
    &inception::INCEPTION_RESNET_TINY,
    &shuffle::SHUFFLENET_V2_TINY,
    &dense::DENSENET_TINY,
    &se_resnet::SE_RESNET_TINY,
    &inverted::MOBILENET_V3_TINY,
    &inverted::EFFICIENTNET_TINY,
];

/// The table of `net`.
pub fn family(net: &str) -> &'static Fam {
    ALL.iter()
        .copied()
        .find(|f| f.net == net)
        .unwrap_or_else(|| panic!("no expectations for {net}"))
}
