//! Whose fault an error is: what a host needs to know to answer it.

/// What kind of failure an error is, so a host can answer it without reading every variant:
/// the client's to fix (4xx), an outage of S3 or the database that will pass (503 with
/// `Retry-After`), or a bug to log and look at (500).
///
/// ```
/// use shoebox::{Fault, PhotoError};
/// assert_eq!(PhotoError::NotFound.fault(), Fault::Client);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// The request was wrong (unknown photo, not allowed, bad input): answer it, log nothing.
    Client,
    /// S3 or the database is unreachable, slow or overloaded: retry shortly.
    Outage,
    /// Something that should not happen: log it with its causes.
    Bug,
}
