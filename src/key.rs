//! Node keys: blake3 over a canonical, versioned encoding of everything
//! that determines a node's outputs (docs/design.md §3).
//!
//! The ingredients are a serialisable struct ([`Ingredients`]), stored in
//! every manifest so `admf explain` can diff them. The key deliberately
//! leaves out the node's own name (two nodes doing the same work share an
//! entry) and a trial's index (adding a value in front of a grid does not
//! rerun the existing trials), and takes upstream *output digests*, not
//! upstream keys, so an upstream rerun with identical outputs stops there
//! (early cutoff).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::paths::relative_to;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::stat_cache::StatCache;

/// Bump when the encoding or the meaning of an ingredient changes.
pub const KEY_SCHEMA: u32 = 3;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ingredients {
    pub schema: u32,
    pub mode: String,
    /// The phase implementation's version string.
    pub version: String,
    /// `single`, `trial` or `gather`.
    pub role: String,
    /// The resolved config in [`canonical`] form (maps sorted).
    pub config: Value,
    /// Input files by path relative to the declaring workflow's directory.
    pub inputs: Vec<FileIngredient>,
    /// Upstream nodes by id, with their output digests, in declared order.
    pub upstream: Vec<UpstreamIngredient>,
    /// The build machine's [`platform`], for modes whose outputs may
    /// differ between platforms (a `command`); absent for the built-in
    /// modes, whose keys are shared across platforms (docs/remote.md).
    /// Absent fields are left out of the encoding, so keys without them
    /// are the keys of schema 2 as they were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// The variables a `command` takes from the build's environment
    /// (`pass_env:`), each with the blake3 of its value (`None`: unset).
    /// A digest, not the value: manifests travel to a shared cache and a
    /// passed variable may hold a secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, Option<String>>,
}

/// The build machine's operating system and architecture, as Rust names
/// them (`linux-x86_64`, `macos-aarch64`).
pub fn platform() -> String {
    format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH)
}

/// The `env` ingredient for variables `names`, read from this process's
/// environment.
pub fn env_ingredient<'a>(
    names: impl IntoIterator<Item = &'a str>,
) -> BTreeMap<String, Option<String>> {
    names
        .into_iter()
        .map(|name| {
            let digest = std::env::var_os(name)
                .map(|v| blake3::hash(v.as_encoded_bytes()).to_hex().to_string());
            (name.to_string(), digest)
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileIngredient {
    pub path: String,
    pub blake3: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamIngredient {
    pub node: String,
    pub digest: String,
}

impl Ingredients {
    /// The fields serialise in declaration order and `config` is held in
    /// canonical form, so the JSON text itself is canonical.
    pub fn key(&self) -> String {
        self.key_and_json().0
    }

    /// The key and the JSON text it hashes, which is also what
    /// [`Ingredients::to_value`] serialises to: a commit stores it as is.
    pub fn key_and_json(&self) -> (String, String) {
        let json = serde_json::to_string(self).unwrap_or_default();
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"admf-node-key\n");
        hasher.update(json.as_bytes());
        (hasher.finalize().to_hex().to_string(), json)
    }

    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// Hash each input through the stat cache.
pub fn file_ingredients(
    inputs: &[PathBuf],
    base_dir: &Path,
    stats: &StatCache,
) -> std::io::Result<Vec<FileIngredient>> {
    inputs
        .iter()
        .map(|path| {
            Ok(FileIngredient {
                path: relative_to(path, base_dir),
                blake3: stats.hash_file(path)?,
            })
        })
        .collect()
}

/// Objects with keys sorted, recursively: the canonical form that is hashed.
/// A copy sorted in place: the copy keeps each key's hash, which building
/// new maps entry by entry would compute again.
pub fn canonical(v: &Value) -> Value {
    let mut sorted = v.clone();
    sorted.sort_all_objects();
    sorted
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Ingredients {
        Ingredients {
            schema: KEY_SCHEMA,
            mode: "command".into(),
            version: "1".into(),
            role: "single".into(),
            config: json!({"run": "echo hi", "outputs": ["a"]}),
            inputs: vec![FileIngredient {
                path: "in.txt".into(),
                blake3: "00".into(),
            }],
            upstream: vec![UpstreamIngredient {
                node: "up".into(),
                digest: "aa".into(),
            }],
            platform: None,
            env: BTreeMap::new(),
        }
    }

    #[test]
    fn key_ignores_map_order_of_canonical_configs() {
        let mut a = sample();
        a.config = canonical(&json!({"run": "echo hi", "env": {"B": 1, "A": 2}}));
        let mut b = sample();
        b.config = canonical(&json!({"env": {"A": 2, "B": 1}, "run": "echo hi"}));
        assert_eq!(
            serde_json::to_string(&a.config).unwrap(),
            r#"{"env":{"A":2,"B":1},"run":"echo hi"}"#
        );
        assert_eq!(a.key(), b.key());
    }

    #[test]
    fn every_ingredient_changes_the_key() {
        let base = sample().key();
        let mut changes: Vec<Ingredients> = Vec::new();
        let mut c = sample();
        c.mode = "backtest".into();
        changes.push(c);
        let mut c = sample();
        c.version = "2".into();
        changes.push(c);
        let mut c = sample();
        c.role = "trial".into();
        changes.push(c);
        let mut c = sample();
        c.config = json!({"run": "echo ho", "outputs": ["a"]});
        changes.push(c);
        let mut c = sample();
        c.inputs[0].blake3 = "01".into();
        changes.push(c);
        let mut c = sample();
        c.inputs[0].path = "other.txt".into();
        changes.push(c);
        let mut c = sample();
        c.upstream[0].digest = "ab".into();
        changes.push(c);
        let mut c = sample();
        c.platform = Some(platform());
        changes.push(c);
        let mut c = sample();
        c.env.insert("SEED".into(), None);
        changes.push(c);
        let mut c = sample();
        c.env.insert("SEED".into(), Some("00".into()));
        changes.push(c);
        for changed in changes {
            assert_ne!(changed.key(), base, "{changed:?}");
        }
        assert_eq!(base.len(), 64);
    }

    #[test]
    fn the_platform_names_os_and_architecture_and_moves_the_key() {
        assert_eq!(
            platform(),
            format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH)
        );
        let mut here = sample();
        here.platform = Some(platform());
        let mut elsewhere = sample();
        elsewhere.platform = Some("plan9-mips".into());
        assert_ne!(here.key(), elsewhere.key());
        assert!(here.to_value()["platform"].is_string());
        // Unset, the field is not encoded: built-in keys stay as they were.
        assert!(sample().to_value().get("platform").is_none());
        assert!(sample().to_value().get("env").is_none());
    }

    #[test]
    fn env_ingredient_hashes_values_and_marks_unset_ones() {
        // PATH is set in any test run; the name below is not.
        let env = env_ingredient(["PATH", "ADMF_TEST_SURELY_UNSET_9F1"]);
        let path = std::env::var_os("PATH").unwrap();
        assert_eq!(
            env["PATH"].as_deref(),
            Some(blake3::hash(path.as_encoded_bytes()).to_hex().as_str())
        );
        assert_eq!(env["ADMF_TEST_SURELY_UNSET_9F1"], None);
    }

    #[test]
    fn relative_paths_are_lexical() {
        assert_eq!(
            relative_to(Path::new("/p/data/x.csv"), Path::new("/p/workflows")),
            "../data/x.csv"
        );
        assert_eq!(
            relative_to(Path::new("/p/w/./in/a.txt"), Path::new("/p/w")),
            "in/a.txt"
        );
    }

    /// The canonical form built the plain way: each map made anew from
    /// its entries sorted by key, recursively.
    fn canonical_rebuilt(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut entries: Vec<(&String, &Value)> = m.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                Value::Object(
                    entries
                        .into_iter()
                        .map(|(k, v)| (k.clone(), canonical_rebuilt(v)))
                        .collect(),
                )
            }
            Value::Array(items) => Value::Array(items.iter().map(canonical_rebuilt).collect()),
            other => other.clone(),
        }
    }

    fn any_json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            (-1e6f64..1e6).prop_map(Value::from),
            "[a-zA-Z0-9 _.é]{0,6}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::vec(("[a-zA-Z_é]{0,4}", inner), 0..6)
                    .prop_map(|entries| Value::Object(entries.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        /// Sorting a copy in place gives the bytes the maps rebuilt in key
        /// order gave: keys computed before and after are the same.
        #[test]
        fn canonical_sorted_in_place_writes_what_the_rebuilt_form_wrote(v in any_json()) {
            let in_place = serde_json::to_string(&canonical(&v)).unwrap();
            let rebuilt = serde_json::to_string(&canonical_rebuilt(&v)).unwrap();
            proptest::prop_assert_eq!(in_place, rebuilt);
        }
    }
}
