//! cpwatch: watches the timescales of the child protection conference process.
//!
//! The crate is in layers, each a folder, and data flows one way through them:
//!
//! - [`domain`]: the pure core. The working-day calendar, the case state of the
//!   contract, the board rule files and the evaluation that turns case state
//!   and an instant into obligations and data-quality findings. No database,
//!   network or clock: everything it needs is passed in. A new rule kind or
//!   event goes here (`domain::rules` for its vocabulary,
//!   `domain::evaluate` for how it is judged).
//! - [`store`]: the case database behind one trait, with a PostgreSQL and an
//!   SQLite implementation, and the migrations. A new source of case data that
//!   is a database goes here; one that is a file to import sits beside it as a
//!   layer of its own, writing through the [`store::Store`] trait.
//! - [`import`]: files authorities already hold (the Children in Need
//!   census), read as streams into case state and written through the
//!   [`store::Store`] trait all or nothing.
//! - [`service`]: the daemon (`cpwatch run`): configuration, the scheduled
//!   tick, incremental state, metrics, and reminders from planning through
//!   messages to delivery, one file per transport.
//! - [`report`]: what people read from the command line: `check`, `explain`
//!   and the audit export, one function per export sheet.
//! - [`synthetic`]: the demo authority and the `seed` generator, with the
//!   code that writes them into a store.
//! - [`cli`]: the command line; `main.rs` only parses it and runs it.
#![deny(clippy::unwrap_used)]

pub mod cli;
pub mod domain;
pub mod import;
pub mod report;
pub mod service;
pub mod store;
pub mod synthetic;
