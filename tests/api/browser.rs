//! The upload page in a real headless Chromium, driven through chromedriver: sign up, drop a
//! full-size camera JPEG on the page, watch the progress bar reach 100 %, save it, find it on
//! the home page.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::{Backend, TestApp};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// chromedriver as a child process, killed when dropped.
pub(crate) struct Driver {
    child: Child,
    pub(crate) port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn start_chromedriver() -> Driver {
    let port = TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("addr").port();
    let child = Command::new(std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into()))
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver must be installed (apt-get install chromium chromium-driver; .ci/run does it)");
    Driver { child, port }
}

pub(crate) async fn connect(driver: &Driver, profile: &std::path::Path) -> Client {
    connect_with(driver, profile, serde_json::Map::new()).await
}

/// [`connect`] with further WebDriver capabilities (for example a page-load strategy).
pub(crate) async fn connect_with(
    driver: &Driver,
    profile: &std::path::Path,
    mut caps: serde_json::Map<String, serde_json::Value>,
) -> Client {
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--window-size=1280,900", "--force-device-scale-factor=1",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let attempt = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{}", driver.port))
            .await;
        match attempt {
            Ok(c) => return c,
            Err(e) if Instant::now() > deadline => panic!("chromedriver did not start: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Save a screenshot when SHOEBOX_SCREENSHOTS names a folder, to look at the pages by eye.
pub(crate) async fn screenshot(c: &Client, name: &str) {
    if let Ok(dir) = std::env::var("SHOEBOX_SCREENSHOTS") {
        let png = c.screenshot().await.expect("screenshot");
        std::fs::write(std::path::Path::new(&dir).join(format!("{name}.png")), png).expect("write screenshot");
    }
}

/// Poll `check` until it returns Some, or fail after `secs`.
pub(crate) async fn wait_for<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_uploads_a_camera_photo_through_the_page_and_finds_it_on_the_home_page() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let driver = start_chromedriver();
    let profile = tempfile::tempdir().expect("profile dir");
    let c = connect(&driver, profile.path()).await;

    // Sign up through the real form.
    c.goto(&app.url("/signup")).await.expect("signup page");
    c.find(Locator::Css("input[name=email]")).await.expect("email").send_keys("ann@example.com").await.expect("type");
    c.find(Locator::Css("input[name=password]"))
        .await
        .expect("password")
        .send_keys("correct horse battery")
        .await
        .expect("type");
    c.find(Locator::Css("form.account button")).await.expect("submit").click().await.expect("click");
    wait_for(10, "the home page", || async { c.find(Locator::Css("meta[name=csrf-token]")).await.ok().map(|_| ()) })
        .await;

    // Choose a 22-megapixel camera JPEG on the upload page.
    c.goto(&app.url("/upload?kind=avatar")).await.expect("upload page");
    let camera = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/testdata/photos/camera/canon-eos-5d-mark-iii_5760x3840.jpg")
        .canonicalize()
        .expect("camera photo");
    c.find(Locator::Id("file"))
        .await
        .expect("file input")
        .send_keys(&camera.to_string_lossy())
        .await
        .expect("choose file");
    wait_for(10, "the preview", || async {
        let hidden = c.find(Locator::Css("#files .preview")).await.ok()?.attr("hidden").await.ok()?;
        hidden.is_none().then_some(())
    })
    .await;
    // The first send to the bucket fails as a dropped connection would (a fault a real server
    // cannot produce on demand): the page says so and offers a retry, which then works.
    c.execute(
        "const send = XMLHttpRequest.prototype.send; let failed = false;\
         XMLHttpRequest.prototype.send = function (body) {\
           if (failed) return send.call(this, body);\
           failed = true; setTimeout(() => this.dispatchEvent(new ProgressEvent('error')), 10);\
         };",
        vec![],
    )
    .await
    .expect("inject the fault");
    c.find(Locator::Id("upload-button")).await.expect("upload button").click().await.expect("click");
    let dropped = wait_for(30, "the retry button", || async {
        let retry = c.find(Locator::Css("#files .retry")).await.ok()?;
        retry.is_displayed().await.ok()?.then_some(())?;
        c.find(Locator::Css("#files .file-status")).await.ok()?.text().await.ok()
    })
    .await;
    assert!(dropped.contains("interrupted"), "{dropped}");
    c.find(Locator::Css("#files .retry")).await.expect("retry").click().await.expect("click");

    // The progress bar fills, the photo is checked, and Save appears.
    let shown = wait_for(60, "the upload to finish", || async {
        let status = c.find(Locator::Css("#files .file-status")).await.ok()?.text().await.ok()?;
        if status.contains("refused") || status.contains("Try again") || status.contains("server answered") {
            panic!("the page reported an error: {status}");
        }
        let save = c.find(Locator::Id("save-button")).await.ok()?;
        save.is_displayed().await.ok()?.then_some(())?;
        // Read again: the status read above may predate the answer that showed Save.
        c.find(Locator::Id("status")).await.ok()?.text().await.ok()
    })
    .await;
    assert!(shown.contains("Uploaded"), "{shown}");
    screenshot(&c, "upload-done").await;
    let progress = c.execute("return document.querySelector('#files progress').value;", vec![]).await.expect("value");
    assert_eq!(progress.as_f64(), Some(100.0), "the progress bar reached 100 %");
    let text = c.find(Locator::Css("#files .progress-text")).await.expect("text").text().await.expect("text");
    assert_eq!(text, "100 %");

    // Save it, land on the home page, and see the image load from the bucket.
    c.find(Locator::Id("save-button")).await.expect("save").click().await.expect("click");
    let img = wait_for(10, "the photo on the home page", || async {
        c.find(Locator::Css("section[data-kind=avatar] img")).await.ok()
    })
    .await;
    let src = img.attr("src").await.expect("src").expect("has src");
    // Its thumb: straight from the bucket once made, or the route that redirects there.
    assert!(
        src.starts_with(&app.s3_endpoint) && src.contains("/thumb-") || src.ends_with("/thumb"),
        "public photo's thumb served from the bucket: {src}"
    );
    let loaded = wait_for(10, "the image to load", || async {
        let v = c.execute("const i = document.querySelector('section[data-kind=avatar] img'); return i.complete ? i.naturalWidth : 0;", vec![]).await.ok()?;
        v.as_u64().filter(|w| *w > 0)
    })
    .await;
    assert!(loaded > 0);
    screenshot(&c, "home").await;

    // The browser shrank the 5760 × 3840 photo to 2560 px on its longer side before uploading,
    // and the server recorded it as in use.
    let id = img.attr("data-photo-id").await.expect("attr").expect("photo id");
    let photo: Value =
        app.client.get(app.url(&format!("/api/photos/{id}"))).send().await.expect("api").json().await.expect("json");
    assert_eq!(photo["photo"]["state"], "in_use");
    assert_eq!(photo["photo"]["width"], 2560);
    assert_eq!(photo["photo"]["height"], 1707);

    // A file that is not a photo: the page says why in plain words and offers a retry.
    c.goto(&app.url("/upload?kind=avatar")).await.expect("upload page");
    let disguised = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/testdata/photos/hostile/svg-with-script.jpg")
        .canonicalize()
        .expect("hostile file");
    c.find(Locator::Id("file"))
        .await
        .expect("file input")
        .send_keys(&disguised.to_string_lossy())
        .await
        .expect("choose");
    c.find(Locator::Id("upload-button")).await.expect("upload button").click().await.expect("click");
    let message = wait_for(30, "the refusal", || async {
        let status = c.find(Locator::Css("#files .file-status")).await.ok()?;
        status.attr("class").await.ok()??.contains("error").then_some(())?;
        status.text().await.ok()
    })
    .await;
    assert!(message.contains("SVG drawing, not a photo"), "{message}");
    let shown = |css: &'static str| {
        let c = c.clone();
        async move { c.find(Locator::Css(css)).await.expect("element").is_displayed().await.expect("displayed?") }
    };
    // Retrying the same file would get the same answer: the page asks for another file instead.
    assert!(!shown("#save-button").await && !shown("#files .retry").await && !shown("#files .preview").await);
    screenshot(&c, "upload-refused").await;

    c.close().await.expect("close browser");
}
