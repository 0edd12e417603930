//! `Mailer` into a folder: each message an RFC 5322 `.eml` file that any mail client opens,
//! and beside it a `.txt` copy to read and copy links from (the `.eml`'s body is
//! quoted-printable: a long link in it is split across lines, and its `=` written `=3D`).

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
        let readable = format!(
            "To: {}\nSubject: {}\n\n{}\n",
            email.to.as_str(),
            email.subject,
            email.text.trim_end()
        );
        let folder = self.folder.clone();
        let path = tokio::task::spawn_blocking(move || {
            // Each file appears whole, under its name, or not at all.
            let write = |name: String, contents: &[u8]| {
                let tmp = folder.join(format!(".{name}.tmp"));
                std::fs::write(&tmp, contents)?;
                std::fs::rename(&tmp, folder.join(name))
            };
            write(format!("{id}.txt"), readable.as_bytes())?;
            write(format!("{id}.eml"), &raw)?;
            Ok::<_, std::io::Error>(folder.join(format!("{id}.txt")))
        })
        .await
        .map_err(MailError::backend)?
        .map_err(MailError::backend)?;
        // Where to read it; not whom it is for, nor what it says (a link may carry a token).
        tracing::info!(path = %path.display(), "a mail is in the outbox");
        Ok(message_id)
    }

    async fn forget(&self, to: &EmailAddress) -> Result<usize, MailError> {
        let folder = self.folder.clone();
        let to = to.as_str().to_string();
        tokio::task::spawn_blocking(move || {
            let mut forgotten = 0;
            for entry in std::fs::read_dir(&folder)? {
                let path = entry?.path();
                if path.extension().is_none_or(|ext| ext != "eml") {
                    continue;
                }
                let text = std::fs::read_to_string(&path)?;
                let headers = text.split("\r\n\r\n").next().unwrap_or_default();
                // The one recipient, as `render` writes it: `To: <address>`.
                let addressed = headers.lines().any(|line| {
                    line.strip_prefix("To:").is_some_and(|value| {
                        value
                            .trim()
                            .trim_start_matches('<')
                            .trim_end_matches('>')
                            .eq_ignore_ascii_case(&to)
                    })
                });
                if addressed {
                    std::fs::remove_file(path.with_extension("txt")).or_else(|e| {
                        if e.kind() == std::io::ErrorKind::NotFound {
                            Ok(())
                        } else {
                            Err(e)
                        }
                    })?;
                    std::fs::remove_file(&path)?;
                    forgotten += 1;
                }
            }
            Ok::<_, std::io::Error>(forgotten)
        })
        .await
        .map_err(MailError::backend)?
        .map_err(MailError::backend)
    }
}
