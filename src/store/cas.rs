//! Blobs: content addressed by blake3, stored once. A blob of at most
//! [`INLINE_MAX`] bytes lives in the index's `blobs` table; a larger one
//! is a read-only file `blobs/<d[0..2]>/<d>`, written through a flocked
//! temp file under `tmp/` and a rename.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::Store;
use super::fsutil::{fsync_dir, remove_file_if_exists, unique_suffix};
use super::lock::same_file;

/// Blobs up to this size live inside the index. A momentum trial's signal
/// and metrics are a few KiB, so a sweep's trials add no file at all;
/// SQLite reads blobs of this size faster than the file system opens files.
pub const INLINE_MAX: u64 = 64 * 1024;

/// blake3 of `bytes`, as 64 lowercase hex characters.
pub(crate) fn digest_of(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

impl Store {
    /// Where the file of a large blob lives (whether or not it exists).
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let prefix = digest.get(..2).unwrap_or(digest);
        self.blobs_dir().join(prefix).join(digest)
    }

    /// Whether the blob is stored (inline or as a file); not verified.
    pub fn has_blob(&self, digest: &str) -> io::Result<bool> {
        Ok(self.index().has_indexed_blob(digest)? || self.has_blob_file(digest))
    }

    /// Whether the blob is stored as a file.
    fn has_blob_file(&self, digest: &str) -> bool {
        fs::symlink_metadata(self.blob_path(digest)).is_ok_and(|m| m.is_file())
    }

    /// [`Store::has_blob`] of each digest, the inline ones looked up
    /// under one lock of the index.
    pub fn has_blobs(&self, digests: &[&str]) -> io::Result<Vec<bool>> {
        let inline = self.index().has_indexed_blobs(digests)?;
        Ok(digests
            .iter()
            .zip(inline)
            .map(|(digest, inline)| inline || self.has_blob_file(digest))
            .collect())
    }

    /// The blob's bytes, checked against its digest: `Ok(None)` when it is
    /// not stored, an `InvalidData` error when its bytes do not match.
    pub fn read_blob(&self, digest: &str) -> io::Result<Option<Vec<u8>>> {
        let bytes = match self.index().indexed_blob(digest)? {
            Some(bytes) => bytes,
            None => match fs::read(self.blob_path(digest)) {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            },
        };
        let actual = digest_of(&bytes);
        if actual != digest {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("blob {digest} is corrupt (its bytes hash to {actual})"),
            ));
        }
        Ok(Some(bytes))
    }

    /// Stores `bytes` and returns their digest: inline when small (in its
    /// own transaction), else as a file.
    pub fn put_blob(&self, bytes: &[u8]) -> io::Result<String> {
        let digest = digest_of(bytes);
        if bytes.len() as u64 <= INLINE_MAX {
            self.index()
                .insert(&[(digest.clone(), bytes.to_vec())], None, false)?;
        } else {
            self.put_blob_file(&digest, bytes)?;
        }
        Ok(digest)
    }

    /// Writes `bytes` as the file of blob `digest` (temp file + rename),
    /// unless a sound file is already there: one that does not hash to
    /// its name (bit rot, tampering) is replaced, so that an entry
    /// committed again after a corrupt lookup is whole. The caller vouches
    /// for the digest.
    pub(crate) fn put_blob_file(&self, digest: &str, bytes: &[u8]) -> io::Result<PathBuf> {
        let target = self.blob_path(digest);
        if target.is_file() && file_digest(&target).is_ok_and(|d| d == digest) {
            return Ok(target);
        }
        let (tmp, mut file) = self.temp_blob_file()?;
        let result = (|| {
            file.write_all(bytes)?;
            if super::fsutil::durable() {
                file.sync_all()?;
            }
            self.install_blob_file(&tmp, &target)
        })();
        if result.is_err() {
            let _ = remove_file_if_exists(&tmp);
        }
        drop(file);
        result.map(|()| target)
    }

    /// A new, empty temp file under `tmp/` for a blob being written,
    /// flocked so that a sweep of `tmp/` leaves it alone (a sweeper that
    /// removed it before the lock was taken makes us start over).
    fn temp_blob_file(&self) -> io::Result<(PathBuf, File)> {
        loop {
            let tmp = self.tmp_dir().join(format!("blob.{}", unique_suffix()));
            let file = File::create(&tmp)?;
            file.lock()?;
            if same_file(&file, &tmp)? {
                return Ok((tmp, file));
            }
        }
    }

    /// Stores a copy of the file at `path` as a blob file and returns its
    /// record. The source is read once: each chunk is hashed as it is
    /// written to the copy (under `tmp/`, flocked), so the digest is that
    /// of the bytes stored even if the source changes meanwhile.
    pub(crate) fn put_blob_copy(&self, path: &Path) -> io::Result<super::OutputRecord> {
        let (tmp, mut file) = self.temp_blob_file()?;
        let result = (|| {
            let (digest, size) = copy_hashing(&mut File::open(path)?, &mut file)?;
            if super::fsutil::durable() {
                file.sync_all()?;
            }
            self.install_blob_file(&tmp, &self.blob_path(&digest))?;
            Ok(super::OutputRecord {
                blake3: digest,
                size,
            })
        })();
        if result.is_err() {
            let _ = remove_file_if_exists(&tmp);
        }
        drop(file);
        result
    }

    /// Moves a complete file into place as a blob: read-only, renamed over
    /// any file there (one with the right content loses nothing; one
    /// without is the corruption a lookup found, repaired).
    pub(crate) fn install_blob_file(&self, file: &Path, target: &Path) -> io::Result<()> {
        let mut perms = fs::metadata(file)?.permissions();
        perms.set_readonly(true);
        fs::set_permissions(file, perms)?;
        let parent = target.parent().expect("blob path has a parent");
        match fs::rename(file, target) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir_all(parent)?;
                fs::rename(file, target)?;
            }
            Err(e) => return Err(e),
        }
        fsync_dir(parent)
    }

    /// Every blob file's digest (names that are not digests are skipped).
    pub(crate) fn blob_files(&self) -> io::Result<Vec<(String, PathBuf)>> {
        let mut found = Vec::new();
        for item in walkdir::WalkDir::new(self.blobs_dir())
            .min_depth(2)
            .max_depth(2)
            .sort_by_file_name()
        {
            // walkdir's message names the path; its io::Error would not.
            let item = item.map_err(|e| {
                let kind = e.io_error().map_or(io::ErrorKind::Other, io::Error::kind);
                io::Error::new(kind, e.to_string())
            })?;
            let name = item.file_name().to_string_lossy().into_owned();
            found.push((name, item.into_path()));
        }
        Ok(found)
    }
}

/// The blake3 of a file's content.
/// Copies `from` into `to`, hashing each chunk as it is written; returns
/// the blake3 of what was written and its length.
fn copy_hashing(from: &mut impl io::Read, to: &mut impl Write) -> io::Result<(String, u64)> {
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        to.write_all(&buf[..n])?;
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hasher.finalize().to_hex().to_string(), size))
}

fn file_digest(path: &Path) -> io::Result<String> {
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(File::open(path)?)?;
    Ok(hasher.finalize().to_hex().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hashed_copy_is_the_source_and_its_digest() {
        for size in [0, 1, 256 * 1024 - 1, 256 * 1024, 256 * 1024 + 1, 600_001] {
            let source: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
            let mut copy = Vec::new();
            let (digest, len) = copy_hashing(&mut source.as_slice(), &mut copy).unwrap();
            assert_eq!(copy, source, "{size} bytes");
            assert_eq!(len, size as u64);
            // The digest of the bytes, by the one-shot hash.
            assert_eq!(digest, blake3::hash(&source).to_hex().to_string());
        }
    }
}
