//! `reconcile`, on both backends: it finds objects no row knows and rows whose objects are
//! gone, deletes only old unknown objects, and refuses to delete where the table looks empty
//! or belongs to another bucket.

use std::process::Command;

use futures_util::StreamExt as _;
use shoebox::jobs::reconcile::{BucketReport, Options, Summary};
use shoebox::{Millis, PhotoId, now_millis};

use crate::helpers::{Arg, TestApp, TestUser, photo};

const TWO_DAYS: Millis = 2 * 24 * 60 * 60 * 1000;

/// The bucket the example `avatar` kind stores in.
const AVATARS: &str = "public";

both_backends!(
    unknown_and_missing_objects_are_reported_and_only_old_unknown_ones_deleted,
    deleting_is_refused_when_the_table_looks_empty_or_foreign,
    a_bucket_longer_than_one_listing_page_is_seen_whole,
    a_bucket_not_marked_owned_is_only_reported,
    an_object_only_a_tombstone_names_is_unknown,
    missing_objects_are_found_by_merging_the_listing_with_the_table,
);

async fn reconcile_as_of(app: &TestApp, delete: bool, as_of: Millis) -> Summary {
    app.shoebox.reconcile(&Options { delete, as_of }).await.expect("reconcile runs")
}

fn report<'a>(s: &'a Summary, bucket: &str) -> &'a BucketReport {
    s.buckets.iter().find(|b| b.bucket == bucket).expect("a report for the bucket")
}

/// Uploads a photo and answers its bucket and original's key.
async fn uploaded(app: &TestApp, user: &TestUser) -> (String, String) {
    let (_, bucket, key) = uploaded_with_id(app, user).await;
    (bucket, key)
}

/// Uploads a photo and waits for the variants completion makes in the background, so what the
/// bucket holds is settled before reconcile looks at it.
async fn uploaded_with_id(app: &TestApp, user: &TestUser) -> (String, String, String) {
    let v = user.upload("avatar", photo("orientation/Portrait_1.jpg"), "image/jpeg").await;
    let id = v["id"].as_str().expect("id").to_owned();
    crate::variants::wait_for_variants(app, &id).await;
    let p = app.shoebox.photo(id.parse::<PhotoId>().expect("photo id")).await.expect("query").expect("row");
    (id, p.bucket, p.object_key.expect("verified"))
}

async fn put_stray(app: &TestApp, bucket: &str, key: &str) {
    let body = aws_sdk_s3::primitives::ByteStream::from_static(b"not from any upload");
    app.s3().put_object().bucket(format!("shoebox-{bucket}")).key(key).body(body).send().await.expect("put");
}

async fn unknown_and_missing_objects_are_reported_and_only_old_unknown_ones_deleted(app: TestApp) {
    let ann = app.sign_up("ann@example.com").await;
    let mut kept = Vec::new();
    for _ in 0..4 {
        kept.push(uploaded(&app, &ann).await);
    }
    let (bucket, lost) = uploaded(&app, &ann).await;
    app.s3().delete_object().bucket(format!("shoebox-{bucket}")).key(&lost).send().await.expect("delete");
    let strays = ["photos/nobodysToken/original.jpg", "incoming/nobodysUpload"];
    for k in strays {
        put_stray(&app, &bucket, k).await;
    }

    let s = reconcile_as_of(&app, false, now_millis()).await;
    let r = report(&s, &bucket);
    assert_eq!((r.unknown, s.errors), (2, 0), "{s:?}");
    let mut unknown = r.unknown_keys.clone();
    unknown.sort();
    assert_eq!(unknown, ["incoming/nobodysUpload", "photos/nobodysToken/original.jpg"]);
    assert_eq!(r.missing, 1, "{r:?}");
    assert!(r.missing_keys[0].ends_with(&lost), "{r:?}");
    assert_eq!((r.deleted, r.refused.as_deref()), (0, None), "a report deletes nothing");

    // Younger than the grace period: possibly an upload in flight, so it stays.
    let young = reconcile_as_of(&app, true, now_millis()).await;
    assert_eq!((report(&young, &bucket).deleted, report(&young, &bucket).refused.as_deref()), (0, None));
    for k in strays {
        assert!(app.object_exists(&bucket, k).await, "{k} is younger than the grace period");
    }

    let old = reconcile_as_of(&app, true, now_millis() + TWO_DAYS).await;
    assert_eq!(report(&old, &bucket).deleted, 2, "{old:?}");
    for k in strays {
        assert!(!app.object_exists(&bucket, k).await, "{k} should be deleted");
    }
    for (b, k) in &kept {
        assert!(app.object_exists(b, k).await, "{k} is known and must stay");
    }
    let after = reconcile_as_of(&app, false, now_millis()).await;
    assert_eq!((report(&after, &bucket).unknown, report(&after, &bucket).missing), (0, 1));
}

async fn deleting_is_refused_when_the_table_looks_empty_or_foreign(app: TestApp) {
    let bucket = AVATARS.to_owned();
    let strays: Vec<String> = (0..10).map(|i| format!("photos/prodToken{i}/original.jpg")).collect();
    for k in &strays {
        put_stray(&app, &bucket, k).await;
    }
    let empty = reconcile_as_of(&app, true, now_millis() + TWO_DAYS).await;
    let why = report(&empty, &bucket).refused.clone().expect("refused on an empty table");
    assert!(why.contains("empty or different database"), "{why}");

    // One photo of its own (an original and its variants) beside ten unknown objects: most of the bucket is foreign.
    let ann = app.sign_up("ann@example.com").await;
    let (own_bucket, own) = uploaded(&app, &ann).await;
    assert_eq!(own_bucket, bucket, "avatars go to the public bucket");
    let foreign = reconcile_as_of(&app, true, now_millis() + TWO_DAYS).await;
    let r = report(&foreign, &bucket);
    let why = r.refused.clone().expect("refused on a foreign bucket");
    assert!(why.contains("another database's bucket") && r.deleted == 0, "{r:?}");
    for k in strays.iter().chain([&own]) {
        assert!(app.object_exists(&bucket, k).await, "{k} must survive a refused run");
    }
}

async fn a_bucket_longer_than_one_listing_page_is_seen_whole(app: TestApp) {
    // S3 lists at most 1000 keys a page: one more proves the continuation is followed.
    const N: usize = 1001;
    let bucket = "private";
    futures_util::stream::iter(0..N)
        .for_each_concurrent(16, |i| {
            let app = &app;
            async move { put_stray(app, bucket, &format!("photos/t{i:04}/original.jpg")).await }
        })
        .await;
    let s = reconcile_as_of(&app, true, now_millis() + TWO_DAYS).await;
    let r = report(&s, bucket);
    assert_eq!((r.objects, r.unknown, s.errors), (N as u64, N as u64, 0), "{r:?}");
    assert!(s.s3_requests >= 2, "two listing pages at least: {s:?}");
    assert!(r.refused.is_some() && r.deleted == 0, "no rows at all: nothing may be deleted");
}

/// The table's side is read in key order and merged with the listing, with no request per
/// photo: rows and objects over more than a page each, with keys that locales order apart from
/// bytes (`-`, `.`, `_`, capitals), and objects missing at the start, in the middle, across
/// the page boundary and after the last listed key. Every missing one is found, none is
/// invented, and the only S3 requests are the listing's pages.
async fn missing_objects_are_found_by_merging_the_listing_with_the_table(app: TestApp) {
    const ROWS: usize = 1203;
    let bucket = "private";
    let long_ago = now_millis() - TWO_DAYS;
    let token = |i: usize| format!("t{}{i:05}", ["-", ".", "_", "A", "a", "~"][i % 6]);
    let key = |i: usize| format!("photos/{}/original.jpg", token(i));
    for i in 0..ROWS {
        app.execute(
            "insert into shoebox_photos (photo_id, kind, bucket, uploader_id, state, incoming_key, object_key, \
             image_type, max_bytes, form_expires_at, created_at, verified_at) values ($1, 'avatar', $2, 'u_merge', \
             'ready', $3, $4, 'image/jpeg', 1, $5, $5, $5)",
            &[
                Arg::S(format!("p_merge{i}")),
                Arg::S(bucket.into()),
                Arg::S(format!("incoming/{}", token(i))),
                Arg::S(key(i)),
                Arg::I(long_ago),
            ],
        )
        .await;
    }
    let mut by_key: Vec<usize> = (0..ROWS).collect();
    by_key.sort_by_key(|i| key(*i));
    // Positions in key order: the first two, around the 1000-key page boundary, the middle
    // and the last two (after the last object listed).
    let lost: Vec<usize> = [0, 1, 500, 997, 998, 999, 1000, ROWS - 2, ROWS - 1].iter().map(|p| by_key[*p]).collect();
    let present: Vec<String> = (0..ROWS).filter(|i| !lost.contains(i)).map(key).collect();
    futures_util::stream::iter(&present).for_each_concurrent(16, |k| put_stray(&app, bucket, k)).await;

    let s = reconcile_as_of(&app, false, now_millis()).await;
    let r = report(&s, bucket);
    assert_eq!((r.objects, r.unknown, s.errors), (present.len() as u64, 0, 0), "{s:?}");
    let mut found = r.missing_keys.clone();
    found.sort();
    let mut want: Vec<String> = lost.iter().map(|i| format!("p_merge{i}: {}", key(*i))).collect();
    want.sort();
    assert_eq!((r.missing, found), (lost.len() as u64, want), "{r:?}");
    // A listing page per 1000 objects of each bucket (the empty public one takes one too).
    let pages: u64 = s.buckets.iter().map(|b| b.objects.div_ceil(1000).max(1)).sum();
    assert_eq!((pages, s.s3_requests), (3, 3), "nothing per photo: {s:?}");
}

async fn a_bucket_not_marked_owned_is_only_reported(app: TestApp) {
    let ann = app.sign_up("ann@example.com").await;
    for _ in 0..3 {
        uploaded(&app, &ann).await;
    }
    put_stray(&app, AVATARS, "photos/nobodysToken/original.jpg").await;
    // The same database and endpoint, configured as a deployment that shares the buckets
    // without owning them.
    let mut guest = shoebox::Shoebox::builder(app.shoebox.db().clone()).credentials(app.s3_credentials.clone());
    for mut b in shoebox_app::settings::embedded_buckets() {
        b.owned = false;
        guest = guest.bucket(b.at_endpoint(&app.s3_endpoint));
    }
    for k in TestApp::example_kinds() {
        guest = guest.shared_kind(k);
    }
    let guest = guest.build().await.expect("guest");
    let opts = Options { delete: true, as_of: now_millis() + TWO_DAYS };
    let s = guest.reconcile(&opts).await.expect("reconcile runs");
    let r = report(&s, AVATARS);
    assert_eq!((r.owned, r.unknown, r.deleted), (false, 1, 0), "{r:?}");
    assert!(r.refused.as_deref().is_some_and(|w| w.contains("owned = true")), "{r:?}");
    assert!(app.object_exists(AVATARS, "photos/nobodysToken/original.jpg").await);
}

async fn an_object_only_a_tombstone_names_is_unknown(app: TestApp) {
    let ann = app.sign_up("ann@example.com").await;
    for _ in 0..3 {
        uploaded(&app, &ann).await;
    }
    let (id, bucket, key) = uploaded_with_id(&app, &ann).await;
    let path = format!("/api/photos/{id}");
    let res = ann.client.delete(ann.url(&path)).header("x-csrf-token", &ann.csrf).send().await.expect("delete");
    assert!(res.status().is_success(), "{}", res.status());
    let clean = reconcile_as_of(&app, false, now_millis()).await;
    assert_eq!((report(&clean, &bucket).unknown, report(&clean, &bucket).missing), (0, 0), "{clean:?}");

    // Its original written back (a delete that raced an upload, a restored backup): the row is
    // a tombstone, so nothing protects the object any more.
    put_stray(&app, &bucket, &key).await;
    let s = reconcile_as_of(&app, true, now_millis() + TWO_DAYS).await;
    let r = report(&s, &bucket);
    assert_eq!((r.unknown, r.deleted, r.missing), (1, 1, 0), "{r:?}");
    assert!(!app.object_exists(&bucket, &key).await);
}

/// The real binary on embedded defaults in a temp folder.
fn shoebox_reconcile(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_shoebox"))
        .arg("reconcile")
        .args(args)
        .env("SHOEBOX_DATA_DIR", dir)
        .env_remove("DATABASE_URL")
        .env_remove("SHOEBOX_CONFIG")
        .output()
        .expect("run shoebox")
}

#[test]
fn the_command_prints_json_and_names_a_flag_it_does_not_know() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = shoebox_reconcile(dir.path(), &["--delete", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object on stdout");
    let buckets = summary["buckets"].as_array().expect("buckets");
    assert_eq!(buckets.len(), 2, "{summary}");
    assert!(buckets.iter().all(|b| b["owned"] == true && b["objects"] == 0 && b["refused"].is_null()), "{summary}");

    let out = shoebox_reconcile(dir.path(), &["--dry-run"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--dry-run"), "{}", String::from_utf8_lossy(&out.stderr));
}
