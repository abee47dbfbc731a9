//! Shoebox: photos that users upload, for Axum apps. The browser sends the bytes straight to S3
//! through a signed form; Shoebox checks them for real, keeps one row per photo from the signed
//! form to its deletion, makes its smaller variants, serves private photos only to who may see
//! them, and deletes what nobody needs any more.
//!
//! A host app adopts it with its own users, pool and routes:
//!
//! 1. Build a [`Shoebox`] from the host's own `sqlx` pool, its [buckets](BucketSettings) and its
//!    [kinds](Kind) (Rust types with async hooks that may read the host's own tables), and run
//!    [`Shoebox::migrate`]: its tables are all `shoebox_…`, with their own migration history.
//! 2. Implement [`http::Host`] on the host's state: how to reach the service, and who is
//!    signed in by the host's own login.
//! 3. Nest [`http::router`] (or only [`http::api`] and [`http::photos`]) at the service's base
//!    path, and add [`http::layers`] as wanted.
//! 4. Call the operations from the host's own handlers ([`Shoebox::attach`],
//!    [`Shoebox::release`], [`Shoebox::variant_urls`], ...) and the jobs from its scheduler
//!    ([`Shoebox::clean_up_never_used`], [`Shoebox::clean_up_no_longer_needed`],
//!    [`Shoebox::resize_all`]).
//!
//! `examples/steve.rs` in the repository is such a host, and README's "Embedding Shoebox"
//! walks through it.
//!
//! # The modules, bottom to top
//!
//! Each uses only those above it in this list. The domain knows nothing of I/O; the database,
//! storage and imaging sit beside each other on it; the service, the photo operations and the
//! jobs use those; HTTP is on top, and nothing below it knows axum (the embedded S3 endpoint,
//! an HTTP server by nature, is the exception). `rustfmt.toml` keeps this order.

#![warn(missing_docs)]

/// Whose fault an error is.
mod fault;
/// Validated types (ids, kinds, buckets, photo states), the clock and lifecycle rules. Pure.
mod domain;
/// Decoding with limits, orientation, resizing and encoding: bytes in, bytes out. Public: the
/// engine is usable on its own (`shoebox resize`).
pub mod imaging;
/// The pool (the host's), Shoebox's own migrations, and one file of queries per table.
mod db;
/// Buckets: the S3 client wrapper, the POST-policy signer, the embedded endpoint.
mod storage;
/// The assembled service and its builder.
mod app;
/// The health report: each dependency, its state and how long it took.
pub mod health;
/// Photos that exist: who may see one, attach, release, delete, tombstone.
mod photos;
/// The upload path: sign a form, then verify and promote the upload.
mod uploads;
/// Variants (thumb, display, ...): made once, on completion, on first request or by resize-all.
mod variants;
/// Jobs: clean-up, resize-all, reconcile, each returning a summary.
pub mod jobs;
/// The S3 doctor: each bucket's needed configuration, and checks of a live setup.
pub mod doctor;
/// Routers a host nests, the identity trait, extractors, layers and error mapping.
pub mod http;

#[cfg(feature = "embedded-s3")]
pub use app::EmbeddedS3Options;
pub use app::{BuildError, Limits, Shoebox, ShoeboxBuilder};
pub use db::{Backend, Db, DbError, MIGRATIONS_TABLE};
pub use domain::text::human_bytes;
pub use domain::{
    BucketAccess, Clock, ConfiguredKind, DEFAULT_MAX_BYTES, DEFAULT_TYPES, ImageLimits, InvalidUserId, KeepContext,
    KeepRules, Kind, KindError, Kinds, ManualClock, Millis, Photo, PhotoId, PhotoState, PrivateDelivery,
    RELEASED_REASON, SystemClock, UserId, VariantSpec, from_millis, now_millis, to_millis,
};
pub use fault::Fault;
pub use imaging::ImageType;
pub use photos::{Actor, DELETED_BY_APP, DELETED_BY_UPLOADER, Location, PhotoError, PhotoView, Viewable};
pub use storage::{BucketSettings, SigningCredentials, Storage, StorageError, UploadForm};

/// The S3 presigned-POST signer (SigV4 policy: exact key, content-length range, content type),
/// with known-answer tests against AWS's published example: what every upload form is made
/// with, for hosts and tools that sign forms of their own.
pub mod post_policy {
    pub use crate::storage::post_policy::{PostPolicyRequest, SignedPostForm, sign_post_policy, signature_for};
}

/// The in-process S3-compatible endpoint (s3s with its file-system backend): what `cargo run`,
/// the example and the tests use instead of AWS. [`ShoeboxBuilder::embedded_s3`] starts one for
/// a service; [`embedded::start`] starts one alone (for tools that have no database).
#[cfg(feature = "embedded-s3")]
pub mod embedded {
    pub use crate::storage::embedded::{EmbeddedS3, FORM_ALLOWANCE, start};
}
pub use uploads::{FormStyle, Refusal, SignRequest, SignedUpload, UploadError};
pub use variants::VariantError;

/// The attribute a [`Kind`] implementation needs for its async hooks (re-exported so a host
/// needs no dependency of its own).
pub use async_trait::async_trait;
