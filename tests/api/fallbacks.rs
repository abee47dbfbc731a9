//! Every answer has a body someone can read: an unknown page gets the site's error page (with
//! the signed-in header and a link home), an unknown `/api/` path or a wrong method the API's
//! JSON error (405 with `Allow`), and a missing static file a plain 404. The same under a base
//! path is in `library.rs`.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{Backend, TestApp};

fn content_type(res: &reqwest::Response) -> String {
    res.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_and_wrong_methods_get_a_readable_answer() {
    let app = TestApp::spawn(Backend::Sqlite).await;

    // Signed out: the error page, with the signed-out header.
    let res = app.new_browser().get(app.url("/no/such/page")).send().await.expect("GET");
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert!(content_type(&res).starts_with("text/html"), "{res:?}");
    let html = res.text().await.expect("html");
    assert!(html.contains("There is no such page or photo."), "{html}");
    assert!(html.contains("href=\"/login\""), "the signed-out header: {html}");

    // Signed in: the same page with the signed-in header and a link home.
    let ann = app.sign_up("ann@example.com").await;
    let res = ann.get("/no/such/page").await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let html = res.text().await.expect("html");
    assert!(html.contains("ann@example.com") && html.contains("Log out"), "the signed-in header: {html}");
    assert!(html.contains("<h1>Not found</h1>") && html.contains("Back to your photos"), "{html}");

    // The API: JSON, 404 for an unknown path, 405 with Allow for a wrong method.
    let res = ann.get("/api/no/such/call").await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert!(content_type(&res).starts_with("application/json"), "{res:?}");
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["error"], "not_found");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");

    let res = ann.client.put(ann.url("/api/uploads")).send().await.expect("PUT");
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(res.headers()["allow"], "POST");
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["error"], "method_not_allowed");
    assert_eq!(body["message"], "This address does not take PUT requests.");

    let res = ann.client.post(ann.url("/api/photos/abc")).send().await.expect("POST");
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    let allow = res.headers()["allow"].to_str().expect("allow").to_owned();
    assert!(allow.contains("GET") && allow.contains("DELETE") && !allow.contains("POST"), "{allow}");
    assert_eq!(res.json::<Value>().await.expect("json")["error"], "method_not_allowed");

    // A page's route by the wrong method: the error page, with Allow.
    let res = ann.client.get(ann.url("/logout")).send().await.expect("GET");
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(res.headers()["allow"], "POST");
    let html = res.text().await.expect("html");
    assert!(html.contains("This address does not take GET requests.") && html.contains("Log out"), "{html}");
    let res = ann.client.delete(ann.url("/upload")).send().await.expect("DELETE");
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(res.headers()["allow"].to_str().expect("allow").contains("GET"));
    assert!(content_type(&res).starts_with("text/html"));

    // A static file that does not exist: a plain 404, not a page.
    let res = ann.get("/static/missing.js").await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert!(content_type(&res).starts_with("text/plain"), "{res:?}");
    assert_eq!(res.text().await.expect("body"), "Not found.\n");
    // The ones that exist are still served.
    assert_eq!(ann.get("/static/style.css").await.status(), StatusCode::OK);
}
