//! The pure core: case state, rules and an instant in; obligations and
//! findings out. Nothing here reads a database, the network or the clock
//! (rule and calendar files are read only when the caller asks to load them),
//! so all of it is tested without a database.

pub mod calendar;
pub mod case;
pub mod engine;
pub mod evaluate;
pub mod rules;
pub mod snooze;
pub mod sources;
