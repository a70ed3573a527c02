//! Reminders and escalations: which notifications an evaluation calls for
//! (`plan`: stages, recipients, the items' words), the messages that carry
//! them (`message`: templates, one message per recipient), delivery through
//! the notification log (`deliver`: when they may go, recording before
//! sending, retries), and the transports, one file each (`transport`).
//! Planning is pure; delivery records every notification in the log before
//! sending, so a crash never loses one.

mod deliver;
mod message;
mod plan;
mod transport;

pub use deliver::*;
pub use message::*;
pub use plan::*;
pub use transport::*;
