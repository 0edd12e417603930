//! `Mailer` into a folder: each message an RFC 5322 `.eml` file that any mail client opens.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;

use crate::domain::email::EmailAddress;
use crate::ports::Clock;
use crate::ports::mailer::{Email, MailError, Mailer, render};

pub struct OutboxMailer {
    folder: PathBuf,
    from: EmailAddress,
    clock: Arc<dyn Clock>,
}

impl OutboxMailer {
    pub fn open(
        folder: &Path,
        from: EmailAddress,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, MailError> {
        std::fs::create_dir_all(folder).map_err(MailError::backend)?;
        Ok(Self {
            folder: folder.to_path_buf(),
            from,
            clock,
        })
    }

    /// Every message in the outbox, oldest first, as raw RFC 5322 text.
    pub fn messages(&self) -> std::io::Result<Vec<String>> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&self.folder)?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "eml"))
            .collect();
        paths.sort();
        paths.into_iter().map(std::fs::read_to_string).collect()
    }
}

#[async_trait]
impl Mailer for OutboxMailer {
    async fn send(&self, email: &Email) -> Result<String, MailError> {
        let id = self.clock.new_id().to_string();
        let message_id = format!("{id}@leadsrefer.local");
        let raw = render(email, &self.from, &message_id, self.clock.now().as_second());
        let folder = self.folder.clone();
        let name = format!("{id}.eml");
        tokio::task::spawn_blocking(move || {
            let tmp = folder.join(format!(".{name}.tmp"));
            std::fs::write(&tmp, raw)?;
            std::fs::rename(&tmp, folder.join(name))
        })
        .await
        .map_err(MailError::backend)?
        .map_err(MailError::backend)?;
        Ok(message_id)
    }
}
