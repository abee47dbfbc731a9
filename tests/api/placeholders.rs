//! Placeholders: made at verification from the photo's own decode, in the API's JSON as
//! base64, drawn into the pages as a tiny PNG under every image (with the image's upright
//! width and height), filled in by resize-all for photos verified before them, and shown for a
//! private photo only to those who may see the photo itself.

use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::Value;
use shoebox::jobs::resize_all::{Options, resize_all};

use crate::helpers::{Arg, TestApp, photo};

fn base64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(s).expect("base64")
}

/// The `(width, height)` a tag carries, from its `width="…" height="…"` attributes.
fn size_attrs(tag: &str) -> Option<(u32, u32)> {
    let attr = |name: &str| {
        let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
        tag[start..].split('"').next()?.parse::<u32>().ok()
    };
    Some((attr("width")?, attr("height")?))
}

/// Every `<img …>` tag of a page with this class.
fn img_tags<'a>(html: &'a str, class: &str) -> Vec<&'a str> {
    html.split("<img ")
        .skip(1)
        .map(|rest| &rest[..rest.find('>').expect("tag end")])
        .filter(|tag| tag.contains(&format!("class=\"{class}\"")))
        .collect()
}

/// The PNG behind a placeholder `<img>`'s data URL, decoded.
fn placeholder_image(tag: &str) -> image::RgbaImage {
    let src = tag.split("src=\"").nth(1).and_then(|s| s.split('"').next()).expect("src");
    let b64 = src.strip_prefix("data:image/png;base64,").unwrap_or_else(|| panic!("a PNG data URL: {src}"));
    image::load_from_memory(&base64(b64)).expect("a PNG").to_rgba8()
}

/// A portrait photo whose pixels are stored on their side (EXIF orientation 6): the API, the
/// pages' attributes and the placeholder all say portrait.
async fn a_placeholder_is_made_at_verification_upright_and_shown_on_the_pages(app: TestApp) {
    let ann = app.sign_up("ann@example.com").await;
    let done = ann.upload("avatar", photo("orientation/Portrait_6.jpg"), "image/jpeg").await;
    let id = done["id"].as_str().expect("id").to_owned();
    let hash = base64(done["placeholder"].as_str().expect("a placeholder as soon as it is verified"));
    assert!((5..=30).contains(&hash.len()), "about 25 bytes: {}", hash.len());
    let (w, h) = (done["width"].as_u64().expect("w"), done["height"].as_u64().expect("h"));
    assert!(h > w, "displayed upright: {w}x{h}");
    let got: Value = ann.get(&format!("/api/photos/{id}")).await.json().await.expect("json");
    assert_eq!(got["photo"]["placeholder"], done["placeholder"]);

    // The grid: the thumb and its placeholder carry the upright size.
    let html = ann.get("/").await.text().await.expect("html");
    let thumbs = img_tags(&html, "thumb");
    assert_eq!(thumbs.len(), 1, "{html}");
    assert_eq!(size_attrs(thumbs[0]), Some((w as u32, h as u32)), "{}", thumbs[0]);
    let placeholders = img_tags(&html, "placeholder");
    assert_eq!(placeholders.len(), 1, "{html}");
    assert!(placeholders[0].contains("alt=\"\""), "decorative: {}", placeholders[0]);
    let tile = placeholder_image(placeholders[0]);
    assert!(tile.height() > tile.width(), "the placeholder is portrait too: {:?}", tile.dimensions());

    // The photo page: the same.
    let html = ann.get(&format!("/photos/{id}")).await.text().await.expect("html");
    let shown = img_tags(&html, "photo");
    assert_eq!(shown.len(), 1, "{html}");
    assert_eq!(size_attrs(shown[0]), Some((w as u32, h as u32)), "{}", shown[0]);
    let under = img_tags(&html, "placeholder");
    assert_eq!(under.len(), 1, "{html}");
    assert_eq!(size_attrs(under[0]), Some((w as u32, h as u32)));
    let page = placeholder_image(under[0]);
    assert!(page.height() > page.width());
    // Not a flat grey: the photo's own colours (some pixels differ from others).
    let first = page.get_pixel(0, 0).0;
    assert!(page.pixels().any(|p| p.0 != first), "the placeholder has shapes");
}

/// A private photo's placeholder shows colours and shapes: only its uploader (whom the kind
/// lets see it) gets it, in the API, on the pages and from the library.
async fn a_private_photos_placeholder_is_shown_only_where_the_photo_may_be_seen(app: TestApp) {
    let ann = app.sign_up("ann@example.com").await;
    let bob = app.sign_up_elsewhere("bob@example.com").await;
    let done = ann.upload("id_document", photo("camera/nikon-d3100_4608x3072.jpg"), "image/jpeg").await;
    let id = done["id"].as_str().expect("id").to_owned();
    assert!(done["placeholder"].is_string(), "the uploader gets it: {done}");

    let res = bob.get(&format!("/api/photos/{id}")).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let body = res.text().await.expect("body");
    assert!(!body.contains("placeholder"), "{body}");
    let res = app.new_browser().get(app.url(&format!("/api/photos/{id}"))).send().await.expect("GET");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(!res.text().await.expect("body").contains("placeholder"));
    let res = bob.get(&format!("/photos/{id}")).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let html = res.text().await.expect("html");
    assert!(!html.contains("data:image/png"), "no placeholder on someone else's error page: {html}");
    assert!(img_tags(&bob.get("/").await.text().await.expect("html"), "placeholder").is_empty());

    let html = ann.get(&format!("/photos/{id}")).await.text().await.expect("html");
    assert_eq!(img_tags(&html, "placeholder").len(), 1, "the uploader sees it: {html}");

    // The library's own rule, for a host's pages.
    let row = app.shoebox.photo(id.parse().expect("id")).await.expect("get").expect("photo");
    let ann_id = row.uploader.clone();
    assert!(app.shoebox.placeholder_for(Some(&ann_id), &row).await.is_some());
    let someone = shoebox::UserId::new("someone-else").expect("id");
    assert_eq!(app.shoebox.placeholder_for(Some(&someone), &row).await, None);
    assert_eq!(app.shoebox.placeholder_for(None, &row).await, None);
    // A public photo's is anyone's, as its bytes are.
    let public = ann.upload("avatar", photo("orientation/Landscape_1.jpg"), "image/jpeg").await;
    let row = app.shoebox.photo(public["id"].as_str().expect("id").parse().expect("id")).await.expect("get");
    assert!(app.shoebox.placeholder_for(None, &row.expect("photo")).await.is_some());
}

/// Photos verified before placeholders existed get theirs from resize-all, once.
async fn resize_all_fills_in_the_placeholders_of_older_photos(app: TestApp) {
    let ann = app.sign_up("ann@example.com").await;
    let mut ids = Vec::new();
    for file in ["orientation/Landscape_6.jpg", "camera/oppo-r7-plus_3120x4160_420.jpg"] {
        let done = ann.upload("avatar", photo(file), "image/jpeg").await;
        ids.push(done["id"].as_str().expect("id").to_owned());
    }
    for id in &ids {
        crate::variants::wait_for_variants(&app, id).await;
    }
    // As a database migrated from before placeholders has them.
    let cleared = app.execute("update shoebox_photos set placeholder = null", &[]).await;
    assert_eq!(cleared, 2);
    let got: Value = ann.get(&format!("/api/photos/{}", ids[0])).await.json().await.expect("json");
    assert!(got["photo"]["placeholder"].is_null(), "none yet: {got}");
    let html = ann.get("/").await.text().await.expect("html");
    assert!(img_tags(&html, "placeholder").is_empty(), "a page without one still works");
    assert_eq!(img_tags(&html, "thumb").len(), 2);

    let quiet = |_: shoebox::jobs::resize_all::Progress<'_>| {};
    let first = resize_all(&app.shoebox, &Options::default(), &quiet).await.expect("run");
    assert_eq!((first.photos, first.placeholders, first.made, first.failed), (2, 2, 0, 0), "{first:?}");
    for id in &ids {
        let got: Value = ann.get(&format!("/api/photos/{id}")).await.json().await.expect("json");
        let hash = base64(got["photo"]["placeholder"].as_str().expect("filled in"));
        assert!((5..=30).contains(&hash.len()));
    }
    let stored = "select count(*) from shoebox_photos where placeholder is not null and photo_id = $1";
    assert_eq!(app.number(stored, &[Arg::S(ids[1].clone())]).await, 1);
    // Upright from the original too: Landscape_6 is stored on its side.
    let html = ann.get(&format!("/photos/{}", ids[0])).await.text().await.expect("html");
    let under = img_tags(&html, "placeholder");
    let image = placeholder_image(under[0]);
    assert!(image.width() > image.height(), "landscape: {:?}", image.dimensions());

    let again = resize_all(&app.shoebox, &Options::default(), &quiet).await.expect("run");
    assert_eq!(again.placeholders, 0, "filled once: {again:?}");
}

/// A kind without variants: verification's plain check (a whole decode at the smallest scale)
/// makes the placeholder, and still refuses a damaged file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kind_without_variants_gets_its_placeholder_from_the_plain_check() {
    let mut plain = shoebox_app::settings::example_kinds()[0].clone();
    plain.name = "plain".into();
    plain.latest_only = false;
    plain.variants = Some(Vec::new());
    let app = TestApp::spawn_with_kinds(crate::helpers::Backend::Sqlite, vec![plain]).await;
    let ann = app.sign_up("ann@example.com").await;
    let done = ann.upload("plain", photo("camera/leica-t-typ701_4928x3264_orient8.jpg"), "image/jpeg").await;
    let hash = base64(done["placeholder"].as_str().expect("a placeholder without variants"));
    assert!((5..=30).contains(&hash.len()));
    assert!(done["height"].as_u64() > done["width"].as_u64(), "orientation 8 turns it upright: {done}");
    let html = ann.get(&format!("/photos/{}", done["id"].as_str().expect("id"))).await.text().await.expect("html");
    let image = placeholder_image(img_tags(&html, "placeholder")[0]);
    assert!(image.height() > image.width(), "upright: {:?}", image.dimensions());

    let damaged = photo("hostile/truncated-35pct_nikon-d3100.jpg");
    let (id, url, fields) = ann.signed_form("plain", damaged.len()).await;
    let posted = crate::helpers::post_to_bucket(&url, &fields, damaged, "image/jpeg").await;
    assert_eq!(posted.status(), StatusCode::CREATED);
    let res = ann.complete(&id).await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(res.json::<Value>().await.expect("json")["error"], "truncated");
}

both_backends!(
    a_placeholder_is_made_at_verification_upright_and_shown_on_the_pages,
    a_private_photos_placeholder_is_shown_only_where_the_photo_may_be_seen,
    resize_all_fills_in_the_placeholders_of_older_photos,
);
