//! Refs: the `refs` table names the key of each node's last successful
//! build, per workflow. They give `show` and `explain`'s "previous build",
//! and the roots that `gc` keeps.

use std::collections::BTreeSet;
use std::io;

use rusqlite::OptionalExtension;

use super::{Store, check_key, is_valid_key, sql_err};

/// One ref: which node of which workflow last built which key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefRecord {
    /// The workflow id (unescaped).
    pub workflow_id: String,
    /// The node id (unescaped).
    pub node: String,
    /// The key the ref points at.
    pub key: String,
}

impl Store {
    /// The key a ref points at; `None` when there is none.
    pub fn read_ref(&self, workflow_id: &str, node: &str) -> Option<String> {
        let conn = self.index().conn();
        let mut stmt = conn
            .prepare_cached("SELECT key FROM refs WHERE workflow_id = ?1 AND node = ?2")
            .ok()?;
        let key: String = stmt
            .query_row([workflow_id, node], |r| r.get(0))
            .optional()
            .ok()??;
        is_valid_key(&key).then_some(key)
    }

    /// Points a ref at `key` (one transaction).
    pub fn write_ref(&self, workflow_id: &str, node: &str, key: &str) -> io::Result<()> {
        check_key(key)?;
        self.index()
            .conn()
            .prepare_cached(
                "INSERT OR REPLACE INTO refs (workflow_id, node, key) VALUES (?1, ?2, ?3)",
            )
            .and_then(|mut s| s.execute([workflow_id, node, key]))
            .map_err(sql_err)?;
        Ok(())
    }

    /// Every ref, sorted by workflow id then node.
    pub fn refs(&self) -> io::Result<Vec<RefRecord>> {
        let conn = self.index().conn();
        let mut stmt = conn
            .prepare("SELECT workflow_id, node, key FROM refs ORDER BY workflow_id, node")
            .map_err(sql_err)?;
        let rows = stmt
            .query_map([], |r| {
                Ok(RefRecord {
                    workflow_id: r.get(0)?,
                    node: r.get(1)?,
                    key: r.get(2)?,
                })
            })
            .map_err(sql_err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(sql_err)
    }

    /// Every key a ref names: gc keeps them.
    pub(crate) fn referenced_keys(&self) -> io::Result<BTreeSet<String>> {
        Ok(self.refs()?.into_iter().map(|r| r.key).collect())
    }

    /// Removes every ref (`gc --all`).
    pub(crate) fn clear_refs(&self) -> io::Result<()> {
        self.index()
            .conn()
            .execute("DELETE FROM refs", [])
            .map_err(sql_err)?;
        Ok(())
    }
}
