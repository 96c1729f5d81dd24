//! Market logic as a pure library: loading and validating OHLCV data,
//! indicators, strategies, the equity recursion and its metrics, sparse
//! signal files, regime classifiers and the weighted-vote ensemble.
//!
//! Nothing here knows about workflows, phases or the store; the phase
//! modes in [`crate::phases`] call into it. The conventions (docs/design.md §6) are
//! documented where they are implemented:
//!
//! - data rules and the `on_bad_rows` policy: [`csv_load`];
//! - daily vs intraday and periods per year: [`bars::Frequency`];
//! - positions and no look-ahead: [`strategy`];
//! - the equity recursion and the first bar: [`equity`];
//! - metric definitions and edge cases: [`metrics`], [`trades`];
//! - signal files: [`signals`]; regimes: [`classifier`], [`regime`];
//! - several symbols as one equal-weight portfolio: [`portfolio`];
//! - weighted vote and weight search: [`ensemble`], [`weights`].

pub mod bars;
pub mod benchmark;
pub mod catalog;
pub mod classifier;
pub mod csv_load;
pub mod ensemble;
pub mod equity;
pub mod indicators;
pub mod metrics;
pub mod overfitting;
pub mod performance;
pub mod portfolio;
pub mod regime;
pub mod signals;
pub mod strategy;
pub mod timestamp;
pub mod trades;
pub mod weights;

pub use bars::{Bars, Frequency};
pub use csv_load::{BadRowPolicy, Loaded, load_csv};
pub use metrics::{Metrics, Objective};
pub use strategy::Strategy;
