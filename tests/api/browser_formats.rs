//! WebP twins in a real headless Chromium (issue 16, items 3 and 6): the grid and the photo
//! page offer them through `<picture><source type="image/webp">`, Chromium takes them, and
//! with the `<source>` gone (as for a browser that takes no WebP) the `<img>` still loads
//! its JPEG. AVIF twins, once made in the background, come first and Chromium takes them.

use fantoccini::{Client, Locator};
use serde_json::Value;

use crate::browser::{connect, screenshot, start_chromedriver, wait_for};
use crate::formats::{spawn, spawn_avif, wait_for_avif, wait_for_renditions};
use crate::helpers::{Backend, photo};

/// The `currentSrc` and `naturalWidth` of the `<img>` that `selector` finds, once loaded.
async fn loaded(c: &Client, selector: &str) -> (String, u64) {
    let script = "const i = document.querySelector(arguments[0]);\
                  return i && i.complete && i.naturalWidth > 0 ? [i.currentSrc, i.naturalWidth] : null;";
    wait_for(20, selector, || async {
        let v: Value = c.execute(script, vec![Value::from(selector)]).await.ok()?;
        Some((v.get(0)?.as_str()?.to_owned(), v.get(1)?.as_u64()?))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_takes_webp_through_picture_and_falls_back_to_the_jpeg() {
    // A kind configured with WebP twins (they are off by default).
    let app = spawn(Backend::Postgres).await;
    let user = app.sign_up("ann@example.com").await;
    let public = user.upload("avatar", photo("orientation/Landscape_1.jpg"), "image/jpeg").await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let private = user.upload("id_document", photo("orientation/Portrait_3.jpg"), "image/jpeg").await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    for id in [&public, &private] {
        wait_for_renditions(&app, id).await;
    }

    let driver = start_chromedriver();
    let profile = tempfile::tempdir().expect("profile dir");
    let c = connect(&driver, profile.path()).await;
    c.goto(&app.url("/login")).await.expect("login page");
    c.find(Locator::Css("input[name=email]")).await.expect("email").send_keys("ann@example.com").await.expect("type");
    let password = c.find(Locator::Css("input[name=password]")).await.expect("password");
    password.send_keys("correct horse battery").await.expect("type");
    c.find(Locator::Css("form.account button")).await.expect("submit").click().await.expect("click");
    wait_for(10, "the home page", || async { c.find(Locator::Css("meta[name=csrf-token]")).await.ok().map(|_| ()) })
        .await;

    // The grid: each tile's thumb in WebP, the public one from the bucket, the private one
    // streamed by Shoebox; the <img> itself still names the JPEG.
    c.goto(&app.url("/")).await.expect("home");
    let (src, width) = loaded(&c, &format!("img[data-photo-id='{public}']")).await;
    assert!(src.starts_with(&app.s3_endpoint) && src.contains("/thumb-") && src.ends_with(".webp"), "{src}");
    assert_eq!(width, 320);
    let (src, width) = loaded(&c, &format!("img[data-photo-id='{private}']")).await;
    assert!(src.ends_with(&format!("/photos/{private}/thumb.webp")), "{src}");
    assert_eq!(width, 213);
    let fallback = c
        .execute(
            &format!("return document.querySelector(\"img[data-photo-id='{public}']\").getAttribute('src');"),
            vec![],
        )
        .await
        .expect("src attribute");
    assert!(fallback.as_str().is_some_and(|s| s.ends_with(".jpg")), "the fallback src is the JPEG: {fallback}");
    screenshot(&c, "grid-webp").await;

    // The photo page: the display size in WebP.
    c.goto(&app.url(&format!("/photos/{public}"))).await.expect("photo page");
    let (src, width) = loaded(&c, "img.photo").await;
    assert!(src.ends_with(&format!("/photos/{public}/display.webp")), "{src}");
    assert_eq!(width, 1280);

    // A browser that takes no WebP skips the <source>: without it, the same page loads the JPEG.
    c.execute("document.querySelectorAll('picture source').forEach(s => s.remove());", vec![])
        .await
        .expect("remove the sources");
    let jpeg = wait_for(20, "the JPEG fallback", || async {
        let (src, width) = loaded(&c, "img.photo").await;
        src.ends_with(&format!("/photos/{public}/display")).then_some(width)
    })
    .await;
    assert_eq!(jpeg, 1280);
    c.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_takes_avif_through_picture_once_made() {
    let app = spawn_avif(Backend::Postgres).await;
    let user = app.sign_up("ann@example.com").await;
    let public = user.upload("avatar", photo("orientation/Landscape_1.jpg"), "image/jpeg").await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let private = user.upload("id_document", photo("orientation/Portrait_3.jpg"), "image/jpeg").await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    for id in [&public, &private] {
        wait_for_avif(&app, id).await;
    }

    let driver = start_chromedriver();
    let profile = tempfile::tempdir().expect("profile dir");
    let c = connect(&driver, profile.path()).await;
    c.goto(&app.url("/login")).await.expect("login page");
    c.find(Locator::Css("input[name=email]")).await.expect("email").send_keys("ann@example.com").await.expect("type");
    let password = c.find(Locator::Css("input[name=password]")).await.expect("password");
    password.send_keys("correct horse battery").await.expect("type");
    c.find(Locator::Css("form.account button")).await.expect("submit").click().await.expect("click");
    wait_for(10, "the home page", || async { c.find(Locator::Css("meta[name=csrf-token]")).await.ok().map(|_| ()) })
        .await;

    // The grid: AVIF thumbs, decoded by Chromium to their real size.
    c.goto(&app.url("/")).await.expect("home");
    let (src, width) = loaded(&c, &format!("img[data-photo-id='{public}']")).await;
    assert!(src.starts_with(&app.s3_endpoint) && src.contains("/thumb-") && src.ends_with(".avif"), "{src}");
    assert_eq!(width, 320);
    let (src, width) = loaded(&c, &format!("img[data-photo-id='{private}']")).await;
    assert!(src.ends_with(&format!("/photos/{private}/thumb.avif")), "{src}");
    assert_eq!(width, 213);
    screenshot(&c, "grid-avif").await;

    // The photo page: the display size in AVIF (a 480 px box in these kinds).
    c.goto(&app.url(&format!("/photos/{private}"))).await.expect("photo page");
    let (src, width) = loaded(&c, "img.photo").await;
    assert!(src.ends_with(&format!("/photos/{private}/display.avif")), "{src}");
    assert_eq!(width, 320);

    // Without the AVIF <source> (a browser that takes no AVIF), the WebP is next.
    c.execute("document.querySelectorAll('picture source[type=\"image/avif\"]').forEach(s => s.remove());", vec![])
        .await
        .expect("remove the AVIF sources");
    let webp = wait_for(20, "the WebP fallback", || async {
        let (src, width) = loaded(&c, "img.photo").await;
        src.ends_with(&format!("/photos/{private}/display.webp")).then_some(width)
    })
    .await;
    assert_eq!(webp, 320);
    c.close().await.expect("close");
}
