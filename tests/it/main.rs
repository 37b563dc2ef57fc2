//! The integration tests, one binary: each module drives the built `se-inject` (or the library)
//! on the committed fixtures or on inputs it generates, sharing the helpers of `common`.
//!
//! - `cli`: the residual fixtures end to end (reports, outputs, options, paths, the JSON schema);
//! - `families`, `family`: every CNN family fixture against its hand-derived table;
//! - `recognition`: the architectures beyond the paper's families;
//! - `hostile`, `limits`, `forged`: broken and hostile input, the bounds under attack, and names
//!   that would forge output;
//! - `roundtrip`, `streaming`: load and save, byte for byte and by reference;
//! - `fuzz`: mutated fixtures through the whole pipeline.

// The expected numbers keep their `·1` factors (h = 1) so the arithmetic reads as derived.
#![allow(clippy::identity_op)]

mod cli;
mod common;
mod families;
mod family;
mod forged;
mod fuzz;
mod hostile;
mod limits;
mod recognition;
mod roundtrip;
mod streaming;
