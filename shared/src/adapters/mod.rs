//! Adapters: the ports on embedded technology (SQLite, a folder, a key file, an outbox folder).

pub mod fs;
pub mod local_key;
pub mod outbox;
pub mod sqlite;
