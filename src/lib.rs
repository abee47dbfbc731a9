//! Shoebox: photos that users upload, from the browser straight to S3, tracked in a database
//! from the signed form to deletion.
//!
//! The modules, bottom to top: each uses only those above it in this list. The domain knows
//! nothing of I/O; the database, storage and imaging sit beside each other on it; the photo
//! operations use those three; HTTP and the command line are on top, and nothing below `http`
//! knows axum (the embedded S3 endpoint, an HTTP server by nature, is the exception).
//! (`rustfmt.toml` keeps this order: `reorder_modules = false`.)

/// Validated types (ids, kinds, buckets, photo states), lifecycle rules and wording. Pure.
pub mod domain;
/// Decoding with limits, orientation, resizing and encoding: bytes in, bytes out.
pub mod imaging;
/// The pool, migrations and one file of queries per table (Postgres and SQLite).
pub mod db;
/// Buckets: the S3 client wrapper, the POST-policy signer, the embedded endpoint.
pub mod storage;
/// Settings from the environment and an optional TOML file; secrets redacted.
pub mod config;
/// The assembled service (database, buckets, kinds, limits) that every operation takes.
pub mod app;
/// The health report: each dependency, its state and how long it took.
pub mod health;
/// Accounts and sessions.
pub mod accounts;
/// Photos that exist: ownership, who may see one, attach, tombstone.
pub mod photos;
/// The upload path: sign a form, then verify and promote the upload.
pub mod uploads;
/// Variants (thumb, display, ...): made once, on completion, on first request or by resize-all.
pub mod variants;
/// Jobs: plain async functions that return a summary (clean-up, resize-all).
pub mod jobs;
/// The S3 doctor: each bucket's needed configuration, and checks of a live setup.
pub mod doctor;
/// Routes, pages, the JSON API, the private proxy and error mapping.
pub mod http;
/// Building a ready-to-serve service from settings.
pub mod server;
/// The command line.
pub mod cli;
