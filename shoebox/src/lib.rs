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
//! Each uses only those above it in this list. Imaging is a pure engine that knows nothing of
//! the rest; the domain (pure too) names image types by imaging's words; the database and
//! storage sit beside each other on the domain; the service, the photo operations and the jobs
//! use those; the doctor reads storage; HTTP is on top, and nothing below it knows axum (the
//! embedded S3 endpoint, an HTTP server by nature, is the exception, and serves itself).
//! `rustfmt.toml` keeps this order.
//!
//! | Module | What it holds | Public |
//! |---|---|---|
//! | `fault` | whose fault an error is ([`Fault`]) | re-exported |
//! | [`telemetry`] | the metrics Shoebox records (through the `metrics` facade) and their labels | yes |
//! | [`imaging`] | decoding with limits, orientation, resizing, encoding: bytes in, bytes out | yes: usable on its own |
//! | `domain` | ids, kinds, buckets, photo states, the clock, lifecycle rules; pure | re-exported |
//! | `db` | the host's pool ([`Db`]), Shoebox's own migrations, one file of queries per table | [`Db`] only |
//! | `storage` | the S3 client wrapper, S3's answers in plain words, the POST-policy signer, the embedded endpoint | settings and errors; [`embedded`], [`post_policy`] |
//! | `app` | the assembled service, [`Shoebox`], and its builder | re-exported |
//! | [`health`] | each dependency, checked, for `/healthz` and the doctor | yes |
//! | `photos` | who may see a photo, attach, release, delete, tombstone | operations on [`Shoebox`] |
//! | `uploads` | sign a form, verify and promote an upload | operations on [`Shoebox`] |
//! | `variants` | made once: at completion, on first request, or by resize-all | operations on [`Shoebox`] |
//! | [`jobs`] | clean-up, resize-all, reconcile, each with a summary | yes |
//! | [`doctor`] | each bucket's needed configuration, and checks of a live setup | yes |
//! | [`http`] | routers a host nests, [`http::Host`], extractors, layers, error mapping | yes |
//!
//! Internals (the query modules, the embedded endpoint's innards, the S3 wrapper) are private:
//! everything a host needs is above, and the reference app in this repository uses nothing
//! else (it is a separate crate, so it cannot).

#![warn(missing_docs)]

mod fault;
pub mod telemetry;
pub mod imaging;
mod domain;
mod db;
mod storage;
mod app;
pub mod health;
mod photos;
mod uploads;
mod variants;
pub mod jobs;
pub mod doctor;
pub mod http;

pub use app::EmbeddedS3Options;
pub use app::{BuildError, Limits, Shoebox, ShoeboxBuilder};
pub use db::{Backend, Db, DbError, MIGRATIONS_TABLE};
pub use domain::text::human_bytes;
pub use domain::{
    BucketAccess, Clock, ConfiguredKind, DEFAULT_MAX_BYTES, DEFAULT_TYPES, ImageLimits, InvalidUserId, KeepContext,
    KeepRules, Kind, KindError, Kinds, ManualClock, Millis, Photo, PhotoId, PhotoState, PrivateDelivery,
    RELEASED_REASON, SystemClock, Usage, UserId, VariantSpec, from_millis, now_millis, to_millis,
};
pub use fault::Fault;
pub use imaging::ImageType;
pub use photos::{Actor, DELETED_BY_APP, DELETED_BY_UPLOADER, Location, PhotoError, PhotoView, Viewable};
pub use storage::{BucketSettings, S3Error, S3Failure, SigningCredentials, Storage, StorageError, UploadForm};

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
