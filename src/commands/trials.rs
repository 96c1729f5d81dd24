//! `admf trials`: the table of a sweep.

use super::Session;
use crate::cli::WorkflowArgs;
use crate::error::Error;
use crate::results::table::Format;
use crate::results::{filter, trials};

/// What `admf trials` was asked for beyond the workflow.
pub struct TrialsArgs<'a> {
    pub phase: Option<&'a str>,
    pub sort: Option<&'a str>,
    pub top: Option<usize>,
    pub filter: Option<&'a str>,
    pub format: &'a str,
    pub pivot: Option<&'a str>,
    pub value: &'a str,
}

fn usage(message: String, hint: Option<String>) -> Error {
    Error::Usage { message, hint }
}

pub fn trials(wf: &WorkflowArgs, args: &TrialsArgs<'_>) -> Result<i32, Error> {
    let format: Format = args.format.parse()?;
    // Parse the filter before any work: a typo should not wait on a plan.
    let conditions = args
        .filter
        .map(filter::parse)
        .transpose()
        .map_err(|e| usage(format!("--filter: {e}"), None))?;
    let session = Session::open(wf)?;
    let graph = session.graph();
    let all = trials::grid_phases(graph);
    let phases = match args.phase {
        Some(p) => {
            let i = graph.find(p)?;
            let id = graph.nodes[i].id.clone();
            let id = graph.nodes[i].group.clone().unwrap_or(id);
            if !all.contains(&id) {
                return Err(usage(
                    format!("`{id}` is not a grid phase: it has no trials"),
                    (!all.is_empty()).then(|| format!("grid phases: {}", all.join(", "))),
                ));
            }
            vec![id]
        }
        None if all.is_empty() => {
            return Err(usage(
                format!("{} has no grid phase", wf.workflow.display()),
                Some("a phase with `grid:` has one trial per combination".into()),
            ));
        }
        None => all,
    };
    let predictions = crate::plan::predict(&session.ctx);
    let mut table = trials::table(&session.ctx, &predictions, &phases);
    if let Some(conditions) = &conditions {
        filter::apply(&mut table, conditions).map_err(|e| usage(format!("--filter: {e}"), None))?;
    }
    if let Some(key) = args.sort {
        trials::sort(&mut table, key).map_err(|e| usage(format!("--sort: {e}"), None))?;
    }
    if let Some(n) = args.top {
        table.rows.truncate(n);
    }
    if let Some(pivot) = args.pivot {
        let Some((rows, cols)) = pivot.split_once(',') else {
            return Err(usage(
                format!("--pivot `{pivot}`: expected two parameters, `ROWS,COLUMNS`"),
                None,
            ));
        };
        table = trials::pivot(&table, rows.trim(), cols.trim(), args.value)
            .map_err(|e| usage(format!("--pivot: {e}"), None))?;
    }
    crate::out!("{}", table.render(format));
    Ok(0)
}
