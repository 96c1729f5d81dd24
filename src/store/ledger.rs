//! The run ledger: one row per build in `runs`, written in one
//! transaction when the build ends. Unlike
//! `runs/<workflow-id>/events.jsonl`, which each build replaces, it keeps
//! every build until `admf cache gc` trims it ([`Store::trim_runs`]).
//!
//! Later columns were added without rewriting the tables: `runs.name`,
//! `runs.git_commit`, `runs.git_dirty`, `runs.digest` and `runs.nodes`,
//! each nullable, and the table `key_metrics` (an entry key → the numeric
//! leaves of its `metrics.json`), which keeps a node's figures after gc
//! removes its entry and stores them once however many builds reuse the
//! key. A ledger written before they existed reads with those fields
//! empty.
//!
//! # A build's nodes: one value per run
//!
//! `runs.nodes` holds the build's nodes as one JSON array of
//! `[node, key, status, duration_ms]` in planned order ([`encode_nodes`]).
//! Ledgers written before it kept one `run_nodes` row per node; those
//! runs have `nodes` NULL and are read from their rows, which stay where
//! they are, so an old ledger reads as it did and grows in the new form.
//! A row per node cost a B-tree insert each, on the build's one
//! coordinating thread: a no-op build of 10,000 nodes spent most of its
//! ledger time there. One value costs one insert and one serialisation.
//! JSON rather than MessagePack: the array stays readable by SQL
//! (`json_each`), which the holdout look count and gc's trim use, and the
//! encoding is a small part of the cost either way (the per-row inserts
//! were the cost). Durations round-trip exactly (`float_roundtrip`).

use std::io;

use rusqlite::{OptionalExtension, params};

use super::{Store, sql_err};

/// One build as the ledger keeps it.
#[derive(Debug, Clone, PartialEq, Default)]
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
    /// `--name`: an experiment's name.
    pub name: Option<String>,
    /// The commit checked out in the workflow's git repository, if any.
    pub git_commit: Option<String>,
    /// Whether tracked files differed from that commit.
    pub git_dirty: Option<bool>,
    /// blake3 of the workflow's files (the root file and its includes).
    pub digest: Option<String>,
}

/// One node of a build in the ledger.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunNode {
    pub node: String,
    /// Its key, when one was computed.
    pub key: Option<String>,
    /// `ran`, `cached`, `skipped`, `failed` or `not_run`.
    pub status: String,
    pub duration_ms: f64,
    /// The numeric leaves of its `metrics.json` (dotted paths; see
    /// [`flatten_metrics`]); empty when it has none or the ledger does
    /// not hold them.
    pub metrics: serde_json::Map<String, serde_json::Value>,
    /// Its entry was read and has no `metrics.json`: the ledger records
    /// that (as empty metrics), so later builds do not look again.
    pub metrics_absent: bool,
    /// The blob digest of its entry's `metrics.json` as the build that
    /// ran or looked up the entry knows it (`Some(None)`: the entry has
    /// none), so that the ledger reads the blob without the action row;
    /// `None` when the build holds no entry. Not stored.
    pub metrics_blob: Option<Option<String>>,
    /// The text the ledger stores for this node's metrics (the JSON of
    /// [`flatten_metrics`] of its `metrics.json`), when the build made it
    /// where the node ran ([`ledger_metrics`]): nothing then is read back
    /// from the store for it. Not stored as such.
    pub metrics_text: Option<std::sync::Arc<str>>,
}

/// The text the ledger stores for a node whose `metrics.json` holds
/// `bytes`: what [`RunRecord`]'s metrics of it become, made where the
/// node ran rather than read back when the build ends. `None` for bytes
/// that are not JSON (the ledger then reads the entry as before).
pub fn ledger_metrics(bytes: &[u8]) -> Option<std::sync::Arc<str>> {
    let metrics: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let text = serde_json::to_string(&flatten_metrics(&metrics)).ok()?;
    Some(text.into())
}

/// The most numeric leaves of a `metrics.json` the ledger keeps per key.
pub const MAX_METRICS: usize = 200;

/// The numeric (and null) leaves of `metrics`, as dotted paths in
/// document order (`sharpe`, `best.sharpe`, `test.sharpe`); lists are left
/// out. At most [`MAX_METRICS`].
pub fn flatten_metrics(metrics: &serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    fn walk(
        prefix: &str,
        v: &serde_json::Value,
        out: &mut serde_json::Map<String, serde_json::Value>,
    ) {
        if out.len() >= MAX_METRICS {
            return;
        }
        match v {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    let path = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&path, v, out);
                }
            }
            serde_json::Value::Number(_) | serde_json::Value::Null if !prefix.is_empty() => {
                out.insert(prefix.to_string(), v.clone());
            }
            _ => {}
        }
    }
    let mut out = serde_json::Map::new();
    walk("", metrics, &mut out);
    out
}

/// Columns added to `runs` after its first layout, with their types.
const ADDED_RUN_COLUMNS: &[(&str, &str)] = &[
    ("name", "TEXT"),
    ("git_commit", "TEXT"),
    ("git_dirty", "INTEGER"),
    ("digest", "TEXT"),
    ("nodes", "TEXT"),
];

/// Brings an index written by an older admf up to the current ledger:
/// adds the missing columns and tables, inside one write transaction so
/// that two processes doing it at once do not both add a column.
pub(super) fn migrate(conn: &mut rusqlite::Connection) -> io::Result<()> {
    let have = |conn: &rusqlite::Connection| -> io::Result<Vec<String>> {
        let mut stmt = conn
            .prepare("SELECT name FROM pragma_table_info('runs')")
            .map_err(sql_err)?;
        stmt.query_map([], |r| r.get::<_, String>(0))
            .map_err(sql_err)?
            .collect::<Result<_, _>>()
            .map_err(sql_err)
    };
    // `key_metrics` present, and no index of `run_nodes` by node: every
    // build of N nodes added N entries spread over all of it, rewriting
    // pages in proportion to the whole ledger. The one query by node (a
    // holdout's look count) reads the runs of one workflow by primary key.
    let (tables, node_index): (i64, i64) = conn
        .query_row(
            "SELECT count(*) FILTER (WHERE name = 'key_metrics'), \
                    count(*) FILTER (WHERE name = 'run_nodes_node') FROM sqlite_master",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(sql_err)?;
    let columns = have(conn)?;
    if tables == 1
        && node_index == 0
        && ADDED_RUN_COLUMNS
            .iter()
            .all(|(c, _)| columns.iter().any(|h| h == c))
    {
        return Ok(());
    }
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(sql_err)?;
    let columns = have(&tx)?;
    for (column, ty) in ADDED_RUN_COLUMNS {
        if !columns.iter().any(|h| h == column) {
            tx.execute_batch(&format!("ALTER TABLE runs ADD COLUMN {column} {ty}"))
                .map_err(sql_err)?;
        }
    }
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS key_metrics (key TEXT PRIMARY KEY, metrics TEXT NOT NULL) WITHOUT ROWID;
         DROP INDEX IF EXISTS run_nodes_node;",
    )
    .map_err(sql_err)?;
    tx.commit().map_err(sql_err)
}

/// A build's nodes as `runs.nodes` holds them: a JSON array of
/// `[node, key, status, duration_ms]`, `key` null when none was computed.
/// Metrics are not part of it: they live once per key in `key_metrics`.
pub fn encode_nodes(nodes: &[RunNode]) -> String {
    let rows: Vec<(&str, Option<&str>, &str, f64)> = nodes
        .iter()
        .map(|n| {
            (
                n.node.as_str(),
                n.key.as_deref(),
                n.status.as_str(),
                // JSON has no NaN or infinity; a duration is never one.
                if n.duration_ms.is_finite() {
                    n.duration_ms
                } else {
                    0.0
                },
            )
        })
        .collect();
    // Serialising strings and numbers into a `String` cannot fail.
    serde_json::to_string(&rows).unwrap_or_default()
}

/// The nodes [`encode_nodes`] wrote, without metrics; an error says why
/// the text is not such an array.
pub fn decode_nodes(text: &str) -> Result<Vec<RunNode>, String> {
    let rows: Vec<(String, Option<String>, String, f64)> =
        serde_json::from_str(text).map_err(|e| e.to_string())?;
    Ok(rows
        .into_iter()
        .map(|(node, key, status, duration_ms)| RunNode {
            node,
            key,
            status,
            duration_ms,
            ..RunNode::default()
        })
        .collect())
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

    /// Which of `keys` the ledger holds no metrics for yet: the nodes
    /// whose `metrics.json` a build must read to record the run.
    pub fn keys_without_metrics<'k>(&self, keys: &[&'k str]) -> io::Result<Vec<&'k str>> {
        let mut conn = self.index().conn_for_transaction()?;
        migrate(&mut conn)?;
        // One statement over all keys: a build of many nodes asks for
        // every one of them, and a statement per key costs more than the
        // lookups themselves.
        let list = serde_json::to_string(keys).map_err(io::Error::other)?;
        let mut stmt = conn
            .prepare_cached(
                "SELECT DISTINCT j.value FROM json_each(?1) j \
                 WHERE NOT EXISTS (SELECT 1 FROM key_metrics m WHERE m.key = j.value)",
            )
            .map_err(sql_err)?;
        let missing: std::collections::HashSet<String> = stmt
            .query_map([list], |r| r.get(0))
            .map_err(sql_err)?
            .collect::<Result<_, _>>()
            .map_err(sql_err)?;
        Ok(keys
            .iter()
            .copied()
            .filter(|k| missing.contains(*k))
            .collect())
    }

    /// The `metrics.json` of the entry of `key`: `Some(Some(bytes))` when
    /// its action row names one whose bytes hash to the recorded digest,
    /// `Some(None)` when the row parses and names none (so the entry has
    /// none, whatever becomes of its blobs), `None` when that cannot be
    /// told (no row, an unreadable row, a corrupt blob).
    pub fn checked_metrics(&self, key: &str) -> Option<Option<Vec<u8>>> {
        if !super::is_valid_key(key) {
            return None;
        }
        let manifest = self.index().action(key).ok()??.ok()?;
        match manifest.outputs.get("metrics.json") {
            None => Some(None),
            // Read checked against the digest the row records.
            Some(record) => self.read_blob(&record.blake3).ok()?.map(Some),
        }
    }

    /// The bytes of each blob of `digests` that the index holds inline
    /// and that hash to their digest, read in one statement: a build's
    /// ledger takes the `metrics.json` of every node it ran, which would
    /// otherwise cost a statement each. A digest left out is not inline
    /// (a blob file) or corrupt: [`Store::read_blob`] tells which.
    pub fn checked_inline_blobs(
        &self,
        digests: &[&str],
    ) -> io::Result<std::collections::HashMap<String, Vec<u8>>> {
        if digests.is_empty() {
            return Ok(Default::default());
        }
        let list = serde_json::to_string(digests).map_err(io::Error::other)?;
        let conn = self.index().conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT b.digest, b.data FROM (SELECT DISTINCT value FROM json_each(?1)) j \
                 JOIN blobs b ON b.digest = j.value",
            )
            .map_err(sql_err)?;
        let rows = stmt
            .query_map([list], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
            })
            .map_err(sql_err)?;
        let mut found = std::collections::HashMap::new();
        for row in rows {
            let (digest, bytes) = row.map_err(sql_err)?;
            if super::cas::digest_of(&bytes) == digest {
                found.insert(digest, bytes);
            }
        }
        Ok(found)
    }

    fn append_run(&self, run: &RunRecord) -> io::Result<()> {
        let mut conn = self.index().conn_for_transaction()?;
        migrate(&mut conn)?;
        // One transaction: a build killed before its commit leaves no
        // row, and one killed after leaves the whole run.
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(sql_err)?;
        let json = |v: &[String]| serde_json::to_string(v).map_err(io::Error::other);
        tx.execute(
            "INSERT INTO runs (run_id, started_unix_ms, finished_unix_ms, workflow, workflow_id, sets, targets, name, git_commit, git_dirty, digest, nodes) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![
                run.run_id,
                run.started_unix_ms as i64,
                run.finished_unix_ms as i64,
                run.workflow,
                run.workflow_id,
                json(&run.sets)?,
                json(&run.targets)?,
                run.name,
                run.git_commit,
                run.git_dirty,
                run.digest,
                encode_nodes(&run.nodes)
            ],
        )
        .map_err(sql_err)?;
        {
            let mut metrics = tx
                .prepare_cached("INSERT OR IGNORE INTO key_metrics (key, metrics) VALUES (?1, ?2)")
                .map_err(sql_err)?;
            for n in &run.nodes {
                let Some(key) = &n.key else { continue };
                if let Some(text) = &n.metrics_text {
                    metrics.execute(params![key, &**text]).map_err(sql_err)?;
                } else if !n.metrics.is_empty() || n.metrics_absent {
                    let text = serde_json::to_string(&n.metrics).map_err(io::Error::other)?;
                    metrics.execute(params![key, text]).map_err(sql_err)?;
                }
            }
        }
        tx.commit().map_err(sql_err)
    }

    /// The ledger, oldest build first; only builds of `workflow_id` when
    /// given.
    pub fn runs(&self, workflow_id: Option<&str>) -> io::Result<Vec<RunRecord>> {
        self.wait_for_ledger();
        let mut conn = self.index().conn_for_transaction()?;
        migrate(&mut conn)?;
        let mut stmt = conn
            .prepare(
                "SELECT run_id, started_unix_ms, finished_unix_ms, workflow, workflow_id, sets, targets, name, git_commit, git_dirty, digest, nodes FROM runs WHERE ?1 IS NULL OR workflow_id = ?1 ORDER BY started_unix_ms, run_id",
            )
            .map_err(sql_err)?;
        let parse = |text: String| serde_json::from_str::<Vec<String>>(&text).unwrap_or_default();
        let rows: Vec<(RunRecord, Option<String>)> = stmt
            .query_map([workflow_id], |r| {
                Ok((
                    RunRecord {
                        run_id: r.get(0)?,
                        started_unix_ms: r.get::<_, i64>(1)? as u64,
                        finished_unix_ms: r.get::<_, i64>(2)? as u64,
                        workflow: r.get(3)?,
                        workflow_id: r.get(4)?,
                        sets: parse(r.get(5)?),
                        targets: parse(r.get(6)?),
                        nodes: Vec::new(),
                        name: r.get(7)?,
                        git_commit: r.get(8)?,
                        git_dirty: r.get(9)?,
                        digest: r.get(10)?,
                    },
                    r.get(11)?,
                ))
            })
            .map_err(sql_err)?
            .collect::<Result<_, _>>()
            .map_err(sql_err)?;
        // Runs recorded before `runs.nodes` existed keep a row per node.
        let mut legacy = conn
            .prepare_cached(
                "SELECT node, key, status, duration_ms FROM run_nodes WHERE run_id = ?1 ORDER BY seq",
            )
            .map_err(sql_err)?;
        let mut metrics = conn
            .prepare_cached("SELECT metrics FROM key_metrics WHERE key = ?1")
            .map_err(sql_err)?;
        // Builds reuse keys: each key's metrics are read and parsed once.
        let mut by_key: std::collections::HashMap<
            String,
            serde_json::Map<String, serde_json::Value>,
        > = std::collections::HashMap::new();
        let mut runs = Vec::with_capacity(rows.len());
        for (mut run, nodes) in rows {
            run.nodes = match nodes {
                // A node list that does not decode is reported, never
                // read as a run without nodes.
                Some(text) => decode_nodes(&text).map_err(|e| {
                    io::Error::other(format!(
                        "the run ledger's run {} has an unreadable node list: {e}",
                        run.run_id
                    ))
                })?,
                None => legacy
                    .query_map([&run.run_id], |r| {
                        Ok(RunNode {
                            node: r.get(0)?,
                            key: r.get(1)?,
                            status: r.get(2)?,
                            duration_ms: r.get(3)?,
                            ..RunNode::default()
                        })
                    })
                    .map_err(sql_err)?
                    .collect::<Result<_, _>>()
                    .map_err(sql_err)?,
            };
            for node in &mut run.nodes {
                let Some(key) = &node.key else { continue };
                if !by_key.contains_key(key) {
                    let text: Option<String> = metrics
                        .query_row([key], |r| r.get(0))
                        .optional()
                        .map_err(sql_err)?;
                    let parsed = text
                        .and_then(|t| serde_json::from_str(&t).ok())
                        .unwrap_or_default();
                    by_key.insert(key.clone(), parsed);
                }
                node.metrics = by_key[key].clone();
            }
            runs.push(run);
        }
        Ok(runs)
    }

    /// The workflow digest and the node list ([`encode_nodes`]) of the
    /// most recent run of `workflow_id`; `(None, None)` when it has none.
    pub fn last_digest_and_nodes(
        &self,
        workflow_id: &str,
    ) -> io::Result<(Option<String>, Option<String>)> {
        self.wait_for_ledger();
        let mut conn = self.index().conn_for_transaction()?;
        migrate(&mut conn)?;
        // The latest run found first, then its columns: sorting the
        // runs with their node lists would read every run's list.
        conn.query_row(
            "SELECT digest, nodes FROM runs WHERE run_id = (
               SELECT run_id FROM runs WHERE workflow_id = ?1 ORDER BY started_unix_ms DESC, run_id DESC LIMIT 1)",
            [workflow_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map(Option::unwrap_or_default)
        .map_err(sql_err)
    }

    /// Trims the ledger: per workflow, keeps the `keep` most recent runs
    /// and the latest run of each experiment name; removes the rest, and
    /// the metrics of keys no kept run names. Returns the runs removed.
    pub fn trim_runs(&self, keep: usize) -> io::Result<usize> {
        let mut conn = self.index().conn_for_transaction()?;
        migrate(&mut conn)?;
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(sql_err)?;
        let doomed: Vec<String> = {
            let mut stmt = tx
                .prepare(
                    "SELECT run_id FROM (
                       SELECT run_id, name,
                         row_number() OVER (PARTITION BY workflow_id ORDER BY started_unix_ms DESC, run_id DESC) AS recent,
                         row_number() OVER (PARTITION BY workflow_id, name ORDER BY started_unix_ms DESC, run_id DESC) AS named
                       FROM runs)
                     WHERE recent > ?1 AND NOT (name IS NOT NULL AND named = 1)",
                )
                .map_err(sql_err)?;
            stmt.query_map([keep as i64], |r| r.get(0))
                .map_err(sql_err)?
                .collect::<Result<_, _>>()
                .map_err(sql_err)?
        };
        for id in &doomed {
            tx.execute("DELETE FROM run_nodes WHERE run_id = ?1", [id])
                .map_err(sql_err)?;
            tx.execute("DELETE FROM runs WHERE run_id = ?1", [id])
                .map_err(sql_err)?;
        }
        tx.execute(
            "DELETE FROM key_metrics WHERE key NOT IN (
               SELECT key FROM run_nodes WHERE key IS NOT NULL
               UNION SELECT n.value ->> 1 FROM runs r, json_each(r.nodes) n WHERE n.value ->> 1 IS NOT NULL)",
            [],
        )
        .map_err(sql_err)?;
        tx.commit().map_err(sql_err)?;
        Ok(doomed.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_blobs_read_together_leave_out_files_missing_and_corrupt_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let small = store.put_blob(b"{\"sharpe\": 1.5}").unwrap();
        let other = store.put_blob(b"{\"sharpe\": null}").unwrap();
        let large = store
            .put_blob(&vec![b'x'; super::super::INLINE_MAX as usize + 1])
            .unwrap();
        let corrupt = super::super::cas::digest_of(b"what it was");
        store
            .index()
            .insert(&[(corrupt.clone(), b"what it is".to_vec())], None, false)
            .unwrap();
        let missing = "0".repeat(64);
        let found = store
            .checked_inline_blobs(&[&small, &large, &corrupt, &missing, &other, &small])
            .unwrap();
        let mut got: Vec<(&str, &[u8])> = found
            .iter()
            .map(|(d, b)| (d.as_str(), b.as_slice()))
            .collect();
        got.sort();
        let mut want: Vec<(&str, &[u8])> = vec![
            (small.as_str(), b"{\"sharpe\": 1.5}".as_slice()),
            (other.as_str(), b"{\"sharpe\": null}".as_slice()),
        ];
        want.sort();
        assert_eq!(got, want);
        // What it leaves out, read alone, is the file or the error.
        assert!(store.read_blob(&large).unwrap().is_some());
        assert!(store.read_blob(&corrupt).is_err());
    }
    fn node(name: &str, key: Option<&str>, status: &str, duration_ms: f64) -> RunNode {
        RunNode {
            node: name.into(),
            key: key.map(str::to_string),
            status: status.into(),
            duration_ms,
            ..RunNode::default()
        }
    }

    fn record(id: &str, started: u64, nodes: Vec<RunNode>) -> RunRecord {
        RunRecord {
            run_id: id.into(),
            started_unix_ms: started,
            finished_unix_ms: started + 1,
            workflow: "wf.yaml".into(),
            workflow_id: "wf".into(),
            nodes,
            ..RunRecord::default()
        }
    }

    proptest::proptest! {
        #[test]
        fn node_lists_round_trip(
            rows in proptest::collection::vec(
                (
                    "\\PC{0,12}",
                    proptest::option::of("[0-9a-f]{64}"),
                    proptest::sample::select(vec!["ran", "cached", "skipped", "failed", "not_run"]),
                    proptest::num::f64::POSITIVE | proptest::num::f64::ZERO | proptest::num::f64::SUBNORMAL,
                ),
                0..40,
            )
        ) {
            let nodes: Vec<RunNode> = rows
                .iter()
                .map(|(n, k, s, d)| node(n, k.as_deref(), s, *d))
                .collect();
            let decoded = decode_nodes(&encode_nodes(&nodes)).unwrap();
            proptest::prop_assert_eq!(decoded, nodes);
        }
    }

    #[test]
    fn a_node_list_is_one_json_array_of_four_fields() {
        let nodes = [
            node("sweep[0]", Some("ab"), "ran", 12.5),
            node("gate", None, "skipped", 0.0),
        ];
        assert_eq!(
            encode_nodes(&nodes),
            r#"[["sweep[0]","ab","ran",12.5],["gate",null,"skipped",0.0]]"#
        );
        assert!(decode_nodes(r#"[["a","k","ran"]]"#).is_err());
        assert!(decode_nodes("not json").is_err());
    }

    #[test]
    fn runs_recorded_a_row_per_node_read_beside_runs_recorded_as_one_list() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (k1, k2) = ("1".repeat(64), "2".repeat(64));
        let mut metrics = serde_json::Map::new();
        metrics.insert("sharpe".into(), serde_json::json!(1.25));
        // The new form, with metrics for one key.
        let mut ran = node("a", Some(&k1), "ran", 7.0);
        ran.metrics = metrics.clone();
        store
            .record_run(&record(
                "r2",
                200,
                vec![ran, node("b", None, "skipped", 0.0)],
            ))
            .unwrap();
        // A run as a ledger before `runs.nodes` held it: a row per node.
        {
            let conn = store.index().conn();
            conn.execute_batch(&format!(
                "INSERT INTO runs (run_id, started_unix_ms, finished_unix_ms, workflow, workflow_id, sets, targets)
                   VALUES ('r1', 100, 101, 'wf.yaml', 'wf', '[]', '[]');
                 INSERT INTO run_nodes (run_id, seq, node, key, status, duration_ms) VALUES
                   ('r1', 0, 'a', '{k1}', 'cached', 0.5), ('r1', 1, 'c', '{k2}', 'ran', 3.0);
                 INSERT INTO key_metrics (key, metrics) VALUES ('{k2}', '{{\"sharpe\":-0.5}}');"
            ))
            .unwrap();
        }
        let runs = store.runs(Some("wf")).unwrap();
        let ids: Vec<&str> = runs.iter().map(|r| r.run_id.as_str()).collect();
        assert_eq!(ids, ["r1", "r2"]);
        let mut legacy_a = node("a", Some(&k1), "cached", 0.5);
        legacy_a.metrics = metrics.clone();
        let mut legacy_c = node("c", Some(&k2), "ran", 3.0);
        legacy_c
            .metrics
            .insert("sharpe".into(), serde_json::json!(-0.5));
        assert_eq!(runs[0].nodes, [legacy_a, legacy_c]);
        let mut new_a = node("a", Some(&k1), "ran", 7.0);
        new_a.metrics = metrics;
        assert_eq!(runs[1].nodes, [new_a, node("b", None, "skipped", 0.0)]);
        // The holdout look count sees both forms.
        assert_eq!(store.builds_with_node("wf", "a").unwrap(), 2);
        assert_eq!(store.builds_with_node("wf", "c").unwrap(), 1);
        assert_eq!(store.builds_with_node("wf", "b").unwrap(), 0);
        // Trimming to the newest run drops the old run's rows and the
        // metrics only it named; the kept run's metrics stay.
        assert_eq!(store.trim_runs(1).unwrap(), 1);
        let left = store.runs(None).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].nodes[0].metrics["sharpe"], serde_json::json!(1.25));
        let conn = store.index().conn();
        let (rows, keys): (i64, String) = conn
            .query_row(
                "SELECT (SELECT count(*) FROM run_nodes), (SELECT group_concat(key) FROM key_metrics)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((rows, keys), (0, k1));
    }

    #[test]
    fn an_unreadable_node_list_is_an_error_not_an_empty_run() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .record_run(&record("r1", 100, vec![node("a", None, "ran", 1.0)]))
            .unwrap();
        store
            .index()
            .conn()
            .execute("UPDATE runs SET nodes = '[[\"a\"' WHERE run_id = 'r1'", [])
            .unwrap();
        let err = store.runs(None).unwrap_err().to_string();
        assert!(
            err.contains("r1") && err.contains("unreadable node list"),
            "{err}"
        );
    }
}
