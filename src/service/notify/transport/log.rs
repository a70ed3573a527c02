//! Each message logged (recipient, subject, size) rather than sent.

use async_trait::async_trait;

use super::{SendError, Transport};

/// Logs each message's recipient, subject and size instead of sending it.
pub struct LogTransport;

#[async_trait]
impl Transport for LogTransport {
    async fn send(&self, message: &lettre::Message) -> Result<(), SendError> {
        let h = message.headers();
        tracing::info!(
            to = h.get_raw("To").unwrap_or(""),
            subject = h.get_raw("Subject").unwrap_or(""),
            bytes = message.formatted().len(),
            "reminder (log transport)"
        );
        Ok(())
    }
}
