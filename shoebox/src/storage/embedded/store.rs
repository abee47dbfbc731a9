//! The embedded endpoint's storage: s3s-fs, plus the facts a form upload's answer needs.
//!
//! s3s answers a POST form upload without the `ETag` and `Location` headers S3 sends, and its
//! 204 answer carries no trace of the stored object at all, so the HTTP front cannot add them
//! afterwards. Only the storage call sees the object's ETag; this wrapper records it, with the
//! bucket and key, in the response's extensions, which s3s hands through to the HTTP response.

use std::path::PathBuf;
use std::sync::Arc;

use http::HeaderValue;
use s3s::dto::*;
use s3s::{S3, S3Request, S3Response, S3Result};
use s3s_fs::FileSystem;

use super::folder;

/// What a successful form upload stored; read by the HTTP front to answer as S3 does.
#[derive(Debug, Clone)]
pub(super) struct PostedObject {
    pub bucket: String,
    pub key: String,
    /// Quoted, as in an `ETag` header.
    pub etag: HeaderValue,
}

/// s3s-fs with form uploads recorded, `DeleteObjects` answered key by key, deletions that leave
/// nothing behind and listings in key order that read only what a page needs (see
/// [`super::folder`]); every other operation is s3s-fs's own.
pub(super) struct Store {
    fs: FileSystem,
    /// The folder s3s-fs keeps the buckets (one folder each) and its sidecar files in.
    root: PathBuf,
    /// Large folders' sorted entries, between listing pages.
    dirs: Arc<folder::DirCache>,
    /// Folders objects are being written into, which deletions must not remove.
    writes: Arc<folder::Writes>,
}

impl Store {
    pub(super) fn new(fs: FileSystem, root: PathBuf) -> Self {
        Self { fs, root, dirs: Arc::default(), writes: Arc::default() }
    }

    /// Marks `key`'s folder as being written into while s3s-fs writes it (see
    /// [`folder::Writes`]).
    fn writing(&self, bucket: &str, key: &str) -> folder::Writing {
        self.writes.begin(&self.root, bucket, key)
    }

    /// `DeleteObject`, then the sidecars and emptied folders s3s-fs leaves behind.
    async fn delete(&self, req: S3Request<DeleteObjectInput>) -> S3Result<S3Response<DeleteObjectOutput>> {
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        let again = req.clone();
        let out = match self.fs.delete_object(req).await {
            Ok(out) => out,
            // Two deletions of one key at once (a photo's and its variant maker's clean-up of
            // what it wrote meanwhile): s3s-fs sees the file, the other removes it, and its own
            // remove then fails as an InternalError. S3 answers both with success. Asked again,
            // s3s-fs finds the file gone and says so; a failure with the file still there
            // fails again.
            Err(e) if *e.code() == s3s::S3ErrorCode::InternalError => self.fs.delete_object(again).await?,
            Err(e) => return Err(e),
        };
        let (root, writes) = (self.root.clone(), Arc::clone(&self.writes));
        let forgotten = tokio::task::spawn_blocking(move || folder::forget(&root, &bucket, &key, &writes)).await;
        match forgotten {
            Ok(Ok(())) => Ok(out),
            Ok(Err(e)) => Err(s3s::s3_error!(e, InternalError, "removing what the object left behind")),
            Err(e) => Err(s3s::s3_error!(InternalError, "removing what the object left behind: {e}")),
        }
    }

    /// `ListObjectsV2` without a delimiter (what Shoebox's jobs ask for), from a walk of the
    /// bucket's folder in key order; with one, s3s-fs's own.
    async fn list(&self, req: S3Request<ListObjectsV2Input>) -> S3Result<S3Response<ListObjectsV2Output>> {
        if req.input.delimiter.is_some() {
            return self.fs.list_objects_v2(req).await;
        }
        let input = req.input;
        let dir = self.root.join(&input.bucket);
        if input.bucket.contains(['/', '\\']) || input.bucket.starts_with('.') || !dir.is_dir() {
            return Err(s3s::s3_error!(NoSuchBucket));
        }
        let max_keys = input.max_keys.unwrap_or(1000).clamp(0, 1000);
        let prefix = input.prefix.clone().unwrap_or_default();
        // The token is the last key of the page before, as s3s-fs's is.
        let after = match (input.continuation_token.as_deref(), input.start_after.as_deref()) {
            (Some(t), Some(s)) => t.max(s).to_owned(),
            (t, s) => t.or(s).unwrap_or_default().to_owned(),
        };
        let max = usize::try_from(max_keys).unwrap_or(0);
        let dirs = self.dirs.clone();
        let walked = tokio::task::spawn_blocking(move || folder::list(&dirs, &dir, &prefix, &after, max)).await;
        let (found, more) = match walked {
            Ok(Ok(page)) => page,
            Ok(Err(e)) => return Err(s3s::s3_error!(e, InternalError, "listing the bucket's folder")),
            Err(e) => return Err(s3s::s3_error!(InternalError, "listing the bucket's folder: {e}")),
        };
        let next = if more { found.last().map(|f| f.key.clone()) } else { None };
        let key_count = i32::try_from(found.len()).unwrap_or(i32::MAX);
        let contents: Vec<Object> = found
            .into_iter()
            .map(|f| Object {
                key: Some(f.key),
                size: Some(i64::try_from(f.size).unwrap_or(i64::MAX)),
                last_modified: Some(Timestamp::from(f.modified)),
                ..Default::default()
            })
            .collect();
        Ok(S3Response::new(ListObjectsV2Output {
            key_count: Some(key_count),
            max_keys: Some(max_keys),
            is_truncated: Some(more),
            contents: (!contents.is_empty()).then_some(contents),
            continuation_token: input.continuation_token,
            next_continuation_token: next,
            encoding_type: input.encoding_type,
            name: Some(input.bucket),
            prefix: input.prefix,
            start_after: input.start_after,
            ..Default::default()
        }))
    }
}

impl Store {
    /// `DeleteObjects` as S3 answers it: each key on its own, so a key that cannot be deleted
    /// is an `<Error>` entry naming it while the others are still deleted. s3s-fs fails the
    /// whole request at the first such key instead, which would hide from clients (clean-up
    /// among them) which keys are really gone.
    async fn delete_each(&self, req: S3Request<DeleteObjectsInput>) -> DeleteObjectsOutput {
        use futures_util::StreamExt as _;
        let quiet = req.input.delete.quiet.unwrap_or(false);
        let req = &req;
        // s3s-fs removes each file on the blocking pool; a few at a time keeps a 1000-key
        // request well inside the S3 client's attempt timeout.
        let deletions: Vec<_> = req.input.delete.objects.iter().map(|object| self.delete_one(req, object)).collect();
        let outcomes: Vec<S3Result<()>> =
            futures_util::stream::iter(deletions).buffered(DELETE_CONCURRENCY).collect().await;
        let results = req.input.delete.objects.iter().zip(outcomes);
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        for (object, result) in results {
            match result {
                Ok(()) if quiet => {}
                Ok(()) => deleted.push(DeletedObject {
                    key: Some(object.key.clone()),
                    version_id: object.version_id.clone(),
                    ..Default::default()
                }),
                Err(e) => errors.push(Error {
                    code: Some(e.code().as_str().to_owned()),
                    key: Some(object.key.clone()),
                    message: Some(
                        e.message().unwrap_or("We encountered an internal error. Please try again.").to_owned(),
                    ),
                    version_id: object.version_id.clone(),
                }),
            }
        }
        DeleteObjectsOutput {
            deleted: Some(deleted),
            errors: (!errors.is_empty()).then_some(errors),
            ..Default::default()
        }
    }

    /// One key of a `DeleteObjects`, as s3s-fs deletes a single object.
    async fn delete_one(&self, req: &S3Request<DeleteObjectsInput>, object: &ObjectIdentifier) -> S3Result<()> {
        let input = DeleteObjectInput::builder()
            .bucket(req.input.bucket.clone())
            .key(object.key.clone())
            .version_id(object.version_id.clone())
            .build()
            .map_err(|e| s3s::s3_error!(InvalidRequest, "{e}"))?;
        let single = S3Request {
            input,
            method: req.method.clone(),
            uri: req.uri.clone(),
            headers: req.headers.clone(),
            extensions: http::Extensions::new(),
            credentials: req.credentials.clone(),
            region: req.region.clone(),
            service: req.service.clone(),
            trailing_headers: None,
        };
        self.delete(single).await.map(|_| ())
    }
}

/// Keys of one `DeleteObjects` removed at once.
const DELETE_CONCURRENCY: usize = 16;

/// Implement `S3` for `Store` by handing each listed operation to s3s-fs unchanged; those that
/// write an object register its folder while they do, and deletions and listings are the
/// Store's own. These are all the operations s3s-fs 0.14 implements; any other keeps s3s's
/// default (NotImplemented), as it would without the wrapper. When s3s-fs gains one, add it here.
macro_rules! store_impl {
    ($($op:ident: $input:ident => $output:ident,)*) => {
        #[async_trait::async_trait]
        impl S3 for Store {
            $(
                async fn $op(&self, req: S3Request<$input>) -> S3Result<S3Response<$output>> {
                    self.fs.$op(req).await
                }
            )*

            async fn delete_object(&self, req: S3Request<DeleteObjectInput>) -> S3Result<S3Response<DeleteObjectOutput>> {
                self.delete(req).await
            }

            async fn list_objects_v2(
                &self,
                req: S3Request<ListObjectsV2Input>,
            ) -> S3Result<S3Response<ListObjectsV2Output>> {
                self.list(req).await
            }

            async fn delete_objects(
                &self,
                req: S3Request<DeleteObjectsInput>,
            ) -> S3Result<S3Response<DeleteObjectsOutput>> {
                Ok(S3Response::new(self.delete_each(req).await))
            }

            async fn put_object(&self, req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
                let _writing = self.writing(&req.input.bucket, &req.input.key);
                self.fs.put_object(req).await
            }

            async fn copy_object(&self, req: S3Request<CopyObjectInput>) -> S3Result<S3Response<CopyObjectOutput>> {
                let _writing = self.writing(&req.input.bucket, &req.input.key);
                self.fs.copy_object(req).await
            }

            async fn complete_multipart_upload(
                &self,
                req: S3Request<CompleteMultipartUploadInput>,
            ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
                let _writing = self.writing(&req.input.bucket, &req.input.key);
                self.fs.complete_multipart_upload(req).await
            }

            async fn post_object(&self, req: S3Request<PostObjectInput>) -> S3Result<S3Response<PostObjectOutput>> {
                let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
                let _writing = self.writing(&bucket, &key);
                // s3s-fs has no POST of its own: the trait's default stores it with put_object.
                let mut resp = self.fs.post_object(req).await?;
                if let Some(etag) = resp.output.e_tag.as_ref().and_then(|e| e.to_http_header().ok()) {
                    resp.extensions.insert(PostedObject { bucket, key, etag });
                }
                Ok(resp)
            }
        }
    };
}

store_impl! {
    create_bucket: CreateBucketInput => CreateBucketOutput,
    delete_bucket: DeleteBucketInput => DeleteBucketOutput,
    get_bucket_location: GetBucketLocationInput => GetBucketLocationOutput,
    get_object: GetObjectInput => GetObjectOutput,
    head_bucket: HeadBucketInput => HeadBucketOutput,
    head_object: HeadObjectInput => HeadObjectOutput,
    list_buckets: ListBucketsInput => ListBucketsOutput,
    list_objects: ListObjectsInput => ListObjectsOutput,
    create_multipart_upload: CreateMultipartUploadInput => CreateMultipartUploadOutput,
    upload_part: UploadPartInput => UploadPartOutput,
    upload_part_copy: UploadPartCopyInput => UploadPartCopyOutput,
    list_parts: ListPartsInput => ListPartsOutput,
    abort_multipart_upload: AbortMultipartUploadInput => AbortMultipartUploadOutput,
}
