//! Several photos at once on the upload page, in a real headless Chromium: five dropped
//! together (one of them hostile) go three at a time, four are saved and one is refused with
//! its reason; and the signing limit's 429 is waited out as its `Retry-After` says.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use fantoccini::{Client, Locator};
use serde_json::Value;

use crate::browser::{connect, screenshot, start_chromedriver, wait_for};
use crate::helpers::{Arg, Backend, TestApp};

/// A file of the shared photo set, as a path the browser can be handed.
pub(crate) fn test_photo(rel: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/testdata/photos")
        .join(rel)
        .canonicalize()
        .unwrap_or_else(|e| panic!("{rel}: {e}"))
        .to_string_lossy()
        .into_owned()
}

/// Sign up through the real form and wait for the signed-in home page.
pub(crate) async fn sign_up_in_browser(c: &Client, app: &TestApp, email: &str) {
    c.goto(&app.url("/signup")).await.expect("signup page");
    c.find(Locator::Css("input[name=email]")).await.expect("email").send_keys(email).await.expect("type");
    c.find(Locator::Css("input[name=password]"))
        .await
        .expect("password")
        .send_keys("correct horse battery")
        .await
        .expect("type");
    c.find(Locator::Css("form.account button")).await.expect("submit").click().await.expect("click");
    wait_for(10, "the home page", || async { c.find(Locator::Css("meta[name=csrf-token]")).await.ok().map(|_| ()) })
        .await;
}

/// Choose `paths` with the page's file picker, all in one go.
pub(crate) async fn pick(c: &Client, paths: &[String]) {
    // chromedriver takes several files for an `<input multiple>` as lines of one string.
    c.find(Locator::Id("file")).await.expect("file input").send_keys(&paths.join("\n")).await.expect("choose files");
}

/// Drop `paths` on the page's drop zone, as a person dragging them from a file manager: the
/// files are read through a picker of the test's own, then dropped as a `DataTransfer`.
async fn drop_files(c: &Client, paths: &[String]) {
    c.execute(
        "const i = document.createElement('input'); i.type = 'file'; i.multiple = true; i.id = 'test-picker';\
         document.body.appendChild(i);",
        vec![],
    )
    .await
    .expect("add the test's picker");
    c.find(Locator::Id("test-picker")).await.expect("picker").send_keys(&paths.join("\n")).await.expect("read files");
    let dropped = c
        .execute(
            "const picker = document.getElementById('test-picker');\
             const dt = new DataTransfer(); for (const f of picker.files) dt.items.add(f);\
             const zone = document.getElementById('drop-zone');\
             for (const t of ['dragenter', 'dragover', 'drop'])\
               zone.dispatchEvent(new DragEvent(t, { dataTransfer: dt, bubbles: true, cancelable: true }));\
             picker.remove(); return dt.files.length;",
            vec![],
        )
        .await
        .expect("drop");
    assert_eq!(dropped.as_u64(), Some(paths.len() as u64));
}

/// Each file on the page: name line, `data-state`, status sentence, status class, progress
/// value and text, and whether its retry button shows.
async fn files_on_page(c: &Client) -> Vec<Value> {
    let v = c
        .execute(
            "return Array.from(document.querySelectorAll('#files li.file')).map((li) => ({\
               name: li.querySelector('.file-name').textContent,\
               state: li.dataset.state,\
               status: li.querySelector('.file-status').textContent,\
               statusClass: li.querySelector('.file-status').className,\
               progress: li.querySelector('progress').value,\
               progressText: li.querySelector('.progress-text').textContent,\
               progressLabel: li.querySelector('progress').getAttribute('aria-label'),\
               retryShown: !li.querySelector('.retry').hidden,\
             }));",
            vec![],
        )
        .await
        .expect("files");
    v.as_array().expect("array").clone()
}

/// Wait until no file is queued, under way or waiting, and return them all.
async fn settled(c: &Client, secs: u64) -> Vec<Value> {
    wait_for(secs, "every file to finish", || async {
        let files = files_on_page(c).await;
        let busy = files.iter().any(|f| matches!(f["state"].as_str(), Some("queued" | "working" | "waiting")));
        (!busy && !files.is_empty()).then_some(files)
    })
    .await
}

fn now_millis() -> i64 {
    i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_millis()).expect("fits")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_photos_dropped_at_once_go_three_at_a_time_and_the_hostile_one_is_refused_without_stopping_the_rest() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let driver = start_chromedriver();
    let profile = tempfile::tempdir().expect("profile dir");
    let c = connect(&driver, profile.path()).await;
    sign_up_in_browser(&c, &app, "ann@example.com").await;

    c.goto(&app.url("/upload?kind=id_document")).await.expect("upload page");
    let multiple = c.execute("return document.getElementById('file').multiple;", vec![]).await.expect("multiple");
    assert_eq!(multiple, Value::Bool(true), "the script lets the picker take several files");
    let label = c.find(Locator::Css("label[for=file]")).await.expect("label").text().await.expect("text");
    assert_eq!(label, "Choose photos");
    // How many files are under way at once, at the most: recorded by the page itself at every
    // change of a file's state.
    c.execute(
        "window.mostAtOnce = 0; new MutationObserver(() => {\
           const n = document.querySelectorAll('#files li[data-state=working], #files li[data-state=waiting]').length;\
           window.mostAtOnce = Math.max(window.mostAtOnce, n);\
         }).observe(document.getElementById('files'), { subtree: true, childList: true, attributes: true, attributeFilter: ['data-state'] });",
        vec![],
    )
    .await
    .expect("observer");

    // Four camera photos (each shrunk in the browser first: all are over 2560 px) and an SVG
    // with a script that calls itself a JPEG.
    let names = [
        "camera/canon-eos-5d_2912x4368_portrait.jpg",
        "camera/leica-t-typ701_4928x3264_orient8.jpg",
        "hostile/svg-with-script.jpg",
        "camera/samsung-galaxy-s7-edge_4032x3024.jpg",
        "camera/oppo-r7-plus_3120x4160_420.jpg",
    ];
    let paths: Vec<String> = names.iter().map(|n| test_photo(n)).collect();
    drop_files(&c, &paths).await;
    let chosen = files_on_page(&c).await;
    assert_eq!(chosen.len(), 5, "{chosen:?}");
    for (f, n) in chosen.iter().zip(names) {
        let file = n.rsplit('/').next().expect("name");
        assert!(f["name"].as_str().expect("name").starts_with(file), "{f}");
        assert_eq!(f["state"], "ready", "{f}");
        assert_eq!(f["progressLabel"], format!("Upload of {file}"), "each bar says which file it is for");
    }
    let previews = c
        .execute("return document.querySelectorAll('#files .preview:not([hidden])').length;", vec![])
        .await
        .expect("previews");
    assert!(previews.as_u64() >= Some(4), "each photo shows its own preview: {previews}");
    let button = c.find(Locator::Id("upload-button")).await.expect("upload button");
    assert_eq!(button.text().await.expect("text"), "Upload 5 photos");
    // The first file to reach the bucket loses its connection, as a dropped one would (a
    // fault a real server cannot produce on demand): that file offers a retry, the rest go on.
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
    button.click().await.expect("click");

    // Camera photos are decoded and shrunk in the browser: minutes on a loaded two-core machine.
    let files = settled(&c, 240).await;
    let state = |f: &Value| f["state"].as_str().unwrap_or_default().to_owned();
    let failed: Vec<&Value> = files.iter().filter(|f| state(f) == "failed").collect();
    assert_eq!(failed.len(), 1, "{files:#?}");
    assert!(failed[0]["status"].as_str().expect("status").contains("interrupted"), "{}", failed[0]);
    assert_eq!(failed[0]["retryShown"], true);
    let others: Vec<String> = files.iter().filter(|f| state(f) != "failed").map(state).collect();
    assert!(others.iter().all(|s| s == "uploaded" || s == "refused"), "the others went on: {files:#?}");
    let summary = c.find(Locator::Id("status")).await.expect("summary").text().await.expect("text");
    assert!(summary.contains("1 failed") && summary.contains("Try the failed one again"), "{summary}");
    c.find(Locator::Css("#files li[data-state=failed] .retry")).await.expect("retry").click().await.expect("click");
    let focused =
        c.execute("return document.activeElement.classList.contains('file-status');", vec![]).await.expect("focus");
    assert_eq!(focused, Value::Bool(true), "the retried file's status takes the focus from its hidden button");

    let files = settled(&c, 120).await;
    screenshot(&c, "multi-settled").await;
    let refused: Vec<&Value> = files.iter().filter(|f| state(f) == "refused").collect();
    let uploaded = files.iter().filter(|f| state(f) == "uploaded").count();
    assert_eq!((uploaded, refused.len()), (4, 1), "{files:#?}");
    let hostile = refused[0];
    assert!(hostile["name"].as_str().expect("name").starts_with("svg-with-script.jpg"), "{hostile}");
    assert!(hostile["status"].as_str().expect("status").contains("SVG drawing, not a photo"), "{hostile}");
    assert!(hostile["statusClass"].as_str().expect("class").contains("error"));
    // The same file would get the same answer: no retry offered for it.
    assert_eq!(hostile["retryShown"], false);
    for f in &files {
        assert_eq!(f["progress"].as_f64(), Some(100.0), "every progress bar reached 100 %: {f}");
        assert_eq!(f["progressText"], "100 %", "{f}");
        if state(f) == "uploaded" {
            assert_eq!(f["status"], "Uploaded.", "{f}");
        }
    }
    let most = c.execute("return window.mostAtOnce;", vec![]).await.expect("most");
    assert_eq!(most.as_u64(), Some(3), "three files at a time, never more");
    let summary = c.find(Locator::Id("status")).await.expect("summary").text().await.expect("text");
    assert!(summary.starts_with("4 uploaded, 1 refused."), "{summary}");

    // Save the four: all land on the home page, in use; the refused one is gone.
    let save = c.find(Locator::Id("save-button")).await.expect("save");
    assert_eq!(save.text().await.expect("text"), "Save 4 photos");
    save.click().await.expect("click");
    let shown = wait_for(30, "the four photos on the home page", || async {
        let imgs = c.find_all(Locator::Css("section[data-kind=id_document] img.thumb")).await.ok()?;
        (imgs.len() == 4).then_some(imgs)
    })
    .await;
    assert_eq!(shown.len(), 4);
    screenshot(&c, "multi-home").await;
    assert_eq!(app.number("select count(*) from shoebox_photos where state = 'in_use'", &[]).await, 4);
    // (The file whose connection dropped left a form never used: clean-up takes it later.)
    let svg = |states: &str| {
        let sql = format!("select count(*) from shoebox_photos where filename = $1 and state in ({states})");
        let app = &app;
        async move { app.number(&sql, &[Arg::S("svg-with-script.jpg".into())]).await }
    };
    assert_eq!(svg("'deleted'").await, 1, "the refused upload is a tombstone");
    assert_eq!(svg("'ready', 'in_use'").await, 0);
    // Shrunk in the browser, upright: the Leica's orientation 8 made it portrait.
    let leica: Value = {
        let id = app
            .text(
                "select photo_id from shoebox_photos where filename = $1 and state = 'in_use'",
                &[Arg::S("leica-t-typ701_4928x3264_orient8.jpg".into())],
            )
            .await
            .expect("the Leica photo");
        let res = c
            .execute_async(
                "const [url, done] = arguments; fetch(url).then((r) => r.json()).then(done, (e) => done(String(e)));",
                vec![Value::String(app.url(&format!("/api/photos/{id}")))],
            )
            .await
            .expect("api");
        res["photo"].clone()
    };
    // 3264 × 4928 upright, scaled to 2560 px on its longer side.
    assert_eq!((leica["width"].as_u64(), leica["height"].as_u64()), (Some(1696), Some(2560)), "{leica}");

    c.close().await.expect("close browser");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_script_the_page_still_posts_one_file_per_form() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let ann = app.sign_up("ann@example.com").await;
    for (kind, several) in [("id_document", true), ("avatar", false)] {
        let html = ann.get(&format!("/upload?kind={kind}")).await.text().await.expect("html");
        let input = html.split("<input id=\"file\"").nth(1).and_then(|r| r.split('>').next()).expect("file input");
        // A presigned POST takes one file: only the script, which asks for a form per file,
        // lets the picker take several.
        assert!(!input.contains("multiple"), "{input}");
        assert!(input.contains("required"), "{input}");
        assert!(html.contains(&format!("data-multiple=\"{several}\"")), "{kind}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_signing_limit_is_shown_as_a_wait_of_so_many_seconds_and_the_files_go_on_after_it() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let driver = start_chromedriver();
    let profile = tempfile::tempdir().expect("profile dir");
    let c = connect(&driver, profile.path()).await;
    sign_up_in_browser(&c, &app, "bob@example.com").await;
    c.goto(&app.url("/upload?kind=id_document")).await.expect("upload page");

    // This user has asked for the whole minute's 30 forms, and the minute ends in about ten
    // seconds. (The page's own form opened the user's row of page views, which names them.)
    let seeded = now_millis() - 50_000;
    let rows = app
        .execute(
            "insert into shoebox_form_windows (uploader_id, style, opened_at, forms) \
             select uploader_id, 'script', $1, 30 from shoebox_form_windows where style = 'page'",
            &[Arg::I(seeded)],
        )
        .await;
    assert_eq!(rows, 1);

    pick(&c, &[test_photo("orientation/Landscape_1.jpg"), test_photo("orientation/Portrait_6.jpg")]).await;
    c.find(Locator::Id("upload-button")).await.expect("upload button").click().await.expect("click");

    // Both meet the limit; each says how long it waits, in seconds, from Retry-After.
    let waiting = wait_for(20, "the wait to be shown", || async {
        let files = files_on_page(&c).await;
        let all = files.iter().all(|f| f["state"] == "waiting");
        all.then_some(files)
    })
    .await;
    screenshot(&c, "multi-waiting").await;
    let summary = c.find(Locator::Id("status")).await.expect("summary").text().await.expect("text");
    assert!(summary.contains("2 waiting for the upload limit"), "{summary}");
    for f in &waiting {
        let status = f["status"].as_str().expect("status");
        let secs: u64 = status
            .split("wait ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no \"wait N seconds\" in {status:?}"));
        assert!((1..=10).contains(&secs), "{status}");
        assert!(status.contains(" second"), "{status}");
        assert_eq!(f["retryShown"], false, "nothing for the person to do but wait: {f}");
    }

    // After the wait both are signed in a new minute and uploaded, with no click.
    let files = settled(&c, 60).await;
    for f in &files {
        assert_eq!(f["state"], "uploaded", "{files:#?}");
        assert_eq!(f["progress"].as_f64(), Some(100.0));
    }
    // Focus went from the Upload button, which hid itself, to Save when it appeared.
    let focused = c.execute("return document.activeElement.id;", vec![]).await.expect("focus");
    assert_eq!(focused, "save-button");
    let opened = app.number("select opened_at from shoebox_form_windows where style = 'script'", &[]).await;
    assert!(opened >= seeded + 60_000, "the retries came after the minute was over, opening the next");
    let forms = app.number("select forms from shoebox_form_windows where style = 'script'", &[]).await;
    assert_eq!(forms, 2, "one form each after the wait: the refused asks were not counted");
    assert_eq!(app.number("select count(*) from shoebox_photos where state = 'ready'", &[]).await, 2);

    c.close().await.expect("close browser");
}
