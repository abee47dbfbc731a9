//! Signing in batches: many forms' rows written by one transaction, with one commit (group
//! commit). The per-uploader form window stays exact: each window row is locked, its forms are
//! decided one after another in arrival order exactly as [`insert_signed_within_limit`] decides
//! them one at a time, and the rows are written together.
//!
//! Why: one signing alone is one statement and one commit (see [`insert_signed_within_limit`]),
//! and under load the database's per-commit work was the limit (signing ran at about a third of
//! pgbench's one-row insert rate). In a batch of `n`, the database does a handful of statements
//! and one commit for all `n`.
//!
//! [`insert_signed_within_limit`]: super::photos::insert_signed_within_limit

use std::collections::BTreeMap;

use super::photos::{FORM_WINDOW_MILLIS, SIGNED_COLUMNS, Signed, Window, sqlite_sign_one, window_reopens};
use super::{Db, DbError, DbRow as _, Ex, Tx};
use crate::domain::{Millis, Photo};

/// A form to record: its photo row, and how many forms its uploader's window may hold.
#[derive(Debug, Clone)]
pub(crate) struct Form {
    pub photo: Photo,
    pub limit: i64,
}

/// Record every form, or none: one answer per form, in order. Forms of one uploader are decided
/// in the order given, as if signed one after another. An error means nothing was written.
pub(crate) async fn insert_signed_batch(db: &Db, forms: &[Form]) -> Result<Vec<Signed>, DbError> {
    // Two batches on different processes may lock the same windows in another order; Postgres
    // then aborts one of them after its deadlock timeout, and that one simply runs again.
    let mut attempts = 0;
    loop {
        attempts += 1;
        match in_one_transaction(db, forms).await {
            Err(DbError::Sqlx(sqlx::Error::Database(e))) if attempts < 3 && e.code().as_deref() == Some("40P01") => {
                tracing::debug!("a batch of forms met a deadlock; running it again");
            }
            decided => return decided,
        }
    }
}

async fn in_one_transaction(db: &Db, forms: &[Form]) -> Result<Vec<Signed>, DbError> {
    let mut tx = db.begin().await?;
    let decided = match &mut tx {
        Tx::Postgres(t) => postgres(t, forms).await?,
        Tx::Sqlite(t) => {
            // SQLite has one writer at a time, so deciding form after form inside the one
            // transaction is already exact; the batch saves the commits.
            let mut decided = Vec::with_capacity(forms.len());
            for form in forms {
                let window = Window::of(&form.photo, form.limit);
                decided.push(if sqlite_sign_one(t, &form.photo, &window).await? {
                    Signed::Recorded
                } else {
                    Signed::Limited { until: window_reopens(Ex::SqliteConn(t), &form.photo, &window).await? }
                });
            }
            decided
        }
    };
    tx.commit().await?;
    Ok(decided)
}

/// A window row as locked: when it opened and how many forms it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct WindowRow {
    opened_at: Millis,
    forms: i64,
}

/// Postgres: make sure every window row exists, lock them all in key order (so two batches
/// cannot each hold a row the other waits for, unless a row is new), decide in memory, then
/// write the windows and the photos in one statement. Four round trips for the whole batch.
async fn postgres(t: &mut sqlx::PgConnection, forms: &[Form]) -> Result<Vec<Signed>, DbError> {
    let keys: Vec<(String, &'static str)> = {
        let mut keys: Vec<_> =
            forms.iter().map(|f| (f.photo.uploader.as_str().to_owned(), Window::of(&f.photo, f.limit).style)).collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    };
    let uploaders: Vec<&str> = keys.iter().map(|(u, _)| u.as_str()).collect();
    let styles: Vec<&str> = keys.iter().map(|(_, s)| *s).collect();
    // A missing window is created closed (opened at 0), which the first form then opens.
    sqlx::query(
        "insert into shoebox_form_windows (uploader_id, style, opened_at, forms) \
         select u, s, 0, 0 from unnest($1::text[], $2::text[]) as k(u, s) order by u, s \
         on conflict (uploader_id, style) do nothing",
    )
    .bind(&uploaders)
    .bind(&styles)
    .execute(&mut *t)
    .await?;
    let rows = sqlx::query(
        "select w.uploader_id, w.style, w.opened_at, w.forms from shoebox_form_windows w \
         join unnest($1::text[], $2::text[]) as k(u, s) on w.uploader_id = k.u and w.style = k.s \
         order by w.uploader_id, w.style for update of w",
    )
    .bind(&uploaders)
    .bind(&styles)
    .fetch_all(&mut *t)
    .await?;
    let mut windows = BTreeMap::new();
    for row in &rows {
        let key: (String, String) = (row.col("uploader_id")?, row.col("style")?);
        windows.insert(key, WindowRow { opened_at: row.col("opened_at")?, forms: row.col("forms")? });
    }
    let before = windows.clone();
    let decided = decide(forms, &mut windows)?;

    let changed: Vec<(&(String, String), &WindowRow)> =
        windows.iter().filter(|(k, w)| before.get(*k) != Some(*w)).collect();
    let recorded: Vec<&Photo> =
        forms.iter().zip(&decided).filter(|(_, d)| **d == Signed::Recorded).map(|(f, _)| &f.photo).collect();
    if recorded.is_empty() {
        return Ok(decided);
    }
    let p = |f: fn(&Photo) -> String| recorded.iter().map(|p| f(p)).collect::<Vec<_>>();
    let sql = format!(
        "with windows as (update shoebox_form_windows as w set opened_at = k.opened_at, forms = k.forms \
             from unnest($1::text[], $2::text[], $3::int8[], $4::int8[]) as k(u, s, opened_at, forms) \
             where w.uploader_id = k.u and w.style = k.s) \
         insert into shoebox_photos ({SIGNED_COLUMNS}) \
         select photo_id, kind, bucket, uploader_id, 'signed', incoming_key, declared_type, max_bytes, filename, \
             form_expires_at, created_at \
         from unnest($5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::int8[], \
             $12::text[], $13::int8[], $14::int8[]) \
             as r(photo_id, kind, bucket, uploader_id, incoming_key, declared_type, max_bytes, filename, \
             form_expires_at, created_at)"
    );
    sqlx::query(&sql)
        .bind(changed.iter().map(|((u, _), _)| u.as_str()).collect::<Vec<_>>())
        .bind(changed.iter().map(|((_, s), _)| s.as_str()).collect::<Vec<_>>())
        .bind(changed.iter().map(|(_, w)| w.opened_at).collect::<Vec<_>>())
        .bind(changed.iter().map(|(_, w)| w.forms).collect::<Vec<_>>())
        .bind(p(|p| p.id.to_string()))
        .bind(p(|p| p.kind.clone()))
        .bind(p(|p| p.bucket.clone()))
        .bind(p(|p| p.uploader.as_str().to_owned()))
        .bind(p(|p| p.incoming_key.clone()))
        .bind(recorded.iter().map(|p| p.declared_type.map(|t| t.mime().to_owned())).collect::<Vec<_>>())
        .bind(recorded.iter().map(|p| p.max_bytes).collect::<Vec<_>>())
        .bind(recorded.iter().map(|p| p.filename.clone()).collect::<Vec<_>>())
        .bind(recorded.iter().map(|p| p.form_expires_at).collect::<Vec<_>>())
        .bind(recorded.iter().map(|p| p.created_at).collect::<Vec<_>>())
        .execute(&mut *t)
        .await?;
    Ok(decided)
}

/// Decide each form against its window, in order, as the one-row upsert would: a window opened
/// a minute or more before the form is over and the form opens the next one; an open window
/// takes the form while it holds fewer than the limit.
fn decide(forms: &[Form], windows: &mut BTreeMap<(String, String), WindowRow>) -> Result<Vec<Signed>, DbError> {
    forms
        .iter()
        .map(|f| {
            let window = Window::of(&f.photo, f.limit);
            let key = (f.photo.uploader.as_str().to_owned(), window.style.to_owned());
            let w = windows
                .get_mut(&key)
                .ok_or_else(|| DbError::Corrupt(format!("no form window for {key:?} after creating it")))?;
            Ok(if w.opened_at <= window.closed_before(&f.photo) {
                *w = WindowRow { opened_at: f.photo.created_at, forms: 1 };
                Signed::Recorded
            } else if w.forms < f.limit {
                w.forms += 1;
                Signed::Recorded
            } else {
                Signed::Limited { until: w.opened_at + FORM_WINDOW_MILLIS }
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{PhotoId, PhotoState, UserId};

    fn form(user: &str, at: Millis, limit: i64) -> Form {
        let photo = Photo {
            id: PhotoId::new(),
            kind: "avatar".into(),
            bucket: "public".into(),
            uploader: UserId::new(user).expect("id"),
            state: PhotoState::Signed,
            incoming_key: "incoming/x".into(),
            object_key: None,
            declared_type: Some(crate::imaging::ImageType::Jpeg),
            image_type: None,
            max_bytes: 10,
            byte_size: None,
            width: None,
            height: None,
            filename: None,
            form_expires_at: at + 1000,
            created_at: at,
            verified_at: None,
            attached_at: None,
            keep_until: None,
            deleted_at: None,
            deleted_reason: None,
            placeholder: None,
        };
        Form { photo, limit }
    }

    fn closed() -> WindowRow {
        WindowRow { opened_at: 0, forms: 0 }
    }

    #[test]
    fn a_batch_decides_each_uploader_s_forms_in_order_up_to_the_limit() {
        let t = 1_000_000;
        let forms: Vec<Form> = (0..5).map(|i| form("ann", t + i, 3)).chain([form("bob", t, 3)]).collect();
        let mut windows = BTreeMap::from([
            (("ann".to_owned(), "script".to_owned()), closed()),
            (("bob".to_owned(), "script".to_owned()), WindowRow { opened_at: t - 10, forms: 3 }),
        ]);
        let decided = decide(&forms, &mut windows).expect("decided");
        let limited = Signed::Limited { until: t + FORM_WINDOW_MILLIS };
        assert_eq!(decided[..3], [Signed::Recorded; 3]);
        assert_eq!(decided[3..5], [limited, limited], "the window opened with the first form");
        assert_eq!(decided[5], Signed::Limited { until: t - 10 + FORM_WINDOW_MILLIS }, "bob's is full");
        assert_eq!(windows[&("ann".to_owned(), "script".to_owned())], WindowRow { opened_at: t, forms: 3 });
    }

    #[test]
    fn a_form_a_minute_after_its_window_opened_opens_the_next() {
        let t = 1_000_000;
        let mut windows =
            BTreeMap::from([(("ann".to_owned(), "script".to_owned()), WindowRow { opened_at: t, forms: 2 })]);
        let forms = [form("ann", t + 59_999, 2), form("ann", t + FORM_WINDOW_MILLIS, 2), form("ann", t + 60_001, 2)];
        let decided = decide(&forms, &mut windows).expect("decided");
        assert_eq!(decided, [Signed::Limited { until: t + 60_000 }, Signed::Recorded, Signed::Recorded]);
        let w = windows[&("ann".to_owned(), "script".to_owned())];
        assert_eq!(w, WindowRow { opened_at: t + 60_000, forms: 2 });
    }
}
