//! Listing a bucket page by page and deleting many objects at once, for the lifecycle jobs.

use super::{Bucket, S3Error, StorageError};
use crate::domain::Millis;

/// The most keys one `DeleteObjects` request takes (S3's limit).
pub const DELETE_BATCH: usize = 1000;

/// One object a listing found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    pub size: u64,
    pub last_modified: Option<Millis>,
}

/// One page of a listing and the token for the next (`None`: that was the last page).
#[derive(Debug, Clone, Default)]
pub struct ListPage {
    pub objects: Vec<Listed>,
    pub next: Option<String>,
}

impl Bucket {
    /// One page (up to 1000 keys) of `ListObjectsV2` under `prefix`, continuing from `token`.
    /// Callers loop until `next` is `None`, so any number of objects is seen, one page in
    /// memory at a time.
    pub async fn list_page(&self, prefix: &str, token: Option<String>) -> Result<ListPage, StorageError> {
        let out = self
            .client
            .list_objects_v2()
            .bucket(&self.s3_name)
            .prefix(prefix)
            .set_continuation_token(token)
            .send()
            .await
            .map_err(|e| self.failed("ListObjectsV2", &e))?;
        let objects = out
            .contents()
            .iter()
            .filter_map(|o| {
                Some(Listed {
                    key: o.key()?.to_owned(),
                    size: o.size().and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
                    last_modified: o.last_modified().and_then(|t| t.to_millis().ok()),
                })
            })
            .collect();
        // A truncated page without a token would loop forever on a broken server: stop instead.
        let next =
            if out.is_truncated() == Some(true) { out.next_continuation_token().map(str::to_owned) } else { None };
        Ok(ListPage { objects, next })
    }

    /// Delete up to [`DELETE_BATCH`] keys in one `DeleteObjects` request. S3 answers 200 even
    /// when single keys fail, so the keys that failed are returned with their error codes; an
    /// `Err` means the request as a whole failed and nothing can be assumed deleted.
    pub async fn delete_keys(&self, keys: &[String]) -> Result<Vec<(String, String)>, StorageError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        debug_assert!(keys.len() <= DELETE_BATCH, "DeleteObjects takes at most 1000 keys");
        self.delete_many(keys).await.map_err(|f| StorageError::from(S3Error::new(f)))
    }
}
