//! The [`Cache`] trait: what a cache tier offers, so that a remote tier
//! (REAPI, S3) sits beside the local [`Store`] without planning or phases
//! knowing which one answered.

use std::io;

use super::manifest::Manifest;
use super::{Lookup, Store};
use crate::stat_cache::StatCache;

/// One tier of the cache: blobs by digest (blake3, 64 hex characters) and
/// action results (manifests) by key.
pub trait Cache: Send + Sync {
    /// Whether the tier holds the blob.
    fn has_blob(&self, digest: &str) -> io::Result<bool>;
    /// The blob's bytes, checked against the digest; `None` when absent.
    fn get_blob(&self, digest: &str) -> io::Result<Option<Vec<u8>>>;
    /// Stores bytes; returns their digest.
    fn put_blob(&self, bytes: &[u8]) -> io::Result<String>;
    /// The action result of `key`, only when every blob it names is held
    /// and sound.
    fn get_action(&self, key: &str) -> io::Result<Option<Manifest>>;
    /// Publishes an action result. Every blob it names must be held
    /// already (an `InvalidInput` error otherwise), so that a reader never
    /// sees an action whose outputs it cannot fetch.
    fn put_action(&self, result: &Manifest) -> io::Result<()>;
    /// Every action key, for gc and verify.
    fn list_actions(&self) -> io::Result<Vec<String>>;
}

impl Cache for Store {
    fn has_blob(&self, digest: &str) -> io::Result<bool> {
        Store::has_blob(self, digest)
    }

    fn get_blob(&self, digest: &str) -> io::Result<Option<Vec<u8>>> {
        self.read_blob(digest)
    }

    fn put_blob(&self, bytes: &[u8]) -> io::Result<String> {
        Store::put_blob(self, bytes)
    }

    fn get_action(&self, key: &str) -> io::Result<Option<Manifest>> {
        match self.lookup(key, &StatCache::in_memory()) {
            Lookup::Hit(entry) => Ok(Some(std::sync::Arc::unwrap_or_clone(entry.manifest))),
            Lookup::Missing | Lookup::Corrupt(_) => Ok(None),
        }
    }

    fn put_action(&self, result: &Manifest) -> io::Result<()> {
        super::check_key(&result.key)?;
        self.check_manifest(&result.key, result, &StatCache::in_memory())
            .map_err(|reason| io::Error::new(io::ErrorKind::InvalidInput, reason))?;
        self.index().insert(&[], Some(result), false)?;
        Ok(())
    }

    fn list_actions(&self) -> io::Result<Vec<String>> {
        Ok(self
            .index()
            .actions()?
            .into_iter()
            .map(|(k, _)| k)
            .collect())
    }
}

/// Copies the action `key` and every blob it names from one tier to
/// another (what a pull from a remote, or a push to one, does per action).
/// Returns whether `from` had a sound action to copy.
pub fn copy_action(from: &dyn Cache, to: &dyn Cache, key: &str) -> io::Result<bool> {
    let Some(manifest) = from.get_action(key)? else {
        return Ok(false);
    };
    let digests = manifest
        .outputs
        .values()
        .map(|o| o.blake3.as_str())
        .chain([manifest.log_digest.as_str()]);
    for digest in digests {
        if to.has_blob(digest)? {
            continue;
        }
        let bytes = from.get_blob(digest)?.ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, format!("blob {digest} vanished"))
        })?;
        to.put_blob(&bytes)?;
    }
    to.put_action(&manifest)?;
    Ok(true)
}
