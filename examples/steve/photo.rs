//! The seed's `StevePhoto`: photos of Steve, kept while they are under ten years old.
//!
//! The per-photo application data, `how_old_is_steve_in_this_photo`, lives where the host wants
//! it: here, the host's own table `steve_photo_ages`, keyed by the photo's id. The kind holds the
//! host's pool and reads it in its hooks.

use shoebox::{KeepContext, Kind, Millis, Photo, PhotoId, PhotoState, UserId, from_millis};
use sqlx::SqlitePool;
use time::{Date, Month, OffsetDateTime, Time};

/// Steve's birthday, as the seed's example has it.
pub fn birthday() -> Date {
    Date::from_calendar_date(1990, Month::May, 14).unwrap_or(Date::MIN)
}

/// How long a photo of Steve is kept: until it is ten years old.
pub const KEEP_YEARS: i64 = 10;
/// The seed's fudge factor: ten days more than the years say.
pub const FUDGE_DAYS: i64 = 10;

const DAY_MS: Millis = 24 * 60 * 60 * 1000;

/// Only Steve may see photos of Steve.
pub const STEVE: &str = "steve";

/// The kind. It keeps the host's pool, to read each photo's age.
#[derive(Debug, Clone)]
pub struct StevePhoto {
    pub db: SqlitePool,
}

impl StevePhoto {
    /// The host's own table for this kind's data, created if missing.
    pub async fn create_table(db: &SqlitePool) -> sqlx::Result<()> {
        sqlx::query(
            "create table if not exists steve_photo_ages (\
             photo_id text primary key, how_old_is_steve_in_this_photo integer not null)",
        )
        .execute(db)
        .await
        .map(|_| ())
    }

    /// Record how old Steve is in a photo (the host's own handler calls this before attaching).
    pub async fn set_age(db: &SqlitePool, photo: PhotoId, years: i64) -> sqlx::Result<()> {
        sqlx::query(
            "insert into steve_photo_ages (photo_id, how_old_is_steve_in_this_photo) values ($1, $2) \
             on conflict (photo_id) do update set how_old_is_steve_in_this_photo = excluded.how_old_is_steve_in_this_photo",
        )
        .bind(photo.to_string())
        .bind(years)
        .execute(db)
        .await
        .map(|_| ())
    }

    /// How old Steve is in this photo, if the host recorded it.
    pub async fn how_old_is_steve_in_this_photo(&self, photo: PhotoId) -> Option<i64> {
        let found =
            sqlx::query_scalar("select how_old_is_steve_in_this_photo from steve_photo_ages where photo_id = $1")
                .bind(photo.to_string())
                .fetch_optional(&self.db)
                .await;
        match found {
            Ok(age) => age,
            Err(e) => {
                // No answer keeps the photo: deleting is the one mistake that cannot be undone.
                tracing::warn!(photo = %photo, error = %e, "could not read Steve's age; keeping the photo");
                None
            }
        }
    }
}

/// When the photo was taken: Steve's birthday, `age` years on.
pub fn taken(age: i64) -> Option<OffsetDateTime> {
    let b = birthday();
    let year = b.year().checked_add(i32::try_from(age).ok()?)?;
    let day = Date::from_calendar_date(year, b.month(), b.day()).ok()?;
    Some(day.with_time(Time::MIDNIGHT).assume_utc())
}

/// The photo's age in whole years at `now` (the seed's `age_years`).
pub fn photo_age_years(taken: OffsetDateTime, now: Millis) -> i64 {
    let now = from_millis(now);
    let mut years = i64::from(now.year() - taken.year());
    if (now.month(), now.day()) < (taken.month(), taken.day()) {
        years -= 1;
    }
    years
}

#[shoebox::async_trait]
impl Kind for StevePhoto {
    fn name(&self) -> &str {
        "steve"
    }

    fn label(&self) -> &str {
        "Photo of Steve"
    }

    fn bucket(&self) -> &str {
        "private"
    }

    /// "Only Steve can see this photo."
    async fn may_view(&self, viewer: &UserId, _photo: &Photo) -> bool {
        viewer.as_str() == STEVE
    }

    /// The seed's `calc_and_set_keep`: the years the photo has left under ten, plus ten days.
    async fn keep_until(&self, photo: &Photo, cx: &KeepContext) -> Option<Millis> {
        let taken = taken(self.how_old_is_steve_in_this_photo(photo.id).await?)?;
        let left = KEEP_YEARS - photo_age_years(taken, cx.now);
        (left > 0).then(|| cx.now + (left * 365 + FUDGE_DAYS) * DAY_MS)
    }

    /// The seed's `explain_why_can_delete`.
    async fn reason_to_delete(&self, photo: &Photo, cx: &KeepContext) -> Option<String> {
        let age = self.how_old_is_steve_in_this_photo(photo.id).await;
        if let Some(taken) = age.and_then(taken) {
            let years = photo_age_years(taken, cx.now);
            if years >= KEEP_YEARS {
                return Some(format!("this photo of Steve is {years} years old, and they are kept for {KEEP_YEARS}"));
            }
            return None;
        }
        (photo.state == PhotoState::Released).then(|| "released, and nobody said how old Steve is in it".to_owned())
    }
}
