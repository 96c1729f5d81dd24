//! Loading the bars a `data:` config names: each file parsed once per
//! build and stat, the bad-row policy logged, a sealed holdout cut off.

use std::path::{Path, PathBuf};

use super::PhaseError;
use super::config::DataSpec;
use crate::market::{BadRowPolicy, Bars, load_csv};

/// Parsed data files of the running build, so the trials of a sweep parse
/// a file once rather than once each. Keyed by the file's identity and
/// stat: an edit during the build is a new entry, never a stale one, and
/// it replaces the file's older entry. Emptied when a build ends
/// ([`forget_loaded`]), so a long `admf watch` whose data directory gains
/// a file a day holds none of them between builds.
type LoadKey = (
    PathBuf,
    String,
    BadRowPolicy,
    u64,
    Option<std::time::SystemTime>,
    u64,
);

type LoadedMemo =
    std::sync::Mutex<std::collections::HashMap<LoadKey, std::sync::Arc<crate::market::Loaded>>>;
static LOADED: std::sync::LazyLock<LoadedMemo> = std::sync::LazyLock::new(Default::default);

/// Drops every parsed file: called when a build ends. Another build of
/// the process still running only parses its files again.
pub fn forget_loaded() {
    LOADED.lock().unwrap_or_else(|e| e.into_inner()).clear();
}

fn load_shared(
    file: &Path,
    symbol: &str,
    policy: BadRowPolicy,
) -> Result<std::sync::Arc<crate::market::Loaded>, crate::error::Error> {
    use std::sync::Arc;
    let meta = std::fs::metadata(file).map_err(|e| crate::error::Error::io(file, e))?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    let key: LoadKey = (
        file.to_path_buf(),
        symbol.to_string(),
        policy,
        meta.len(),
        meta.modified().ok(),
        inode,
    );
    if let Some(hit) = LOADED.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Ok(hit.clone());
    }
    let loaded = Arc::new(load_csv(file, symbol, policy)?);
    let mut memo = LOADED.lock().unwrap_or_else(|e| e.into_inner());
    memo.retain(|k, _| (&k.0, &k.1, k.2) != (&key.0, &key.1, key.2));
    memo.insert(key, loaded.clone());
    Ok(loaded)
}

/// Loads every symbol of `spec`, logging what the bad-row policy did;
/// without the bars of a sealed holdout.
pub fn load_bars(spec: &DataSpec, log: &mut dyn std::io::Write) -> Result<Vec<Bars>, PhaseError> {
    let mut out = Vec::new();
    for (bars, start) in load_bars_and_holdout(spec, log)? {
        out.push(match start {
            Some(at) => bars.slice(0..at),
            None => bars,
        });
    }
    Ok(out)
}

/// Every bar of every symbol of `spec`, holdout included, with the index
/// of its first held-out bar: for the `holdout` mode only.
pub fn load_bars_and_holdout(
    spec: &DataSpec,
    log: &mut dyn std::io::Write,
) -> Result<Vec<(Bars, Option<usize>)>, PhaseError> {
    let mut out = Vec::new();
    for (symbol, file) in spec.symbols.iter().zip(&spec.files) {
        let loaded = load_shared(file, symbol, spec.policy)
            .map_err(|e| PhaseError::bad_input(e.render(false).trim_end().to_string()))?;
        // Detected once on the shared bars, so that every copy has it.
        loaded.bars.frequency();
        let mut bars = loaded.bars.clone();
        bars.declared_periods_per_year = spec.periods_per_year;
        let b = &bars;
        let f = b.frequency();
        let basis = if spec.periods_per_year.is_some() {
            "declared"
        } else {
            "inferred"
        };
        writeln!(
            log,
            "{symbol}: {} bars from {} ({}, {} .. {}, {} bars per year, {basis})",
            b.len(),
            file.display(),
            f.name(),
            b.ts_text[0],
            b.ts_text[b.len() - 1],
            b.periods_per_year()
        )?;
        if loaded.dropped + loaded.fixed > 0 {
            let (line, rule) = loaded.first_problem.clone().unwrap_or_default();
            writeln!(
                log,
                "{symbol}: on_bad_rows dropped {} and fixed {} row(s); first at line {line}: {rule}",
                loaded.dropped, loaded.fixed
            )?;
        }
        let start = match &spec.holdout {
            None => None,
            Some(h) => {
                let at = h.start(&bars.ts).map_err(|e| {
                    PhaseError::bad_input(format!("`data.holdout` ({}): {e}", h.describe()))
                })?;
                writeln!(
                    log,
                    "{symbol}: the holdout ({}) is sealed: {} bars from {} on",
                    h.describe(),
                    bars.len() - at,
                    bars.ts_text[at]
                )?;
                Some(at)
            }
        };
        out.push((bars, start));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_edited_data_file_replaces_its_parsed_copy() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("X.csv");
        let rows = |n: usize| {
            let mut text = String::from("date,open,high,low,close,volume\n");
            for d in 1..=n {
                text.push_str(&format!("2020-01-{d:02},10,11,9,10,100\n"));
            }
            text
        };
        let copies = || {
            LOADED
                .lock()
                .unwrap()
                .keys()
                .filter(|k| k.0 == file)
                .count()
        };
        std::fs::write(&file, rows(3)).unwrap();
        let first = load_shared(&file, "X", BadRowPolicy::Error).unwrap();
        std::fs::write(&file, rows(5)).unwrap();
        let second = load_shared(&file, "X", BadRowPolicy::Error).unwrap();
        assert_eq!((first.bars.len(), second.bars.len()), (3, 5));
        assert_eq!(copies(), 1);
        // A build's end lets go of every parsed file.
        forget_loaded();
        assert_eq!(copies(), 0);
        let again = load_shared(&file, "X", BadRowPolicy::Error).unwrap();
        assert!(!std::sync::Arc::ptr_eq(&again, &second));
        assert_eq!(again.bars.len(), 5);
    }
}
