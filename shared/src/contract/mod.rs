//! Contract suites: one definition of correct per port, run against every adapter of it.
//! Each suite is a public async function taking the port as a trait object; the adapters'
//! own tests call it (the local adapters in `shared`'s tests, the AWS adapters against the
//! emulator). A failed expectation panics with what was expected.

pub mod blobs;
#[cfg(feature = "aws")]
pub mod emulator;
pub mod keys;
pub mod mailer;
pub mod table;
pub mod visits;
