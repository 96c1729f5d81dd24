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
        CacheAction::Ls => {
            for e in store.ls().map_err(io)? {
                crate::outln!(
                    "{}  {:>10}  {:<8} {}{}",
                    &e.key[..16],
                    e.size,
                    e.mode,
                    e.node,
                    if e.referenced { "" } else { "  (unreferenced)" }
                );
            }
            Ok(0)
        }
        CacheAction::Gc {
            keep,
            older_than,
            wait,
            dry_run,
            all,
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
            if let Some(old) = &report.removed_old_layout {
                crate::errln!(
                    "{} the store of the older layout at {}",
                    if dry_run { "would remove" } else { "removed" },
                    old.display()
                );
            }
            Ok(0)
        }
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
            // Leftover temporaries are no corruption: nothing reads them.
            Ok(if report.found_corruption() && !repair {
                1
            } else {
                0
            })
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
