//! admf: a declarative DAG build tool for trading research.
//!
//! The pipeline runs in stages, one module each:
//! load ([`workflow`]: YAML files → [`ir`]) → compile ([`graph`]: IR → DAG)
//! → plan ([`key`], [`plan`]) → dispatch ([`dispatch`] through an
//! [`executor`]) → store ([`store`]). Phase modes plug in through
//! [`phases::Phase`]; market logic lives in [`market`].

pub mod action;
pub mod atomic_file;
pub mod cli;
pub mod cluster;
pub mod commands;
pub mod commit;
pub mod decide;
pub mod dir_stat;
pub mod dispatch;
pub mod error;
pub mod events;
pub mod executor;
pub mod file_stat;
pub mod graph;
pub mod graph_cache;
pub mod interrupt;
pub mod ir;
pub mod key;
pub mod market;
pub mod node_trace;
pub mod output;
pub mod par;
pub mod paths;
pub mod phases;
pub mod plan;
pub mod prefetch;
pub mod preload;
pub mod progress;
pub mod reads;
pub mod remote;
pub mod render;
pub mod results;
pub mod run;
pub mod stat_cache;
pub mod status;
pub mod store;
pub mod trial_batch;
pub mod trigger;
pub mod uptodate;
pub mod workflow;
pub mod workspace;
