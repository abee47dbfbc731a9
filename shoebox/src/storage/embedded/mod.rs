//! The embedded S3-compatible endpoint: s3s with its file-system backend, in this process.
//!
//! This is what `cargo run` and the tests use instead of AWS. It is not a mock: s3s verifies
//! SigV4 signatures and enforces every POST-policy condition, so a forged or oversized form is
//! refused here as it would be by S3. Its access rule stands in for a bucket policy: anonymous
//! GET and HEAD are allowed only under the served prefix of public buckets; everything else
//! needs a signature.
//!
//! Where s3s differs from S3 in a way clients notice, the endpoint wraps it rather than forking
//! it: `front` answers form uploads with S3's headers and body and refuses oversized bodies
//! before they are read; `store` records what a form upload stored so `front` can say so.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use http::{HeaderValue, Method};
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::SimpleAuth;
use s3s::config::{S3Config, StaticConfigProvider};
use s3s::path::S3Path;
use s3s::service::S3ServiceBuilder;
use s3s::{S3Result, s3_error};
use tokio::task::JoinHandle;
use tower_http::cors::{AllowOrigin, CorsLayer};

mod front;
mod folder;
mod store;

pub use self::front::FORM_ALLOWANCE;
use self::front::Front;
use self::store::Store;
use super::SigningCredentials;
use crate::domain::BucketAccess;
use crate::domain::photo::SERVED_PREFIX;
use crate::domain::random_token;
use crate::storage::BucketSettings;

/// A running embedded endpoint. Dropping it stops the server.
#[derive(Debug)]
pub struct EmbeddedS3 {
    /// `http://127.0.0.1:PORT`: the endpoint URL for clients and browsers.
    pub endpoint: String,
    /// The keys it accepts, made up when it started: sign with these.
    pub credentials: SigningCredentials,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl EmbeddedS3 {
    /// Stop it and wait until it has: the listener is closed and every connection with it, so
    /// no request made after this returns is answered (dropping it stops it too, but a moment
    /// later).
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for EmbeddedS3 {
    /// Stop as S3 going away looks to clients: the listener closes and so do idle keep-alive
    /// connections. Aborting the accept loop alone would leave those connections answering.
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Signed requests pass; anonymous reads pass only for served objects of public buckets.
struct PublicRead {
    public_buckets: HashSet<String>,
}

#[async_trait::async_trait]
impl S3Access for PublicRead {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        if cx.credentials().is_some() {
            return Ok(());
        }
        if matches!(cx.s3_op().name(), "GetObject" | "HeadObject")
            && let S3Path::Object { bucket, key } = cx.s3_path()
            && self.public_buckets.contains(bucket.as_ref())
            && key.starts_with(SERVED_PREFIX)
            && plain_key(key)
        {
            return Ok(());
        }
        Err(s3_error!(AccessDenied, "Access Denied"))
    }
}

/// A key without `.`/`..` segments, empty segments or backslashes. The file-system backend
/// resolves `photos/../incoming/x` inside its root, so a prefix check alone would let an
/// anonymous reader walk out of the served prefix.
fn plain_key(key: &str) -> bool {
    !key.contains('\\') && key.split('/').all(|seg| !seg.is_empty() && seg != "." && seg != "..")
}

/// Start the endpoint on `listen` (port 0 picks a free one), storing objects under `root`, with
/// a directory per bucket and fresh random credentials. `cors_origins` are the app origins
/// whose pages may POST forms and read responses. `largest_upload` is the largest file any
/// kind accepts: a request body over it plus [`FORM_ALLOWANCE`] is refused before it is read.
pub async fn start(
    root: &Path,
    listen: SocketAddr,
    buckets: &[BucketSettings],
    cors_origins: &[String],
    largest_upload: u64,
) -> anyhow::Result<EmbeddedS3> {
    for b in buckets {
        std::fs::create_dir_all(root.join(&b.bucket))
            .with_context(|| format!("creating the embedded bucket folder under {}", root.display()))?;
    }
    let credentials = SigningCredentials {
        access_key_id: format!("SHOEBOX{}", &random_token()[..13]).to_uppercase(),
        secret_access_key: random_token(),
        session_token: None,
    };
    let fs = s3s_fs::FileSystem::new(root)
        .map_err(|e| anyhow::anyhow!("opening the embedded S3 folder {}: {e:?}", root.display()))?;
    let mut builder = S3ServiceBuilder::new(Store::new(fs, root.to_path_buf()));
    builder.set_auth(SimpleAuth::from_single(credentials.access_key_id.clone(), credentials.secret_access_key.clone()));
    builder.set_access(PublicRead {
        public_buckets: buckets.iter().filter(|b| b.access == BucketAccess::Public).map(|b| b.bucket.clone()).collect(),
    });
    let mut config = S3Config::default();
    // The form rendered into a page lives an hour; s3s otherwise refuses a POST whose
    // x-amz-date is more than 15 minutes old. Expiry is still enforced by the policy.
    config.presigned_url_max_skew_time_secs = 2 * 60 * 60;
    builder.set_config(Arc::new(StaticConfigProvider::new(Arc::new(config))));
    let origins: Vec<HeaderValue> = cors_origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::HEAD, Method::POST])
        .allow_headers(tower_http::cors::Any)
        .expose_headers([http::header::ETAG, http::header::LOCATION]);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding the embedded S3 endpoint to {listen}"))?;
    let addr = listener.local_addr()?;
    let front = Front::new(builder.build(), largest_upload.saturating_add(FORM_ALLOWANCE), format!("http://{addr}"));
    let app = Router::new()
        .fallback_service(tower::service_fn(move |req| {
            let front = front.clone();
            async move { Ok::<_, std::convert::Infallible>(front.handle(req).await) }
        }))
        .layer(cors);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let shutdown = async move {
            let _ = stopped.await;
        };
        // Answers go out as soon as they are written (no Nagle delay), as the app's do.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp: &mut tokio::net::TcpStream| {
            let _ = tcp.set_nodelay(true);
        });
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
            tracing::error!(error = %e, "embedded S3 endpoint stopped");
        }
    });
    Ok(EmbeddedS3 { endpoint: format!("http://{addr}"), credentials, stop: Some(stop), task: Some(task) })
}

#[cfg(test)]
mod tests {
    use super::plain_key;

    #[test]
    fn keys_that_could_leave_the_served_prefix_are_not_plain() {
        assert!(plain_key("photos/abc/original.jpg"));
        for bad in ["photos/../incoming/abc", "photos/./x", "photos//x", "photos/x/", "photos\\..\\x", "photos/.."] {
            assert!(!plain_key(bad), "{bad}");
        }
    }
}
