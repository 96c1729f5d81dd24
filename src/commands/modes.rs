//! `admf modes [MODE] [--markdown]` and `admf strategies`: the reference,
//! rendered from the declarations in [`crate::phases::schema`] and
//! [`crate::market::catalog`]. `docs/reference.md` is
//! `admf modes --markdown`.

use std::fmt::Write as _;

use crate::error::{Error, did_you_mean};
use crate::market::catalog::{
    self, ALLOW_SHORT, CLASSIFIERS, EXECUTION, METRICS, MetricDoc, ParamDoc, RuleDoc, STRATEGIES,
};
use crate::phases::schema::{self, FileDoc, KeyDoc, MODES, ModeDoc};

pub fn modes(mode: Option<&str>, markdown: bool) -> Result<i32, Error> {
    let text = match (mode, markdown) {
        (None, true) => reference_markdown(),
        (None, false) => modes_text(),
        (Some(name), md) => {
            let m = schema::mode(name).ok_or_else(|| unknown_mode(name))?;
            if md { mode_markdown(m) } else { mode_text(m) }
        }
    };
    crate::outln!("{}", text.trim_end());
    Ok(0)
}

pub fn strategies() -> Result<i32, Error> {
    crate::outln!("{}", strategies_text().trim_end());
    Ok(0)
}

/// The usage error for a mode name nobody declared, listing the valid ones.
pub fn unknown_mode(name: &str) -> Error {
    let names: Vec<&str> = MODES.iter().map(|m| m.name).collect();
    Error::Usage {
        message: format!("unknown mode `{name}` (modes: {})", names.join(", ")),
        hint: did_you_mean(name, names.iter().copied()),
    }
}

fn modes_text() -> String {
    let mut s = String::from("Modes (`admf modes MODE` for keys and files):\n\n");
    for m in MODES {
        let _ = writeln!(s, "  {:<18} {}", m.name, first_sentence(m.summary));
    }
    s.push_str("\nEvery phase also takes:");
    for k in schema::PHASE_KEYS {
        let _ = write!(s, " {}", k.name);
    }
    s.push_str(
        "\nStrategies: `admf strategies`. Everything, with metric formulas: docs/reference.md.\n",
    );
    s
}

fn first_sentence(text: &str) -> &str {
    match text.find(". ") {
        Some(i) => &text[..=i],
        None => text,
    }
}

fn keys_text(s: &mut String, keys: &[KeyDoc]) {
    for k in keys {
        let default = if k.default.is_empty() {
            String::new()
        } else {
            format!(" (default: {})", k.default)
        };
        let _ = writeln!(
            s,
            "  {:<12} {}{default}\n               {}",
            k.name, k.ty, k.doc
        );
    }
}

fn mode_text(m: &ModeDoc) -> String {
    let mut s = format!("mode: {}\n\n{}\n\nKeys:\n", m.name, m.summary);
    keys_text(&mut s, m.keys);
    s.push_str("\nFiles it writes:\n");
    for f in m.files {
        let _ = writeln!(s, "  {:<22} {}", f.name, f.format);
    }
    let _ = writeln!(
        s,
        "\n`when:` paths into its metrics.json: {}",
        m.condition_paths.join(", ")
    );
    if m.keys.iter().any(|k| k.name == "strategy") {
        s.push_str("\nStrategies and their parameters: `admf strategies`.\n");
    }
    s
}

fn params_text(s: &mut String, params: &[ParamDoc]) {
    for p in params {
        let _ = writeln!(
            s,
            "    {:<12} {} (default {}): {}",
            p.name, p.ty, p.default, p.doc
        );
    }
}

fn strategies_text() -> String {
    let mut s = String::from("Strategies (`strategy: {type: NAME, parameters: {...}}`):\n");
    for r in STRATEGIES {
        let _ = writeln!(s, "\n  {}: {}", r.name, r.rule);
        params_text(&mut s, r.params);
    }
    s.push_str("\nEvery strategy also takes:\n");
    params_text(&mut s, &[ALLOW_SHORT]);
    s.push_str("\nRegime classifiers (`classifiers:` of analysis):\n");
    for r in CLASSIFIERS {
        let _ = writeln!(s, "\n  {}: {}", r.name, r.rule);
        params_text(&mut s, r.params);
    }
    s
}

/// A markdown table cell: pipes escaped, newlines folded.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

fn code_unless_prose(text: &str) -> String {
    let prose = text.contains(' ') || matches!(text, "required" | "inherited" | "always" | "none");
    if text.is_empty() || prose {
        cell(text)
    } else {
        format!("`{}`", cell(text))
    }
}

fn keys_markdown(s: &mut String, keys: &[KeyDoc]) {
    s.push_str("| key | type | default | meaning |\n|---|---|---|---|\n");
    for k in keys {
        let _ = writeln!(
            s,
            "| `{}` | {} | {} | {} |",
            k.name,
            cell(k.ty),
            code_unless_prose(k.default),
            cell(k.doc)
        );
    }
}

fn files_markdown(s: &mut String, files: &[FileDoc]) {
    s.push_str("| file | format |\n|---|---|\n");
    for f in files {
        let _ = writeln!(s, "| `{}` | {} |", f.name, cell(f.format));
    }
}

fn mode_markdown(m: &ModeDoc) -> String {
    let mut s = format!("### `{}`\n\n{}\n\n", m.name, m.summary);
    keys_markdown(&mut s, m.keys);
    s.push_str("\nFiles it writes:\n\n");
    files_markdown(&mut s, m.files);
    let paths: Vec<String> = m.condition_paths.iter().map(|p| format!("`{p}`")).collect();
    let _ = writeln!(
        s,
        "\n`when:` paths into its `metrics.json`: {}.\n",
        paths.join(", ")
    );
    s
}

fn rules_markdown(s: &mut String, rules: &[RuleDoc]) {
    for r in rules {
        let _ = writeln!(s, "### `{}`\n\n{}\n", r.name, r.rule);
        s.push_str("| parameter | type | default | meaning |\n|---|---|---|---|\n");
        for p in r.params {
            let _ = writeln!(
                s,
                "| `{}` | {} | `{}` | {} |",
                p.name,
                cell(p.ty),
                p.default,
                cell(p.doc)
            );
        }
        s.push('\n');
    }
}

fn metrics_markdown(s: &mut String, metrics: &[MetricDoc]) {
    s.push_str("| metric | definition |\n|---|---|\n");
    for m in metrics {
        let _ = writeln!(s, "| `{}` | {} |", m.name, cell(m.formula));
    }
}

/// The whole reference, as `docs/reference.md` holds it.
pub fn reference_markdown() -> String {
    let mut s = String::from(
        "# admf reference\n\n\
         <!-- Generated from the declarations in src/phases/schema.rs and \
         src/market/catalog.rs by `admf modes --markdown > docs/reference.md`; \
         a test fails when this file is stale. -->\n\n\
         The same text on the command line: `admf modes`, `admf modes MODE`, \
         `admf strategies`. A starter workflow: `admf init`.\n\n",
    );
    s.push_str("## Workflow file\n\nTop-level keys:\n\n");
    keys_markdown(&mut s, schema::TOP_KEYS);
    s.push_str("\n## Phase keys\n\nEvery phase, whatever its mode:\n\n");
    keys_markdown(&mut s, schema::PHASE_KEYS);
    s.push_str("\n## Modes\n\n");
    for m in MODES {
        s.push_str(&mode_markdown(m));
    }
    s.push_str("## Data\n\n`data:` keys:\n\n");
    keys_markdown(&mut s, schema::DATA_KEYS);
    let _ = writeln!(s, "\n{}\n", schema::DATA_FORMAT);
    s.push_str("## Costs\n\n`costs:` keys:\n\n");
    keys_markdown(&mut s, schema::COSTS_KEYS);
    s.push_str("\n## Execution\n\n`execution:` keys (see Execution convention):\n\n");
    keys_markdown(&mut s, schema::EXECUTION_KEYS);
    s.push_str("\n## Split\n\n`split:` keys:\n\n");
    keys_markdown(&mut s, schema::SPLIT_KEYS);
    let _ = writeln!(s, "\n{}", schema::SPLIT_RULE);
    s.push_str("\n## Strategies\n\n`strategy:` keys:\n\n");
    keys_markdown(&mut s, schema::STRATEGY_KEYS);
    s.push('\n');
    rules_markdown(&mut s, STRATEGIES);
    let _ = writeln!(
        s,
        "Every strategy also takes `{}` ({}, default `{}`): {}.\n",
        ALLOW_SHORT.name, ALLOW_SHORT.ty, ALLOW_SHORT.default, ALLOW_SHORT.doc
    );
    let _ = writeln!(
        s,
        "## Classifiers\n\nIn `classifiers:`, {}\n",
        catalog::CLASSIFIER_FORMS
    );
    rules_markdown(&mut s, CLASSIFIERS);
    let _ = writeln!(s, "## Metrics\n\n{}\n", catalog::METRIC_NOTATION);
    metrics_markdown(&mut s, METRICS);
    let _ = writeln!(s, "\nUndefined metrics: {}\n", catalog::METRIC_EDGE_CASES);
    let _ = writeln!(s, "### Benchmark\n\n{}\n", catalog::BENCHMARK_RULE);
    metrics_markdown(&mut s, catalog::BENCHMARK_METRICS);
    s.push_str(
        "\n### Overfitting\n\nHow much of a selection's figure is the luck of trying many: `overfitting` in the `metrics.json` of signal_generation (the best trial by Sharpe ratio) and signal_replay (the chosen weighting, on the train part). A statistic that is undefined is null and the log says why.\n\n",
    );
    metrics_markdown(&mut s, catalog::OVERFITTING_METRICS);
    s.push('\n');
    s.push_str("## Execution convention\n\n");
    for line in EXECUTION {
        let _ = writeln!(s, "- {line}");
    }
    s
}
