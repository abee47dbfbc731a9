//! Shoebox: photos that users upload, from the browser straight to S3, tracked in a database
//! from the signed form to deletion.
//!
//! The modules, bottom to top:

/// Accounts and sessions.
pub mod accounts;
/// The assembled service shared by HTTP, CLI and jobs.
pub mod app;
/// The command line.
pub mod cli;
/// Settings from the environment and an optional TOML file; secrets redacted.
pub mod config;
/// The pool, migrations and one file of queries per table (Postgres and SQLite).
pub mod db;
/// The S3 doctor: each bucket's needed configuration, and checks of a live setup.
pub mod doctor;
/// Validated types (ids, kinds, photo states) and lifecycle rules. Pure.
pub mod domain;
/// Routes, pages, the JSON API, the private proxy and error mapping.
pub mod http;
/// Decoding with limits, orientation, resizing and encoding: bytes in, bytes out.
pub mod imaging;
/// Building a ready-to-serve service from settings.
pub mod server;
/// Buckets: the S3 client wrapper, the POST-policy signer, the embedded endpoint.
pub mod storage;
/// The upload lifecycle: sign, verify and promote, attach.
pub mod uploads;
/// Who may see a photo and where its bytes are.
pub mod viewing;
