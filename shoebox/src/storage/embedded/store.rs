//! The embedded endpoint's storage: s3s-fs, plus the facts a form upload's answer needs.
//!
//! s3s answers a POST form upload without the `ETag` and `Location` headers S3 sends, and its
//! 204 answer carries no trace of the stored object at all, so the HTTP front cannot add them
//! afterwards. Only the storage call sees the object's ETag; this wrapper records it, with the
//! bucket and key, in the response's extensions, which s3s hands through to the HTTP response.

use http::HeaderValue;
use s3s::dto::*;
use s3s::{S3, S3Request, S3Response, S3Result};
use s3s_fs::FileSystem;

/// What a successful form upload stored; read by the HTTP front to answer as S3 does.
#[derive(Debug, Clone)]
pub(super) struct PostedObject {
    pub bucket: String,
    pub key: String,
    /// Quoted, as in an `ETag` header.
    pub etag: HeaderValue,
}

/// s3s-fs with form uploads recorded and `DeleteObjects` answered key by key; every other
/// operation is s3s-fs's own.
pub(super) struct Store {
    fs: FileSystem,
}

impl Store {
    pub(super) fn new(fs: FileSystem) -> Self {
        Self { fs }
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
        self.fs.delete_object(single).await.map(|_| ())
    }
}

/// Keys of one `DeleteObjects` removed at once.
const DELETE_CONCURRENCY: usize = 16;

/// Implement `S3` for `Store` by handing each listed operation to s3s-fs unchanged. These are
/// all the operations s3s-fs 0.14 implements; any other keeps s3s's default (NotImplemented),
/// as it would without the wrapper. When s3s-fs gains one, add it here.
macro_rules! store_impl {
    ($($op:ident: $input:ident => $output:ident,)*) => {
        #[async_trait::async_trait]
        impl S3 for Store {
            $(
                async fn $op(&self, req: S3Request<$input>) -> S3Result<S3Response<$output>> {
                    self.fs.$op(req).await
                }
            )*

            async fn delete_objects(
                &self,
                req: S3Request<DeleteObjectsInput>,
            ) -> S3Result<S3Response<DeleteObjectsOutput>> {
                Ok(S3Response::new(self.delete_each(req).await))
            }

            async fn post_object(&self, req: S3Request<PostObjectInput>) -> S3Result<S3Response<PostObjectOutput>> {
                let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
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
    copy_object: CopyObjectInput => CopyObjectOutput,
    delete_bucket: DeleteBucketInput => DeleteBucketOutput,
    delete_object: DeleteObjectInput => DeleteObjectOutput,
    get_bucket_location: GetBucketLocationInput => GetBucketLocationOutput,
    get_object: GetObjectInput => GetObjectOutput,
    head_bucket: HeadBucketInput => HeadBucketOutput,
    head_object: HeadObjectInput => HeadObjectOutput,
    list_buckets: ListBucketsInput => ListBucketsOutput,
    list_objects: ListObjectsInput => ListObjectsOutput,
    list_objects_v2: ListObjectsV2Input => ListObjectsV2Output,
    put_object: PutObjectInput => PutObjectOutput,
    create_multipart_upload: CreateMultipartUploadInput => CreateMultipartUploadOutput,
    upload_part: UploadPartInput => UploadPartOutput,
    upload_part_copy: UploadPartCopyInput => UploadPartCopyOutput,
    list_parts: ListPartsInput => ListPartsOutput,
    complete_multipart_upload: CompleteMultipartUploadInput => CompleteMultipartUploadOutput,
    abort_multipart_upload: AbortMultipartUploadInput => AbortMultipartUploadOutput,
}
