//! Requests the SDK cannot make, sent as a browser or an anonymous reader would: a CORS
//! preflight, a form POST, an anonymous GET. Each keeps what S3 answered.

use std::time::Duration;

use reqwest::header::HeaderMap;

/// What an HTTP request got back.
#[derive(Debug, Clone)]
pub struct HttpAnswer {
    pub status: u16,
    pub code: Option<String>,
    pub request_id: Option<String>,
    pub headers: HeaderMap,
}

impl HttpAnswer {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// "403 AccessDenied (request id …)".
    pub fn summary(&self) -> String {
        let mut s = self.status.to_string();
        if let Some(c) = &self.code {
            s.push_str(&format!(" {c}"));
        }
        if let Some(id) = &self.request_id {
            s.push_str(&format!(" (request id {id})"));
        }
        s
    }
}

/// A client for probes: no redirects followed (a 301 names the bucket's region), short timeouts.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap_or_default()
}

/// Send and read the answer; `Err` says why nothing answered.
pub async fn send(req: reqwest::RequestBuilder) -> Result<HttpAnswer, String> {
    let res = req.send().await.map_err(|e| error_chain(&e))?;
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = res.text().await.unwrap_or_default();
    let code = between(&body, "<Code>", "</Code>");
    let request_id = headers
        .get("x-amz-request-id")
        .or_else(|| headers.get("x-amzn-requestid"))
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| between(&body, "<RequestId>", "</RequestId>"));
    Ok(HttpAnswer { status, code, request_id, headers })
}

fn between(s: &str, open: &str, close: &str) -> Option<String> {
    let start = s.find(open)? + open.len();
    let end = s[start..].find(close)? + start;
    Some(s[start..end].to_owned())
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(&format!(": {inner}"));
        source = inner.source();
    }
    s
}

/// A valid 8×8 grey JPEG, made with the same encoder the imaging engine uses.
pub fn tiny_jpeg() -> Vec<u8> {
    let mut out = Vec::new();
    let pixels = [128u8; 8 * 8];
    // Encoding 64 grey pixels into a Vec cannot fail; an empty body would fail the round trip
    // loudly anyway.
    let _ = jpeg_encoder::Encoder::new(&mut out, 80).encode(&pixels, 8, 8, jpeg_encoder::ColorType::Luma);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_jpeg_is_a_jpeg() {
        let j = tiny_jpeg();
        assert!(j.starts_with(&[0xFF, 0xD8, 0xFF]) && j.ends_with(&[0xFF, 0xD9]), "{} bytes", j.len());
    }

    #[test]
    fn error_codes_are_read_from_s3_xml() {
        let body = "<Error><Code>AccessDenied</Code><RequestId>R1</RequestId></Error>";
        assert_eq!(between(body, "<Code>", "</Code>").as_deref(), Some("AccessDenied"));
        assert_eq!(between("nothing", "<Code>", "</Code>"), None);
    }
}
