//! The embedded endpoint's folders on disk, where s3s-fs keeps one file per object under the
//! bucket's folder and sidecar files beside the buckets: listing a bucket a page at a time in
//! key order, and removing everything a deleted object left behind.
//!
//! s3s-fs lists by reading and `stat`ing every file of the bucket and sorting them all, for
//! every page: at 100,000 objects a page took seconds, longer than the S3 client's attempt
//! timeout. And it deletes only the object's own file, so its sidecars and its folder stayed
//! forever. A developer's laptop after a month of uploads must not be slower than on day one.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// One object a listing found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Found {
    pub key: String,
    pub size: u64,
    pub modified: SystemTime,
}

/// Up to `max` objects of the bucket folder `bucket_dir` whose keys start with `prefix` and
/// come after `after`, in byte order of the key (S3's order), and whether more follow.
///
/// The folder is walked depth first, each directory's entries sorted by the key they stand for
/// (a directory's name with its `/`, which is what orders its keys among its siblings: `a-b`
/// before `a/x` before `a0`), so the walk meets keys in S3's order. Subtrees wholly before
/// `after` or outside `prefix` are skipped without being read, and only the objects returned
/// are `stat`ed, so a page costs the directories on its path, not the whole bucket.
pub(super) fn list(
    cache: &DirCache,
    bucket_dir: &Path,
    prefix: &str,
    after: &str,
    max: usize,
) -> io::Result<(Vec<Found>, bool)> {
    let mut walk = Walk { cache, prefix, after, max, found: Vec::new(), more: false };
    walk.dir(bucket_dir, "")?;
    Ok((walk.found, walk.more))
}

/// One directory's entries, each as the key segment it stands for (`name`, or `name/` for a
/// directory), sorted: the order of the keys below them.
type Entries = Arc<Vec<String>>;

/// The sorted entries of large directories, kept between pages while the directory does not
/// change, so that paging through a folder of 100,000 photos reads and sorts it once rather
/// than once per page. A page then costs a binary search in it.
#[derive(Default)]
pub(super) struct DirCache {
    dirs: Mutex<HashMap<PathBuf, (SystemTime, Entries)>>,
}

/// Directories with fewer entries are read each time: cheap, and not worth the memory.
const CACHED_FROM: usize = 512;
/// Directories kept at most (each of a bucket's large folders: `photos/`, `incoming/`).
const CACHED_DIRS: usize = 16;
/// A directory is cached only once its last change is this old. A directory's modification
/// time has the granularity of the kernel's clock tick, so a change in the same tick as the
/// one a cached copy saw would leave the time unchanged; a directory quiet for this long has
/// no such change pending.
const SETTLED: Duration = Duration::from_secs(2);

impl DirCache {
    /// The sorted entries of `dir`, from the cache while its modification time is the one
    /// they were read at.
    fn entries(&self, dir: &Path) -> io::Result<Entries> {
        let modified = fs::metadata(dir)?.modified()?;
        if let Some((at, entries)) = self.dirs.lock().unwrap_or_else(PoisonError::into_inner).get(dir)
            && *at == modified
        {
            return Ok(entries.clone());
        }
        let mut entries = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            // Names that are not UTF-8 cannot be keys; s3s-fs skips them too.
            let Ok(name) = entry.file_name().into_string() else { continue };
            entries.push(if entry.file_type()?.is_dir() { format!("{name}/") } else { name });
        }
        entries.sort_unstable();
        let entries = Arc::new(entries);
        let settled = modified.elapsed().is_ok_and(|age| age >= SETTLED);
        if settled && entries.len() >= CACHED_FROM {
            let mut dirs = self.dirs.lock().unwrap_or_else(PoisonError::into_inner);
            if dirs.len() >= CACHED_DIRS {
                dirs.clear();
            }
            dirs.insert(dir.to_path_buf(), (modified, entries.clone()));
        }
        Ok(entries)
    }
}

struct Walk<'a> {
    cache: &'a DirCache,
    prefix: &'a str,
    after: &'a str,
    max: usize,
    found: Vec<Found>,
    /// An object past the page was seen.
    more: bool,
}

impl Walk<'_> {
    /// Walk the directory `dir`, whose keys all start with `rel`. False once the page is full.
    fn dir(&mut self, dir: &Path, rel: &str) -> io::Result<bool> {
        let entries = self.cache.entries(dir)?;
        // Entries whose keys all come at or before `after` are skipped by a binary search: all
        // of them sort before it, except the directory `after` lies in (the last of them).
        let mut start = entries.partition_point(|e| format!("{rel}{e}").as_str() <= self.after);
        if start > 0
            && entries[start - 1].ends_with('/')
            && self.after.starts_with(&format!("{rel}{}", entries[start - 1]))
        {
            start -= 1;
        }
        for segment in &entries[start..] {
            let key = format!("{rel}{segment}");
            if let Some(name) = segment.strip_suffix('/') {
                // Every key below starts with `key`: skip the subtree when none can be in the
                // prefix or after `after`.
                let in_prefix = key.starts_with(self.prefix) || self.prefix.starts_with(key.as_str());
                let past = key.as_str() > self.after || self.after.starts_with(key.as_str());
                if in_prefix && past && !self.dir(&dir.join(name), &key)? {
                    return Ok(false);
                }
            } else if key.starts_with(self.prefix) && key.as_str() > self.after {
                if self.found.len() == self.max {
                    self.more = true;
                    return Ok(false);
                }
                let meta = fs::metadata(dir.join(segment))?;
                self.found.push(Found { key, size: meta.len(), modified: meta.modified()? });
            } else if !key.starts_with(self.prefix) && key.as_str() > self.prefix {
                // Sorted: once past the prefix, nothing after it can be in it.
                break;
            }
        }
        Ok(true)
    }
}

/// The files s3s-fs keeps beside the buckets for one object (its metadata and its checksums),
/// which its `DeleteObject` leaves behind.
fn sidecars(root: &Path, bucket: &str, key: &str) -> [PathBuf; 2] {
    let (b, k) = (URL_SAFE_NO_PAD.encode(bucket), URL_SAFE_NO_PAD.encode(key));
    [
        root.join(format!(".bucket-{b}.object-{k}.metadata.json")),
        root.join(format!(".bucket-{b}.object-{k}.internal.json")),
    ]
}

/// The folders objects are being written into right now, each with how many writes.
///
/// s3s-fs writes an object by making its folders, then renaming the written file into them. A
/// deletion that empties the folder in between (an upload's `incoming/` object, deleted once
/// the photo is promoted, while the next upload lands there) would remove it from under the
/// write, which then fails as an InternalError: [`forget`] leaves these folders alone. One
/// lock covers both sides, so a folder is either registered before it is checked (and stays)
/// or removed before it is registered (and the write makes it again).
#[derive(Debug, Default)]
pub(super) struct Writes(Mutex<HashMap<PathBuf, usize>>);

/// A write in progress into a folder, registered in [`Writes`] until dropped.
pub(super) struct Writing {
    writes: Arc<Writes>,
    folder: PathBuf,
}

impl Writes {
    /// Registers the folder of `key` in `bucket` until the returned guard is dropped.
    pub(super) fn begin(self: &Arc<Self>, root: &Path, bucket: &str, key: &str) -> Writing {
        let mut folder = root.join(bucket).join(key);
        folder.pop();
        *self.0.lock().unwrap_or_else(PoisonError::into_inner).entry(folder.clone()).or_default() += 1;
        Writing { writes: Arc::clone(self), folder }
    }
}

impl Drop for Writing {
    fn drop(&mut self) {
        let mut writing = self.writes.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = writing.get_mut(&self.folder) {
            *count -= 1;
            if *count == 0 {
                writing.remove(&self.folder);
            }
        }
    }
}

/// After an object was deleted: remove its sidecars, and its folders up to the bucket's that
/// the deletion left empty and no write is using, so nothing of it stays on disk.
pub(super) fn forget(root: &Path, bucket: &str, key: &str, writes: &Writes) -> io::Result<()> {
    for path in sidecars(root, bucket, key) {
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    let bucket_dir = root.join(bucket);
    let mut dir = bucket_dir.join(key);
    let writing = writes.0.lock().unwrap_or_else(PoisonError::into_inner);
    while dir.pop() && dir.starts_with(&bucket_dir) && dir != bucket_dir {
        // A folder a write is about to rename a file into (or one above it) stays; removing a
        // folder fails on one that still holds something (another object of the same photo).
        // Either is where to stop.
        if writing.keys().any(|folder| folder.starts_with(&dir)) || fs::remove_dir(&dir).is_err() {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(keys: &[&str]) -> tempfile::TempDir {
        let root = tempfile::tempdir().expect("tempdir");
        for k in keys {
            let path = root.path().join(k);
            fs::create_dir_all(path.parent().expect("parent")).expect("dirs");
            fs::write(path, k.as_bytes()).expect("write");
        }
        root
    }

    fn keys(found: &[Found]) -> Vec<&str> {
        found.iter().map(|f| f.key.as_str()).collect()
    }

    #[test]
    fn pages_come_in_byte_order_of_the_key_whatever_the_folders() {
        let all =
            ["a-b", "a.c", "a/x", "a/y/z", "a0", "ab", "b", "photos/t-1/original.jpg", "photos/t/x", "photos/t0/y"];
        let root = bucket(&all);
        let mut sorted = all.to_vec();
        sorted.sort_unstable();
        let (whole, more) = list(&DirCache::default(), root.path(), "", "", 1000).expect("list");
        assert_eq!((keys(&whole), more), (sorted.clone(), false));
        assert_eq!(whole[0].size, 3, "sizes are the files' (each holds its key)");
        // Page by page, each starting after the last key of the one before, gives the same.
        let mut paged = Vec::new();
        let mut after = String::new();
        loop {
            let (page, more) = list(&DirCache::default(), root.path(), "", &after, 3).expect("list");
            paged.extend(page.iter().map(|f| f.key.clone()));
            after = page.last().map(|f| f.key.clone()).unwrap_or_default();
            if !more {
                break;
            }
            assert_eq!(page.len(), 3);
        }
        assert_eq!(paged, sorted);
    }

    #[test]
    fn a_prefix_and_a_start_key_skip_what_is_outside_them() {
        let root = bucket(&["incoming/a", "incoming/b", "photos/a/1", "photos/b/1", "photos/b/2", "photos/c/1"]);
        let (found, more) = list(&DirCache::default(), root.path(), "photos/", "photos/b/1", 1000).expect("list");
        assert_eq!((keys(&found), more), (vec!["photos/b/2", "photos/c/1"], false));
        let (found, _) = list(&DirCache::default(), root.path(), "photos/b", "", 1000).expect("list");
        assert_eq!(keys(&found), ["photos/b/1", "photos/b/2"]);
        let (found, more) = list(&DirCache::default(), root.path(), "", "photos/c/1", 1000).expect("list");
        assert_eq!((found.len(), more), (0, false));
    }

    #[test]
    fn a_large_settled_folder_is_read_once_and_read_again_when_it_changes() {
        let names: Vec<String> = (0..CACHED_FROM + 10).map(|i| format!("p/t{i:04}/o.jpg")).collect();
        let root = bucket(&names.iter().map(String::as_str).collect::<Vec<_>>());
        let folder = root.path().join("p");
        let settle = |dir: &Path| {
            let old = SystemTime::now() - Duration::from_secs(60);
            fs::File::open(dir).expect("dir").set_modified(old).expect("set mtime");
        };
        settle(&folder);
        let cache = DirCache::default();
        let (first, more) = list(&cache, root.path(), "", "p/t0100/o.jpg", 2).expect("list");
        assert_eq!((keys(&first), more), (vec!["p/t0101/o.jpg", "p/t0102/o.jpg"], true));
        assert_eq!(cache.dirs.lock().expect("lock").len(), 1, "the large settled folder is kept");
        // A new photo changes the folder's time: the next page sees it.
        fs::create_dir(folder.join("t0100a")).expect("dir");
        fs::write(folder.join("t0100a/o.jpg"), b"new").expect("write");
        let (next, _) = list(&cache, root.path(), "", "p/t0100/o.jpg", 2).expect("list");
        assert_eq!(keys(&next), ["p/t0100a/o.jpg", "p/t0101/o.jpg"]);
        let (all, more) = list(&cache, root.path(), "", "", 10_000).expect("list");
        assert_eq!((all.len(), more), (names.len() + 1, false));
    }

    #[test]
    fn forgetting_an_object_removes_its_sidecars_and_emptied_folders_only() {
        let root = bucket(&["b/photos/t/thumb.jpg", "b/photos/u/original.jpg"]);
        let [meta, internal] = sidecars(root.path(), "b", "photos/t/original.jpg");
        fs::write(&meta, "{}").expect("sidecar");
        fs::write(&internal, "{}").expect("sidecar");
        // The original's file is already gone (s3s-fs deleted it); its folder still holds the thumb.
        forget(root.path(), "b", "photos/t/original.jpg", &Writes::default()).expect("forget");
        assert!(!meta.exists() && !internal.exists());
        assert!(root.path().join("b/photos/t/thumb.jpg").exists());
        fs::remove_file(root.path().join("b/photos/t/thumb.jpg")).expect("delete");
        forget(root.path(), "b", "photos/t/thumb.jpg", &Writes::default()).expect("forget");
        assert!(!root.path().join("b/photos/t").exists(), "the emptied folder goes");
        assert!(root.path().join("b/photos/u").exists() && root.path().join("b").exists(), "nothing else does");
    }

    #[test]
    fn a_folder_being_written_into_stays_until_the_write_is_done() {
        let root = bucket(&["b/incoming/x/old.jpg"]);
        let writes = Arc::new(Writes::default());
        let writing = writes.begin(root.path(), "b", "incoming/x/new.jpg");
        let also = writes.begin(root.path(), "b", "incoming/x/other.jpg");
        fs::remove_file(root.path().join("b/incoming/x/old.jpg")).expect("delete");
        forget(root.path(), "b", "incoming/x/old.jpg", &writes).expect("forget");
        assert!(root.path().join("b/incoming/x").exists(), "empty, but about to be written into");
        drop(writing);
        forget(root.path(), "b", "incoming/x/old.jpg", &writes).expect("forget");
        assert!(root.path().join("b/incoming/x").exists(), "one write is still going on");
        drop(also);
        assert!(writes.0.lock().expect("lock").is_empty(), "nothing is left registered");
        forget(root.path(), "b", "incoming/x/old.jpg", &writes).expect("forget");
        assert!(!root.path().join("b/incoming").exists(), "with the writes done, the emptied folders go");
    }
}
