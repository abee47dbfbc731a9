//! The SigV4 presigned POST signer.
//!
//! aws-sdk-s3 can presign GET and PUT but not a browser POST form
//! (awslabs/aws-sdk-rust#863), so the policy document and its signature are built here. The
//! policy pins everything the browser may choose: the bucket, the exact key, the size range, the
//! exact Content-Type and every other field of the form. S3 (and the embedded endpoint) refuse a
//! form whose fields are not all covered by a condition, so a field added here without a
//! condition breaks uploads loudly rather than silently widening what a form allows.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use time::OffsetDateTime;
use time::macros::format_description;

/// Credentials used to sign a form. The secret never leaves this process.
#[derive(Clone)]
pub struct SigningCredentials {
    /// The access key id (`AKIA…`).
    pub access_key_id: String,
    /// Its secret; never printed.
    pub secret_access_key: String,
    /// Present for temporary (STS) credentials; S3 then requires `x-amz-security-token`.
    pub session_token: Option<String>,
}

impl std::fmt::Debug for SigningCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("session_token", &self.session_token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// What one upload form is allowed to do.
#[derive(Debug, Clone)]
pub struct PostPolicyRequest<'a> {
    /// The S3 bucket's name.
    pub bucket: &'a str,
    /// Its region.
    pub region: &'a str,
    /// The exact object key; the form can write nowhere else.
    pub key: &'a str,
    /// The exact Content-Type S3 will store with the object.
    pub content_type: &'a str,
    /// Inclusive byte range the uploaded file must fall in.
    /// The smallest file accepted, in bytes.
    pub min_bytes: u64,
    /// The largest file accepted, in bytes.
    pub max_bytes: u64,
    /// Where S3 sends the browser after a form submitted without JavaScript. When absent the form
    /// asks for a bare `201 Created` answer (what the page's JavaScript expects).
    pub success_redirect: Option<&'a str>,
    /// When it is signed (the credential's date).
    pub now: OffsetDateTime,
    /// When the form stops working.
    pub expires_at: OffsetDateTime,
}

/// A signed form: the URL to POST to is known by the caller; these are the fields, in the order
/// they must be sent (the file goes last).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedPostForm {
    /// The form's fields, in order; the file goes last.
    pub fields: Vec<(String, String)>,
}

/// Build and sign the policy for one upload form.
pub fn sign_post_policy(req: &PostPolicyRequest<'_>, creds: &SigningCredentials) -> SignedPostForm {
    let date = req.now.format(format_description!("[year][month][day]")).unwrap_or_default();
    let amz_date =
        req.now.format(format_description!("[year][month][day]T[hour][minute][second]Z")).unwrap_or_default();
    let credential = format!("{}/{date}/{}/s3/aws4_request", creds.access_key_id, req.region);

    // The fields the browser sends, in order; every one is pinned by an `eq` condition below.
    let mut fields: Vec<(String, String)> =
        vec![("key".into(), req.key.into()), ("Content-Type".into(), req.content_type.into())];
    match req.success_redirect {
        Some(url) => fields.push(("success_action_redirect".into(), url.into())),
        None => fields.push(("success_action_status".into(), "201".into())),
    }
    fields.push(("x-amz-algorithm".into(), "AWS4-HMAC-SHA256".into()));
    fields.push(("x-amz-credential".into(), credential));
    fields.push(("x-amz-date".into(), amz_date));
    if let Some(token) = &creds.session_token {
        fields.push(("x-amz-security-token".into(), token.clone()));
    }

    let mut conditions: Vec<Value> = vec![json!({ "bucket": req.bucket })];
    conditions.extend(fields.iter().map(|(name, value)| json!(["eq", format!("${name}"), value])));
    conditions.push(json!(["content-length-range", req.min_bytes, req.max_bytes]));
    let policy = json!({
        "expiration": iso8601_millis(req.expires_at),
        "conditions": conditions,
    });
    let policy_b64 = base64::engine::general_purpose::STANDARD.encode(policy.to_string());
    let signature = signature_for(&policy_b64, &creds.secret_access_key, &date, req.region);

    fields.push(("policy".into(), policy_b64));
    fields.push(("x-amz-signature".into(), signature));
    SignedPostForm { fields }
}

/// The SigV4 signature of an already-encoded policy: HMAC chain `"AWS4"+secret` → date → region
/// → `s3` → `aws4_request`, then the hex HMAC of the base64 policy.
pub fn signature_for(policy_b64: &str, secret: &str, date_yyyymmdd: &str, region: &str) -> String {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date_yyyymmdd.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, b"s3");
    let k_signing = hmac(&k_service, b"aws4_request");
    hex::encode(hmac(&k_signing, policy_b64.as_bytes()))
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail here.
    let mut mac = <Hmac<Sha256>>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn iso8601_millis(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    /// The worked example in the Amazon S3 API reference, "Example: Browser-based upload using
    /// HTTP POST (AWS Signature Version 4)": its policy (with CRLF line ends, exactly as published
    /// in base64), example credentials and resulting signature.
    const AWS_POLICY_B64: &str = "eyAiZXhwaXJhdGlvbiI6ICIyMDE1LTEyLTMwVDEyOjAwOjAwLjAwMFoiLA0KICAiY29uZGl0aW9ucyI6IFsNCiAgICB7ImJ1Y2tldCI6ICJzaWd2NGV4YW1wbGVidWNrZXQifSwNCiAgICBbInN0YXJ0cy13aXRoIiwgIiRrZXkiLCAidXNlci91c2VyMS8iXSwNCiAgICB7ImFjbCI6ICJwdWJsaWMtcmVhZCJ9LA0KICAgIHsic3VjY2Vzc19hY3Rpb25fcmVkaXJlY3QiOiAiaHR0cDovL3NpZ3Y0ZXhhbXBsZWJ1Y2tldC5zMy5hbWF6b25hd3MuY29tL3N1Y2Nlc3NmdWxfdXBsb2FkLmh0bWwifSwNCiAgICBbInN0YXJ0cy13aXRoIiwgIiRDb250ZW50LVR5cGUiLCAiaW1hZ2UvIl0sDQogICAgeyJ4LWFtei1tZXRhLXV1aWQiOiAiMTQzNjUxMjM2NTEyNzQifSwNCiAgICB7IngtYW16LXNlcnZlci1zaWRlLWVuY3J5cHRpb24iOiAiQUVTMjU2In0sDQogICAgWyJzdGFydHMtd2l0aCIsICIkeC1hbXotbWV0YS10YWciLCAiIl0sDQoNCiAgICB7IngtYW16LWNyZWRlbnRpYWwiOiAiQUtJQUlPU0ZPRE5ON0VYQU1QTEUvMjAxNTEyMjkvdXMtZWFzdC0xL3MzL2F3czRfcmVxdWVzdCJ9LA0KICAgIHsieC1hbXotYWxnb3JpdGhtIjogIkFXUzQtSE1BQy1TSEEyNTYifSwNCiAgICB7IngtYW16LWRhdGUiOiAiMjAxNTEyMjlUMDAwMDAwWiIgfQ0KICBdDQp9";
    const AWS_SIGNATURE: &str = "8afdbf4008c03f22c2cd3cdb72e4afbb1f6a588f3255ac628749a66d7f09699e";

    #[test]
    fn signature_matches_the_published_aws_post_example() {
        let sig = signature_for(AWS_POLICY_B64, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "20151229", "us-east-1");
        assert_eq!(sig, AWS_SIGNATURE);
    }

    #[test]
    fn the_published_policy_decodes_to_the_documented_conditions() {
        // Guards the constant above against a copy error: the signature test alone would pass
        // on any string if the signature were copied from the same wrong source.
        let bytes = base64::engine::general_purpose::STANDARD.decode(AWS_POLICY_B64).expect("base64");
        let text = String::from_utf8(bytes).expect("utf8");
        assert!(text.starts_with("{ \"expiration\": \"2015-12-30T12:00:00.000Z\",\r\n"));
        assert!(text.contains("AKIAIOSFODNN7EXAMPLE/20151229/us-east-1/s3/aws4_request"));
    }

    fn example_request() -> PostPolicyRequest<'static> {
        PostPolicyRequest {
            bucket: "photos",
            region: "eu-west-1",
            key: "incoming/abc",
            content_type: "image/jpeg",
            min_bytes: 1,
            max_bytes: 1000,
            success_redirect: None,
            now: datetime!(2026-11-28 10:00:00 UTC),
            expires_at: datetime!(2026-11-28 10:05:00 UTC),
        }
    }

    fn creds(token: Option<&str>) -> SigningCredentials {
        SigningCredentials {
            access_key_id: "AKID".into(),
            secret_access_key: "secret".into(),
            session_token: token.map(str::to_owned),
        }
    }

    fn decoded_policy(form: &SignedPostForm) -> Value {
        let b64 = &form.fields.iter().find(|(k, _)| k == "policy").expect("policy").1;
        serde_json::from_slice(&base64::engine::general_purpose::STANDARD.decode(b64).expect("b64")).expect("json")
    }

    #[test]
    fn policy_pins_bucket_key_type_size_and_every_form_field() {
        let form = sign_post_policy(&example_request(), &creds(None));
        let policy = decoded_policy(&form);
        assert_eq!(policy["expiration"], "2026-11-28T10:05:00.000Z");
        let conditions = policy["conditions"].as_array().expect("conditions");
        assert!(conditions.contains(&json!({"bucket": "photos"})));
        assert!(conditions.contains(&json!(["eq", "$key", "incoming/abc"])));
        assert!(conditions.contains(&json!(["eq", "$Content-Type", "image/jpeg"])));
        assert!(conditions.contains(&json!(["content-length-range", 1, 1000])));
        assert!(conditions.contains(&json!(["eq", "$x-amz-credential", "AKID/20261128/eu-west-1/s3/aws4_request"])));
        assert!(conditions.contains(&json!(["eq", "$x-amz-date", "20261128T100000Z"])));
        for (name, value) in &form.fields {
            if name == "policy" || name == "x-amz-signature" {
                continue;
            }
            assert!(conditions.contains(&json!(["eq", format!("${name}"), value])), "{name} not pinned");
        }
        assert_eq!(form.fields.last().map(|(k, _)| k.as_str()), Some("x-amz-signature"));
    }

    #[test]
    fn temporary_credentials_add_a_pinned_security_token() {
        let form = sign_post_policy(&example_request(), &creds(Some("TOKEN")));
        let policy = decoded_policy(&form);
        assert!(policy["conditions"].as_array().expect("c").contains(&json!(["eq", "$x-amz-security-token", "TOKEN"])));
        assert!(form.fields.contains(&("x-amz-security-token".into(), "TOKEN".into())));
        let without = sign_post_policy(&example_request(), &creds(None));
        assert!(!without.fields.iter().any(|(k, _)| k == "x-amz-security-token"));
    }

    #[test]
    fn a_redirect_form_pins_the_redirect_instead_of_a_status() {
        let mut req = example_request();
        req.success_redirect = Some("https://app.example/uploads/1/done");
        let form = sign_post_policy(&req, &creds(None));
        assert!(form.fields.contains(&("success_action_redirect".into(), "https://app.example/uploads/1/done".into())));
        assert!(!form.fields.iter().any(|(k, _)| k == "success_action_status"));
    }

    #[test]
    fn debug_output_hides_the_secret_and_token() {
        let text = format!("{:?}", creds(Some("TOKEN")));
        assert!(!text.contains("\"secret\""));
        assert!(!text.contains("TOKEN"));
    }
}
