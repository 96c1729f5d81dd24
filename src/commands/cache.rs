//! `admf cache ls | gc | verify`.

use std::path::Path;
use std::time::Duration;

use crate::cli::CacheAction;
use crate::error::Error;
use crate::store::{GcPolicy, Store};

pub fn run(root: &Path, action: CacheAction) -> Result<i32, Error> {
    let store = Store::open(root).map_err(|e| Error::io(root, e))?;
    let gc_all = matches!(action, CacheAction::Gc { all: true, .. });
    if !gc_all && let Some(notice) = store.old_layout_notice() {
        crate::errln!("{notice}");
    }
    let io = |e| Error::io(root, e);
    match action {
        CacheAction::Ls { .. } => {
            let entries = store.ls().map_err(io)?;
            let refs = store.refs().map_err(io)?;
            crate::out!("{}", render_ls(&entries, &refs));
            Ok(0)
        }
        CacheAction::Gc {
            keep,
            older_than,
            wait,
            dry_run,
            all,
            keep_runs,
        } => {
            let older_than = older_than.as_deref().map(parse_duration).transpose()?;
            let report = store
                .gc(GcPolicy {
                    keep_recent: keep,
                    older_than,
                    all,
                    wait,
                    dry_run,
                })
                .map_err(|e| {
                    if e.kind() == std::io::ErrorKind::WouldBlock {
                        Error::Usage {
                            message: "a build is running on this store".into(),
                            hint: Some("wait for it, or pass --wait".into()),
                        }
                    } else {
                        io(e)
                    }
                })?;
            crate::errln!(
                "{} {} entries and {} blobs ({} bytes); kept {} referenced, {} unreferenced; {} unreadable entries and {} temporaries removed",
                if dry_run { "would remove" } else { "removed" },
                report.removed.len(),
                report.removed_blobs,
                report.removed_bytes,
                report.kept_referenced,
                report.kept_unreferenced,
                report.removed_invalid.len(),
                report.removed_debris.len()
            );
            if !dry_run {
                let trimmed = store.trim_runs(keep_runs).map_err(io)?;
                if trimmed > 0 {
                    crate::errln!(
                        "removed {trimmed} runs from the run history (kept the {keep_runs} most recent per workflow and each experiment's latest)"
                    );
                }
            }
            if let Some(old) = &report.removed_old_layout {
                crate::errln!(
                    "{} the store of the older layout at {}",
                    if dry_run { "would remove" } else { "removed" },
                    old.display()
                );
            }
            for (path, why) in &report.not_removed {
                crate::errln!("cannot remove {}: {why}", path.display());
            }
            Ok(i32::from(!report.not_removed.is_empty()))
        }
        // Dispatched to `remote_sync` before the store is opened here.
        CacheAction::Push { .. } | CacheAction::Pull { .. } => Err(Error::Usage {
            message: "push and pull name a remote".into(),
            hint: None,
        }),
        CacheAction::Verify { repair } => {
            let report = store.verify(repair).map_err(io)?;
            for c in &report.corrupt {
                crate::errln!("corrupt: {} ({})", c.what, c.reason);
            }
            for t in &report.stale_tmp {
                crate::errln!("debris: {}", t.display());
            }
            crate::errln!(
                "checked {} entries and {} blobs: {} ok, {} corrupt, {} temporaries{}",
                report.checked,
                report.blobs,
                report.ok,
                report.corrupt.len(),
                report.stale_tmp.len(),
                if repair { " (repaired)" } else { "" }
            );
            for (path, why) in &report.not_removed {
                crate::errln!("cannot remove {}: {why}", path.display());
            }
            // Leftover temporaries are no corruption: nothing reads them.
            Ok(
                if (report.found_corruption() && !repair) || !report.not_removed.is_empty() {
                    1
                } else {
                    0
                },
            )
        }
    }
}

/// `30d`, `12h`, `90m`, `45s`.
pub(super) fn parse_duration(text: &str) -> Result<Duration, Error> {
    let bad = || Error::Usage {
        message: format!("--older-than `{text}`: expected a number and a unit (s, m, h, d)"),
        hint: Some("for example --older-than 30d".into()),
    };
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let n: u64 = number.parse().map_err(|_| bad())?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(bad()),
    };
    let secs = n.checked_mul(scale).ok_or_else(bad)?;
    Ok(Duration::from_secs(secs))
}

/// `admf cache ls`: a header, then one entry a line, oldest first: key
/// prefix, size, creation time (UTC), mode, the workflows whose refs name
/// it (`-` for none: gc may remove it) and the node.
fn render_ls(entries: &[crate::store::EntrySummary], refs: &[crate::store::RefRecord]) -> String {
    let by_key = workflows_by_key(refs);
    let rows: Vec<LsRow> = entries
        .iter()
        .map(|e| LsRow {
            key: e.key.clone(),
            size: Some(e.size),
            created_unix: Some(e.created_unix),
            mode: e.mode.clone(),
            workflows: workflow_names(by_key.get(e.key.as_str())),
            node: e.node.clone(),
            remote: None,
        })
        .collect();
    render_rows(&rows, false)
}

/// The names of the workflows whose refs name each key.
pub(super) fn workflows_by_key(
    refs: &[crate::store::RefRecord],
) -> std::collections::BTreeMap<&str, std::collections::BTreeSet<&str>> {
    let mut by_key: std::collections::BTreeMap<&str, std::collections::BTreeSet<&str>> =
        std::collections::BTreeMap::new();
    for r in refs {
        by_key
            .entry(r.key.as_str())
            .or_default()
            .insert(workflow_name(&r.workflow_id));
    }
    by_key
}

/// The WORKFLOW cell: the names joined by commas, `-` for none.
pub(super) fn workflow_names(names: Option<&std::collections::BTreeSet<&str>>) -> String {
    match names {
        Some(names) if !names.is_empty() => names.iter().copied().collect::<Vec<_>>().join(","),
        _ => "-".to_string(),
    }
}

/// One line of `admf cache ls`; what is not known of an entry (a key
/// known from a ref alone) prints as `-`.
pub(super) struct LsRow {
    pub key: String,
    pub size: Option<u64>,
    pub created_unix: Option<u64>,
    pub mode: String,
    pub workflows: String,
    pub node: String,
    /// With `--remote`: whether the remote holds the entry whole.
    pub remote: Option<bool>,
}

/// The table of `rows`, columns padded to their widest cell, SIZE right
/// aligned; with `remote`, a last column REMOTE (`hit` or `miss`).
pub(super) fn render_rows(rows: &[LsRow], remote: bool) -> String {
    use std::fmt::Write as _;
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            let mut cells = vec![
                row.key.get(..16).unwrap_or(&row.key).to_string(),
                row.size.map_or("-".into(), human_size),
                row.created_unix.map_or("-".into(), |t| {
                    jiff::Timestamp::from_second(t as i64)
                        .map_or("?".into(), |t| t.strftime("%Y-%m-%d %H:%M").to_string())
                }),
                row.mode.clone(),
                row.workflows.clone(),
                row.node.clone(),
            ];
            if remote {
                cells.push(
                    if row.remote == Some(true) {
                        "hit"
                    } else {
                        "miss"
                    }
                    .into(),
                );
            }
            cells
        })
        .collect();
    let mut header: Vec<String> = ["KEY", "SIZE", "CREATED (UTC)", "MODE", "WORKFLOW", "NODE"]
        .map(String::from)
        .to_vec();
    if remote {
        header.push("REMOTE".into());
    }
    let mut widths = vec![0usize; header.len()];
    for row in std::iter::once(&header).chain(&cells) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&cells) {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (cell, &w))| {
                if i == 1 {
                    format!("{cell:>w$}")
                } else {
                    format!("{cell:<w$}")
                }
            })
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    out
}

/// The workflow's file stem from its id (`stem-<12 hex>`).
pub(super) fn workflow_name(id: &str) -> &str {
    match id.rsplit_once('-') {
        Some((stem, hash)) if hash.len() == 12 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
            stem
        }
        _ => id,
    }
}

fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut size = bytes as f64;
    let mut unit = 0;
    while size >= 1024.0 && unit < UNITS.len() - 1 {
        size /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{size:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod ls_tests {
    use super::*;
    use crate::store::{EntrySummary, RefRecord};

    #[test]
    fn ls_has_a_header_and_names_workflow_node_size_and_date() {
        let entry = |key: &str, node: &str, size: u64| EntrySummary {
            key: key.repeat(64),
            node: node.into(),
            mode: "backtest".into(),
            size,
            created_unix: 1_700_000_000,
            referenced: key == "a",
        };
        let refs = [RefRecord {
            workflow_id: "simple_backtest-0123456789ab".into(),
            node: "backtest".into(),
            key: "a".repeat(64),
        }];
        let text = render_ls(
            &[entry("a", "backtest", 2_500_000), entry("b", "old", 900)],
            &refs,
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "KEY                  SIZE  CREATED (UTC)     MODE      WORKFLOW         NODE",
                "aaaaaaaaaaaaaaaa  2.4 MiB  2023-11-14 22:13  backtest  simple_backtest  backtest",
                "bbbbbbbbbbbbbbbb    900 B  2023-11-14 22:13  backtest  -                old",
            ]
        );
    }
}
