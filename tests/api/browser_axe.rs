//! axe-core, the accessibility engine, run in headless Chromium over every page a person
//! meets: sign-up, login, the upload page before and after an upload, the grid, one photo.
//! Rules: WCAG 2.0, 2.1 and 2.2 at levels A and AA, and axe's best practices. A serious or
//! critical violation fails the test; the milder ones are printed, and listed in the failure.
//!
//! axe-core comes from npm (`scripts/test` installs it; see [`AXE_VERSION`]) and is injected
//! into each page through WebDriver, which the page's Content-Security-Policy does not govern.

use std::path::PathBuf;

use fantoccini::{Client, Locator};
use serde_json::{Value, json};

use crate::browser::{connect, start_chromedriver, wait_for};
use crate::browser_multi::{pick, sign_up_in_browser, test_photo};
use crate::helpers::{Backend, TestApp};

/// The axe-core release `scripts/test` installs.
const AXE_VERSION: &str = "4.14.1";

/// The rule sets run: what the issue asks for (WCAG 2 A/AA and best practices).
const TAGS: &[&str] = &["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"];

/// axe.min.js: `SHOEBOX_AXE_JS` names it, or it is where `scripts/test` installs it.
fn axe_source() -> String {
    let path = std::env::var_os("SHOEBOX_AXE_JS").map(PathBuf::from).unwrap_or_else(|| {
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
        home.join(".cache/shoebox/npm/node_modules/axe-core/axe.min.js")
    });
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "axe-core is not installed at {} ({e}). Install it with\n  \
             npm install --prefix ~/.cache/shoebox/npm --no-save axe-core@{AXE_VERSION}\n\
             (scripts/test does this), or set SHOEBOX_AXE_JS to an axe.min.js.",
            path.display()
        )
    })
}

/// What axe found wrong on pages, serious or critical apart from the rest.
#[derive(Default)]
struct Findings {
    blocking: Vec<String>,
    other: Vec<String>,
}

impl Findings {
    /// Run axe over the page the browser shows now, called `page` in the report.
    async fn check(&mut self, c: &Client, axe: &str, page: &str) {
        let loaded = c
            .execute(&format!("if (typeof window.axe === 'undefined') {{ {axe}\n }} return typeof window.axe;"), vec![])
            .await
            .expect("inject axe-core");
        assert_eq!(loaded, "object", "axe-core did not load on {page}");
        let result = c
            .execute_async(
                "const [tags, done] = arguments;\
                 axe.run(document, { runOnly: { type: 'tag', values: tags }, resultTypes: ['violations'] })\
                   .then((r) => done({ violations: r.violations.map((v) => ({\
                     id: v.id, impact: v.impact, help: v.help,\
                     nodes: v.nodes.map((n) => n.target.join(' ') + (n.failureSummary ? ': ' + n.failureSummary.replace(/\\s+/g, ' ') : '')),\
                   })) }), (e) => done({ error: String(e) }));",
                vec![json!(TAGS)],
            )
            .await
            .expect("run axe");
        assert!(result["error"].is_null(), "axe failed on {page}: {}", result["error"]);
        for v in result["violations"].as_array().expect("violations") {
            let impact = v["impact"].as_str().unwrap_or("unknown");
            let nodes: Vec<&str> = v["nodes"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            let line = format!("{page}: [{impact}] {} ({}): {}", v["id"], v["help"], nodes.join(" | "));
            eprintln!("axe: {line}");
            if matches!(impact, "serious" | "critical") {
                self.blocking.push(line);
            } else {
                self.other.push(line);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axe_finds_no_serious_or_critical_violation_on_any_page_a_person_meets() {
    let axe = axe_source();
    let app = TestApp::spawn(Backend::Postgres).await;
    let driver = start_chromedriver();
    let profile = tempfile::tempdir().expect("profile dir");
    let c = connect(&driver, profile.path()).await;
    let mut found = Findings::default();

    c.goto(&app.url("/signup")).await.expect("signup page");
    found.check(&c, &axe, "sign-up").await;
    c.goto(&app.url("/login")).await.expect("login page");
    found.check(&c, &axe, "login").await;
    sign_up_in_browser(&c, &app, "ann@example.com").await;
    found.check(&c, &axe, "home, no photos yet").await;

    // Several files: one saved, one refused, so both kinds of line are on the page.
    c.goto(&app.url("/upload?kind=id_document")).await.expect("upload page");
    found.check(&c, &axe, "upload page").await;
    pick(&c, &[test_photo("orientation/Landscape_3.jpg"), test_photo("hostile/svg-with-script.jpg")]).await;
    found.check(&c, &axe, "upload page, two files chosen").await;
    c.find(Locator::Id("upload-button")).await.expect("upload").click().await.expect("click");
    wait_for(60, "both files to finish", || async {
        c.find(Locator::Id("save-button")).await.ok()?.is_displayed().await.ok()?.then_some(())
    })
    .await;
    found.check(&c, &axe, "upload page after an upload (one uploaded, one refused)").await;
    c.find(Locator::Id("save-button")).await.expect("save").click().await.expect("click");
    wait_for(20, "the private photo on the home page", || async {
        c.find(Locator::Css("section[data-kind=id_document] img")).await.ok()
    })
    .await;

    // A public one too: the grid shows both kinds.
    c.goto(&app.url("/upload?kind=avatar")).await.expect("upload page");
    pick(&c, &[test_photo("orientation/Portrait_1.jpg")]).await;
    c.find(Locator::Id("upload-button")).await.expect("upload").click().await.expect("click");
    wait_for(60, "the upload to finish", || async {
        c.find(Locator::Id("save-button")).await.ok()?.is_displayed().await.ok()?.then_some(())
    })
    .await;
    found.check(&c, &axe, "profile photo upload page after an upload").await;
    c.find(Locator::Id("save-button")).await.expect("save").click().await.expect("click");
    wait_for(20, "the grid with both photos", || async {
        c.find(Locator::Css("section[data-kind=avatar] img")).await.ok()?;
        // Every image has loaded (or failed) before the page is judged.
        let done = c.execute("return Array.from(document.images).every((i) => i.complete);", vec![]).await.ok()?;
        (done == Value::Bool(true)).then_some(())
    })
    .await;
    found.check(&c, &axe, "grid").await;

    let link = c.find(Locator::Css("section[data-kind=id_document] a")).await.expect("photo link");
    link.click().await.expect("open the photo");
    wait_for(20, "the photo page", || async {
        let done = c
            .execute(
                "return !!document.getElementById('state') && Array.from(document.images).every((i) => i.complete);",
                vec![],
            )
            .await
            .ok()?;
        (done == Value::Bool(true)).then_some(())
    })
    .await;
    found.check(&c, &axe, "photo page").await;

    c.close().await.expect("close browser");
    assert!(
        found.blocking.is_empty(),
        "axe-core {AXE_VERSION} found serious or critical violations:\n{}\nand milder ones:\n{}",
        found.blocking.join("\n"),
        if found.other.is_empty() { "none".to_owned() } else { found.other.join("\n") }
    );
}
