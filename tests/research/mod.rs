//! A temporary project holding copies of the shipped `workflows/` and
//! `data/`, with its own `cache/`, so research tests build the real
//! workflows on the real data without touching the repository's store.
#![allow(dead_code)]

#[path = "../store_support/mod.rs"]
pub mod store_support;

use std::path::{Path, PathBuf};

use crate::common::{Output, Project};

/// Every workflow shipped under `workflows/` (not the included configs).
pub const WORKFLOWS: &[&str] = &[
    "simple_backtest",
    "parameter_optimization",
    "composite_research",
    "conditional_ensemble",
    "minute_research",
    "walk_forward",
];

pub fn project() -> Project {
    let p = Project::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for dir in ["workflows", "data"] {
        for entry in walkdir::WalkDir::new(root.join(dir))
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_file())
        {
            let rel = entry.path().strip_prefix(root).unwrap();
            if rel.extension().is_some_and(|e| e == "yaml" || e == "csv") {
                let to = p.path(rel.to_str().unwrap());
                std::fs::create_dir_all(to.parent().unwrap()).unwrap();
                std::fs::copy(entry.path(), to).unwrap();
            }
        }
    }
    std::fs::create_dir_all(p.path("cache")).unwrap();
    p
}

pub fn workflow(name: &str) -> String {
    format!("workflows/{name}.yaml")
}

/// The `report.html` paths `admf build` prints after its summary.
pub fn reports(out: &Output) -> Vec<PathBuf> {
    out.stderr
        .lines()
        .filter_map(|l| l.strip_prefix("report: "))
        .map(|l| PathBuf::from(l.rsplit_once(" (").map_or(l, |(path, _)| path)))
        .collect()
}

/// Every output file in a store, as (key/relative path, bytes), sorted:
/// what the nodes wrote, without timings or logs.
pub fn outputs(cache: &Path) -> Vec<(String, Vec<u8>)> {
    store_support::artifacts(cache)
}
