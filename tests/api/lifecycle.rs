//! Lifecycle jobs and deletion, each a short story on both backends: clean-up's cut-off and
//! keep rules (the seed's own cases), the avatar rule, user deletion, races with attach,
//! failures and crashes that the next run recovers from.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use shoebox::jobs::clean_up::{self, Options, Summary};
use shoebox::{KeepContext, Kind, Millis, Photo, PhotoId, PhotoState, Shoebox, now_millis};

use crate::helpers::{Arg, S3State, Switch, TestApp, TestUser, photo};

const DAY: Millis = 24 * 60 * 60 * 1000;

fn jpeg() -> Vec<u8> {
    photo("orientation/Portrait_1.jpg")
}

async fn row(app: &TestApp, id: &str) -> Photo {
    let id: PhotoId = id.parse().expect("photo id");
    app.shoebox.photo(id).await.expect("query").expect("row")
}

/// Whether clean-up (or a deletion) holds the photo's row.
async fn is_claimed(app: &TestApp, id: &str) -> bool {
    let sql = "select count(*) from shoebox_photos where photo_id = $1 and claimed_by is not null";
    app.number(sql, &[Arg::S(id.to_owned())]).await == 1
}

/// Claim a photo's row as a clean-up runner called `token` would, until `until`.
async fn claim(app: &TestApp, id: &str, token: &str, until: Millis) -> bool {
    let sql =
        "update shoebox_photos set claimed_by = $1, claimed_until = $2 where photo_id = $3 and claimed_by is null";
    app.execute(sql, &[Arg::S(token.into()), Arg::I(until), Arg::S(id.to_owned())]).await == 1
}

async fn clean_up_as_of(shoebox: &Shoebox, as_of: Millis) -> Summary {
    clean_up::run(shoebox, &Options::new(as_of), &|_| {}).await.expect("clean-up runs")
}

/// Upload a photo and wait for the variants completion makes in the background: that work
/// holds the photo's row for moments, and Postgres's SKIP LOCKED rightly passes a held row over,
/// which would make clean-up's decisions depend on timing.
async fn uploaded(app: &TestApp, user: &TestUser, kind: &str) -> String {
    let id = user.upload(kind, jpeg(), "image/jpeg").await["id"].as_str().expect("id").to_owned();
    crate::variants::wait_for_variants(app, &id).await;
    id
}

async fn object_of(app: &TestApp, id: &str) -> (String, String) {
    let p = row(app, id).await;
    (p.bucket.clone(), p.object_key.expect("verified"))
}

both_backends!(
    an_upload_exactly_as_old_as_the_grace_period_goes_and_a_younger_one_stays,
    an_in_use_photo_is_deleted_only_when_its_kind_gives_a_reason,
    saving_a_new_profile_photo_releases_the_previous_one,
    the_uploader_deletes_a_photo_and_others_cannot,
    a_photo_claimed_by_clean_up_cannot_be_attached,
    an_s3_outage_loses_nothing_and_the_next_run_finishes,
    a_key_that_fails_inside_a_batch_keeps_only_its_photo,
    a_crash_between_deleting_objects_and_marking_rows_converges,
    two_clean_ups_racing_attaches_never_delete_an_attached_photo,
    clean_up_inside_serve_runs_in_one_process_at_a_time,
);

/// `SHOEBOX_CLEAN_UP_EVERY`: each round takes the job lock first, so of several dynos one runs
/// it; a lock whose holder died expires by itself.
async fn clean_up_inside_serve_runs_in_one_process_at_a_time(app: TestApp) {
    let ann = app.sign_up("ann@example.com").await;
    let old = uploaded(&app, &ann, "avatar").await;
    let (bucket, key) = object_of(&app, &old).await;
    // Abandoned two days ago.
    let backdate = "update shoebox_photos set created_at = created_at - $1 where photo_id = $2";
    app.execute(backdate, &[Arg::I(2 * DAY), Arg::S(old.clone())]).await;
    // dyno-2 is running clean-up: it holds the lock for a minute.
    let now = now_millis();
    let hold = "insert into shoebox_job_locks (name, holder, held_until) values ('clean-up', 'dyno-2', $1)";
    app.execute(hold, &[Arg::I(now + 60_000)]).await;
    let lease = Duration::from_secs(60);
    assert_eq!(app.shoebox.clean_up_if_free("web.1", lease).await.expect("runs"), None, "dyno-2 has it");
    assert!(app.object_exists(&bucket, &key).await, "nothing deleted while another holds the lock");

    // dyno-2 died: its lease runs out, and the next round here does the work.
    app.execute("update shoebox_job_locks set held_until = $1", &[Arg::I(now - 1)]).await;
    let summary = app.shoebox.clean_up_if_free("web.1", lease).await.expect("runs").expect("took the lock");
    assert_eq!(summary.deleted, 1);
    assert!(!app.object_exists(&bucket, &key).await, "the abandoned upload is gone");
    assert_eq!(app.number("select count(*) from shoebox_job_locks", &[]).await, 0, "released");
}

async fn an_upload_exactly_as_old_as_the_grace_period_goes_and_a_younger_one_stays(app: TestApp) {
    let ann = app.sign_up("ann@example.com").await;
    let old = uploaded(&app, &ann, "avatar").await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let young = uploaded(&app, &ann, "avatar").await;
    let (bucket, key) = object_of(&app, &old).await;
    let cut = row(&app, &old).await.created_at + DAY;

    let dry = clean_up::run(&app.shoebox, &Options { dry_run: true, ..Options::new(cut) }, &|_| {}).await.expect("dry");
    assert_eq!(dry.deleted, 1, "the dry run names the one photo: {dry:?}");
    assert!(app.object_exists(&bucket, &key).await, "a dry run deletes nothing");

    let s = clean_up_as_of(&app.shoebox, cut).await;
    assert_eq!((s.deleted, s.errors), (1, 0), "{s:?}");
    assert_eq!(s.by_reason.get("It was not saved within 24 hours."), Some(&1), "{s:?}");
    assert!(!app.object_exists(&bucket, &key).await, "its object is gone");
    let tomb = row(&app, &old).await;
    assert_eq!(tomb.state, PhotoState::Deleted);
    assert_eq!(tomb.deleted_reason.as_deref(), Some("It was not saved within 24 hours."));
    assert_eq!(row(&app, &young).await.state, PhotoState::Ready, "one millisecond younger: untouched");
    let (yb, yk) = object_of(&app, &young).await;
    assert!(app.object_exists(&yb, &yk).await);
    assert_eq!(ann.attach(&old, json!({})).await.status(), StatusCode::GONE);

    let again = clean_up_as_of(&app.shoebox, cut).await;
    assert_eq!(again.deleted, 0, "a second run finds nothing: {again:?}");
}

/// A kind as an embedding application writes it: deletes only photos it has a reason for, and
/// otherwise keeps them ten more years (the seed's `calc_and_set_keep`).
#[derive(Debug)]
struct SeedKind {
    inner: Arc<dyn Kind>,
    reasons: Vec<PhotoId>,
}

#[shoebox::async_trait]
impl Kind for SeedKind {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn label(&self) -> &str {
        self.inner.label()
    }
    fn bucket(&self) -> &str {
        self.inner.bucket()
    }
    fn accepts(&self) -> &[shoebox::imaging::ImageType] {
        self.inner.accepts()
    }
    fn max_bytes(&self) -> u64 {
        self.inner.max_bytes()
    }
    fn limits(&self) -> shoebox::ImageLimits {
        self.inner.limits()
    }
    async fn keep_until(&self, _photo: &Photo, cx: &KeepContext) -> Option<Millis> {
        Some(cx.now + 3650 * DAY)
    }
    async fn reason_to_delete(&self, photo: &Photo, _cx: &KeepContext) -> Option<String> {
        self.reasons.contains(&photo.id).then(|| "the application said so".to_owned())
    }
}

async fn an_in_use_photo_is_deleted_only_when_its_kind_gives_a_reason(app: TestApp) {
    let ann = app.sign_up("ann@example.com").await;
    let soon = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    let soon = soon.format(&time::format_description::well_known::Rfc3339).expect("format");
    let mut ids = Vec::new();
    for _ in 0..3 {
        let id = uploaded(&app, &ann, "id_document").await;
        assert_eq!(ann.attach(&id, json!({"keep_until": soon})).await.status(), StatusCode::OK);
        ids.push(id);
    }
    let forever = uploaded(&app, &ann, "id_document").await;
    assert_eq!(ann.attach(&forever, json!({})).await.status(), StatusCode::OK);
    let (with_reason, without, _) = (&ids[0], &ids[1], &ids[2]);

    let base = &app.shoebox;
    let seed = SeedKind {
        inner: base.kinds().get("id_document").expect("kind").clone(),
        reasons: vec![with_reason.parse().expect("id")],
    };
    let avatar = base.kinds().get("avatar").expect("kind").clone();
    let host = app.another_shoebox(&app.s3_endpoint).kind(seed).shared_kind(avatar).build().await.expect("host");

    let as_of = now_millis() + 2 * 60 * 60 * 1000;
    let s = clean_up_as_of(&host, as_of).await;
    assert_eq!(s.by_reason.get("the application said so"), Some(&1), "{s:?}");
    assert_eq!((s.deleted, s.kept_longer, s.errors), (1, 2, 0), "{s:?}");
    assert_eq!(row(&app, with_reason).await.deleted_reason.as_deref(), Some("the application said so"));
    let kept = row(&app, without).await;
    assert_eq!(kept.state, PhotoState::InUse);
    assert_eq!(kept.keep_until, Some(as_of + 3650 * DAY), "keep-until moved to the kind's new time");
    let never = row(&app, &forever).await;
    assert_eq!((never.state, never.keep_until), (PhotoState::InUse, None), "no keep-until: never deleted");
    let far = clean_up_as_of(&host, as_of + 100 * 365 * DAY).await;
    assert_eq!(row(&app, &forever).await.state, PhotoState::InUse, "{far:?}");
}

async fn saving_a_new_profile_photo_releases_the_previous_one(app: TestApp) {
    let ann = app.sign_up("ann@example.com").await;
    let first = uploaded(&app, &ann, "avatar").await;
    assert_eq!(ann.attach(&first, json!({})).await.status(), StatusCode::OK);
    let s = clean_up_as_of(&app.shoebox, now_millis()).await;
    assert_eq!(s.deleted, 0, "the only profile photo stays: {s:?}");
    let second = uploaded(&app, &ann, "avatar").await;
    assert_eq!(ann.attach(&second, json!({})).await.status(), StatusCode::OK);
    let (bucket, key) = object_of(&app, &first).await;

    let s = clean_up_as_of(&app.shoebox, now_millis()).await;
    assert_eq!(s.by_reason.get("replaced by a newer profile photo"), Some(&1), "{s:?}");
    assert!(!app.object_exists(&bucket, &key).await);
    assert_eq!(row(&app, &first).await.deleted_reason.as_deref(), Some("replaced by a newer profile photo"));
    assert_eq!(row(&app, &second).await.state, PhotoState::InUse);
}

async fn the_uploader_deletes_a_photo_and_others_cannot(app: TestApp) {
    let ann = app.sign_up("ann@example.com").await;
    let bob = app.sign_up_elsewhere("bob@example.com").await;
    let id = uploaded(&app, &ann, "id_document").await;
    let (bucket, key) = object_of(&app, &id).await;
    let path = format!("/api/photos/{id}");

    let res = bob.client.delete(bob.url(&path)).header("x-csrf-token", &bob.csrf).send().await.expect("delete");
    assert_eq!(res.status(), StatusCode::NOT_FOUND, "someone else's photo does not exist for them");
    let res = ann.client.delete(ann.url(&path)).send().await.expect("delete");
    assert_eq!(res.status(), StatusCode::FORBIDDEN, "no CSRF token, refused");
    let res = ann.client.delete(ann.url("/api/photos/not-an-id")).header("x-csrf-token", &ann.csrf).send().await;
    assert_eq!(res.expect("delete").status(), StatusCode::NOT_FOUND);
    assert!(app.object_exists(&bucket, &key).await);

    let res = ann.client.delete(ann.url(&path)).header("x-csrf-token", &ann.csrf).send().await.expect("delete");
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert!(!app.object_exists(&bucket, &key).await, "the objects go at once");
    assert_eq!(row(&app, &id).await.deleted_reason.as_deref(), Some("deleted by its uploader"));
    assert_eq!(ann.get(&path).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(ann.get(&format!("/photos/{id}/original")).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(ann.get(&format!("/photos/{id}")).await.status(), StatusCode::NOT_FOUND);

    // The page's button: a form post with the CSRF token, behind a confirming step.
    let other = uploaded(&app, &ann, "avatar").await;
    let page = ann.get(&format!("/photos/{other}")).await.text().await.expect("page");
    assert!(page.contains("<details id=\"delete\">") && page.contains(&format!("/photos/{other}/delete")));
    let form_path = ann.url(&format!("/photos/{other}/delete"));
    let forged = ann.client.post(&form_path).form(&[("csrf", "forged")]).send().await.expect("post");
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let bobs = bob.client.post(&form_path).form(&[("csrf", bob.csrf.as_str())]).send().await.expect("post");
    assert_eq!(bobs.status(), StatusCode::NOT_FOUND);
    let res = ann.client.post(&form_path).form(&[("csrf", ann.csrf.as_str())]).send().await.expect("post");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(row(&app, &other).await.state, PhotoState::Deleted);
}

async fn a_photo_claimed_by_clean_up_cannot_be_attached(app: TestApp) {
    let ann = app.sign_up("ann@example.com").await;
    let id = uploaded(&app, &ann, "avatar").await;
    // The grace period ended and a clean-up runner took the photo first, for a minute.
    assert!(claim(&app, &id, "runner-a", now_millis() + 60_000).await);
    // Attach loses, with 410.
    let res = ann.attach(&id, json!({})).await;
    assert_eq!(res.status(), StatusCode::GONE);
    let body: Value = res.json().await.expect("json");
    assert!(body["message"].as_str().is_some_and(|m| m.contains("being deleted")), "{body}");
    // A second runner does not take a claim that is still held.
    let s = clean_up_as_of(&app.shoebox, now_millis() + DAY).await;
    assert_eq!(s.deleted, 0, "{s:?}");
    assert_eq!(row(&app, &id).await.state, PhotoState::Ready);
    assert!(is_claimed(&app, &id).await);
}

async fn an_s3_outage_loses_nothing_and_the_next_run_finishes(app: TestApp) {
    let ann = app.sign_up("ann@example.com").await;
    let id = uploaded(&app, &ann, "avatar").await;
    let (bucket, key) = object_of(&app, &id).await;
    let cut = row(&app, &id).await.created_at + DAY;
    // A second Shoebox on the same database, whose S3 goes away and comes back.
    let s3 = Switch::start(app.s3_addr()).await;
    let job = TestApp::with_example_kinds(app.another_shoebox(&s3.url));
    let job = job.build().await.expect("job");
    s3.set(S3State::Down);
    let s = clean_up_as_of(&job, cut).await;
    assert_eq!(s.deleted, 0, "{s:?}");
    assert!(s.errors >= 1 && s.s3_requests >= 1, "{s:?}");
    let p = row(&app, &id).await;
    assert_eq!(p.state, PhotoState::Ready, "not tombstoned while its object may still exist");
    assert!(app.object_exists(&bucket, &key).await, "nothing was lost");
    assert!(is_claimed(&app, &id).await, "left doomed for the next run");
    assert_eq!(ann.attach(&id, json!({})).await.status(), StatusCode::GONE);

    // S3 is back: the next run (Heroku Scheduler's next day, here a moment later) finishes.
    s3.set(S3State::Up);
    tokio::time::sleep(Duration::from_millis(5)).await;
    let s = clean_up_as_of(&job, cut).await;
    assert_eq!((s.deleted, s.errors), (1, 0), "{s:?}");
    assert_eq!(row(&app, &id).await.state, PhotoState::Deleted);
    assert!(!app.object_exists(&bucket, &key).await, "its objects went first");
}

/// S3 answers `DeleteObjects` key by key. One key that cannot be deleted (here a folder the
/// embedded endpoint's disk holds at that key, where S3 would say AccessDenied) keeps only its
/// own photo for the next run; the rest of the batch is deleted and tombstoned.
async fn a_key_that_fails_inside_a_batch_keeps_only_its_photo(app: TestApp) {
    let ann = app.sign_up("ann@example.com").await;
    let bytes = jpeg();
    // Three abandoned pages: two uploads sent but never completed, and one form never used.
    let mut sent = Vec::new();
    for _ in 0..2 {
        let (id, url, fields) = ann.signed_form("avatar", bytes.len()).await;
        let res = crate::helpers::post_to_bucket(&url, &fields, bytes.clone(), "image/jpeg").await;
        assert!(res.status().is_success(), "{}", res.status());
        sent.push((id, crate::helpers::field(&fields, "key").to_owned()));
    }
    let (stuck, _, fields) = ann.signed_form("avatar", bytes.len()).await;
    let stuck_key = crate::helpers::field(&fields, "key").to_owned();
    let blocker = app.s3_path("shoebox-public", &stuck_key).join("blocker");
    std::fs::create_dir_all(blocker.parent().expect("parent")).expect("mkdir");
    std::fs::write(&blocker, b"x").expect("write");
    let cut = row(&app, &stuck).await.created_at + DAY;

    let s = clean_up_as_of(&app.shoebox, cut).await;
    assert_eq!((s.deleted, s.errors), (2, 1), "{s:?}");
    assert_eq!((s.delete_requests, s.s3_requests), (1, 3), "one DeleteObjects, one listing per bucket: {s:?}");
    assert!(s.error_messages.iter().any(|m| m.contains(&stuck_key)), "the error names the key: {s:?}");
    for (id, key) in &sent {
        assert_eq!(row(&app, id).await.state, PhotoState::Deleted);
        assert!(!app.object_exists("public", key).await);
    }
    let p = row(&app, &stuck).await;
    assert_eq!(p.state, PhotoState::Signed, "not tombstoned: its key may still be there");
    assert!(is_claimed(&app, &stuck).await, "kept for the next run");

    // Whatever blocked it is gone by the next run, which deletes it.
    std::fs::remove_dir_all(blocker.parent().expect("parent")).expect("rm");
    tokio::time::sleep(Duration::from_millis(5)).await;
    let s = clean_up_as_of(&app.shoebox, cut).await;
    assert_eq!((s.deleted, s.errors), (1, 0), "{s:?}");
    assert_eq!(row(&app, &stuck).await.state, PhotoState::Deleted);
}

async fn a_crash_between_deleting_objects_and_marking_rows_converges(app: TestApp) {
    let ann = app.sign_up("ann@example.com").await;
    let id = uploaded(&app, &ann, "avatar").await;
    let (bucket, key) = object_of(&app, &id).await;
    let cut = row(&app, &id).await.created_at + DAY;
    // A runner claims, deletes the objects, and dies before marking the row; its lease runs out.
    assert!(claim(&app, &id, "dead-runner", now_millis()).await);
    let token = key.trim_start_matches("photos/").split('/').next().expect("token").to_owned();
    for prefix in [format!("photos/{token}/"), format!("incoming/{token}")] {
        app.delete_prefix(&bucket, &prefix).await;
    }
    assert!(!app.object_exists(&bucket, &key).await);
    tokio::time::sleep(Duration::from_millis(5)).await;

    let s = clean_up_as_of(&app.shoebox, cut).await;
    assert_eq!((s.deleted, s.errors), (1, 0), "the next run takes the dead claim over: {s:?}");
    assert_eq!(row(&app, &id).await.state, PhotoState::Deleted);
}

async fn two_clean_ups_racing_attaches_never_delete_an_attached_photo(app: TestApp) {
    let ann = app.sign_up("ann@example.com").await;
    for round in 0..4 {
        let mut ids = Vec::new();
        for _ in 0..4 {
            ids.push(uploaded(&app, &ann, "id_document").await);
        }
        let as_of = now_millis() + DAY;
        let shoebox = app.shoebox.clone();
        let runs = (0..2).map(|_| {
            let shoebox = shoebox.clone();
            tokio::spawn(async move { clean_up_as_of(&shoebox, as_of).await })
        });
        let runs: Vec<_> = runs.collect();
        let attaches: Vec<_> = ids
            .iter()
            .map(|id| {
                let (ann, id) = (ann.clone(), id.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(rand::random::<u64>() % 20)).await;
                    ann.attach(&id, json!({})).await.status()
                })
            })
            .collect();
        let mut deleted = 0;
        for r in runs {
            deleted += r.await.expect("run").deleted;
        }
        for (id, a) in ids.iter().zip(attaches) {
            let status = a.await.expect("attach");
            let p = row(&app, id).await;
            match p.state {
                PhotoState::InUse => {
                    assert_eq!(status, StatusCode::OK, "round {round}");
                    let key = p.object_key.expect("key");
                    assert!(app.object_exists(&p.bucket, &key).await, "round {round}: attached photo lost its object");
                }
                PhotoState::Deleted => assert_eq!(status, StatusCode::GONE, "round {round}"),
                other => panic!("round {round}: {id} left {other:?}, attach said {status}"),
            }
        }
        let tombs = ids.len() as u64 - {
            let mut n = 0;
            for id in &ids {
                n += u64::from(row(&app, id).await.state == PhotoState::InUse);
            }
            n
        };
        assert_eq!(deleted, tombs, "round {round}: each photo deleted once, by one runner");
    }
}
