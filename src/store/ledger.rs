//! The run ledger: one row per build in `runs`, one per node of it in
//! `run_nodes`, written in one transaction when the build ends. Unlike
//! `runs/<workflow-id>/events.jsonl`, which each build replaces, it keeps
//! every build; gc leaves it alone.

use std::io;

use rusqlite::params;

use super::{Store, sql_err};

/// One build as the ledger keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    /// Unique per build: start time in ms, process id, and a counter.
    pub run_id: String,
    pub started_unix_ms: u64,
    pub finished_unix_ms: u64,
    /// The workflow file as given.
    pub workflow: String,
    pub workflow_id: String,
    /// The `--set` values, in the order given.
    pub sets: Vec<String>,
    /// The targets named, empty for all.
    pub targets: Vec<String>,
    /// The selected nodes in planned order.
    pub nodes: Vec<RunNode>,
}

/// One node of a build in the ledger.
#[derive(Debug, Clone, PartialEq)]
pub struct RunNode {
    pub node: String,
    /// Its key, when one was computed.
    pub key: Option<String>,
    /// `ran`, `cached`, `skipped`, `failed` or `not_run`.
    pub status: String,
    pub duration_ms: f64,
}

/// A fresh run id: `<unix ms>-<pid>-<n>`.
pub fn new_run_id(started_unix_ms: u64) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "{started_unix_ms}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

impl Store {
    /// Appends a build to the ledger, then folds the write-ahead log into
    /// the database so that it does not stay at its high-water mark.
    pub fn record_run(&self, run: &RunRecord) -> io::Result<()> {
        self.append_run(run)?;
        self.index().checkpoint()
    }

    fn append_run(&self, run: &RunRecord) -> io::Result<()> {
        let mut conn = self.index().conn_for_transaction()?;
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(sql_err)?;
        let json = |v: &[String]| serde_json::to_string(v).map_err(io::Error::other);
        tx.execute(
            "INSERT INTO runs (run_id, started_unix_ms, finished_unix_ms, workflow, workflow_id, sets, targets) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                run.run_id,
                run.started_unix_ms as i64,
                run.finished_unix_ms as i64,
                run.workflow,
                run.workflow_id,
                json(&run.sets)?,
                json(&run.targets)?
            ],
        )
        .map_err(sql_err)?;
        {
            let mut put = tx
                .prepare_cached(
                    "INSERT INTO run_nodes (run_id, seq, node, key, status, duration_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(sql_err)?;
            for (seq, n) in run.nodes.iter().enumerate() {
                put.execute(params![
                    run.run_id,
                    seq as i64,
                    n.node,
                    n.key,
                    n.status,
                    n.duration_ms
                ])
                .map_err(sql_err)?;
            }
        }
        tx.commit().map_err(sql_err)
    }

    /// The ledger, oldest build first; only builds of `workflow_id` when
    /// given.
    pub fn runs(&self, workflow_id: Option<&str>) -> io::Result<Vec<RunRecord>> {
        let conn = self.index().conn();
        let mut stmt = conn
            .prepare(
                "SELECT run_id, started_unix_ms, finished_unix_ms, workflow, workflow_id, sets, targets FROM runs WHERE ?1 IS NULL OR workflow_id = ?1 ORDER BY started_unix_ms, run_id",
            )
            .map_err(sql_err)?;
        let parse = |text: String| serde_json::from_str::<Vec<String>>(&text).unwrap_or_default();
        let mut runs: Vec<RunRecord> = stmt
            .query_map([workflow_id], |r| {
                Ok(RunRecord {
                    run_id: r.get(0)?,
                    started_unix_ms: r.get::<_, i64>(1)? as u64,
                    finished_unix_ms: r.get::<_, i64>(2)? as u64,
                    workflow: r.get(3)?,
                    workflow_id: r.get(4)?,
                    sets: parse(r.get(5)?),
                    targets: parse(r.get(6)?),
                    nodes: Vec::new(),
                })
            })
            .map_err(sql_err)?
            .collect::<Result<_, _>>()
            .map_err(sql_err)?;
        let mut nodes = conn
            .prepare_cached(
                "SELECT node, key, status, duration_ms FROM run_nodes WHERE run_id = ?1 ORDER BY seq",
            )
            .map_err(sql_err)?;
        for run in &mut runs {
            run.nodes = nodes
                .query_map([&run.run_id], |r| {
                    Ok(RunNode {
                        node: r.get(0)?,
                        key: r.get(1)?,
                        status: r.get(2)?,
                        duration_ms: r.get(3)?,
                    })
                })
                .map_err(sql_err)?
                .collect::<Result<_, _>>()
                .map_err(sql_err)?;
        }
        Ok(runs)
    }
}
