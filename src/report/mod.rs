//! What people read: `check`'s table, JSON and CSV, `explain`'s timelines and
//! derivations, and the audit export. Each takes an evaluation from
//! [`crate::domain`] and writes; none reads the database itself.

pub mod check;
pub mod explain;
pub mod export;
