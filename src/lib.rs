//! cpwatch: watches the timescales of the child protection conference process.
//!
//! Data flows one way: `store` loads a [`case::CaseState`], `evaluate` turns it
//! (with `rules` and `calendar`) into obligations and findings, and the
//! consumers (`report`, `explain`, `cli`) only read those.
#![deny(clippy::unwrap_used)]

pub mod bench;
pub mod calendar;
pub mod case;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod engine;
pub mod evaluate;
pub mod explain;
pub mod export;
pub mod incremental;
pub mod metrics;
pub mod notify;
pub mod report;
pub mod rules;
pub mod store;
