//! The service behind `cpwatch run`: its configuration, the scheduled tick and
//! what it keeps between ticks, the metrics it serves, and reminders from
//! planning to delivery. It uses the [`crate::domain`] core and a
//! [`crate::store::Store`]; nothing in the core or the reports uses it.

pub mod clock;
pub mod config;
pub mod daemon;
pub mod incremental;
pub mod metrics;
pub mod notify;
