//! Where messages go: the [`Transport`] trait and its implementations, one
//! file each (SMTP through a relay, .eml files, the log).

mod file;
mod log;
mod smtp;

pub use file::FileTransport;
pub use log::LogTransport;
pub use smtp::SmtpTransport;

use async_trait::async_trait;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Try again later (a 4xx reply).
    #[error("transient: {0}")]
    Transient(String),
    /// Do not retry (5xx): the server's reply is kept.
    #[error("permanent: {0}")]
    Permanent(String),
    /// The relay itself did not answer (refused the connection, timed
    /// out): try again later, and stop trying the others for now.
    #[error("relay unreachable: {0}")]
    Unreachable(String),
}

#[async_trait]
pub trait Transport: Send + Sync {
    async fn send(&self, message: &lettre::Message) -> Result<(), SendError>;
}
