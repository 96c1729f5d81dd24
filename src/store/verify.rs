//! `admf cache verify [--repair]`: rehash every entry.

use std::io;
use std::path::PathBuf;

use rayon::prelude::*;

use super::{Lookup, Store};
use crate::stat_cache::StatCache;

/// A directory under `objects/` that is not a trustworthy entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorruptEntry {
    /// The directory (or stray file).
    pub dir: PathBuf,
    /// Its key, when its name is one.
    pub key: Option<String>,
    /// Why it cannot be trusted.
    pub reason: String,
}

/// What `verify` found (and, with repair, removed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Directories under `objects/` examined.
    pub checked: usize,
    /// Valid entries among them.
    pub ok: usize,
    /// The others, sorted by path.
    pub corrupt: Vec<CorruptEntry>,
    /// Leftovers of dead writers under `tmp/`, `locks/` and `refs/`.
    pub stale_tmp: Vec<PathBuf>,
    /// Whether `corrupt` and `stale_tmp` were removed.
    pub repaired: bool,
}

impl VerifyReport {
    /// Whether the store was found fully consistent.
    pub fn is_clean(&self) -> bool {
        self.corrupt.is_empty() && self.stale_tmp.is_empty()
    }
}

impl Store {
    /// Checks every entry: manifest valid and every output rehashed (no
    /// stat cache). Lists corrupt entries and stale temp dirs; with
    /// `repair`, removes them.
    ///
    /// With `repair` it takes `gc.lock` exclusively and fails at once with
    /// [`io::ErrorKind::WouldBlock`] ("a build is running") while a build
    /// holds a [`BuildGuard`](super::BuildGuard); without, it only holds
    /// the shared lock, so it runs alongside builds (and waits for a gc).
    pub fn verify(&self, repair: bool) -> io::Result<VerifyReport> {
        let _lock = if repair {
            Some(self.gc_exclusive(false)?)
        } else {
            None
        };
        let _shared = if repair {
            None
        } else {
            Some(self.build_guard()?)
        };
        let objects = self.scan_objects()?;
        let checked = objects.len();
        let mut corrupt: Vec<CorruptEntry> = objects
            .into_par_iter()
            .filter_map(|object| {
                let reason = match (&object.key, object.manifest) {
                    (_, Err(reason)) => reason,
                    (Some(key), Ok(_)) => match self.lookup(key, &StatCache::in_memory()) {
                        Lookup::Hit(_) => return None,
                        Lookup::Missing => "vanished during verify".to_string(),
                        Lookup::Corrupt(reason) => reason,
                    },
                    (None, Ok(_)) => "not an entry name".to_string(),
                };
                Some(CorruptEntry {
                    dir: object.dir,
                    key: object.key,
                    reason,
                })
            })
            .collect();
        corrupt.sort_by(|a, b| a.dir.cmp(&b.dir));
        if repair {
            for c in &corrupt {
                self.discard_dir(&c.dir)?;
            }
        }
        let stale_tmp = self.sweep_debris(repair)?;
        Ok(VerifyReport {
            checked,
            ok: checked - corrupt.len(),
            corrupt,
            stale_tmp,
            repaired: repair,
        })
    }
}
