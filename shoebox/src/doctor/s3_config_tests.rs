use super::*;
use crate::storage::BucketSettings;

fn sample() -> Plan {
    let buckets = [
        BucketSettings::public("public", "acme-public").in_region("us-east-1"),
        BucketSettings::private("private", "acme-private").in_region("eu-west-1").at_endpoint("http://127.0.0.1:9000"),
    ];
    plan(&buckets, &["https://app.example".into()])
}

#[test]
fn a_public_bucket_lets_anyone_get_served_photos_and_nothing_else() {
    let p = sample();
    let policy = p.buckets[0].policy.as_ref().expect("public bucket has a policy");
    let statements = policy["Statement"].as_array().expect("statements");
    assert_eq!(statements.len(), 1);
    assert_eq!(statements[0]["Principal"], "*");
    assert_eq!(statements[0]["Action"], "s3:GetObject");
    assert_eq!(statements[0]["Resource"], "arn:aws:s3:::acme-public/photos/*");
    assert!(!policy.to_string().contains("incoming"));
    let pab = p.buckets[0].public_access_block;
    assert!(pab.block_public_acls && pab.ignore_public_acls);
    assert!(!pab.block_public_policy && !pab.restrict_public_buckets);
}

#[test]
fn a_private_bucket_has_no_policy_and_every_public_access_block_on() {
    let p = sample();
    let b = &p.buckets[1];
    assert_eq!(b.policy, None);
    let pab = b.public_access_block;
    assert!(pab.block_public_acls && pab.ignore_public_acls && pab.block_public_policy && pab.restrict_public_buckets);
    let policy = b.sections().into_iter().find(|s| s.name == BUCKET_POLICY).expect("policy section");
    assert_eq!(policy.document, None);
    assert!(policy.cli.starts_with("aws s3api delete-bucket-policy --bucket acme-private --region eu-west-1"));
    assert!(policy.cli.ends_with("--endpoint-url http://127.0.0.1:9000"), "{}", policy.cli);
}

#[test]
fn the_iam_policy_names_exactly_the_actions_and_arns_shoebox_uses() {
    let p = sample();
    let st = p.iam_policy["Statement"].as_array().expect("statements");
    assert_eq!(st.len(), 2);
    assert_eq!(st[0]["Action"], json!(["s3:PutObject", "s3:GetObject", "s3:DeleteObject"]));
    assert_eq!(
        st[0]["Resource"],
        json!([
            "arn:aws:s3:::acme-public/incoming/*",
            "arn:aws:s3:::acme-public/photos/*",
            "arn:aws:s3:::acme-private/incoming/*",
            "arn:aws:s3:::acme-private/photos/*"
        ])
    );
    assert_eq!(st[1]["Action"], json!(["s3:ListBucket"]));
    assert_eq!(st[1]["Resource"], json!(["arn:aws:s3:::acme-public", "arn:aws:s3:::acme-private"]));
    assert!(!p.iam_policy.to_string().contains("\"*\""), "no wildcard action or resource");
}

#[test]
fn cors_allows_post_from_the_app_origins_and_exposes_the_etag() {
    let doc = sample().buckets[0].cors_document();
    let rule = &doc["CORSRules"][0];
    assert_eq!(rule["AllowedOrigins"], json!(["https://app.example"]));
    assert_eq!(rule["AllowedMethods"], json!(["POST"]));
    assert_eq!(rule["ExposeHeaders"], json!(["ETag"]));
}

#[test]
fn uploads_left_under_incoming_expire_after_a_day() {
    let doc = sample().buckets[0].lifecycle_document();
    assert_eq!(
        doc,
        json!({"Rules": [{"ID": LIFECYCLE_RULE_ID, "Filter": {"Prefix": "incoming/"}, "Status": "Enabled", "Expiration": {"Days": 1}}]})
    );
    assert_eq!(
        sample().buckets[0].ownership_document(),
        json!({"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]})
    );
}

#[test]
fn the_json_document_has_every_section_with_a_reason_and_a_command() {
    let j = sample().to_json();
    let buckets = j["buckets"].as_array().expect("buckets");
    assert_eq!(buckets.len(), 2);
    for b in buckets {
        for name in [CORS, PUBLIC_ACCESS_BLOCK, OBJECT_OWNERSHIP, BUCKET_POLICY, LIFECYCLE] {
            let s = &b[name];
            assert!(s["why"].as_str().is_some_and(|w| w.ends_with('.')), "{name}: {s}");
            assert!(s["cli"].as_str().is_some_and(|c| c.starts_with("aws s3api ")), "{name}: {s}");
        }
    }
    assert!(j[IAM_POLICY]["cli"].as_str().is_some_and(|c| c.starts_with("aws iam put-user-policy")));
    assert_eq!(j["buckets"][0]["access"], "public");
}

#[test]
fn documents_in_commands_are_quoted_for_the_shell() {
    assert_eq!(shell_quote(r#"{"a":"it's"}"#), r#"'{"a":"it'\''s"}'"#);
    let cors = sample().buckets[0].sections().remove(0);
    assert!(cors.cli.contains(r#"--cors-configuration '{"CORSRules":"#), "{}", cors.cli);
}
