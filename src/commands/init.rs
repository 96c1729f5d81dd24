//! `admf init [--template backtest|research|pipeline]`: a commented
//! starter workflow in the current directory that builds as is. When no
//! `data/SPY_D.csv` is at hand the sample bundled into the binary is
//! written there (with its license), and where no `.admf` or `.git` marks a
//! project root above, a `.admf` marker makes this directory one.

use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::paths::root::{MARKER, ProjectRoot, Reason};

/// The names `--template` accepts.
pub const TEMPLATES: &[&str] = &["backtest", "research", "pipeline"];

const SPY_DAILY: &[u8] = include_bytes!("../../data/SPY_D.csv");
const SPY_LICENSE: &[u8] = include_bytes!("../../data/LICENSE-pandas-ta.txt");

fn template(name: &str) -> Option<&'static str> {
    Some(match name {
        "backtest" => include_str!("templates/backtest.yaml"),
        "research" => include_str!("templates/research.yaml"),
        "pipeline" => include_str!("templates/pipeline.yaml"),
        _ => return None,
    })
}

pub fn init(template_name: &str, force: bool) -> Result<i32, Error> {
    let text = template(template_name).ok_or_else(|| Error::Usage {
        message: format!(
            "unknown template `{template_name}` (templates: {})",
            TEMPLATES.join(", ")
        ),
        hint: crate::error::did_you_mean(template_name, TEMPLATES.iter().copied()),
    })?;
    let dir = std::env::current_dir().map_err(|e| Error::io(Path::new("."), e))?;
    let workflow = dir.join(format!("{template_name}.yaml"));
    if workflow.exists() && !force {
        return Err(Error::Usage {
            message: format!("{} exists", workflow.display()),
            hint: Some("pass --force to replace it".into()),
        });
    }
    let mut written: Vec<PathBuf> = Vec::new();
    let mut write = |path: PathBuf, bytes: &[u8]| -> Result<(), Error> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        std::fs::write(&path, bytes).map_err(|e| Error::io(&path, e))?;
        written.push(path);
        Ok(())
    };
    if !matches!(ProjectRoot::find(&dir).reason, Reason::Marker(_)) {
        write(
            dir.join(MARKER),
            b"# Marks the admf project root: the default store is cache/ beside\n# this file, and workflows below it may read any file below it.\n",
        )?;
    }
    let data = dir.join("data/SPY_D.csv");
    if !data.is_file() {
        write(data, SPY_DAILY)?;
        write(dir.join("data/LICENSE-pandas-ta.txt"), SPY_LICENSE)?;
    }
    write(workflow.clone(), text.as_bytes())?;
    for path in &written {
        let shown = path.strip_prefix(&dir).unwrap_or(path);
        crate::errln!("wrote {}", shown.display());
    }
    let name = workflow.file_name().unwrap_or_default().to_string_lossy();
    crate::errln!("next: admf build {name}   (keys: admf modes MODE, strategies: admf strategies)");
    Ok(0)
}
