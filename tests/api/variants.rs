//! Variants: made at completion, upright and in the right format, made once under concurrent
//! first requests, served like the photo (redirect when public, streamed after the kind's
//! check when private), removed with the photo, and caught up by resize-all.

use reqwest::StatusCode;
use serde_json::Value;
use shoebox::jobs::resize_all::{Options, Summary, resize_all};
use shoebox::{PhotoId, PhotoState};

use crate::helpers::{Arg, Backend, TestApp, photo};

fn dims(bytes: &[u8]) -> (u32, u32, shoebox::imaging::ImageType) {
    let info = shoebox::imaging::probe(bytes).expect("a variant is an image");
    (info.width, info.height, info.image_type)
}

async fn photo_json(user: &crate::helpers::TestUser, id: &str) -> Value {
    let res = user.get(&format!("/api/photos/{id}")).await;
    assert_eq!(res.status(), StatusCode::OK);
    res.json::<Value>().await.expect("json")["photo"].clone()
}

/// Follow a public variant's redirect (anonymously, as an `<img>` would) and return the
/// response from the bucket.
async fn fetch_public(app: &TestApp, user: &crate::helpers::TestUser, id: &str, name: &str) -> reqwest::Response {
    let res = user.get(&format!("/photos/{id}/{name}")).await;
    assert!(res.status().is_redirection(), "public variants redirect: {}", res.status());
    let to = res.headers()["location"].to_str().expect("location").to_owned();
    let got = app.new_browser().get(&to).send().await.expect("GET from the bucket");
    assert_eq!(got.status(), StatusCode::OK, "{to}");
    got
}

/// Wait until completion's background work has made the photo's variants.
pub(crate) async fn wait_for_variants(app: &TestApp, id: &str) {
    let sql = "select count(*) from shoebox_variants where photo_id = $1 and state <> 'making'";
    for _ in 0..1200 {
        if app.number(sql, &[Arg::S(id.to_owned())]).await == 2 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the variants of {id} were not made within a minute");
}

/// Forget a photo's variants, objects and rows: as if completion had not made them.
async fn forget_variants(app: &TestApp, id: &str) {
    wait_for_variants(app, id).await;
    let photo_id: PhotoId = id.parse().expect("id");
    let photo = app.shoebox.photo(photo_id).await.expect("get").expect("photo");
    let key = photo.object_key.expect("verified");
    let folder = key.rsplit_once('/').expect("folder").0;
    for name in ["thumb", "display"] {
        app.delete_prefix(&photo.bucket, &format!("{folder}/{name}-")).await;
    }
    app.execute("delete from shoebox_variants where photo_id = $1", &[Arg::S(id.to_owned())]).await;
}

fn variant_objects(app: &TestApp, name: &str) -> Vec<String> {
    app.stored_keys("shoebox-public")
        .into_iter()
        .filter(|k| k.rsplit('/').next().is_some_and(|f| f.starts_with(&format!("{name}-"))))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_orientation_gives_upright_variants_made_at_completion() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let user = app.sign_up("ann@example.com").await;
    for shape in ["Landscape", "Portrait"] {
        for n in 1..=8 {
            let file = format!("orientation/{shape}_{n}.jpg");
            let id = user.upload("avatar", photo(&file), "image/jpeg").await["id"].as_str().expect("id").to_owned();
            wait_for_variants(&app, &id).await;
            let urls = photo_json(&user, &id).await["urls"].clone();
            // Made at completion: the API already points at the bucket, not the making route.
            let thumb = urls["thumb"].as_str().expect("thumb url");
            assert!(thumb.contains("/photos/") && thumb.contains("/thumb-") && thumb.ends_with(".jpg"), "{thumb}");
            for (name, long) in [("thumb", 320), ("display", 1280)] {
                let bytes = fetch_public(&app, &user, &id, name).await.bytes().await.expect("bytes");
                let (w, h, t) = dims(&bytes);
                let (long_side, short_side) = if shape == "Landscape" { (w, h) } else { (h, w) };
                assert_eq!((long_side, t), (long, shoebox::imaging::ImageType::Jpeg), "{file} {name}: {w}x{h}");
                assert!(short_side.abs_diff(long * 2 / 3) <= 1, "{file} {name}: {w}x{h} is not upright");
                assert!(!bytes.windows(6).any(|x| x == b"Exif\0\0"), "{file} {name} carries no metadata");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_png_with_alpha_stays_transparent_and_a_gif_gives_its_first_frame() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let user = app.sign_up("ann@example.com").await;
    // A 640x480 PNG whose left half is transparent (the shared 2048 px one takes too long to
    // complete in a debug build).
    let rgba = image::RgbaImage::from_fn(640, 480, |x, _| image::Rgba([200, 30, 30, if x < 320 { 0 } else { 255 }]));
    let mut upload = Vec::new();
    image::DynamicImage::ImageRgba8(rgba)
        .write_to(&mut std::io::Cursor::new(&mut upload), image::ImageFormat::Png)
        .expect("png");
    let png = user.upload("avatar", upload, "image/png").await;
    let id = png["id"].as_str().expect("id");
    wait_for_variants(&app, id).await;
    let bytes = fetch_public(&app, &user, id, "thumb").await.bytes().await.expect("bytes");
    let img = image::load_from_memory(&bytes).expect("decodes");
    assert_eq!(dims(&bytes), (320, 240, shoebox::imaging::ImageType::Png));
    assert!(img.color().has_alpha(), "a PNG variant with alpha");
    assert!(img.to_rgba8().pixels().any(|p| p[3] == 0), "transparent pixels stay transparent");

    let gif = user.upload("avatar", photo("formats/star_animated.gif"), "image/gif").await;
    let id = gif["id"].as_str().expect("id");
    wait_for_variants(&app, id).await;
    let bytes = fetch_public(&app, &user, id, "display").await.bytes().await.expect("bytes");
    let (w, h, t) = dims(&bytes);
    assert_ne!(t, shoebox::imaging::ImageType::Gif, "a still image, not an animation");
    let original = shoebox::imaging::probe(&photo("formats/star_animated.gif")).expect("gif");
    assert_eq!((w, h), (original.width, original.height), "small images are never upscaled");
}

async fn sixteen_first_requests_make_a_variant_once(app: TestApp) {
    let user = app.sign_up("ann@example.com").await;
    let id = user.upload("avatar", photo("orientation/Landscape_6.jpg"), "image/jpeg").await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    forget_variants(&app, &id).await;
    assert!(variant_objects(&app, "display").is_empty());
    let before = app.shoebox.variant_writes();
    let requests = (0..16).map(|_| {
        let user = user.clone();
        let path = format!("/photos/{id}/display");
        tokio::spawn(async move { user.get(&path).await })
    });
    let answers = futures_util::future::join_all(requests).await;
    for res in answers {
        let res = res.expect("request task");
        assert!(res.status().is_redirection(), "{}", res.status());
    }
    let written = app.shoebox.variant_writes() - before;
    assert_eq!(written, 1, "sixteen first requests wrote the variant once");
    assert_eq!(variant_objects(&app, "display").len(), 1);
    let n = app
        .number("select count(*) from shoebox_variants where photo_id = $1 and name = 'display'", &[Arg::S(id.clone())])
        .await;
    assert_eq!(n, 1);
    // Now made, every request is sent to the same object.
    let again = fetch_public(&app, &user, &id, "display").await;
    assert_eq!(dims(&again.bytes().await.expect("bytes")).0.max(1), 1280);
}

async fn private_variants_are_streamed_only_to_who_may_see_them(app: TestApp) {
    let ann = app.sign_up("ann@example.com").await;
    let id = ann.upload("id_document", photo("orientation/Portrait_3.jpg"), "image/jpeg").await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    wait_for_variants(&app, &id).await;
    let res = ann.get(&format!("/photos/{id}/thumb")).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "image/jpeg");
    assert_eq!(res.headers()["cache-control"], "private, no-cache");
    assert_eq!(dims(&res.bytes().await.expect("bytes")), (213, 320, shoebox::imaging::ImageType::Jpeg));
    // The private bucket's object is not public either.
    let urls = photo_json(&ann, &id).await["urls"].clone();
    assert_eq!(urls["thumb"], format!("/photos/{id}/thumb"));

    let anonymous = app.new_browser().get(app.url(&format!("/photos/{id}/thumb"))).send().await.expect("GET");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert!(!anonymous.bytes().await.expect("body").starts_with(&[0xFF, 0xD8]));
    let bob = app.sign_up_elsewhere("bob@example.com").await;
    let other = bob.get(&format!("/photos/{id}/display")).await;
    assert_eq!(other.status(), StatusCode::FORBIDDEN);
    assert!(!other.bytes().await.expect("body").starts_with(&[0xFF, 0xD8]));

    // A size the kind does not have, and a malformed id, are clear errors.
    let res = ann.get(&format!("/photos/{id}/huge")).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert!(res.text().await.expect("text").contains("no_such_variant"));
    assert_eq!(ann.get("/photos/not-an-id/thumb").await.status(), StatusCode::NOT_FOUND);
}

both_backends!(sixteen_first_requests_make_a_variant_once, private_variants_are_streamed_only_to_who_may_see_them);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_variants_are_cached_forever_and_pages_use_them() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let user = app.sign_up("ann@example.com").await;
    let id = user.upload("avatar", photo("orientation/Landscape_1.jpg"), "image/jpeg").await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    wait_for_variants(&app, &id).await;
    let got = fetch_public(&app, &user, &id, "thumb").await;
    assert_eq!(got.headers()["cache-control"], "public, max-age=31536000, immutable");
    assert_eq!(got.headers()["content-type"], "image/jpeg");

    let home = user.get("/").await.text().await.expect("home");
    assert!(home.contains("/thumb-") && home.contains("/display-") && home.contains(" 2x"), "{home}");
    user.attach(&id, serde_json::json!({})).await;
    let page = user.get(&format!("/photos/{id}")).await.text().await.expect("page");
    assert!(page.contains(&format!("/photos/{id}/display")) && page.contains("original-link"), "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_photo_removes_its_variants() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let user = app.sign_up("ann@example.com").await;
    let id = user.upload("avatar", photo("orientation/Landscape_2.jpg"), "image/jpeg").await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    wait_for_variants(&app, &id).await;
    assert_eq!(app.stored_keys("shoebox-public").len(), 3, "original, thumb and display");
    app.shoebox.delete(&shoebox::Actor::App, id.parse().expect("id")).await.expect("deleted");
    assert!(app.stored_keys("shoebox-public").is_empty(), "{:?}", app.stored_keys("shoebox-public"));
    let tomb = app.shoebox.photo(id.parse().expect("id")).await.expect("get").expect("row");
    assert_eq!((tomb.state, tomb.deleted_reason.as_deref()), (PhotoState::Deleted, Some(shoebox::DELETED_BY_APP)));
}

async fn upload_some(app: &TestApp, n: usize) -> Vec<String> {
    let user = app.sign_up("ann@example.com").await;
    let mut ids = Vec::new();
    for i in 0..n {
        let file = format!("orientation/Portrait_{}.jpg", i + 1);
        let id = user.upload("avatar", photo(&file), "image/jpeg").await["id"].as_str().expect("id").to_owned();
        forget_variants(app, &id).await;
        ids.push(id);
    }
    ids
}

async fn resize_all_resumes_after_interruption_and_reruns_make_nothing(app: TestApp) {
    let ids = upload_some(&app, 3).await;
    let shoebox = &app.shoebox;
    // A run killed while making photo 1's thumb left its claim behind.
    let stale = "insert into shoebox_variants (photo_id, name, recipe_hash, state, claimed_at) \
                 values ($1, 'thumb', $2, 'making', 1)";
    let hash = shoebox::VariantSpec::defaults()[0].recipe_hash();
    app.execute(stale, &[Arg::S(ids[0].clone()), Arg::S(hash)]).await;
    let quiet = |_: shoebox::jobs::resize_all::Progress<'_>| {};
    // Interrupted after one photo...
    let first = resize_all(shoebox, &Options { limit: Some(1), ..Options::default() }, &quiet).await.expect("run");
    assert_eq!((first.photos, first.made, first.failed), (1, 2, 0), "{first:?}");
    // ...the next run finishes the rest, and another makes nothing.
    let second = resize_all(shoebox, &Options::default(), &quiet).await.expect("run");
    assert_eq!((second.photos, second.made, second.skipped), (3, 4, 2), "{second:?}");
    let third = resize_all(shoebox, &Options::default(), &quiet).await.expect("run");
    assert_eq!(third, Summary { photos: 3, made: 0, skipped: 6, placeholders: 0, failed: 0, failures: vec![] });
    assert_eq!(variant_objects(&app, "thumb").len(), 3);
    assert_eq!(variant_objects(&app, "display").len(), 3);
}

async fn resize_all_records_a_bad_image_and_retries_it_only_when_asked(app: TestApp) {
    let ids = upload_some(&app, 2).await;
    let shoebox = &app.shoebox;
    let photo = shoebox.photo(ids[1].parse().expect("id")).await.expect("get").expect("photo");
    // The stored original is damaged behind Shoebox's back.
    let body = aws_sdk_s3::primitives::ByteStream::from_static(b"not a jpeg");
    let key = photo.object_key.as_deref().expect("key");
    app.s3().put_object().bucket(format!("shoebox-{}", photo.bucket)).key(key).body(body).send().await.expect("put");
    let quiet = |_: shoebox::jobs::resize_all::Progress<'_>| {};
    let first = resize_all(shoebox, &Options::default(), &quiet).await.expect("run");
    assert_eq!((first.made, first.failed), (2, 1), "{first:?}");
    assert_eq!(first.failures[0].photo, ids[1]);
    let json = serde_json::to_value(&first).expect("json");
    assert!(json["made"].is_number() && json["skipped"].is_number() && json["failed"].is_number());
    // Not retried forever...
    let second = resize_all(shoebox, &Options::default(), &quiet).await.expect("run");
    assert_eq!((second.made, second.skipped, second.failed), (0, 4, 0), "{second:?}");
    // ...unless asked.
    let retry = Options { retry_failed: true, ..Options::default() };
    let third = resize_all(shoebox, &retry, &quiet).await.expect("run");
    assert_eq!((third.made, third.failed), (0, 1), "{third:?}");
    // A page asking for the failed variant gets the original rather than an error.
    let user = app.new_browser();
    let res = user.get(app.url(&format!("/photos/{}/thumb", ids[1]))).send().await.expect("GET");
    assert!(res.headers()["location"].to_str().expect("loc").contains("/original."), "{res:?}");
}

both_backends!(
    resize_all_resumes_after_interruption_and_reruns_make_nothing,
    resize_all_records_a_bad_image_and_retries_it_only_when_asked
);
