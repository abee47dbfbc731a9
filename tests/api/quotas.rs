//! Quotas per uploader and kind: counted from the ledger, enforced when a form is signed (in the
//! statement that records it) and again when an upload completes, freed by deletion.

use reqwest::StatusCode;
use serde_json::Value;
use shoebox::UserId;
use shoebox_app::settings::{KindSettings, example_kinds};

use crate::helpers::{Backend, TestApp, TestUser, field, form_of, hidden_fields, photo, post_to_bucket};

const JPEG: &str = "orientation/Landscape_1.jpg";

/// The example kinds, plus `album` (public, at most 5 photos each) and `scans` (private, at
/// most 10 MB each).
fn kinds() -> Vec<KindSettings> {
    let mut kinds = example_kinds();
    let mut album = kinds[0].clone();
    album.name = "album".into();
    album.label = Some("Album photo".into());
    album.latest_only = false;
    album.max_photos_per_user = Some(5);
    let mut scans = kinds[1].clone();
    scans.name = "scans".into();
    scans.label = Some("Scan".into());
    scans.max_bytes_per_user = Some(10_000_000);
    kinds.extend([album, scans]);
    kinds
}

/// Run a scenario on both backends with [`kinds`].
macro_rules! with_quotas {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use crate::helpers::{Backend, TestApp};
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(TestApp::spawn_with_kinds(Backend::Postgres, super::kinds()).await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(TestApp::spawn_with_kinds(Backend::Sqlite, super::kinds()).await).await;
            }
        }
    )*};
}

async fn user_id(app: &TestApp, email: &str) -> UserId {
    let id = app.text("select user_id from users where email = $1", &[crate::helpers::Arg::S(email.into())]).await;
    UserId::new(id.expect("user")).expect("id")
}

async fn error_of(res: reqwest::Response) -> (StatusCode, String, String) {
    let status = res.status();
    let body: Value = res.json().await.expect("json");
    (status, body["error"].as_str().unwrap_or_default().to_owned(), body["message"].as_str().unwrap_or_default().into())
}

async fn delete(user: &TestUser, id: &str) -> StatusCode {
    let path = user.url(&format!("/api/photos/{id}"));
    user.client.delete(path).header("x-csrf-token", &user.csrf).send().await.expect("delete").status()
}

/// Sixteen forms asked for at once against a quota of five photos, and sixteen of 3 MB against
/// a quota of 10 MB: exactly as many as fit are signed, whatever the interleaving, and every
/// other answer says how much is used and how to free space.
async fn parallel_signings_fill_a_quota_and_never_pass_it(app: TestApp) {
    let ann = app.sign_up("ann@example.com").await;
    let answers = futures_util::future::join_all((0..16).map(|_| ann.sign("album", "image/jpeg", 1000))).await;
    let mut created = 0;
    for res in answers {
        if res.status() == StatusCode::CREATED {
            created += 1;
            continue;
        }
        let (status, code, message) = error_of(res).await;
        assert_eq!((status, code.as_str()), (StatusCode::PAYLOAD_TOO_LARGE, "over_photo_quota"), "{message}");
        assert!(message.contains("You have 5 of the 5 album photo uploads allowed. Delete one"), "{message}");
    }
    assert_eq!(created, 5, "exactly the quota");

    let answers = futures_util::future::join_all((0..16).map(|_| ann.sign("scans", "image/jpeg", 3_000_000))).await;
    let mut created = 0;
    for res in answers {
        if res.status() == StatusCode::CREATED {
            created += 1;
            continue;
        }
        let (status, code, message) = error_of(res).await;
        assert_eq!((status, code.as_str()), (StatusCode::PAYLOAD_TOO_LARGE, "over_byte_quota"), "{message}");
        assert!(
            message.contains("Your scan uploads take 9 MB of the 10 MB allowed, so this one (3 MB) does not fit"),
            "{message}"
        );
    }
    assert_eq!(created, 3, "three forms of 3 MB fit in 10 MB, a fourth does not");

    let ann_id = user_id(&app, "ann@example.com").await;
    let album = app.shoebox.usage(&ann_id, "album").await.expect("usage");
    assert_eq!((album.photos, album.max_photos), (5, Some(5)));
    let scans = app.shoebox.usage(&ann_id, "scans").await.expect("usage");
    assert_eq!((scans.bytes, scans.photos), (9_000_000, 3));
    let rows = app.number("select count(*) from shoebox_photos", &[]).await;
    assert_eq!(rows, 8, "a refused form writes no row");

    // A quota is each uploader's own; a smaller photo still fits in what is left of Ann's.
    let bob = app.sign_up_elsewhere("bob@example.com").await;
    assert_eq!(bob.sign("album", "image/jpeg", 1000).await.status(), StatusCode::CREATED);
    assert_eq!(ann.sign("scans", "image/jpeg", 1_000_000).await.status(), StatusCode::CREATED);
    assert_eq!(ann.sign("scans", "image/jpeg", 1).await.status(), StatusCode::PAYLOAD_TOO_LARGE, "now full");
}

/// A form under a quota of bytes reserves its declared size, so it lets no more than that in.
async fn a_form_under_a_quota_of_bytes_takes_no_more_than_it_declared(app: TestApp) {
    let ann = app.sign_up("ann@example.com").await;
    let bytes = photo(JPEG);
    let signed: Value = ann.sign("scans", "image/jpeg", bytes.len() - 1).await.json().await.expect("json");
    let (url, fields) = form_of(&signed);
    let res = post_to_bucket(&url, &fields, bytes.clone(), "image/jpeg").await;
    assert!(res.status().is_client_error(), "one byte over the declared size, got {}", res.status());
    assert!(!app.object_exists("private", field(&fields, "key")).await);
    // The declared size itself is accepted, and once verified it counts at its stored size.
    let photo = ann.upload("scans", bytes.clone(), "image/jpeg").await;
    let usage = app.shoebox.usage(&user_id(&app, "ann@example.com").await, "scans").await.expect("usage");
    let stored = photo["byte_size"].as_u64().expect("size");
    assert_eq!(
        usage.bytes,
        (bytes.len() - 1) as u64 + stored,
        "the open form by its declaration, the photo by its size"
    );
}

/// Deleting a photo frees its share of the quota at once: the next form is signed.
async fn deleting_a_photo_frees_its_share_at_once(app: TestApp) {
    let ann = app.sign_up("ann@example.com").await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        let photo = ann.upload("album", photo(JPEG), "image/jpeg").await;
        ids.push(photo["id"].as_str().expect("id").to_owned());
    }
    let page = ann.get("/upload?kind=album").await;
    assert_eq!(page.status(), StatusCode::PAYLOAD_TOO_LARGE, "no room: the page says so instead of offering a form");
    assert!(page.text().await.expect("html").contains("You have 5 of the 5 album photo uploads allowed"));
    assert_eq!(ann.sign("album", "image/jpeg", 1000).await.status(), StatusCode::PAYLOAD_TOO_LARGE);

    assert_eq!(delete(&ann, &ids[0]).await, StatusCode::NO_CONTENT);
    assert_eq!(ann.sign("album", "image/jpeg", 1000).await.status(), StatusCode::CREATED, "freed at once");

    let page = ann.get("/upload?kind=scans").await.text().await.expect("html");
    assert!(page.contains("Your scan uploads: 0 bytes of 10 MB used."), "the page shows the quota");
    let scan = ann.upload("scans", photo(JPEG), "image/jpeg").await;
    let size = shoebox::human_bytes(scan["byte_size"].as_u64().expect("size"));
    let page = ann.get("/upload?kind=scans").await.text().await.expect("html");
    assert!(page.contains(&format!("Your scan uploads: {size} of 10 MB used.")), "{size}");
    assert_eq!(delete(&ann, scan["id"].as_str().expect("id")).await, StatusCode::NO_CONTENT);
    let page = ann.get("/upload?kind=scans").await.text().await.expect("html");
    assert!(page.contains("Your scan uploads: 0 bytes of 10 MB used."));
}

/// A page's form reserves nothing, so its upload is counted when it completes: one that no
/// longer fits is refused there, its object removed and its row a tombstone saying why.
async fn an_upload_through_a_page_form_that_no_longer_fits_is_refused_when_it_completes(app: TestApp) {
    let ann = app.sign_up("ann@example.com").await;
    let html = app.client.get(app.url("/upload?kind=album")).send().await.expect("page").text().await.expect("html");
    assert!(html.contains("Your album photo uploads: 0 of 5 photos used."), "the page shows the quota");
    let fields: Vec<(String, String)> = hidden_fields(&html).into_iter().filter(|(k, _)| k != "csrf").collect();
    let action = {
        let form = html.find("id=\"upload-form\"").expect("upload form");
        let start = form + html[form..].find("action=\"").expect("form action") + "action=\"".len();
        html[start..start + html[start..].find('"').expect("end")].to_owned()
    };
    for _ in 0..5 {
        ann.upload("album", photo(JPEG), "image/jpeg").await;
    }
    let res = post_to_bucket(&action, &fields, photo(JPEG), "image/jpeg").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "the bucket takes it: the form allows it");
    let back = res.headers()["location"].to_str().expect("ascii").to_owned();
    let done = app.client.get(&back).send().await.expect("done");
    assert_eq!(done.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(done.text().await.expect("html").contains("You have 5 of the 5 album photo uploads allowed"));
    assert!(!app.object_exists("public", field(&fields, "key")).await, "the upload is removed");
    let objects = app.stored_keys("shoebox-public").iter().filter(|k| k.contains("/original.")).count();
    assert_eq!(objects, 5, "nothing of the refused upload is served");
    let reason = app.text("select deleted_reason from shoebox_photos where state = 'deleted'", &[]).await;
    assert!(reason.is_some_and(|r| r.contains("5 of the 5")), "the tombstone says why");
    let usage = app.shoebox.usage(&user_id(&app, "ann@example.com").await, "album").await.expect("usage");
    assert_eq!(usage.photos, 5);
}

with_quotas!(
    parallel_signings_fill_a_quota_and_never_pass_it,
    a_form_under_a_quota_of_bytes_takes_no_more_than_it_declared,
    deleting_a_photo_frees_its_share_at_once,
    an_upload_through_a_page_form_that_no_longer_fits_is_refused_when_it_completes,
);

/// The same statement on Postgres, checked without HTTP between: many Shoeboxes (dynos) on one
/// database, signing for one uploader at once, never record more than the quota.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynos_signing_at_once_on_one_database_never_pass_a_quota() {
    let app = TestApp::spawn_with_kinds(Backend::Postgres, kinds()).await;
    let user = UserId::new("many-dynos").expect("id");
    let mut dynos = Vec::new();
    for _ in 0..4 {
        let mut album = shoebox::ConfiguredKind::new(
            "album",
            Some("Album photo"),
            "public",
            &["image/jpeg".into()],
            1_000_000,
            shoebox::ImageLimits::default(),
        )
        .expect("kind")
        .with_quota(Some(2_500_000), Some(7))
        .expect("quota");
        album.variants = Vec::new();
        let built = app.another_shoebox(&app.s3_endpoint).kind(album).build().await.expect("built");
        dynos.push(built);
    }
    let signings = (0..40).map(|i| {
        let (dyno, user) = (dynos[i % dynos.len()].clone(), user.clone());
        tokio::spawn(async move {
            let request = shoebox::SignRequest {
                kind: "album".into(),
                filename: None,
                content_type: Some("image/jpeg".into()),
                size: Some(400_000),
            };
            dyno.sign(&user, request, shoebox::FormStyle::Script).await
        })
    });
    let mut signed = 0;
    for outcome in futures_util::future::join_all(signings).await {
        match outcome.expect("task") {
            Ok(_) => signed += 1,
            Err(shoebox::UploadError::Refused(shoebox::Refusal::OverByteQuota { .. })) => {}
            Err(shoebox::UploadError::Refused(shoebox::Refusal::OverPhotoQuota { .. })) => {}
            Err(other) => panic!("{other:?}"),
        }
    }
    assert_eq!(signed, 6, "6 × 400 KB fit in 2.5 MB and 7 photos; a seventh would pass 2.5 MB");
    let usage = dynos[0].usage(&user, "album").await.expect("usage");
    assert_eq!((usage.bytes, usage.photos), (2_400_000, 6));
}
