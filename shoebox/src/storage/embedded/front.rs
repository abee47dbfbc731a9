//! The HTTP front of the embedded endpoint, between the socket and s3s: it refuses bodies too
//! big to be an upload before s3s buffers them, cuts form uploads into small frames, and gives
//! form uploads the answer S3 gives.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::{Body, HttpBody};
use futures_util::StreamExt as _;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use s3s::service::S3Service;

use super::store::PostedObject;

/// What a form upload may add to the largest file a kind accepts: the policy, signature and
/// other fields, and the multipart boundaries. A form Shoebox signs is about 2 KiB of it; 64 KiB
/// leaves room for a longer key or session token without letting a body be much larger than
/// any upload can be.
pub const FORM_ALLOWANCE: u64 = 64 * 1024;

#[derive(Clone)]
pub(super) struct Front {
    s3: S3Service,
    /// The largest request body accepted, in bytes.
    max_body: u64,
    /// `http://ADDR`, for a `Location` when a request names no `Host`.
    endpoint: String,
}

impl Front {
    pub(super) fn new(s3: S3Service, max_body: u64, endpoint: String) -> Self {
        Self { s3, max_body, endpoint }
    }

    /// Answer `req`, with a request id as S3 gives every answer (`x-amz-request-id`), so what
    /// Shoebox says of a failure can be checked against the real thing.
    pub(super) async fn handle(self, req: Request<Body>) -> Response<Body> {
        let mut resp = self.answer(req).await;
        let id = crate::domain::random_token()[..16].to_ascii_uppercase();
        if let Ok(v) = HeaderValue::from_str(&id) {
            resp.headers_mut().insert("x-amz-request-id", v);
        }
        resp
    }

    async fn answer(self, req: Request<Body>) -> Response<Body> {
        // s3s reads a whole form upload into memory before it checks who sent it, so the size
        // is checked here, before any of the body is read: by the declared length when there is
        // one (hyper never reads past it), otherwise by counting the bytes as they arrive.
        let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if let Some(len) = declared
            && len > self.max_body
        {
            return entity_too_large(self.max_body, Some(len));
        }
        let over_limit = Arc::new(AtomicBool::new(false));
        // A request with no body at all (most GETs and HEADs) is left alone: s3s wants those
        // to be known-empty, and a counted body has no known length.
        let unbounded = declared.is_none() && !HttpBody::is_end_stream(req.body());
        let req = if unbounded { req.map(|b| counted(b, self.max_body, over_limit.clone())) } else { req };
        let is_post = req.method() == Method::POST;
        let origin = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(|h| format!("http://{h}"))
            .filter(|o| url::Url::parse(o).is_ok())
            .unwrap_or_else(|| self.endpoint.clone());
        // s3s 0.14's multipart parser fails an upload ("failed to read file stream") when one
        // body frame ends with a prefix of the boundary and the next frame is close to 64 KiB,
        // its look-ahead limit. Hyper hands over frames of any size, so that happens at random
        // with real files; frames of at most 16 KiB never reach the limit. Only form uploads:
        // other requests keep their exact length, which s3s checks.
        let req = if is_post { req.map(small_frames) } else { req };

        let mut resp = match tower::ServiceExt::oneshot(self.s3, req).await {
            Ok(resp) => resp.map(Body::new),
            Err(e) => {
                tracing::error!(error = ?e, "embedded S3 failed a request");
                return status_only(StatusCode::INTERNAL_SERVER_ERROR);
            }
        };
        if over_limit.load(Ordering::Relaxed) {
            // s3s saw the body end in an error and answered something vaguer.
            return entity_too_large(self.max_body, None);
        }
        if let Some(posted) = resp.extensions_mut().remove::<PostedObject>() {
            answer_like_s3(&mut resp, &posted, &origin);
        }
        resp
    }
}

/// Give a successful form upload's answer what S3's has: the `ETag` header always, and for an
/// answer that is not a redirect (which keeps s3s's `Location` with bucket, key and etag in its
/// query, as S3 does) a `Location` header with the object's URL; a 201's `PostResponse` names
/// the same URL and the quoted ETag, as S3's does (s3s writes `/bucket/key` and a bare hash).
fn answer_like_s3(resp: &mut Response<Body>, posted: &PostedObject, origin: &str) {
    resp.headers_mut().insert(header::ETAG, posted.etag.clone());
    if resp.status() == StatusCode::SEE_OTHER {
        return;
    }
    let Some(location) = object_url(origin, &posted.bucket, &posted.key) else {
        return;
    };
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    if resp.status() == StatusCode::CREATED {
        let xml = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<PostResponse><Location>{}</Location><Bucket>{}</Bucket>\
             <Key>{}</Key><ETag>{}</ETag></PostResponse>",
            xml_text(&location),
            xml_text(&posted.bucket),
            xml_text(&posted.key),
            xml_text(posted.etag.to_str().unwrap_or_default()),
        );
        resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/xml"));
        resp.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(xml.len()));
        *resp.body_mut() = Body::from(xml);
    }
}

/// `ORIGIN/bucket/key`, path-style as the endpoint is addressed, each segment percent-encoded.
fn object_url(origin: &str, bucket: &str, key: &str) -> Option<String> {
    let mut url = url::Url::parse(origin).ok()?;
    url.path_segments_mut().ok()?.clear().push(bucket).extend(key.split('/'));
    Some(url.into())
}

/// Text escaped for an XML element. Quotes stay as they are, as in S3's answers: clients that
/// read the ETag with a plain string search (Uppy's S3 plugin does) then get `"…"`, not `&quot;`.
fn xml_text(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// S3's answer to an oversized body, sent without reading the rest of it: `Connection: close`
/// makes hyper drop the connection after the answer instead of waiting for a body it will not
/// use.
fn entity_too_large(max: u64, proposed: Option<u64>) -> Response<Body> {
    let proposed = proposed.map(|n| format!("<ProposedSize>{n}</ProposedSize>")).unwrap_or_default();
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>EntityTooLarge</Code>\
         <Message>Your proposed upload exceeds the maximum allowed size</Message>{proposed}\
         <MaxSizeAllowed>{max}</MaxSizeAllowed></Error>"
    );
    let mut resp = Response::new(Body::from(xml));
    *resp.status_mut() = StatusCode::BAD_REQUEST;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/xml"));
    resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

fn status_only(status: StatusCode) -> Response<Body> {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = status;
    resp
}

/// The error a counted body ends with once it passes its limit.
#[derive(Debug, thiserror::Error)]
#[error("the request body is larger than {0} bytes")]
struct BodyTooLarge(u64);

/// The same bytes, ending in an error (and setting `over_limit`) as soon as more than `max`
/// have arrived. The error ends the stream and drops the incoming body, so nothing past the
/// limit is read even if s3s polled again.
fn counted(body: Body, max: u64, over_limit: Arc<AtomicBool>) -> Body {
    let frames = futures_util::stream::unfold(Some((body.into_data_stream(), 0u64)), move |state| {
        let over_limit = over_limit.clone();
        async move {
            let (mut incoming, seen) = state?;
            match incoming.next().await? {
                Ok(bytes) => {
                    let seen = seen.saturating_add(bytes.len() as u64);
                    if seen > max {
                        over_limit.store(true, Ordering::Relaxed);
                        return Some((Err(axum::Error::new(BodyTooLarge(max))), None));
                    }
                    Some((Ok(bytes), Some((incoming, seen))))
                }
                Err(e) => Some((Err(e), None)),
            }
        }
    });
    Body::from_stream(frames)
}

/// The same bytes, in frames of at most 16 KiB.
fn small_frames(body: Body) -> Body {
    const FRAME: usize = 16 * 1024;
    let frames = body.into_data_stream().flat_map(|chunk| {
        let pieces: Vec<Result<bytes::Bytes, axum::Error>> = match chunk {
            Ok(mut bytes) => {
                let mut out = Vec::with_capacity(bytes.len() / FRAME + 1);
                while bytes.len() > FRAME {
                    out.push(Ok(bytes.split_to(FRAME)));
                }
                out.push(Ok(bytes));
                out
            }
            Err(e) => vec![Err(e)],
        };
        futures_util::stream::iter(pieces)
    });
    Body::from_stream(frames)
}
