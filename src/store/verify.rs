//! `admf cache verify [--repair]`: rehash every blob, check every action.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io;
use std::path::PathBuf;

use rayon::prelude::*;

use super::cas::digest_of;
use super::fsutil::remove_file_if_exists;
use super::{Store, is_valid_key};

/// An action or a blob that cannot be trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorruptEntry {
    /// `action <key>` or `blob <digest or file>`.
    pub what: String,
    /// The action's key, for an action.
    pub key: Option<String>,
    /// Why it cannot be trusted.
    pub reason: String,
}

/// What `verify` found (and, with repair, removed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Actions examined.
    pub checked: usize,
    /// Valid actions among them.
    pub ok: usize,
    /// Blobs rehashed.
    pub blobs: usize,
    /// Corrupt blobs, then the actions that name a missing or corrupt
    /// blob or cannot be read.
    pub corrupt: Vec<CorruptEntry>,
    /// Leftovers of dead writers under `tmp/` and `locks/`.
    pub stale_tmp: Vec<PathBuf>,
    /// Whether `corrupt` and `stale_tmp` were removed.
    pub repaired: bool,
    /// Corrupt blob files a repair could not remove, with why: it goes
    /// on past them.
    pub not_removed: Vec<(PathBuf, String)>,
}

impl VerifyReport {
    /// Whether the store was found fully consistent (no corruption, no
    /// leftovers).
    pub fn is_clean(&self) -> bool {
        self.corrupt.is_empty() && self.stale_tmp.is_empty()
    }

    /// Whether anything was corrupt. Leftover temporaries are not
    /// corruption: nothing reads them.
    pub fn found_corruption(&self) -> bool {
        !self.corrupt.is_empty()
    }
}

/// Where a bad blob lives.
enum BadBlob {
    Inline(String),
    /// A packed copy (the inline one, if any, may be sound).
    Packed(String),
    File(PathBuf),
}

impl Store {
    /// Rehashes every blob and checks every action against them. Lists
    /// what is corrupt and the leftovers of dead writers; with `repair`,
    /// removes them, so that the actions of corrupt blobs become misses.
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
        let mut corrupt = Vec::new();
        let mut bad: Vec<BadBlob> = Vec::new();
        // Digest → whether its blob is sound.
        let mut sound: HashMap<String, bool> = HashMap::new();
        let inline = self.index().inline_sizes()?;
        for (digest, _) in &inline {
            let ok = match self.index().indexed_blob(digest)? {
                Some(bytes) => digest_of(&bytes) == *digest,
                None => continue,
            };
            if !ok {
                corrupt.push(CorruptEntry {
                    what: format!("blob {digest} (in the index)"),
                    key: None,
                    reason: "its bytes do not hash to its name".into(),
                });
                bad.push(BadBlob::Inline(digest.clone()));
            }
            sound.insert(digest.clone(), ok);
        }
        let packed = self.index().packed_rows()?;
        for row in &packed {
            let ok = digest_of(&self.index().packed_bytes(row)?) == row.digest;
            if !ok {
                corrupt.push(CorruptEntry {
                    what: format!("blob {} (in pack {})", row.digest, row.pack),
                    key: None,
                    reason: "its bytes do not hash to its name".into(),
                });
                bad.push(BadBlob::Packed(row.digest.clone()));
            }
            // A sound inline copy of the same digest still serves (reads
            // take it first).
            sound
                .entry(row.digest.clone())
                .and_modify(|sound| *sound |= ok)
                .or_insert(ok);
        }
        let files = self.blob_files()?;
        let hashed: Vec<(String, PathBuf, Result<(), String>)> = files
            .into_par_iter()
            .map(|(name, path)| {
                let check = if !is_valid_key(&name) {
                    Err("not a blob name".to_string())
                } else {
                    File::open(&path)
                        .and_then(|f| {
                            let mut h = blake3::Hasher::new();
                            h.update_reader(f)?;
                            Ok(h.finalize().to_hex().to_string())
                        })
                        .map_err(|e| format!("cannot read: {e}"))
                        .and_then(|actual| {
                            if actual == name {
                                Ok(())
                            } else {
                                Err(format!("its bytes hash to {actual}"))
                            }
                        })
                };
                (name, path, check)
            })
            .collect();
        let blob_count = inline.len() + packed.len() + hashed.len();
        for (name, path, check) in hashed {
            match check {
                Ok(()) => {
                    sound.entry(name).or_insert(true);
                }
                Err(reason) => {
                    corrupt.push(CorruptEntry {
                        what: format!("blob {}", path.display()),
                        key: None,
                        reason,
                    });
                    bad.push(BadBlob::File(path));
                    // A sound inline copy of the same digest still serves.
                    sound.entry(name).or_insert(false);
                }
            }
        }
        let actions = self.index().actions()?;
        let checked = actions.len();
        let mut bad_keys = Vec::new();
        // Output digests of corrupt actions, and the sound actions with
        // the upstream digests they were built on, for the pass below.
        let mut tainted: HashSet<String> = HashSet::new();
        let mut built_on: Vec<(String, String, Vec<String>)> = Vec::new();
        for (key, manifest) in actions {
            let problem = match &manifest {
                Err(reason) => Some(reason.clone()),
                Ok(m) if m.key != key => Some(format!("action is for key {}", m.key)),
                Ok(m) if !m.outputs_match_digest() => {
                    Some("output_digest does not match its outputs".into())
                }
                Ok(m) => m
                    .outputs
                    .iter()
                    .map(|(n, o)| (format!("output {n:?}"), o.blake3.as_str()))
                    .chain([("log".to_string(), m.log_digest.as_str())])
                    .find_map(|(what, digest)| match sound.get(digest) {
                        Some(true) => None,
                        Some(false) => Some(format!("{what}: blob {digest} is corrupt")),
                        None => Some(format!("{what}: blob {digest} is missing")),
                    }),
            };
            match (problem, manifest) {
                (Some(reason), manifest) => {
                    if let Ok(m) = manifest {
                        tainted.insert(m.output_digest.clone());
                    }
                    corrupt.push(CorruptEntry {
                        what: format!("action {key}"),
                        key: Some(key.clone()),
                        reason,
                    });
                    bad_keys.push(key);
                }
                (None, Ok(m)) => {
                    let upstream = upstream_digests(m.ingredients.0.get());
                    built_on.push((key, m.output_digest.clone(), upstream));
                }
                (None, Err(_)) => {}
            }
        }
        // An entry built on the outputs of a corrupt one may have read the
        // corrupt bytes (a command reads its upstream's blob files by
        // path, trusting their stat): it cannot be trusted either, nor
        // what was built on it in turn.
        loop {
            let before = bad_keys.len();
            built_on.retain(|(key, output, upstream)| {
                let Some(digest) = upstream.iter().find(|d| tainted.contains(*d)) else {
                    return true;
                };
                corrupt.push(CorruptEntry {
                    what: format!("action {key}"),
                    key: Some(key.clone()),
                    reason: format!("built on upstream outputs {digest} of a corrupt entry"),
                });
                bad_keys.push(key.clone());
                tainted.insert(output.clone());
                false
            });
            if bad_keys.len() == before {
                break;
            }
        }
        let mut not_removed = Vec::new();
        if repair && !corrupt.is_empty() {
            self.bump_generation()?;
            let inline_bad: Vec<String> = bad
                .iter()
                .filter_map(|b| match b {
                    BadBlob::Inline(d) => Some(d.clone()),
                    BadBlob::Packed(_) | BadBlob::File(_) => None,
                })
                .collect();
            let packed_bad: Vec<String> = bad
                .iter()
                .filter_map(|b| match b {
                    BadBlob::Packed(d) => Some(d.clone()),
                    BadBlob::Inline(_) | BadBlob::File(_) => None,
                })
                .collect();
            self.index().forget_packed(&packed_bad)?;
            self.index().remove(&bad_keys, &inline_bad)?;
            for b in &bad {
                if let BadBlob::File(path) = b
                    && let Err(e) = remove_file_if_exists(path)
                {
                    not_removed.push((path.clone(), e.to_string()));
                }
            }
        }
        let stale_tmp = self.sweep_debris(repair)?;
        Ok(VerifyReport {
            checked,
            ok: checked - bad_keys.len(),
            blobs: blob_count,
            corrupt,
            stale_tmp,
            repaired: repair,
            not_removed,
        })
    }
}

/// The upstream output digests recorded in an action's ingredients
/// (`{"upstream": [{"node": .., "digest": ..}, ..]}`); none when the
/// ingredients do not parse.
fn upstream_digests(ingredients: &str) -> Vec<String> {
    #[derive(serde::Deserialize)]
    struct Upstream {
        digest: String,
    }
    #[derive(serde::Deserialize)]
    struct Ingredients {
        #[serde(default)]
        upstream: Vec<Upstream>,
    }
    serde_json::from_str::<Ingredients>(ingredients)
        .map(|i| i.upstream.into_iter().map(|u| u.digest).collect())
        .unwrap_or_default()
}
