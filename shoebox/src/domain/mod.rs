//! Validated types and lifecycle rules. Pure: no I/O, no framework types.

pub(crate) mod bucket;
pub(crate) mod clock;
pub(crate) mod ids;
pub(crate) mod kind;
pub(crate) mod photo;
pub(crate) mod quota;
pub(crate) mod text;

pub use bucket::BucketAccess;
pub use clock::{Clock, ManualClock, SystemClock};
pub use ids::{InvalidUserId, PhotoId, UserId, random_token};
pub use kind::{
    ConfiguredKind, DEFAULT_MAX_BYTES, DEFAULT_TYPES, ImageLimits, KeepContext, KeepRules, Kind, KindError, Kinds,
    PrivateDelivery, RELEASED_REASON, VariantSpec,
};
pub use photo::{Photo, PhotoState};
pub use quota::Usage;

/// Stands in for a secret in hand-written `Debug` output: tokens and hashes never reach a log.
pub(crate) struct Redacted;

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Milliseconds since the Unix epoch: how every time is stored, so that the same SQL works on
/// Postgres and SQLite without timestamp types that differ between the two.
pub type Millis = i64;

/// The current time in [`Millis`], by the system's clock.
pub fn now_millis() -> Millis {
    to_millis(time::OffsetDateTime::now_utc())
}

/// A time as [`Millis`] (saturating far outside the years anyone uploads photos in).
pub fn to_millis(t: time::OffsetDateTime) -> Millis {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(if t.year() < 1970 { i64::MIN } else { i64::MAX })
}

/// Turn [`Millis`] back into a time for display and signing.
pub fn from_millis(ms: Millis) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

/// A time as people read it in a page: `2026-11-28 10:05 UTC`.
pub(crate) fn display_time(ms: Millis) -> String {
    from_millis(ms)
        .format(time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC"))
        .unwrap_or_default()
}
