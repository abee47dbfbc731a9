//! No layout shift, placeholders meanwhile: in a real headless Chromium, the grid and the photo
//! page are loaded while every image response is held back (a gate in front of the real
//! server keeps them until the test lets them through). Meanwhile each tile and the photo show
//! their placeholder, in the screenshot's pixels; when the images arrive nothing moves: the
//! Cumulative Layout Shift that `PerformanceObserver` reports is 0.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine as _;
use fantoccini::{Client, Locator};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::browser::{Driver, start_chromedriver, wait_for};
use crate::helpers::{Backend, TestApp, photo};

type ProxyBody = http_body_util::combinators::BoxBody<bytes::Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// An HTTP/1.1 proxy in front of the app that, while closed, holds every image request
/// (`/photos/{id}/{variant}`) until it is opened again; everything else passes at once.
struct Gate {
    url: String,
    closed: watch::Sender<bool>,
    held: Arc<AtomicUsize>,
    accept: tokio::task::JoinHandle<()>,
}

impl Gate {
    async fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let (closed, _) = watch::channel(false);
        let held = Arc::new(AtomicUsize::new(0));
        let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
        let upstream = upstream.to_owned();
        let accept = tokio::spawn({
            let (closed, held) = (closed.clone(), held.clone());
            async move {
                while let Ok((inbound, _)) = listener.accept().await {
                    let (closed, held, client, upstream) =
                        (closed.clone(), held.clone(), client.clone(), upstream.clone());
                    tokio::spawn(async move {
                        let service =
                            hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                                let (mut open, held, client) = (closed.subscribe(), held.clone(), client.clone());
                                let upstream = upstream.clone();
                                async move {
                                    let path = req.uri().path_and_query().map_or("/", |p| p.as_str()).to_owned();
                                    if is_image(req.uri().path()) && *open.borrow() {
                                        held.fetch_add(1, Ordering::SeqCst);
                                        let _ = open.wait_for(|closed| !closed).await;
                                    }
                                    *req.uri_mut() = format!("{upstream}{path}").parse().expect("uri");
                                    let res: hyper::Response<ProxyBody> = match client.request(req).await {
                                        Ok(res) => res.map(|b| b.map_err(Into::into).boxed()),
                                        Err(e) => {
                                            let body =
                                                http_body_util::Full::new(bytes::Bytes::from(format!("gate: {e}")));
                                            let mut res = hyper::Response::new(body.map_err(|n| match n {}).boxed());
                                            *res.status_mut() = hyper::StatusCode::BAD_GATEWAY;
                                            res
                                        }
                                    };
                                    Ok::<_, std::convert::Infallible>(res)
                                }
                            });
                        let io = hyper_util::rt::TokioIo::new(inbound);
                        let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
                    });
                }
            }
        });
        Gate { url, closed, held, accept }
    }

    /// Hold every image request from now on; the count of held ones starts again at 0.
    fn close(&self) {
        self.held.store(0, Ordering::SeqCst);
        self.closed.send_replace(true);
    }

    /// Let the held requests (and every later one) through.
    fn open(&self) {
        self.closed.send_replace(false);
    }

    fn held(&self) -> usize {
        self.held.load(Ordering::SeqCst)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.open();
        self.accept.abort();
    }
}

/// `/photos/{id}/{variant}`: an image, not the photo's page.
fn is_image(path: &str) -> bool {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    segments.len() == 3 && segments[0] == "photos"
}

/// Chromium whose navigations return at DOMContentLoaded: the default waits for every image,
/// which the gate is holding.
async fn connect_eager(driver: &Driver, profile: &std::path::Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert("pageLoadStrategy".into(), json!("eager"));
    crate::browser::connect_with(driver, profile, caps).await
}

/// What the page says of each image of `selector` and the placeholder beside it: whether each
/// has loaded, its attributes and where it is on the screen (CSS pixels, which are the
/// screenshot's at a scale factor of 1).
const IMAGES: &str = r#"
const [selector] = arguments;
return [...document.querySelectorAll(selector)].map(real => {
  const ph = real.closest('.tile, .frame').querySelector('img.placeholder');
  const r = real.getBoundingClientRect();
  return {
    loaded: real.complete && real.naturalWidth > 0,
    width: Number(real.getAttribute('width')), height: Number(real.getAttribute('height')),
    box: [r.left, r.top, r.width, r.height],
    styled: getComputedStyle(real).position === 'relative',
    placeholder: ph ? ph.getAttribute('src') : null,
    placeholder_loaded: !!ph && ph.complete && ph.naturalWidth > 0,
  };
});
"#;

/// The layout shifts since the page began, as `PerformanceObserver` reports them (buffered).
const LAYOUT_SHIFT: &str = r#"
const done = arguments[arguments.length - 1];
let cls = 0, shifts = 0;
const po = new PerformanceObserver(list => {
  for (const e of list.getEntries()) { if (!e.hadRecentInput) { cls += e.value; shifts += 1; } }
});
po.observe({ type: 'layout-shift', buffered: true });
// Two frames after the last image, then the observer's queued entries.
requestAnimationFrame(() => requestAnimationFrame(() => setTimeout(() => {
  for (const e of po.takeRecords()) { if (!e.hadRecentInput) { cls += e.value; shifts += 1; } }
  po.disconnect();
  done({ cls, shifts, supported: PerformanceObserver.supportedEntryTypes.includes('layout-shift') });
}, 300)));
"#;

async fn images(c: &Client, selector: &str) -> Vec<Value> {
    let v = c.execute(IMAGES, vec![json!(selector)]).await.expect("read the images");
    v.as_array().expect("a list").clone()
}

/// Wait until the gate holds `n` image requests and the page has painted with its style.
async fn held_and_styled(c: &Client, gate: &Gate, selector: &str, n: usize) -> Vec<Value> {
    wait_for(20, "the image requests to reach the gate", || async { (gate.held() >= n).then_some(()) }).await;
    wait_for(20, "the page's style and placeholders", || async {
        let all = images(c, selector).await;
        (all.len() == n && all.iter().all(|i| i["styled"] == true && i["placeholder_loaded"] == true)).then_some(all)
    })
    .await
}

/// The placeholder PNG behind a data URL.
fn decode_placeholder(src: &str) -> image::RgbaImage {
    let b64 = src.strip_prefix("data:image/png;base64,").unwrap_or_else(|| panic!("a PNG data URL: {src}"));
    let png = base64::engine::general_purpose::STANDARD.decode(b64).expect("base64");
    image::load_from_memory(&png).expect("png").to_rgba8()
}

/// The screenshot's pixel at the centre of each image's box is its placeholder's centre
/// colour (within the blur's reach), not the empty tile's grey or the page's background.
fn assert_placeholders_painted(shot: &image::RgbaImage, all: &[Value], what: &str) {
    for (i, img) in all.iter().enumerate() {
        let b: Vec<f64> = img["box"].as_array().expect("box").iter().map(|v| v.as_f64().expect("n")).collect();
        // The middle of the part on screen (a tall photo runs past the window's bottom).
        let bottom = (b[1] + b[3]).min(f64::from(shot.height()) - 1.0);
        let (x, y) = ((b[0] + b[2] / 2.0) as u32, ((b[1] + bottom) / 2.0) as u32);
        let painted = shot.get_pixel(x, y).0;
        let ph = decode_placeholder(img["placeholder"].as_str().expect("a placeholder"));
        let fraction = ((f64::from(y) - b[1]) / b[3]).clamp(0.0, 1.0);
        let expected =
            ph.get_pixel(ph.width() / 2, ((f64::from(ph.height()) * fraction) as u32).min(ph.height() - 1)).0;
        let distance = (0..3).map(|k| (i32::from(painted[k]) - i32::from(expected[k])).abs()).max().unwrap_or(0);
        assert!(distance <= 48, "{what} {i}: painted {painted:?} at ({x}, {y}), placeholder {expected:?}");
        assert!(painted[..3] != [0xee, 0xee, 0xee] && painted[..3] != [0xfa, 0xfa, 0xfa], "{what} {i}: empty box");
    }
}

async fn let_through_and_measure(c: &Client, gate: &Gate, selector: &str, n: usize, what: &str) {
    gate.open();
    wait_for(30, "the images to arrive", || async {
        let all = images(c, selector).await;
        (all.len() == n && all.iter().all(|i| i["loaded"] == true)).then_some(())
    })
    .await;
    let shift = c.execute_async(LAYOUT_SHIFT, vec![]).await.expect("layout shift");
    assert_eq!(shift["supported"], true, "Chromium reports layout shifts");
    assert_eq!(shift["cls"].as_f64(), Some(0.0), "{what}: nothing moved when the images arrived: {shift}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grid_and_the_photo_page_show_placeholders_and_do_not_move_when_images_arrive() {
    let app = TestApp::spawn(Backend::Postgres).await;
    // A private kind, so every image is served by the app (through the gate), none by S3.
    let ann = app.sign_up("ann@example.com").await;
    let mut photos = Vec::new();
    for file in ["camera/canon-eos-5d_2912x4368_portrait.jpg", "camera/nikon-d3100_4608x3072.jpg"] {
        photos.push(ann.upload("id_document", photo(file), "image/jpeg").await);
    }
    for p in &photos {
        crate::variants::wait_for_variants(&app, p["id"].as_str().expect("id")).await;
    }
    let gate = Gate::start(&app.base).await;
    let driver = start_chromedriver();
    let profile = tempfile::tempdir().expect("profile dir");
    let c = connect_eager(&driver, profile.path()).await;

    // Closed from the start: the grid the login leads to is the browser's first sight of the
    // images, so none can come from its cache.
    gate.close();
    c.goto(&gate.url("/login")).await.expect("login page");
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

    // The grid, its two thumbs held back.
    let tiles = held_and_styled(&c, &gate, ".grid img.thumb", 2).await;
    for tile in &tiles {
        assert_eq!(tile["loaded"], false, "held back: {tile}");
    }
    let mut sizes: Vec<(u64, u64)> =
        tiles.iter().map(|t| (t["width"].as_u64().expect("width"), t["height"].as_u64().expect("height"))).collect();
    let mut verified: Vec<(u64, u64)> =
        photos.iter().map(|p| (p["width"].as_u64().expect("w"), p["height"].as_u64().expect("h"))).collect();
    sizes.sort_unstable();
    verified.sort_unstable();
    assert_eq!(sizes, verified, "each tile's <img> carries its photo's width and height");
    let shot = image::load_from_memory(&c.screenshot().await.expect("screenshot")).expect("png").to_rgba8();
    crate::browser::screenshot(&c, "grid-held").await;
    assert_placeholders_painted(&shot, &tiles, "tile");
    let_through_and_measure(&c, &gate, ".grid img.thumb", 2, "the grid").await;

    // The photo page of the portrait photo, its display size held back.
    let portrait = photos[0]["id"].as_str().expect("id");
    gate.close();
    c.goto(&gate.url(&format!("/photos/{portrait}"))).await.expect("photo page");
    let shown = held_and_styled(&c, &gate, "img.photo", 1).await;
    assert_eq!(shown[0]["loaded"], false, "held back: {}", shown[0]);
    assert_eq!(
        (shown[0]["width"].as_u64(), shown[0]["height"].as_u64()),
        (photos[0]["width"].as_u64(), photos[0]["height"].as_u64())
    );
    let b: Vec<f64> = shown[0]["box"].as_array().expect("box").iter().map(|v| v.as_f64().expect("n")).collect();
    assert!(b[3] > b[2] && b[2] > 100.0, "the empty image already has its portrait box: {b:?}");
    let shot = image::load_from_memory(&c.screenshot().await.expect("screenshot")).expect("png").to_rgba8();
    crate::browser::screenshot(&c, "photo-held").await;
    assert_placeholders_painted(&shot, &shown, "the photo");
    let_through_and_measure(&c, &gate, "img.photo", 1, "the photo page").await;

    c.close().await.expect("close browser");
}
