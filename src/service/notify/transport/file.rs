//! Each message as an .eml file: the demo's outbox, and a relay-less test.

use async_trait::async_trait;

use super::{SendError, Transport};

/// Writes each message as an .eml file named by its Message-ID.
pub struct FileTransport {
    pub dir: std::path::PathBuf,
}

#[async_trait]
impl Transport for FileTransport {
    async fn send(&self, message: &lettre::Message) -> Result<(), SendError> {
        let id = message
            .headers()
            .get_raw("Message-ID")
            .unwrap_or("<unknown>")
            .trim_matches(['<', '>'])
            .replace(['/', '\\'], "_");
        let path = self.dir.join(format!("{id}.eml"));
        let tmp = self.dir.join(format!(".{id}.eml.tmp"));
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| SendError::Transient(format!("{}: {e}", self.dir.display())))?;
        std::fs::write(&tmp, message.formatted())
            .and_then(|_| std::fs::rename(&tmp, &path))
            .map_err(|e| SendError::Transient(format!("{}: {e}", path.display())))
    }
}
