//! Group packs: the entries of one group of ready nodes in one remote
//! object, so that a group of remote hits costs one read, not one or more
//! per entry.
//!
//! When a build finds several ready nodes at once (a sweep's trials once
//! their data is loaded), their keys form a group, named by the blake3 of
//! the sorted keys ([`group_id`]). A build that found no pack for a group
//! and holds every entry of it at its end publishes one: the group's
//! manifests and every blob they name of at most [`INLINE_LIMIT`] bytes,
//! in one object written with a conditional create (a reader finds the
//! whole pack or none). Larger blobs stay single objects, published with
//! their entries as before, and the pack lists them by blake3 and SHA-256
//! so that either tier can fetch them. Another build that meets the same
//! group (the same workflow and inputs) reads the pack in one request; a
//! group that differs (an edited trial) finds no pack and each entry is
//! looked up on its own, as entries are published one by one too.
//!
//! A pack is checked as any remote entry is: each blob against its
//! blake3 as it is stored, each manifest against the key it is read for.
//! A pack that is not sound is no pack (the entries are looked up one by
//! one); a blob that does not match makes its entries misses.
//!
//! Format: the line `admf-pack 1`, the length of the header (8 bytes,
//! little-endian), the header (JSON: the manifests, the inline blobs'
//! digests and sizes in order, the outside blobs' digests and sizes),
//! then the inline blobs' bytes back to back.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::store::{Cache, INLINE_MAX, Manifest, Store};

use super::digests;

/// The first line of every pack.
const MAGIC: &[u8] = b"admf-pack 1\n";
/// Blobs up to this size travel inside a pack; larger ones stay single
/// objects.
pub const INLINE_LIMIT: usize = 256 * 1024;
/// The most inline bytes one pack holds: a group whose small blobs exceed
/// it gets no pack (its entries are read one by one).
pub const PACK_LIMIT: usize = 64 * 1024 * 1024;

/// The name of the group of `keys`: the same for every build that meets
/// the same keys, in whatever order.
pub fn group_id(keys: &[String]) -> String {
    let mut sorted: Vec<&str> = keys.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    sorted.dedup();
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"admf group 1\n");
    for key in sorted {
        hasher.update(key.as_bytes());
        hasher.update(b"\n");
    }
    hasher.finalize().to_hex().to_string()
}

/// A blob a pack names but does not hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outside {
    pub blake3: String,
    pub sha256: String,
    pub size: u64,
}

#[derive(Serialize, Deserialize)]
struct Header {
    entries: Vec<Manifest>,
    /// (blake3, size) of each inline blob, in the order of their bytes.
    inline: Vec<(String, u64)>,
    outside: Vec<Outside>,
}

/// A pack as read: its manifests, and where each inline blob's bytes are.
pub struct Pack {
    entries: HashMap<String, Manifest>,
    inline: HashMap<String, (usize, usize)>,
    outside: HashMap<String, Outside>,
    bytes: Vec<u8>,
}

/// The pack of the entries `keys` of `local`; `None` when the local store
/// lacks one of them or their small blobs exceed [`PACK_LIMIT`].
pub fn encode(local: &Store, keys: &[String]) -> io::Result<Option<Vec<u8>>> {
    let mut sorted: Vec<&String> = keys.iter().collect();
    sorted.sort_unstable();
    sorted.dedup();
    let mut entries = Vec::with_capacity(sorted.len());
    for key in sorted {
        let Some(manifest) = Cache::get_action(local, key)? else {
            return Ok(None);
        };
        entries.push(manifest);
    }
    let mut inline = Vec::new();
    let mut outside = Vec::new();
    let mut body = Vec::new();
    let mut seen = HashSet::new();
    for manifest in &entries {
        for digest in digests(manifest) {
            if !seen.insert(digest) {
                continue;
            }
            let Some(bytes) = local.read_blob(digest)? else {
                return Ok(None);
            };
            if bytes.len() <= INLINE_LIMIT {
                if body.len() + bytes.len() > PACK_LIMIT {
                    return Ok(None);
                }
                inline.push((digest.to_string(), bytes.len() as u64));
                body.extend_from_slice(&bytes);
            } else {
                outside.push(Outside {
                    blake3: digest.to_string(),
                    sha256: hex(&Sha256::digest(&bytes)),
                    size: bytes.len() as u64,
                });
            }
        }
    }
    let header = serde_json::to_vec(&Header {
        entries,
        inline,
        outside,
    })
    .map_err(io::Error::other)?;
    let mut pack = Vec::with_capacity(MAGIC.len() + 8 + header.len() + body.len());
    pack.extend_from_slice(MAGIC);
    pack.extend_from_slice(&(header.len() as u64).to_le_bytes());
    pack.extend_from_slice(&header);
    pack.extend_from_slice(&body);
    Ok(Some(pack))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut text = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(text, "{b:02x}");
    }
    text
}

fn malformed(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("remote pack is malformed: {what}"),
    )
}

impl Pack {
    /// Reads a pack's framing and header; its blobs are checked when
    /// [`Pack::install`] stores them.
    pub fn decode(bytes: Vec<u8>) -> io::Result<Pack> {
        let rest = bytes
            .strip_prefix(MAGIC)
            .ok_or_else(|| malformed("not an admf pack"))?;
        let length: [u8; 8] = rest
            .get(..8)
            .and_then(|l| l.try_into().ok())
            .ok_or_else(|| malformed("truncated"))?;
        let length =
            usize::try_from(u64::from_le_bytes(length)).map_err(|_| malformed("header length"))?;
        let start = MAGIC.len() + 8;
        let end = start
            .checked_add(length)
            .filter(|&end| end <= bytes.len())
            .ok_or_else(|| malformed("truncated header"))?;
        let header: Header = serde_json::from_slice(&bytes[start..end])
            .map_err(|e| malformed(&format!("header: {e}")))?;
        let mut inline = HashMap::with_capacity(header.inline.len());
        let mut offset = end;
        for (digest, size) in header.inline {
            let size = usize::try_from(size).map_err(|_| malformed("blob size"))?;
            let next = offset
                .checked_add(size)
                .filter(|&next| next <= bytes.len())
                .ok_or_else(|| malformed("truncated blobs"))?;
            inline.insert(digest, (offset, next));
            offset = next;
        }
        if offset != bytes.len() {
            return Err(malformed("bytes after the last blob"));
        }
        Ok(Pack {
            entries: header
                .entries
                .into_iter()
                .map(|m| (m.key.clone(), m))
                .collect(),
            inline,
            outside: header
                .outside
                .into_iter()
                .map(|o| (o.blake3.clone(), o))
                .collect(),
            bytes,
        })
    }

    /// How many entries the pack holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the pack holds no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The blobs outside the pack that the entries `wanted` name and
    /// `local` lacks, each once.
    pub fn outside_needed(&self, wanted: &[String], local: &Store) -> io::Result<Vec<Outside>> {
        let mut needed = Vec::new();
        let mut seen = HashSet::new();
        for manifest in wanted.iter().filter_map(|k| self.entries.get(k)) {
            for digest in digests(manifest) {
                if let Some(outside) = self.outside.get(digest)
                    && seen.insert(digest)
                    && !local.has_blob(digest)?
                {
                    needed.push(outside.clone());
                }
            }
        }
        Ok(needed)
    }

    /// Copies into `local` the entries among `wanted` that the pack holds
    /// whole: the blobs the local store lacks, inline ones checked here
    /// and outside ones taken from `fetched` (blake3 → bytes, checked by
    /// the caller), then the action. Whether each entry was copied, in
    /// order.
    ///
    /// The checks a store makes of an action it is given are made here,
    /// on the bytes in hand (each blob's blake3 and size, the manifest's
    /// key and output digest), and an entry's small blobs and its action
    /// are written in one insert: a group of a thousand entries is read
    /// back and hashed once, not twice.
    pub fn install(
        &self,
        wanted: &[String],
        local: &Store,
        fetched: &BTreeMap<String, Vec<u8>>,
    ) -> io::Result<Vec<bool>> {
        // blake3 → whether the local store holds the blob (or will, with
        // the entry being written).
        let mut stored: HashMap<&str, bool> = HashMap::new();
        let mut copied = Vec::with_capacity(wanted.len());
        for key in wanted {
            let Some(manifest) = self.entries.get(key).filter(|m| m.outputs_match_digest()) else {
                copied.push(false);
                continue;
            };
            let sizes = manifest
                .outputs
                .values()
                .map(|o| (o.blake3.as_str(), Some(o.size)))
                .chain([(manifest.log_digest.as_str(), None)]);
            let mut rows = Vec::new();
            let mut whole = true;
            for (digest, size) in sizes {
                let held = match stored.get(digest) {
                    Some(&held) => held,
                    None => {
                        let held = self.stage_blob(digest, size, local, fetched, &mut rows)?;
                        stored.insert(digest, held);
                        held
                    }
                };
                whole &= held;
            }
            local
                .index()
                .insert(&rows, whole.then_some(manifest), false)?;
            copied.push(whole);
        }
        Ok(copied)
    }

    /// Makes sure `local` holds the blob `digest` (of `size` bytes when
    /// given), or that it is among `rows`, the small blobs to insert with
    /// the entry: whether it does.
    fn stage_blob(
        &self,
        digest: &str,
        size: Option<u64>,
        local: &Store,
        fetched: &BTreeMap<String, Vec<u8>>,
        rows: &mut Vec<(String, Vec<u8>)>,
    ) -> io::Result<bool> {
        if local.has_blob(digest)? {
            return Ok(true);
        }
        let bytes = match self.inline.get(digest) {
            Some(&(start, end)) => &self.bytes[start..end],
            None => match fetched.get(digest) {
                Some(bytes) => bytes.as_slice(),
                None => return Ok(false),
            },
        };
        if size.is_some_and(|size| size != bytes.len() as u64)
            || blake3::hash(bytes).to_hex().as_str() != digest
        {
            return Ok(false);
        }
        if bytes.len() as u64 <= INLINE_MAX {
            rows.push((digest.to_string(), bytes.to_vec()));
        } else {
            Cache::put_blob(local, bytes)?;
        }
        Ok(true)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::store::OutputRecord;

    #[test]
    fn a_group_is_named_by_its_keys_in_any_order() {
        let a = group_id(&["k1".into(), "k2".into(), "k3".into()]);
        assert_eq!(a, group_id(&["k3".into(), "k1".into(), "k2".into()]));
        assert_eq!(
            a,
            group_id(&["k3".into(), "k1".into(), "k2".into(), "k1".into()])
        );
        assert_ne!(a, group_id(&["k1".into(), "k2".into()]));
        // Keys are separated: ["ab", "c"] is not ["a", "bc"].
        assert_ne!(
            group_id(&["ab".into(), "c".into()]),
            group_id(&["a".into(), "bc".into()])
        );
    }

    /// A store holding one entry per key, each with a small output shared
    /// by all, a small output of its own and, for the first, a large one.
    pub(crate) fn store_with(keys: &[String]) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("cache")).unwrap();
        let shared = Cache::put_blob(&store, b"shared").unwrap();
        let large = Cache::put_blob(&store, &vec![7u8; INLINE_LIMIT + 1]).unwrap();
        for (i, key) in keys.iter().enumerate() {
            let own = format!("own {key}");
            let own_digest = Cache::put_blob(&store, own.as_bytes()).unwrap();
            let mut outputs = BTreeMap::from([
                (
                    "shared.txt".to_string(),
                    OutputRecord {
                        blake3: shared.clone(),
                        size: 6,
                    },
                ),
                (
                    "own.txt".to_string(),
                    OutputRecord {
                        blake3: own_digest.clone(),
                        size: own.len() as u64,
                    },
                ),
            ]);
            if i == 0 {
                outputs.insert(
                    "large.bin".to_string(),
                    OutputRecord {
                        blake3: large.clone(),
                        size: INLINE_LIMIT as u64 + 1,
                    },
                );
            }
            let manifest: Manifest = serde_json::from_value(serde_json::json!({
                "schema": crate::store::MANIFEST_SCHEMA,
                "key": key,
                "node": format!("n{i}"),
                "mode": "test",
                "ingredients": {},
                "output_digest": crate::store::output_digest(&outputs),
                "outputs": outputs,
                "log_digest": own_digest,
                "duration_ms": 1,
                "created_unix": 0,
            }))
            .unwrap();
            Cache::put_action(&store, &manifest).unwrap();
        }
        (dir, store)
    }

    pub(crate) fn keys(names: &[&str]) -> Vec<String> {
        names.iter().map(|k| k.repeat(64)).collect()
    }

    #[test]
    fn a_pack_carries_a_group_into_an_empty_store() {
        let group = keys(&["a", "b", "c"]);
        let (_dir, source) = store_with(&group);
        let bytes = encode(&source, &group).unwrap().unwrap();
        let pack = Pack::decode(bytes).unwrap();
        assert_eq!(pack.len(), 3);

        let target_dir = tempfile::tempdir().unwrap();
        let target = Store::open(&target_dir.path().join("cache")).unwrap();
        // The large blob is outside the pack: listed once, fetched apart.
        let needed = pack.outside_needed(&group, &target).unwrap();
        assert_eq!(needed.len(), 1);
        assert_eq!(needed[0].size, INLINE_LIMIT as u64 + 1);
        let large = vec![7u8; INLINE_LIMIT + 1];
        assert_eq!(needed[0].sha256, hex(&Sha256::digest(&large)));

        // Without it, the entry naming it is a miss and the others hits.
        let wanted = vec![group[0].clone(), group[1].clone(), "d".repeat(64)];
        let copied = pack.install(&wanted, &target, &BTreeMap::new()).unwrap();
        assert_eq!(copied, [false, true, false]);
        assert!(Cache::get_action(&target, &group[0]).unwrap().is_none());
        assert_eq!(
            Cache::get_action(&target, &group[1]).unwrap(),
            Cache::get_action(&source, &group[1]).unwrap()
        );

        let fetched = BTreeMap::from([(needed[0].blake3.clone(), large)]);
        let copied = pack.install(&group, &target, &fetched).unwrap();
        assert_eq!(copied, [true, true, true]);
        for key in &group {
            assert_eq!(
                Cache::get_action(&target, key).unwrap(),
                Cache::get_action(&source, key).unwrap()
            );
        }
    }

    #[test]
    fn a_group_the_store_lacks_an_entry_of_gets_no_pack() {
        let (_dir, source) = store_with(&keys(&["a"]));
        assert!(encode(&source, &keys(&["a", "b"])).unwrap().is_none());
    }

    #[test]
    fn a_corrupt_blob_in_a_pack_makes_its_entries_misses() {
        let group = keys(&["a", "b"]);
        let (_dir, source) = store_with(&group);
        let mut bytes = encode(&source, &group).unwrap().unwrap();
        // The last inline blob is the last entry's own output ("own b…").
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let pack = Pack::decode(bytes).unwrap();
        let target_dir = tempfile::tempdir().unwrap();
        let target = Store::open(&target_dir.path().join("cache")).unwrap();
        let large = vec![7u8; INLINE_LIMIT + 1];
        let fetched = BTreeMap::from([(blake3::hash(&large).to_hex().to_string(), large)]);
        let copied = pack.install(&group, &target, &fetched).unwrap();
        assert_eq!(copied, [true, false]);
        assert!(Cache::get_action(&target, &group[1]).unwrap().is_none());
    }

    #[test]
    fn malformed_packs_are_refused_as_invalid_data() {
        let (_dir, source) = store_with(&keys(&["a"]));
        let bytes = encode(&source, &keys(&["a"])).unwrap().unwrap();
        for bad in [
            b"not a pack".to_vec(),
            bytes[..MAGIC.len() + 4].to_vec(),
            bytes[..bytes.len() - 1].to_vec(),
            [bytes.as_slice(), b"x"].concat(),
        ] {
            let error = Pack::decode(bad).err().unwrap();
            assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        }
    }
}
