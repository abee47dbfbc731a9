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
