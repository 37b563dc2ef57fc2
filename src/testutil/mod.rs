//! Builders for small graphs and models in tests, shared by the unit tests and tests/*.rs.
//!
//! [`GraphBuilder`] writes weights with dims only (no data), which is all analysis, splicing and
//! counting look at; [`residual_model`] writes a whole model with weight data, which tract can
//! run; [`small_model`] and its relatives write the few-node float models the validator runs.

mod analysis;
mod graph;
mod models;

pub use analysis::*;
pub use graph::*;
pub use models::*;
