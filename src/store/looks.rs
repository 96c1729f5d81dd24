//! How often the run ledger has seen a node: the look count of a sealed
//! holdout. Read-only over the ledger's `runs` and `run_nodes` tables.

use std::io;

use super::{Store, sql_err};

impl Store {
    /// The recorded builds of `workflow_id` in which `node` ran or was
    /// served from the store.
    pub fn builds_with_node(&self, workflow_id: &str, node: &str) -> io::Result<u64> {
        let conn = self.index().conn();
        let count: i64 = conn
            .query_row(
                "SELECT COUNT(DISTINCT r.run_id) FROM runs r JOIN run_nodes n ON n.run_id = r.run_id \
                 WHERE r.workflow_id = ?1 AND n.node = ?2 AND n.status IN ('ran', 'cached')",
                [workflow_id, node],
                |row| row.get(0),
            )
            .map_err(sql_err)?;
        Ok(count as u64)
    }
}
