//! The narrow ports the domain talks to (DESIGN.md, "Architecture: ports and adapters").
//! Domain code names these traits, never AWS or SQLite.

pub mod blobs;
pub mod clock;
pub mod keys;
pub mod mailer;
pub mod table;
pub mod visits;

pub use blobs::{BlobError, BlobKey, Blobs};
pub use clock::{Clock, ManualClock, SystemClock};
pub use keys::{EncryptionContext, KeyError, Keys};
pub use mailer::{Email, MailError, Mailer};
pub use table::{Cond, Item, Key, Query, Table, TableError, Update, Write};
pub use visits::{Visit, Visits};
