//! Reaching into a store's layout from tests: its index and blob files,
//! to inspect them and to tamper with them as bit rot or a careless user
//! would.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

/// Runs one SQL statement on the store's index at `root`; returns the
/// number of rows changed.
pub fn sql(root: &Path, statement: &str, params: &[&dyn rusqlite::ToSql]) -> usize {
    let conn = rusqlite::Connection::open(root.join("index/index.db")).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(30))
        .unwrap();
    conn.execute(statement, params).unwrap()
}

/// One text column of every row a query returns.
pub fn sql_strings(root: &Path, query: &str) -> Vec<String> {
    let conn = rusqlite::Connection::open(root.join("index/index.db")).unwrap();
    let mut stmt = conn.prepare(query).unwrap();
    stmt.query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// The keys of every entry in the store at `root`, sorted.
pub fn action_keys(root: &Path) -> Vec<String> {
    if !root.join("index/index.db").exists() {
        return Vec::new();
    }
    sql_strings(root, "SELECT key FROM actions ORDER BY key")
}

/// The output names and blob digests of the entry `key`.
pub fn outputs(root: &Path, key: &str) -> Vec<(String, String)> {
    let text = sql_strings(
        root,
        &format!("SELECT outputs FROM actions WHERE key = '{key}'"),
    );
    let Some(text) = text.first() else {
        return Vec::new();
    };
    let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text).unwrap();
    map.into_iter()
        .map(|(name, o)| (name, o["blake3"].as_str().unwrap().to_string()))
        .collect()
}

/// The bytes of blob `digest`, inline, in a pack or a file.
pub fn blob(root: &Path, digest: &str) -> Option<Vec<u8>> {
    let conn = rusqlite::Connection::open(root.join("index/index.db")).unwrap();
    let inline: Option<Vec<u8>> = conn
        .query_row("SELECT data FROM blobs WHERE digest = ?1", [digest], |r| {
            r.get(0)
        })
        .ok();
    inline
        .or_else(|| packed_blob(root, digest))
        .or_else(|| fs::read(blob_file(root, digest)).ok())
}

/// Where blob `digest` is packed: the pack's path, offset and size.
pub fn packed_place(root: &Path, digest: &str) -> Option<(PathBuf, u64, u64)> {
    let conn = rusqlite::Connection::open(root.join("index/index.db")).ok()?;
    conn.query_row(
        "SELECT pack, offset, size FROM packed WHERE digest = ?1",
        [digest],
        |r| {
            Ok((
                root.join("packs").join(r.get::<_, String>(0)?),
                r.get::<_, i64>(1)? as u64,
                r.get::<_, i64>(2)? as u64,
            ))
        },
    )
    .ok()
}

/// The bytes of blob `digest` when it is packed.
pub fn packed_blob(root: &Path, digest: &str) -> Option<Vec<u8>> {
    let (pack, offset, size) = packed_place(root, digest)?;
    let bytes = fs::read(pack).ok()?;
    bytes
        .get(offset as usize..(offset + size) as usize)
        .map(<[u8]>::to_vec)
}

/// Every blob the index holds (inline or packed), as (digest, bytes),
/// by digest.
pub fn index_blobs(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut digests = sql_strings(root, "SELECT digest FROM blobs");
    digests.extend(sql_strings(root, "SELECT digest FROM packed"));
    digests.sort();
    digests.dedup();
    digests
        .into_iter()
        .map(|d| {
            let bytes = blob(root, &d).unwrap();
            (d, bytes)
        })
        .collect()
}

/// The files under the store's `packs/`, sorted.
pub fn pack_files(root: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(root.join("packs"))
        .map(|items| items.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

/// Where blob `digest` lives when it is a file.
pub fn blob_file(root: &Path, digest: &str) -> PathBuf {
    root.join("blobs").join(&digest[..2]).join(digest)
}

/// Replaces the bytes of blob `digest` wherever it is stored, keeping its
/// name: what bit rot does.
pub fn tamper_blob(root: &Path, digest: &str, bytes: &[u8]) {
    let file = blob_file(root, digest);
    if file.exists() {
        let mut perms = fs::metadata(&file).unwrap().permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        perms.set_readonly(false);
        fs::set_permissions(&file, perms).unwrap();
        fs::write(&file, bytes).unwrap();
    }
    sql(
        root,
        "UPDATE blobs SET data = ?1 WHERE digest = ?2",
        &[&bytes, &digest],
    );
    // A packed blob: its range in the pack rewritten in place, as far as
    // the new bytes go (a shorter blob leaves the rest of the range).
    if let Some((pack, offset, size)) = packed_place(root, digest) {
        let mut all = fs::read(&pack).unwrap();
        let end = (offset + size) as usize;
        let range = &mut all[offset as usize..end];
        let n = bytes.len().min(range.len());
        range[..n].copy_from_slice(&bytes[..n]);
        if bytes.len() < range.len() {
            // Cut where the new bytes end, the rest of the range zeroed.
            range[n..].fill(0);
        }
        fs::write(&pack, all).unwrap();
    }
}

/// Every blob file under the store, sorted.
pub fn blob_files(root: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(root.join("blobs"))
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect();
    files.sort();
    files
}

/// Every entry's outputs as `("<key>/<name>", bytes)`, sorted: what the
/// store holds, whatever the layout (timings and logs left out).
pub fn artifacts(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for key in action_keys(root) {
        for (name, digest) in outputs(root, &key) {
            let bytes = blob(root, &digest).unwrap_or_else(|| panic!("blob of {key}/{name}"));
            files.push((format!("{key}/{name}"), bytes));
        }
    }
    files.sort();
    files
}

/// The outputs of entry `key` as `(name, bytes)`, sorted by name.
pub fn entry_files(root: &Path, key: &str) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = outputs(root, key)
        .into_iter()
        .map(|(name, digest)| {
            let bytes = blob(root, &digest).unwrap_or_else(|| panic!("blob of {key}/{name}"));
            (name, bytes)
        })
        .collect();
    files.sort();
    files
}
