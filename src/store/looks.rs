//! How often the run ledger has seen a node: the look count of a sealed
//! holdout. Read-only over the ledger's `runs` table (its `nodes` list)
//! and, for runs recorded before that list existed, `run_nodes`.

use std::io;

use super::{Store, sql_err};

impl Store {
    /// The recorded builds of `workflow_id` in which `node` ran or was
    /// served from the store.
    pub fn builds_with_node(&self, workflow_id: &str, node: &str) -> io::Result<u64> {
        self.wait_for_ledger();
        let mut conn = self.index().conn_for_transaction()?;
        super::ledger::migrate(&mut conn)?;
        let count: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM runs r WHERE r.workflow_id = ?1 AND (
                   EXISTS (SELECT 1 FROM json_each(r.nodes) n
                           WHERE n.value ->> 0 = ?2 AND n.value ->> 2 IN ('ran', 'cached'))
                   OR EXISTS (SELECT 1 FROM run_nodes n
                              WHERE n.run_id = r.run_id AND n.node = ?2 AND n.status IN ('ran', 'cached')))",
                [workflow_id, node],
                |row| row.get(0),
            )
            .map_err(sql_err)?;
        Ok(count as u64)
    }
}
