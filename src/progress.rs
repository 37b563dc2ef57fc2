//! The phases of a run, reported as each begins so that a front end can show progress; the
//! library itself never prints.

use std::fmt;

/// Which of the two models tract is working on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// The input model.
    Original,
    /// The model with SE blocks.
    Rewritten,
}

/// A phase of a run, from loading the input to writing the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Mapping and decoding the input model and its external data.
    Load,
    /// Finding blocks and stages, splicing SE blocks in, counting parameters and MACs.
    Analyse,
    /// tract reading a model and its weights.
    TractLoad(Which),
    /// tract optimising a model for running.
    TractOptimise(Which),
    /// Running both models on the seeded input, comparing and timing them.
    Run,
    /// Writing the output files.
    Write,
}

impl fmt::Display for Which {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Which::Original => "the original model",
            Which::Rewritten => "the SE model",
        })
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Phase::Load => write!(f, "loading the model"),
            Phase::Analyse => write!(f, "analysing and splicing"),
            Phase::TractLoad(which) => write!(f, "loading {which} into tract"),
            Phase::TractOptimise(which) => write!(f, "optimising {which} in tract"),
            Phase::Run => write!(f, "running both models in tract"),
            Phase::Write => write!(f, "writing the output"),
        }
    }
}

/// Where phases are reported; `&|_| {}` when nobody listens.
pub type Progress<'a> = &'a dyn Fn(Phase);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_read_as_what_is_happening() {
        assert_eq!(
            Phase::TractOptimise(Which::Rewritten).to_string(),
            "optimising the SE model in tract"
        );
        assert_eq!(Phase::Load.to_string(), "loading the model");
    }
}
