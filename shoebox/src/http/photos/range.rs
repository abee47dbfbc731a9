//! The request headers that decide how much of a photo to send: one `Range`, and the
//! validators `If-None-Match` / `If-Modified-Since`. Pure: headers and object metadata in,
//! decisions out.

use std::time::SystemTime;

use axum::http::{HeaderMap, header};

/// One byte range a client asked for (RFC 9110 §14.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `bytes=a-b`, both inclusive.
    FromTo(u64, u64),
    /// `bytes=a-`: from `a` to the end.
    From(u64),
    /// `bytes=-n`: the last `n` bytes.
    Suffix(u64),
}

/// The range asked for, when there is exactly one we can honour. A missing, malformed or
/// non-`bytes` header, or several ranges, means the whole object: RFC 9110 lets a server ignore
/// `Range`, and answering many ranges as multipart buys little and costs a lot.
pub fn requested(headers: &HeaderMap) -> Option<ByteRange> {
    let v = headers.get(header::RANGE)?.to_str().ok()?.trim();
    let (unit, spec) = v.split_once('=')?;
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return None;
    }
    let (first, last) = spec.trim().split_once('-')?;
    let num = |s: &str| -> Option<u64> {
        let s = s.trim();
        // u64::from_str accepts a leading '+', which a range may not have.
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) { None } else { s.parse().ok() }
    };
    match (first.trim().is_empty(), last.trim().is_empty()) {
        (true, false) => Some(ByteRange::Suffix(num(last)?)),
        (false, true) => Some(ByteRange::From(num(first)?)),
        (false, false) => {
            let (a, b) = (num(first)?, num(last)?);
            // last < first makes the header invalid, so it is ignored (not a 416).
            (a <= b).then_some(ByteRange::FromTo(a, b))
        }
        (true, true) => None,
    }
}

impl ByteRange {
    /// The `Range` header that asks S3 for the same bytes.
    pub fn header(self) -> String {
        match self {
            Self::FromTo(a, b) => format!("bytes={a}-{b}"),
            Self::From(a) => format!("bytes={a}-"),
            Self::Suffix(n) => format!("bytes=-{n}"),
        }
    }

    /// Whether no object, however long, has these bytes (`bytes=-0`).
    pub fn always_unsatisfiable(self) -> bool {
        self == Self::Suffix(0)
    }

    /// The inclusive bytes this range names in an object of `size` bytes, or `None` when it
    /// names none of them (answered 416).
    pub fn resolve(self, size: u64) -> Option<(u64, u64)> {
        let last = size.checked_sub(1)?;
        match self {
            Self::FromTo(a, _) | Self::From(a) if a > last => None,
            Self::FromTo(a, b) => Some((a, b.min(last))),
            Self::From(a) => Some((a, last)),
            Self::Suffix(0) => None,
            Self::Suffix(n) => Some((size.saturating_sub(n), last)),
        }
    }
}

/// Whether the client's copy is current, so a 304 answers instead of the bytes.
///
/// `If-None-Match` wins over `If-Modified-Since` when both are sent (RFC 9110 §13.1.3); ETags
/// compare weakly, as GET allows.
pub fn not_modified(headers: &HeaderMap, etag: Option<&str>, last_modified: Option<SystemTime>) -> bool {
    if let Some(inm) = headers.get(header::IF_NONE_MATCH) {
        let (Some(etag), Ok(inm)) = (etag, inm.to_str()) else { return false };
        let bare = |t: &str| t.trim().trim_start_matches("W/").to_owned();
        let ours = bare(etag);
        return inm.split(',').any(|t| t.trim() == "*" || bare(t) == ours);
    }
    let since = headers.get(header::IF_MODIFIED_SINCE).and_then(|v| v.to_str().ok());
    match (since.and_then(|s| httpdate::parse_http_date(s).ok()), last_modified) {
        // HTTP dates have whole seconds; S3's times may not.
        (Some(since), Some(modified)) => whole_seconds(modified) <= whole_seconds(since),
        _ => false,
    }
}

fn whole_seconds(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Whether the request carries a validator, so the object's metadata must be known before
/// deciding to send it.
pub fn is_conditional(headers: &HeaderMap) -> bool {
    headers.contains_key(header::IF_NONE_MATCH) || headers.contains_key(header::IF_MODIFIED_SINCE)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::http::HeaderValue;

    use super::*;

    fn with(name: header::HeaderName, v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(v).expect("header"));
        h
    }

    fn range(v: &str) -> Option<ByteRange> {
        requested(&with(header::RANGE, v))
    }

    #[test]
    fn one_byte_range_is_read_in_each_form() {
        assert_eq!(range("bytes=0-99"), Some(ByteRange::FromTo(0, 99)));
        assert_eq!(range("bytes=100-"), Some(ByteRange::From(100)));
        assert_eq!(range("bytes=-5"), Some(ByteRange::Suffix(5)));
        assert_eq!(range("Bytes = 1-1"), Some(ByteRange::FromTo(1, 1)));
    }

    #[test]
    fn malformed_foreign_and_multiple_ranges_mean_the_whole_object() {
        for v in ["bytes=5-1", "bytes=-", "bytes=a-b", "bytes=+1-2", "items=0-1", "bytes=0-1,4-5", "0-1", "bytes=1-2-3"]
        {
            assert_eq!(range(v), None, "{v}");
        }
        assert_eq!(requested(&HeaderMap::new()), None);
    }

    #[test]
    fn ranges_resolve_against_the_length_and_past_the_end_is_unsatisfiable() {
        assert_eq!(ByteRange::FromTo(0, 99).resolve(50), Some((0, 49)));
        assert_eq!(ByteRange::From(10).resolve(50), Some((10, 49)));
        assert_eq!(ByteRange::Suffix(10).resolve(50), Some((40, 49)));
        assert_eq!(ByteRange::Suffix(500).resolve(50), Some((0, 49)));
        assert_eq!(ByteRange::From(50).resolve(50), None);
        assert_eq!(ByteRange::FromTo(60, 70).resolve(50), None);
        assert_eq!(ByteRange::Suffix(0).resolve(50), None);
        assert!(ByteRange::Suffix(0).always_unsatisfiable());
        assert_eq!(ByteRange::Suffix(7).header(), "bytes=-7");
    }

    #[test]
    fn validators_decide_not_modified() {
        let etag = Some("\"abc\"");
        assert!(not_modified(&with(header::IF_NONE_MATCH, "\"abc\""), etag, None));
        assert!(not_modified(&with(header::IF_NONE_MATCH, "\"x\", W/\"abc\""), etag, None));
        assert!(not_modified(&with(header::IF_NONE_MATCH, "*"), etag, None));
        assert!(!not_modified(&with(header::IF_NONE_MATCH, "\"other\""), etag, None));
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_500);
        let date = httpdate::fmt_http_date(t);
        assert!(not_modified(&with(header::IF_MODIFIED_SINCE, &date), etag, Some(t)));
        let earlier = httpdate::fmt_http_date(t - Duration::from_secs(60));
        assert!(!not_modified(&with(header::IF_MODIFIED_SINCE, &earlier), etag, Some(t)));
        assert!(!not_modified(&with(header::IF_MODIFIED_SINCE, "yesterday"), etag, Some(t)));
        // If-None-Match decides alone when both are sent.
        let mut both = with(header::IF_NONE_MATCH, "\"other\"");
        both.insert(header::IF_MODIFIED_SINCE, HeaderValue::from_str(&date).expect("date"));
        assert!(!not_modified(&both, etag, Some(t)));
    }
}
