//! The manifest of an entry (one row of the `actions` table): what it
//! holds and how it was made.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The manifest schema this code writes and accepts.
pub const MANIFEST_SCHEMA: u32 = 1;

/// What the caller knows about a node when committing its entry.
#[derive(Debug, Clone, PartialEq)]
pub struct ManifestMeta {
    /// The node id, e.g. `outer/inner[3]`.
    pub node: String,
    /// The phase mode, e.g. `backtest`.
    pub mode: String,
    /// Every ingredient of the key, for `explain` and humans, as JSON text.
    pub ingredients: RawJson,
    /// Wall time the phase took.
    pub duration_ms: u64,
}

/// Size and hash of one output file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputRecord {
    /// blake3 of the file's bytes, 64 lowercase hex chars.
    pub blake3: String,
    /// Size in bytes.
    pub size: u64,
}

impl From<serde_json::Value> for RawJson {
    fn from(value: serde_json::Value) -> Self {
        // A tree's map keys are strings and its numbers finite, so it
        // always serialises.
        RawJson::of(&value).expect("a JSON tree serialises")
    }
}

/// JSON kept as text, compared by its text.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RawJson(pub Box<serde_json::value::RawValue>);

impl PartialEq for RawJson {
    fn eq(&self, other: &Self) -> bool {
        self.0.get() == other.0.get()
    }
}

impl RawJson {
    /// The JSON text of `value`, serialised straight to text (no tree
    /// built first: a key's ingredients may list 10,000 upstream nodes).
    pub fn of<T: Serialize>(value: &T) -> serde_json::Result<Self> {
        serde_json::value::to_raw_value(value).map(RawJson)
    }

    /// Parse into a tree, for the rare reader that needs one.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::from_str(self.0.get()).unwrap_or(serde_json::Value::Null)
    }
}

/// The action record of an entry (format in the store's module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`MANIFEST_SCHEMA`] for manifests this code accepts.
    pub schema: u32,
    /// The entry's key.
    pub key: String,
    /// The node id that produced it.
    pub node: String,
    /// The phase mode that produced it.
    pub mode: String,
    /// Every ingredient of the key, kept as raw JSON text: hits never need
    /// it as a tree, and parsing it for every node of a no-op build costs.
    pub ingredients: RawJson,
    /// Output files by path relative to the output directory (`/`-separated).
    pub outputs: BTreeMap<String, OutputRecord>,
    /// [`output_digest`] of `outputs`.
    pub output_digest: String,
    /// blake3 of the captured log, a blob like the outputs.
    pub log_digest: String,
    /// Wall time the phase took.
    pub duration_ms: u64,
    /// When the entry was committed, seconds since the Unix epoch.
    pub created_unix: u64,
}

impl Manifest {
    /// Total size of the outputs in bytes.
    pub fn output_size(&self) -> u64 {
        self.outputs.values().map(|o| o.size).sum()
    }

    /// Whether its `output_digest` is the [`output_digest`] of its outputs.
    pub fn outputs_match_digest(&self) -> bool {
        output_digest(&self.outputs) == self.output_digest
    }
}

/// Digest of a set of outputs: blake3 over a canonical encoding of the
/// sorted `(path, blake3, size)` list. Depends only on output names and
/// contents, never on timings, node names or keys, so downstream keys that
/// hash it are unchanged when an upstream rebuild yields identical outputs.
///
/// Encoding: the line `admf-output-digest-v1\n`, then per output the path's
/// byte length as a u64 little-endian, the path bytes, the 64-char hex
/// hash, and the size as a u64 little-endian.
pub fn output_digest(outputs: &BTreeMap<String, OutputRecord>) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"admf-output-digest-v1\n");
    for (path, record) in outputs {
        hasher.update(&(path.len() as u64).to_le_bytes());
        hasher.update(path.as_bytes());
        hasher.update(record.blake3.as_bytes());
        hasher.update(&record.size.to_le_bytes());
    }
    hasher.finalize().to_hex().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(hash: char, size: u64) -> OutputRecord {
        OutputRecord {
            blake3: hash.to_string().repeat(64),
            size,
        }
    }

    #[test]
    fn digest_depends_on_names_hashes_and_sizes_only() {
        let mut a = BTreeMap::new();
        a.insert("a.txt".to_string(), rec('1', 3));
        a.insert("dir/b.txt".to_string(), rec('2', 5));
        let base = output_digest(&a);
        assert_eq!(base, output_digest(&a.clone()));

        let mut renamed = a.clone();
        let r = renamed.remove("a.txt").unwrap();
        renamed.insert("c.txt".to_string(), r);
        assert_ne!(base, output_digest(&renamed));

        let mut resized = a.clone();
        resized.get_mut("a.txt").unwrap().size = 4;
        assert_ne!(base, output_digest(&resized));

        assert_ne!(base, output_digest(&BTreeMap::new()));
    }

    #[test]
    fn digest_is_unambiguous_about_path_boundaries() {
        let mut a = BTreeMap::new();
        a.insert("ab".to_string(), rec('1', 1));
        let mut b = BTreeMap::new();
        b.insert("a".to_string(), rec('1', 1));
        assert_ne!(output_digest(&a), output_digest(&b));
    }
}
