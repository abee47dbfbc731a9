//! WebP twins of the variants (issue 16, items 3 and 6), on kinds configured to have them
//! (they are off by default): made at completion beside the JPEGs, listed by the API under
//! their own names, served under their own URLs with the JPEG's authorization and HTTP
//! semantics, made once under concurrent first requests per format, and offered by the pages
//! through `<picture>` while the `<img>` keeps the JPEG for clients that take no WebP.

use reqwest::StatusCode;
use reqwest::header::{
    CONTENT_DISPOSITION, CONTENT_RANGE, CONTENT_TYPE, ETAG, IF_NONE_MATCH, RANGE, X_CONTENT_TYPE_OPTIONS,
};
use serde_json::Value;
use shoebox::imaging::ImageType;

use shoebox_app::settings::{KindSettings, VariantSettings, example_kinds};

use crate::helpers::{Arg, Backend, TestApp, TestUser, photo};

/// The example kinds, with a WebP twin of each variant at the quality `scripts/bench-formats`
/// chose for 320 px.
fn kinds_with_webp() -> Vec<KindSettings> {
    let variant = |name: &str, side| VariantSettings {
        name: name.into(),
        max_width: side,
        max_height: side,
        quality: 80,
        webp_quality: Some(86),
        avif_quality: None,
    };
    let variants = Some(vec![variant("thumb", 320), variant("display", 1280)]);
    example_kinds().into_iter().map(|k| KindSettings { variants: variants.clone(), ..k }).collect()
}

/// The app with [`kinds_with_webp`].
pub(crate) async fn spawn(backend: Backend) -> TestApp {
    TestApp::spawn_with_kinds(backend, kinds_with_webp()).await
}

/// Wait until completion's background work has made the photo's four renditions.
pub(crate) async fn wait_for_renditions(app: &TestApp, id: &str) {
    let sql = "select count(*) from shoebox_variants where photo_id = $1 and state <> 'making'";
    for _ in 0..1200 {
        if app.number(sql, &[Arg::S(id.to_owned())]).await == 4 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the renditions of {id} were not made within a minute");
}

/// Run a scenario on both backends with [`kinds_with_webp`].
macro_rules! with_webp {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(super::spawn(crate::helpers::Backend::Postgres).await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(super::spawn(crate::helpers::Backend::Sqlite).await).await;
            }
        }
    )*};
}

/// A lossy WebP file: `RIFF`, its length, `WEBP`, then a `VP8 ` (lossy) chunk.
fn is_lossy_webp(bytes: &[u8]) -> bool {
    bytes.len() > 16 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" && bytes.windows(4).any(|w| w == b"VP8 ")
}

fn dims(bytes: &[u8]) -> (u32, u32, ImageType) {
    let info = shoebox::imaging::probe(bytes).expect("a variant is an image");
    (info.width, info.height, info.image_type)
}

async fn upload(user: &TestUser, kind: &str, file: &str) -> String {
    user.upload(kind, photo(file), "image/jpeg").await["id"].as_str().expect("id").to_owned()
}

async fn urls(user: &TestUser, id: &str) -> Value {
    let res = user.get(&format!("/api/photos/{id}")).await;
    assert_eq!(res.status(), StatusCode::OK);
    res.json::<Value>().await.expect("json")["photo"]["urls"].clone()
}

/// Follow a public rendition's redirect anonymously, as an `<img>` would.
async fn follow(app: &TestApp, user: &TestUser, path: &str) -> reqwest::Response {
    let res = user.get(path).await;
    assert!(res.status().is_redirection(), "{path}: {}", res.status());
    let to = res.headers()["location"].to_str().expect("location").to_owned();
    let got = app.new_browser().get(&to).send().await.expect("GET from the bucket");
    assert_eq!(got.status(), StatusCode::OK, "{to}");
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completion_makes_webp_twins_that_the_api_lists_and_the_bucket_serves_as_webp() {
    let app = spawn(Backend::Postgres).await;
    let user = app.sign_up("ann@example.com").await;
    let id = upload(&user, "avatar", "orientation/Landscape_6.jpg").await;
    wait_for_renditions(&app, &id).await;
    let ready = "select count(*) from shoebox_variants where photo_id = $1 and state = 'ready'";
    assert_eq!(app.number(ready, &[Arg::S(id.clone())]).await, 4, "thumb, thumb.webp, display and display.webp");

    // Each format has its own URL: the bucket's, with the format's extension.
    let urls = urls(&user, &id).await;
    for (name, ext) in [("thumb", ".jpg"), ("thumb.webp", ".webp"), ("display", ".jpg"), ("display.webp", ".webp")] {
        let url = urls[name].as_str().unwrap_or_else(|| panic!("{name} in {urls}"));
        assert!(url.contains("/photos/") && url.ends_with(ext), "{name}: {url}");
    }
    assert_ne!(urls["display"], urls["display.webp"]);

    // The type the bucket states matches the bytes, for both formats, and the sizes agree.
    for (name, long) in [("thumb", 320), ("display", 1280)] {
        let jpeg = follow(&app, &user, &format!("/photos/{id}/{name}")).await;
        assert_eq!(jpeg.headers()[CONTENT_TYPE], "image/jpeg");
        let jpeg = jpeg.bytes().await.expect("bytes");
        let webp = follow(&app, &user, &format!("/photos/{id}/{name}.webp")).await;
        assert_eq!(webp.headers()[CONTENT_TYPE], "image/webp");
        assert_eq!(webp.headers()["cache-control"], "public, max-age=31536000, immutable");
        let webp = webp.bytes().await.expect("bytes");
        assert!(is_lossy_webp(&webp), "{name}.webp starts {:?}", &webp[..webp.len().min(16)]);
        assert!(jpeg.starts_with(&[0xFF, 0xD8]));
        let (w, h, t) = dims(&webp);
        assert_eq!((w.max(h), t), (long, ImageType::Webp), "{name}.webp is {w}x{h}");
        assert_eq!((w, h), (dims(&jpeg).0, dims(&jpeg).1), "both formats have the same size");
        // Nothing of the upload's metadata comes along.
        assert!(!webp.windows(4).any(|x| x == b"EXIF"), "{name}.webp carries no EXIF chunk");
    }
}

async fn private_webp_is_streamed_with_the_jpegs_checks_and_headers(app: TestApp) {
    let ann = app.sign_up("ann@example.com").await;
    let id = upload(&ann, "id_document", "orientation/Portrait_3.jpg").await;
    wait_for_renditions(&app, &id).await;
    let path = format!("/photos/{id}/display.webp");
    assert_eq!(urls(&ann, &id).await["display.webp"], path, "a private photo's twin is the route, not the bucket");

    let res = ann.get(&path).await;
    assert_eq!(res.status(), StatusCode::OK);
    let h = res.headers().clone();
    assert_eq!(h[CONTENT_TYPE], "image/webp");
    assert_eq!(h[X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert_eq!(h[CONTENT_DISPOSITION], "inline; filename=\"photo.webp\"");
    assert_eq!(h["cache-control"], "private, no-cache");
    assert!(h.contains_key("last-modified"));
    let etag = h[ETAG].to_str().expect("etag").to_owned();
    let body = res.bytes().await.expect("bytes");
    assert!(is_lossy_webp(&body));
    assert_eq!(dims(&body), (853, 1280, ImageType::Webp));

    // Conditional and partial requests, as for the JPEG.
    let again = ann.client.get(ann.url(&path)).header(IF_NONE_MATCH, &etag).send().await.expect("GET");
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    let part = ann.client.get(ann.url(&path)).header(RANGE, "bytes=0-11").send().await.expect("GET");
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.headers()[CONTENT_RANGE], format!("bytes 0-11/{}", body.len()));
    let head = part.bytes().await.expect("bytes");
    assert_eq!((&head[..4], &head[8..12]), (&b"RIFF"[..], &b"WEBP"[..]));

    // The same refusals as the JPEG, before any byte of it.
    let anonymous = app.new_browser().get(app.url(&path)).send().await.expect("GET");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert!(!anonymous.bytes().await.expect("body").starts_with(b"RIFF"));
    let bob = app.sign_up_elsewhere("bob@example.com").await;
    let other = bob.get(&path).await;
    assert_eq!(other.status(), StatusCode::FORBIDDEN);
    assert!(!other.bytes().await.expect("body").starts_with(b"RIFF"));
    // A format the engine does not make is not a size either.
    let res = ann.get(&format!("/photos/{id}/display.avif")).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert!(res.text().await.expect("text").contains("no_such_variant"));
}

async fn concurrent_first_requests_make_each_format_once(app: TestApp) {
    let user = app.sign_up("ann@example.com").await;
    let id = upload(&user, "avatar", "orientation/Landscape_3.jpg").await;
    wait_for_renditions(&app, &id).await;
    // Forget them, objects and rows, as if completion had not made them.
    let photo = app.shoebox.photo(id.parse().expect("id")).await.expect("get").expect("photo");
    let folder = photo.object_key.expect("verified").rsplit_once('/').expect("folder").0.to_owned();
    app.delete_prefix(&photo.bucket, &format!("{folder}/display-")).await;
    app.execute("delete from shoebox_variants where photo_id = $1", &[Arg::S(id.clone())]).await;

    let before = app.shoebox.variant_writes();
    let requests = (0..16).map(|i| {
        let user = user.clone();
        let path = if i % 2 == 0 { format!("/photos/{id}/display") } else { format!("/photos/{id}/display.webp") };
        tokio::spawn(async move { user.get(&path).await })
    });
    for res in futures_util::future::join_all(requests).await {
        let res = res.expect("request task");
        assert!(res.status().is_redirection(), "{}", res.status());
    }
    assert_eq!(app.shoebox.variant_writes() - before, 2, "one JPEG and one WebP, each written once");
    for name in ["display", "display.webp"] {
        let sql = "select count(*) from shoebox_variants where photo_id = $1 and name = $2 and state = 'ready'";
        assert_eq!(app.number(sql, &[Arg::S(id.clone()), Arg::S(name.into())]).await, 1, "{name}");
    }
    let keys: Vec<String> = app
        .stored_keys("shoebox-public")
        .into_iter()
        .filter(|k| k.starts_with(&format!("{folder}/display-")))
        .collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.iter().any(|k| k.ends_with(".jpg")) && keys.iter().any(|k| k.ends_with(".webp")), "{keys:?}");
    let webp = follow(&app, &user, &format!("/photos/{id}/display.webp")).await.bytes().await.expect("bytes");
    assert!(is_lossy_webp(&webp));
}

with_webp!(private_webp_is_streamed_with_the_jpegs_checks_and_headers, concurrent_first_requests_make_each_format_once);

/// A client that takes no WebP and runs no script reads the `<img>`: the JPEG, on the grid
/// and on the photo page, while the `<source>` beside it offers the twin to those that do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_http_client_gets_jpeg_pictures_from_the_pages() {
    let app = spawn(Backend::Postgres).await;
    let user = app.sign_up("ann@example.com").await;
    let id = upload(&user, "avatar", "orientation/Landscape_1.jpg").await;
    wait_for_renditions(&app, &id).await;
    user.attach(&id, serde_json::json!({})).await;

    let home = user.get("/").await.text().await.expect("home");
    let source = attr_after(&home, "<source type=\"image/webp\"", "srcset").expect("a WebP <source> on the grid");
    assert!(source.contains("/thumb-") && source.contains(".webp 1x") && source.contains(".webp 2x"), "{source}");
    let img = attr_after(&home, "<img class=\"thumb\"", "src").expect("an <img> on the grid");
    assert!(img.contains("/thumb-") && img.ends_with(".jpg"), "the fallback src is the JPEG: {img}");
    let got = app.new_browser().get(&img).send().await.expect("GET the img src");
    assert_eq!(got.headers()[CONTENT_TYPE], "image/jpeg");
    assert!(got.bytes().await.expect("bytes").starts_with(&[0xFF, 0xD8, 0xFF]));

    let page = user.get(&format!("/photos/{id}")).await.text().await.expect("photo page");
    let source = attr_after(&page, "<source type=\"image/webp\"", "srcset").expect("a WebP <source> on the page");
    assert_eq!(source, format!("/photos/{id}/display.webp"));
    let img = attr_after(&page, "<img class=\"photo\"", "src").expect("the photo's <img>");
    assert_eq!(img, format!("/photos/{id}/display"));
    let got = follow(&app, &user, &img).await;
    assert_eq!(got.headers()[CONTENT_TYPE], "image/jpeg");
    assert!(got.bytes().await.expect("bytes").starts_with(&[0xFF, 0xD8, 0xFF]));
}

/// The value of attribute `name` in the first tag that starts with `tag_start`.
fn attr_after(html: &str, tag_start: &str, name: &str) -> Option<String> {
    let tag = &html[html.find(tag_start)?..];
    let tag = &tag[..tag.find('>')?];
    let at = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let value = &tag[at..];
    Some(value[..value.find('"')?].replace("&#x2f;", "/").replace("&amp;", "&"))
}

/// By default (the measured decision) a kind makes JPEGs only: no twin, no `<source>`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_variants_are_jpeg_only_and_pages_offer_no_webp() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let user = app.sign_up("ann@example.com").await;
    let id = upload(&user, "avatar", "orientation/Landscape_2.jpg").await;
    crate::variants::wait_for_variants(&app, &id).await;
    let urls = urls(&user, &id).await;
    assert!(urls.get("display").is_some() && urls.get("display.webp").is_none(), "{urls}");
    let res = user.get(&format!("/photos/{id}/display.webp")).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert!(res.text().await.expect("text").contains("no_such_variant"));
    let home = user.get("/").await.text().await.expect("home");
    assert!(home.contains("/thumb-") && !home.contains("<source"), "{home}");
    let page = user.get(&format!("/photos/{id}")).await.text().await.expect("page");
    assert!(page.contains("class=\"photo\"") && !page.contains("<source"), "{page}");
}

/// resize-all makes the twins it finds missing, as it does the JPEGs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resize_all_makes_missing_webp_twins() {
    use shoebox::jobs::resize_all::{Options, resize_all};
    let app = spawn(Backend::Sqlite).await;
    let user = app.sign_up("ann@example.com").await;
    let id = upload(&user, "avatar", "orientation/Portrait_5.jpg").await;
    wait_for_renditions(&app, &id).await;
    // Photos verified before twins were configured have none: forget them.
    let photo = app.shoebox.photo(id.parse().expect("id")).await.expect("get").expect("photo");
    let folder = photo.object_key.expect("verified").rsplit_once('/').expect("folder").0.to_owned();
    app.execute("delete from shoebox_variants where photo_id = $1 and name like '%.webp'", &[Arg::S(id.clone())]).await;
    let webp_objects =
        |app: &TestApp| app.stored_keys("shoebox-public").into_iter().filter(|k| k.ends_with(".webp")).count();
    for name in ["thumb", "display"] {
        let key = app
            .stored_keys("shoebox-public")
            .into_iter()
            .find(|k| k.starts_with(&format!("{folder}/{name}-")) && k.ends_with(".webp"));
        app.s3().delete_object().bucket("shoebox-public").key(key.expect("twin object")).send().await.expect("delete");
    }
    assert_eq!(webp_objects(&app), 0);
    let quiet = |_: shoebox::jobs::resize_all::Progress<'_>| {};
    let run = resize_all(&app.shoebox, &Options::default(), &quiet).await.expect("run");
    assert_eq!((run.photos, run.made, run.skipped, run.failed), (1, 2, 2, 0), "{run:?}");
    assert_eq!(webp_objects(&app), 2);
    let webp = follow(&app, &user, &format!("/photos/{id}/thumb.webp")).await.bytes().await.expect("bytes");
    assert!(is_lossy_webp(&webp));
}

// AVIF twins (issue 16, item 5): made after completion in the background and by resize-all,
// never by a request; offered by the pages and listed by the API only once made.

/// The example kinds with WebP twins and AVIF twins of each variant, at the qualities
/// `scripts/bench-formats` chose (86 at 320 px, 88 at 1280 px). The display box is 480 px, not
/// 1280: pure-Rust AVIF costs seconds a megapixel, and at 1280 px these tests alone took 9 CPU
/// minutes of CI's two cores; nothing they check depends on the size.
fn kinds_with_avif() -> Vec<KindSettings> {
    let variant = |name: &str, side, avif| VariantSettings {
        name: name.into(),
        max_width: side,
        max_height: side,
        quality: 80,
        webp_quality: Some(86),
        avif_quality: Some(avif),
    };
    let variants = Some(vec![variant("thumb", 320, 86), variant("display", 480, 88)]);
    example_kinds().into_iter().map(|k| KindSettings { variants: variants.clone(), ..k }).collect()
}

/// The app with [`kinds_with_avif`].
pub(crate) async fn spawn_avif(backend: Backend) -> TestApp {
    TestApp::spawn_with_kinds(backend, kinds_with_avif()).await
}

/// Wait until the photo's JPEGs, WebP twins and (in the background) AVIF twins are made.
pub(crate) async fn wait_for_avif(app: &TestApp, id: &str) {
    let sql = "select count(*) from shoebox_variants where photo_id = $1 and state = 'ready'";
    // Generous, not a timing: pure-Rust AVIF takes seconds a photo, and tests share the cores.
    for _ in 0..12_000 {
        if app.number(sql, &[Arg::S(id.to_owned())]).await == 6 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the AVIF twins of {id} were not made within ten minutes");
}

/// An AVIF file: an ISO-BMFF `ftyp` box with AVIF's brand.
fn is_avif(bytes: &[u8]) -> bool {
    bytes.get(4..12) == Some(&b"ftypavif"[..])
}

macro_rules! with_avif {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(super::spawn_avif(crate::helpers::Backend::Postgres).await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(super::spawn_avif(crate::helpers::Backend::Sqlite).await).await;
            }
        }
    )*};
}

/// Forget a photo's AVIF twins, rows and objects, as for a photo verified before they were
/// configured (or whose background task did not run). For a public photo; returns its folder.
async fn forget_avif(app: &TestApp, id: &str) -> String {
    let photo = app.shoebox.photo(id.parse().expect("id")).await.expect("get").expect("photo");
    let folder = photo.object_key.expect("verified").rsplit_once('/').expect("folder").0.to_owned();
    app.execute("delete from shoebox_variants where photo_id = $1 and name like '%.avif'", &[Arg::S(id.to_owned())])
        .await;
    let keys = avif_keys(app, "shoebox-public", &folder);
    assert_eq!(keys.len(), 2, "both twins were made: {keys:?}");
    for key in keys {
        app.s3().delete_object().bucket("shoebox-public").key(key).send().await.expect("delete");
    }
    folder
}

fn avif_keys(app: &TestApp, bucket: &str, folder: &str) -> Vec<String> {
    app.stored_keys(bucket).into_iter().filter(|k| k.starts_with(folder) && k.ends_with(".avif")).collect()
}

async fn completion_makes_avif_twins_in_the_background_served_as_avif_with_the_jpegs_checks(app: TestApp) {
    let ann = app.sign_up("ann@example.com").await;
    let public = upload(&ann, "avatar", "orientation/Landscape_6.jpg").await;
    let private = upload(&ann, "id_document", "orientation/Portrait_3.jpg").await;
    wait_for_avif(&app, &public).await;
    wait_for_avif(&app, &private).await;

    // A public twin: listed under its own name, the bucket's URL, AVIF bytes and type.
    let listed = urls(&ann, &public).await;
    for name in ["thumb.avif", "display.avif"] {
        let url = listed[name].as_str().unwrap_or_else(|| panic!("{name} in {listed}"));
        assert!(url.contains("/photos/") && url.ends_with(".avif"), "{name}: {url}");
    }
    for name in ["thumb", "display"] {
        let got = follow(&app, &ann, &format!("/photos/{public}/{name}.avif")).await;
        assert_eq!(got.headers()[CONTENT_TYPE], "image/avif");
        assert_eq!(got.headers()["cache-control"], "public, max-age=31536000, immutable");
        let avif = got.bytes().await.expect("bytes");
        assert!(is_avif(&avif), "{name}.avif starts {:?}", &avif[..avif.len().min(16)]);
        // Smaller than its JPEG, as measured.
        let jpeg = follow(&app, &ann, &format!("/photos/{public}/{name}")).await.bytes().await.expect("bytes");
        assert!(avif.len() < jpeg.len(), "{name}: AVIF {} bytes, JPEG {}", avif.len(), jpeg.len());
    }

    // A private twin: streamed by Shoebox to its owner, with the JPEG's headers and checks.
    let path = format!("/photos/{private}/display.avif");
    assert_eq!(urls(&ann, &private).await["display.avif"], path);
    let res = ann.get(&path).await;
    assert_eq!(res.status(), StatusCode::OK);
    let h = res.headers().clone();
    assert_eq!(h[CONTENT_TYPE], "image/avif");
    assert_eq!(h[X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert_eq!(h[CONTENT_DISPOSITION], "inline; filename=\"photo.avif\"");
    assert_eq!(h["cache-control"], "private, no-cache");
    let etag = h[ETAG].to_str().expect("etag").to_owned();
    assert!(is_avif(&res.bytes().await.expect("bytes")));
    let again = ann.client.get(ann.url(&path)).header(IF_NONE_MATCH, &etag).send().await.expect("GET");
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    let anonymous = app.new_browser().get(app.url(&path)).send().await.expect("GET");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert!(!is_avif(&anonymous.bytes().await.expect("body")));
    let bob = app.sign_up_elsewhere("bob@example.com").await;
    let other = bob.get(&path).await;
    assert_eq!(other.status(), StatusCode::FORBIDDEN);
    assert!(!is_avif(&other.bytes().await.expect("body")));

    // The pages offer AVIF first, then WebP, and keep the JPEG as the <img>.
    ann.attach(&public, serde_json::json!({})).await;
    let home = ann.get("/").await.text().await.expect("home");
    let avif = attr_after(&home, "<source type=\"image/avif\"", "srcset").expect("an AVIF <source> on the grid");
    assert!(avif.contains("/thumb-") && avif.contains(".avif 1x") && avif.contains(".avif 2x"), "{avif}");
    let first = |t: &str| home.find(&format!("<source type=\"{t}\""));
    assert!(first("image/avif").is_some() && first("image/avif") < first("image/webp"), "AVIF comes first");
    let page = ann.get(&format!("/photos/{private}")).await.text().await.expect("photo page");
    assert_eq!(attr_after(&page, "<source type=\"image/avif\"", "srcset"), Some(path));
    assert_eq!(attr_after(&page, "<img class=\"photo\"", "src"), Some(format!("/photos/{private}/display")));
}

async fn an_avif_twin_not_made_is_404_never_made_by_a_request_and_resize_all_makes_it(app: TestApp) {
    use shoebox::jobs::resize_all::{Options, resize_all};
    let ann = app.sign_up("ann@example.com").await;
    let id = upload(&ann, "avatar", "orientation/Portrait_5.jpg").await;
    wait_for_avif(&app, &id).await;
    let folder = forget_avif(&app, &id).await;

    // Not made: the route says so and makes nothing, the API and the pages do not offer it.
    let writes = app.shoebox.variant_writes();
    for name in ["thumb.avif", "display.avif"] {
        let res = ann.get(&format!("/photos/{id}/{name}")).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{name}");
        assert!(res.text().await.expect("text").contains("not_made_yet"), "{name}");
    }
    let avif_rows = "select count(*) from shoebox_variants where photo_id = $1 and name like '%.avif'";
    assert_eq!(app.number(avif_rows, &[Arg::S(id.clone())]).await, 0, "no claim either");
    assert_eq!(app.shoebox.variant_writes(), writes);
    assert!(avif_keys(&app, "shoebox-public", &folder).is_empty());
    let urls = urls(&ann, &id).await;
    assert!(urls.get("display.webp").is_some() && urls.get("display.avif").is_none(), "{urls}");
    ann.attach(&id, serde_json::json!({})).await;
    let (webp, avif) = ("<source type=\"image/webp\"", "<source type=\"image/avif\"");
    let home = ann.get("/").await.text().await.expect("home");
    assert!(home.contains(webp) && !home.contains(avif), "{home}");
    let page = ann.get(&format!("/photos/{id}")).await.text().await.expect("page");
    assert!(page.contains(webp) && !page.contains(avif), "{page}");

    // resize-all makes the missing twins (and only them).
    let quiet = |_: shoebox::jobs::resize_all::Progress<'_>| {};
    let run = resize_all(&app.shoebox, &Options::default(), &quiet).await.expect("run");
    assert_eq!((run.photos, run.made, run.skipped, run.failed), (1, 2, 4, 0), "{run:?}");
    assert_eq!(avif_keys(&app, "shoebox-public", &folder).len(), 2);
    let avif = follow(&app, &ann, &format!("/photos/{id}/display.avif")).await;
    assert_eq!(avif.headers()[CONTENT_TYPE], "image/avif");
    assert!(is_avif(&avif.bytes().await.expect("bytes")));
    let page = ann.get(&format!("/photos/{id}")).await.text().await.expect("page");
    assert!(attr_after(&page, "<source type=\"image/avif\"", "srcset").is_some_and(|s| s.ends_with(".avif")), "{page}");
}

/// resize-all runs while completion's background task makes the same twins: each is
/// written once.
async fn resize_all_beside_the_background_task_writes_each_avif_twin_once(app: TestApp) {
    use shoebox::jobs::resize_all::{Options, resize_all};
    let ann = app.sign_up("ann@example.com").await;
    let before = app.shoebox.variant_writes();
    let id = upload(&ann, "avatar", "orientation/Landscape_3.jpg").await;
    // Completion's background task is under way; two resize-all runs join in.
    let quiet = |_: shoebox::jobs::resize_all::Progress<'_>| {};
    let options = Options::default();
    let (a, b) = tokio::join!(resize_all(&app.shoebox, &options, &quiet), resize_all(&app.shoebox, &options, &quiet));
    let (a, b) = (a.expect("first run"), b.expect("second run"));
    assert_eq!((a.failed, b.failed), (0, 0), "{a:?} {b:?}");
    wait_for_avif(&app, &id).await;
    assert_eq!(app.shoebox.variant_writes() - before, 6, "two JPEGs, two WebP and two AVIF, each written once");
    for name in ["thumb.avif", "display.avif"] {
        let sql = "select count(*) from shoebox_variants where photo_id = $1 and name = $2";
        assert_eq!(app.number(sql, &[Arg::S(id.clone()), Arg::S(name.into())]).await, 1, "{name}");
    }
    let photo = app.shoebox.photo(id.parse().expect("id")).await.expect("get").expect("photo");
    let folder = photo.object_key.expect("verified").rsplit_once('/').expect("folder").0.to_owned();
    assert_eq!(avif_keys(&app, "shoebox-public", &folder).len(), 2);
}

with_avif!(
    completion_makes_avif_twins_in_the_background_served_as_avif_with_the_jpegs_checks,
    an_avif_twin_not_made_is_404_never_made_by_a_request_and_resize_all_makes_it,
    resize_all_beside_the_background_task_writes_each_avif_twin_once,
);
