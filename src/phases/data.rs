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

/// The bars a `data:` config makes of a parsed file (its declared
/// periods per year set, its holdout cut off), shared by every trial of a
/// sweep that reads them: a copy per trial of the columns, a quarter of
/// a momentum trial's work, is not made. Keyed by the parsed file and
/// what the config does to it; emptied with [`LOADED`].
type FinishedKey = (LoadKey, Option<u64>, Option<usize>);

type FinishedMemo = std::sync::Mutex<std::collections::HashMap<FinishedKey, std::sync::Arc<Bars>>>;
static FINISHED: std::sync::LazyLock<FinishedMemo> = std::sync::LazyLock::new(Default::default);

/// Drops every parsed file: called when a build ends. Another build of
/// the process still running only parses its files again.
pub fn forget_loaded() {
    LOADED.lock().unwrap_or_else(|e| e.into_inner()).clear();
    FINISHED.lock().unwrap_or_else(|e| e.into_inner()).clear();
}

fn load_shared(
    file: &Path,
    symbol: &str,
    policy: BadRowPolicy,
) -> Result<(std::sync::Arc<crate::market::Loaded>, LoadKey), crate::error::Error> {
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
        return Ok((hit.clone(), key));
    }
    let loaded = Arc::new(load_csv(file, symbol, policy)?);
    let mut memo = LOADED.lock().unwrap_or_else(|e| e.into_inner());
    memo.retain(|k, _| (&k.0, &k.1, k.2) != (&key.0, &key.1, key.2));
    memo.insert(key.clone(), loaded.clone());
    drop(memo);
    FINISHED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|k, _| (&k.0.0, &k.0.1, k.0.2) != (&key.0, &key.1, key.2));
    Ok((loaded, key))
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

/// [`load_bars`], the bars shared with every other caller in this build
/// that loads them the same way (the trials of a sweep) rather than
/// copied for this one. The log says the same.
pub fn load_bars_shared(
    spec: &DataSpec,
    log: &mut dyn std::io::Write,
) -> Result<Vec<std::sync::Arc<Bars>>, PhaseError> {
    let mut out = Vec::new();
    for_each_loaded(spec, log, |loaded, key, start| {
        let finished: FinishedKey = (key, spec.periods_per_year.map(f64::to_bits), start);
        if let Some(hit) = FINISHED
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&finished)
        {
            out.push(hit.clone());
            return;
        }
        let bars = std::sync::Arc::new(finish(&loaded.bars, spec, start));
        // Trials that finished the same bars at once share the first copy
        // stored: every later caller, a sweep's gather too, gets that one.
        let shared = FINISHED
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(finished)
            .or_insert(bars)
            .clone();
        out.push(shared);
    })?;
    Ok(out)
}

/// A copy of `loaded` with the periods per year `spec` declares, cut at
/// the holdout's first bar `start`.
fn finish(loaded: &Bars, spec: &DataSpec, start: Option<usize>) -> Bars {
    let mut bars = match start {
        Some(at) => loaded.slice(0..at),
        None => loaded.clone(),
    };
    bars.declared_periods_per_year = spec.periods_per_year;
    bars
}

/// Every bar of every symbol of `spec`, holdout included, with the index
/// of its first held-out bar: for the `holdout` mode only.
pub fn load_bars_and_holdout(
    spec: &DataSpec,
    log: &mut dyn std::io::Write,
) -> Result<Vec<(Bars, Option<usize>)>, PhaseError> {
    let mut out = Vec::new();
    for_each_loaded(spec, log, |loaded, _, start| {
        let mut bars = loaded.bars.clone();
        bars.declared_periods_per_year = spec.periods_per_year;
        out.push((bars, start));
    })?;
    Ok(out)
}

/// Parses (or takes the parsed copy of) each symbol's file of `spec`,
/// logs its bars, what the bad-row policy did and the holdout, and hands
/// `each` the parsed file, its memo key and the holdout's first bar.
fn for_each_loaded(
    spec: &DataSpec,
    log: &mut dyn std::io::Write,
    mut each: impl FnMut(&crate::market::Loaded, LoadKey, Option<usize>),
) -> Result<(), PhaseError> {
    for (symbol, file) in spec.symbols.iter().zip(&spec.files) {
        let (loaded, key) = load_shared(file, symbol, spec.policy)
            .map_err(|e| PhaseError::bad_input(e.render(false).trim_end().to_string()))?;
        let b = &loaded.bars;
        // Detected once on the shared bars, so that every copy has it.
        let f = b.frequency();
        let periods = spec
            .periods_per_year
            .unwrap_or_else(|| f.periods_per_year());
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
            periods
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
                let at = h.start(&b.ts).map_err(|e| {
                    PhaseError::bad_input(format!("`data.holdout` ({}): {e}", h.describe()))
                })?;
                writeln!(
                    log,
                    "{symbol}: the holdout ({}) is sealed: {} bars from {} on",
                    h.describe(),
                    b.len() - at,
                    b.ts_text[at]
                )?;
                Some(at)
            }
        };
        each(&loaded, key, start);
    }
    Ok(())
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
        let (first, _) = load_shared(&file, "X", BadRowPolicy::Error).unwrap();
        std::fs::write(&file, rows(5)).unwrap();
        let (second, _) = load_shared(&file, "X", BadRowPolicy::Error).unwrap();
        assert_eq!((first.bars.len(), second.bars.len()), (3, 5));
        assert_eq!(copies(), 1);
        // A build's end lets go of every parsed file.
        forget_loaded();
        assert_eq!(copies(), 0);
        let (again, _) = load_shared(&file, "X", BadRowPolicy::Error).unwrap();
        assert!(!std::sync::Arc::ptr_eq(&again, &second));
        assert_eq!(again.bars.len(), 5);
    }

    #[test]
    fn shared_bars_are_one_copy_per_config_and_read_as_the_copied_ones() {
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::from("date,open,high,low,close,volume\n");
        for d in 1..=20 {
            text.push_str(&format!("2020-01-{d:02},{c},{c},{c},{c},100\n", c = 10 + d));
        }
        std::fs::write(dir.path().join("X.csv"), text).unwrap();
        let spec = |extra: serde_json::Value| {
            let mut data = serde_json::json!({"source": "csv", "symbols": ["X"], "path": "X.csv"});
            data.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            crate::phases::config::data_spec(&serde_json::json!({ "data": data }), dir.path())
                .unwrap()
        };
        for extra in [
            serde_json::json!({}),
            serde_json::json!({"periods_per_year": 12}),
            serde_json::json!({"holdout": 0.25}),
        ] {
            let spec = spec(extra.clone());
            let (mut log_copied, mut log_shared, mut log_again) =
                (Vec::new(), Vec::new(), Vec::new());
            let copied = load_bars(&spec, &mut log_copied).unwrap();
            let shared = load_bars_shared(&spec, &mut log_shared).unwrap();
            let again = load_bars_shared(&spec, &mut log_again).unwrap();
            assert_eq!(*shared[0], copied[0], "{extra}");
            assert_eq!(shared[0].periods_per_year(), copied[0].periods_per_year());
            assert!(std::sync::Arc::ptr_eq(&shared[0], &again[0]), "{extra}");
            assert_eq!(log_shared, log_copied, "{extra}");
            assert_eq!(log_again, log_copied, "{extra}");
        }
        // Each config has its own bars: 20 bars, then 20 declared monthly,
        // then 15 before the holdout.
        let lens: Vec<(usize, f64)> = [
            serde_json::json!({"periods_per_year": 12}),
            serde_json::json!({"holdout": 0.25}),
        ]
        .into_iter()
        .map(|e| {
            let b = load_bars_shared(&spec(e), &mut std::io::sink()).unwrap();
            (b[0].len(), b[0].periods_per_year())
        })
        .collect();
        assert_eq!(lens, [(20, 12.0), (15, 252.0)]);
    }
}
