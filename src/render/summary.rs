//! The table printed after `admf build`: one row per node in planned order,
//! then the totals.
//!
//! ```text
//! ingest                    ran                 0.12s
//! sweep[0..99] ×100 trials  3 ran, 97 cached    3.40s
//! report                    failed                  -
//! 4 ran, 97 cached, 0 skipped, 1 failed in 1.23s
//! ```
//!
//! The trials of one grid phase (`sweep[0]`, `sweep[1]`…) share one row when
//! there are more than [`MAX_TRIAL_ROWS`] of them; its time is the sum of
//! the trials' times.

use super::paint;
use super::view::trial_index;
use crate::status::Status;

/// Up to this many trials of one phase are listed one by one.
pub const MAX_TRIAL_ROWS: usize = 4;

#[derive(Clone, Debug, PartialEq)]
pub struct SummaryRow {
    pub node: String,
    pub outcome: Status,
    pub seconds: Option<f64>,
}

/// The statuses a row can have: a node that was not run has no row.
const LISTED: [Status; 4] = [Status::Ran, Status::Cached, Status::Skipped, Status::Failed];

fn status_color(status: Status) -> &'static str {
    match status {
        Status::Ran => "32",
        Status::Cached | Status::NotRun => "2",
        Status::Skipped => "33",
        Status::Failed => "31",
    }
}

/// One printed row: a node, or a collapsed group of trials.
struct Line {
    name: String,
    /// How many rows of each status, by [`Status::index`].
    tally: [usize; Status::ALL.len()],
    seconds: Option<f64>,
}

/// The summary table, with the totals line timed by `wall_seconds`.
pub fn render_summary(rows: &[SummaryRow], wall_seconds: f64, color: bool) -> String {
    let lines = lines(rows);
    let outcomes: Vec<(String, String)> = lines.iter().map(|l| outcome_text(l, color)).collect();
    let times: Vec<String> = lines.iter().map(|l| seconds(l.seconds)).collect();
    let name_width = lines
        .iter()
        .map(|l| l.name.chars().count())
        .max()
        .unwrap_or(0);
    let outcome_width = outcomes
        .iter()
        .map(|(plain, _)| plain.chars().count())
        .max()
        .unwrap_or(0);
    let time_width = times.iter().map(String::len).max().unwrap_or(0);

    let mut out = String::new();
    for ((line, (plain, painted)), time) in lines.iter().zip(&outcomes).zip(&times) {
        let name_pad = name_width - line.name.chars().count();
        let outcome_pad = outcome_width - plain.chars().count();
        out.push_str(&format!(
            "{}{}  {painted}{}  {time:>time_width$}\n",
            line.name,
            " ".repeat(name_pad),
            " ".repeat(outcome_pad),
        ));
    }
    let mut total = [0; Status::ALL.len()];
    for row in rows {
        total[row.outcome.index()] += 1;
    }
    let counts: Vec<String> = LISTED
        .iter()
        .map(|&o| {
            let text = format!("{} {}", total[o.index()], o.name());
            let code = if total[o.index()] > 0 {
                status_color(o)
            } else {
                ""
            };
            paint(&text, code, color)
        })
        .collect();
    out.push_str(&format!(
        "{} in {}\n",
        counts.join(", "),
        seconds(Some(wall_seconds))
    ));
    out
}

fn lines(rows: &[SummaryRow]) -> Vec<Line> {
    let mut lines: Vec<Line> = Vec::new();
    let mut done = vec![false; rows.len()];
    for (i, row) in rows.iter().enumerate() {
        if done[i] {
            continue;
        }
        let group: Vec<usize> = match trial_index(&row.node) {
            Some((prefix, _)) => (i..rows.len())
                .filter(|&j| trial_index(&rows[j].node).is_some_and(|(p, _)| p == prefix))
                .collect(),
            None => vec![i],
        };
        if group.len() <= MAX_TRIAL_ROWS {
            done[i] = true;
            let mut tally = [0; Status::ALL.len()];
            tally[row.outcome.index()] = 1;
            lines.push(Line {
                name: row.node.clone(),
                tally,
                seconds: row.seconds,
            });
            continue;
        }
        let mut tally = [0; Status::ALL.len()];
        let mut total: Option<f64> = None;
        let (mut lo, mut hi) = (usize::MAX, 0);
        for &j in &group {
            done[j] = true;
            tally[rows[j].outcome.index()] += 1;
            if let Some(s) = rows[j].seconds {
                *total.get_or_insert(0.0) += s;
            }
            let (_, n) = trial_index(&rows[j].node).expect("grouped by trial index");
            lo = lo.min(n);
            hi = hi.max(n);
        }
        let (prefix, _) = trial_index(&row.node).expect("grouped by trial index");
        lines.push(Line {
            name: format!("{prefix}[{lo}..{hi}] ×{} trials", group.len()),
            tally,
            seconds: total,
        });
    }
    lines
}

/// The outcome column, plain (for width) and painted.
fn outcome_text(line: &Line, color: bool) -> (String, String) {
    let parts: Vec<(String, Status)> = LISTED
        .iter()
        .filter(|&&o| line.tally[o.index()] > 0)
        .map(|&o| (o, line.tally[o.index()]))
        .map(|(o, n)| {
            if line.tally.iter().sum::<usize>() == 1 {
                (o.name().to_string(), o)
            } else {
                (format!("{n} {}", o.name()), o)
            }
        })
        .collect();
    let plain = parts
        .iter()
        .map(|(t, _)| t.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let painted = parts
        .iter()
        .map(|(t, o)| paint(t, status_color(*o), color))
        .collect::<Vec<_>>()
        .join(", ");
    (plain, painted)
}

fn seconds(s: Option<f64>) -> String {
    s.map_or("-".to_string(), |s| format!("{s:.2}s"))
}
