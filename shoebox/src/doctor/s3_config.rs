//! What each bucket needs, as documents: CORS, Block Public Access, Object Ownership, bucket
//! policy, lifecycle, and the app user's IAM policy. Pure: settings and origins in, documents
//! out; `shoebox s3-config` prints them and `--apply` writes the bucket-level ones.

use serde_json::{Value, json};

use crate::domain::BucketAccess;
use crate::domain::photo::SERVED_PREFIX;
use crate::storage::BucketSettings;
use crate::storage::admin::{CorsRuleSpec, ExpireRule, PublicAccessBlock};

/// Where unverified uploads wait. Forms only ever write here.
pub const INCOMING_PREFIX: &str = "incoming/";
/// The lifecycle rule's id, so a later run recognises its own rule.
pub const LIFECYCLE_RULE_ID: &str = "shoebox-expire-incoming";
/// The object ownership every bucket gets: ACLs off, the bucket owner owns every object.
pub const OWNERSHIP: &str = "BucketOwnerEnforced";

/// Section names, shared by the printed output, the JSON document and the doctor's advice.
pub const CORS: &str = "cors";
/// See [`CORS`].
pub const PUBLIC_ACCESS_BLOCK: &str = "public_access_block";
/// See [`CORS`].
pub const OBJECT_OWNERSHIP: &str = "object_ownership";
/// See [`CORS`].
pub const BUCKET_POLICY: &str = "bucket_policy";
/// See [`CORS`].
pub const LIFECYCLE: &str = "lifecycle";
/// See [`CORS`].
pub const IAM_POLICY: &str = "iam_policy";

/// Everything one bucket should have.
#[derive(Debug, Clone, PartialEq)]
pub struct BucketPlan {
    /// The configured name (`public`).
    pub name: String,
    /// The S3 bucket's name.
    pub s3_name: String,
    /// Who may read it.
    pub access: BucketAccess,
    /// Its region.
    pub region: String,
    pub(crate) endpoint: Option<String>,
    pub(crate) cors: Vec<CorsRuleSpec>,
    pub(crate) public_access_block: PublicAccessBlock,
    pub(crate) ownership: &'static str,
    /// `None`: the bucket must have no policy.
    pub(crate) policy: Option<Value>,
    pub(crate) lifecycle: Vec<ExpireRule>,
}

/// One part of a bucket's configuration, ready to print.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    /// Its name ([`CORS`], ...).
    pub name: &'static str,
    /// Why the bucket needs it, in a sentence.
    pub why: &'static str,
    /// The document as the AWS CLI takes it; `None` for "no bucket policy".
    pub document: Option<Value>,
    /// The `aws` command that applies it.
    pub cli: String,
}

/// The plan for the chosen buckets and the app user's IAM policy covering them.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Each bucket's.
    pub buckets: Vec<BucketPlan>,
    /// The least-privilege policy for the app's user, covering every bucket.
    pub iam_policy: Value,
}

/// Build the plan for `buckets`, whose upload forms are posted from `origins`.
pub fn plan(buckets: &[BucketSettings], origins: &[String]) -> Plan {
    let buckets: Vec<BucketPlan> = buckets.iter().map(|b| bucket_plan(b, origins)).collect();
    let iam_policy = iam_policy(&buckets.iter().map(|b| b.s3_name.as_str()).collect::<Vec<_>>());
    Plan { buckets, iam_policy }
}

fn bucket_plan(b: &BucketSettings, origins: &[String]) -> BucketPlan {
    let public = b.access == BucketAccess::Public;
    BucketPlan {
        name: b.name.clone(),
        s3_name: b.bucket.clone(),
        access: b.access,
        region: b.region.clone(),
        endpoint: b.endpoint.clone(),
        cors: vec![CorsRuleSpec {
            allowed_origins: origins.to_vec(),
            allowed_methods: vec!["POST".into()],
            // The page posts FormData: only CORS-safelisted headers, but the upload progress
            // listener makes the browser preflight, and browsers differ in what they list.
            allowed_headers: vec!["*".into()],
            expose_headers: vec!["ETag".into()],
            max_age_seconds: Some(3000),
        }],
        public_access_block: PublicAccessBlock {
            block_public_acls: true,
            ignore_public_acls: true,
            block_public_policy: !public,
            restrict_public_buckets: !public,
        },
        ownership: OWNERSHIP,
        policy: public.then(|| public_read_policy(&b.bucket)),
        lifecycle: vec![ExpireRule { id: LIFECYCLE_RULE_ID.into(), prefix: INCOMING_PREFIX.into(), days: 1 }],
    }
}

/// Anonymous `s3:GetObject` on the served prefix only.
pub fn public_read_policy(s3_name: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "ShoeboxPublicReadServedPhotos",
            "Effect": "Allow",
            "Principal": "*",
            "Action": "s3:GetObject",
            "Resource": format!("arn:aws:s3:::{s3_name}/{SERVED_PREFIX}*"),
        }]
    })
}

/// Exactly the actions Shoebox uses, on exactly these buckets and prefixes.
pub fn iam_policy(s3_names: &[&str]) -> Value {
    let objects: Vec<String> = s3_names
        .iter()
        .flat_map(|b| [format!("arn:aws:s3:::{b}/{INCOMING_PREFIX}*"), format!("arn:aws:s3:::{b}/{SERVED_PREFIX}*")])
        .collect();
    let buckets: Vec<String> = s3_names.iter().map(|b| format!("arn:aws:s3:::{b}")).collect();
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ShoeboxObjects",
                "Effect": "Allow",
                "Action": ["s3:PutObject", "s3:GetObject", "s3:DeleteObject"],
                "Resource": objects,
            },
            {
                "Sid": "ShoeboxListBuckets",
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": buckets,
            }
        ]
    })
}

impl BucketPlan {
    pub(crate) fn cors_document(&self) -> Value {
        json!({ "CORSRules": self.cors })
    }

    pub(crate) fn public_access_block_document(&self) -> Value {
        serde_json::to_value(self.public_access_block).unwrap_or(Value::Null)
    }

    pub(crate) fn ownership_document(&self) -> Value {
        json!({ "Rules": [{ "ObjectOwnership": self.ownership }] })
    }

    pub(crate) fn lifecycle_document(&self) -> Value {
        let rules: Vec<Value> = self
            .lifecycle
            .iter()
            .map(|r| {
                json!({ "ID": r.id, "Filter": { "Prefix": r.prefix }, "Status": "Enabled", "Expiration": { "Days": r.days } })
            })
            .collect();
        json!({ "Rules": rules })
    }

    /// The five bucket-level sections, in the order they are best applied (the public access
    /// block before the policy: S3 refuses a public policy while `BlockPublicPolicy` is on).
    pub fn sections(&self) -> Vec<Section> {
        let public = self.access == BucketAccess::Public;
        let cmd = |verb: &str, arg: &str, doc: &Value| {
            format!("{} --{arg} {}", self.s3api(verb), shell_quote(&doc.to_string()))
        };
        let (cors, pab, own, life) = (
            self.cors_document(),
            self.public_access_block_document(),
            self.ownership_document(),
            self.lifecycle_document(),
        );
        vec![
            Section {
                name: CORS,
                why: "Browsers post upload forms straight to the bucket from the app's pages, so S3 must answer \
                      their preflight for POST from these origins and expose ETag to the page.",
                cli: cmd("put-bucket-cors", "cors-configuration", &cors),
                document: Some(cors),
            },
            Section {
                name: PUBLIC_ACCESS_BLOCK,
                why: if public {
                    "ACLs stay blocked, and only the two policy switches are off so that the public-read \
                     policy on photos/ can take effect."
                } else {
                    "Every switch on: nothing in a private bucket may become public, by ACL or by policy."
                },
                cli: cmd("put-public-access-block", "public-access-block-configuration", &pab),
                document: Some(pab),
            },
            Section {
                name: OBJECT_OWNERSHIP,
                why: "Bucket owner enforced turns ACLs off, so the bucket owns every object and only policies \
                      decide who may read it.",
                cli: cmd("put-bucket-ownership-controls", "ownership-controls", &own),
                document: Some(own),
            },
            match &self.policy {
                Some(p) => Section {
                    name: BUCKET_POLICY,
                    why: "Anyone may GET served photos (photos/*), which <img src> needs; nothing under incoming/ \
                          is readable, so an unverified upload is never served.",
                    cli: cmd("put-bucket-policy", "policy", p),
                    document: Some(p.clone()),
                },
                None => Section {
                    name: BUCKET_POLICY,
                    why: "No policy: Shoebox streams private photos to allowed viewers itself, so nobody reads \
                          this bucket anonymously.",
                    cli: self.s3api("delete-bucket-policy"),
                    document: None,
                },
            },
            Section {
                name: LIFECYCLE,
                why: "An upload that is never verified stays under incoming/; S3 deletes it after a day (forms \
                      live at most an hour), so abandoned uploads cost nothing.",
                cli: cmd("put-bucket-lifecycle-configuration", "lifecycle-configuration", &life),
                document: Some(life),
            },
        ]
    }

    fn s3api(&self, verb: &str) -> String {
        let mut s = format!("aws s3api {verb} --bucket {} --region {}", self.s3_name, self.region);
        if let Some(ep) = &self.endpoint {
            s.push_str(&format!(" --endpoint-url {ep}"));
        }
        s
    }
}

impl Plan {
    /// The IAM policy as a printable section.
    pub fn iam_section(&self) -> Section {
        Section {
            name: IAM_POLICY,
            why: "The app's user may write, read and delete objects only under incoming/ and photos/ and list only \
                  these buckets; it cannot change bucket settings, so a leaked key cannot make a bucket public.",
            cli: format!(
                "aws iam put-user-policy --user-name YOUR_APP_USER --policy-name shoebox-s3 --policy-document {}",
                shell_quote(&self.iam_policy.to_string())
            ),
            document: Some(self.iam_policy.clone()),
        }
    }

    /// The whole plan as one JSON document (`s3-config --json`).
    pub fn to_json(&self) -> Value {
        let section = |s: &Section| json!({ "why": s.why, "document": s.document, "cli": s.cli });
        let buckets: Vec<Value> = self
            .buckets
            .iter()
            .map(|b| {
                let mut o = serde_json::Map::new();
                o.insert("name".into(), json!(b.name));
                o.insert("bucket".into(), json!(b.s3_name));
                o.insert("access".into(), json!(access_word(b.access)));
                o.insert("region".into(), json!(b.region));
                for s in b.sections() {
                    o.insert(s.name.into(), section(&s));
                }
                Value::Object(o)
            })
            .collect();
        json!({ "buckets": buckets, IAM_POLICY: section(&self.iam_section()) })
    }
}

/// `public` or `private`.
pub fn access_word(a: BucketAccess) -> &'static str {
    match a {
        BucketAccess::Public => "public",
        BucketAccess::Private => "private",
    }
}

/// Single-quote for a POSIX shell.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
#[path = "s3_config_tests.rs"]
mod tests;
