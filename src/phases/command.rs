//! `mode: command`: any shell step. `run:` is executed by `sh -c` in the
//! declaring workflow's directory, in an environment built from an
//! allow-list ([`ALLOWED_ENV`], the variables named in `pass_env:`, the
//! `ADMF_UPSTREAM_*` variables) with `env:` added, and stdout and stderr
//! captured together into the node's log. `inputs:`
//! (paths or globs) enter the key by content; every path in `outputs:`
//! must exist when the command ends, is copied into the store, and is
//! restored into the workspace on a cache hit. Declared outputs are removed
//! before the command runs, so a stale file never passes for a fresh one.
//! `metrics:` names one of the outputs, a JSON object, that becomes the
//! node's `metrics.json`, so `when:` conditions can test a command's result.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{ConfigIssue, Phase, PhaseContext, PhaseError};
use crate::error::did_you_mean;
use crate::paths::normalize;
use crate::paths::{PathGlob, is_glob};
use crate::reads::Reads;
use crate::workspace::{Keep, UNCACHED_RECORD, is_dir_output};

pub struct Command;

pub const KEYS: &[&str] = &[
    "run",
    "inputs",
    "outputs",
    "env",
    "metrics",
    "description",
    "logs",
    "timeout",
    "temp",
    "pass_env",
];

/// Variables a command always gets from the build's environment, as
/// they are, without entering the key: what a shell and its tools need
/// to start (PATH, HOME, locale, temp dir), and, by prefix
/// ([`ALLOWED_ENV_PREFIXES`]), the locale categories and the job a
/// scheduler runs the command in. Everything else, credentials included,
/// is invisible unless named in `pass_env:`.
pub const ALLOWED_ENV: &[&str] = &["PATH", "HOME", "LANG", "LANGUAGE", "TMPDIR"];

/// `LC_*`: locale categories. `SLURM_*`: the job and its granted
/// resources (job id, CPUs, memory) when the Slurm executor runs the
/// action; they describe where the command runs, not what it computes,
/// as `threads:` does for a local run.
pub const ALLOWED_ENV_PREFIXES: &[&str] = &["LC_", "SLURM_"];

fn allowed_env(name: &str) -> bool {
    ALLOWED_ENV.contains(&name) || ALLOWED_ENV_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// The names in `pass_env:` (validated at compile time).
fn pass_env(config: &Value) -> Vec<&str> {
    config
        .get("pass_env")
        .and_then(Value::as_array)
        .map(|names| names.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Whether a node with this config takes variables from the build's
/// environment into its key (only a command's config has `pass_env`).
pub fn passes_env(config: &Value) -> bool {
    !pass_env(config).is_empty()
}

/// The command's environment, before the upstream variables and `env:`
/// are added.
fn base_env(config: &Value) -> Vec<(std::ffi::OsString, std::ffi::OsString)> {
    let passed = pass_env(config);
    std::env::vars_os()
        .filter(|(name, _)| {
            name.to_str()
                .is_some_and(|n| allowed_env(n) || passed.contains(&n))
        })
        .collect()
}

fn strings<'a>(config: &'a Value, key: &str) -> Result<Vec<&'a str>, ConfigIssue> {
    match config.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.as_str()]),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_str()
                    .ok_or_else(|| ConfigIssue::new(format!("{key}[{i}]"), "must be a path"))
            })
            .collect(),
        Some(_) => Err(ConfigIssue::new(key, "must be a path or a list of paths")),
    }
}

/// One `outputs:` item: a path, or `{path: P, cache: false}`.
struct OutputItem<'a> {
    raw: &'a str,
    cached: bool,
}

fn output_items(config: &Value) -> Result<Vec<OutputItem<'_>>, ConfigIssue> {
    let items = match config.get("outputs") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::String(s)) => {
            return Ok(vec![OutputItem {
                raw: s,
                cached: true,
            }]);
        }
        Some(Value::Array(items)) => items,
        Some(_) => {
            return Err(ConfigIssue::new(
                "outputs",
                "must be a path or a list of paths",
            ));
        }
    };
    let shape = "an output is a path, or {path: P, cache: false} for one kept out of the store";
    items
        .iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::String(raw) => Ok(OutputItem { raw, cached: true }),
            Value::Object(map) => {
                if let Some(other) = map.keys().find(|k| *k != "path" && *k != "cache") {
                    return Err(ConfigIssue::new(
                        format!("outputs[{i}].{other}"),
                        format!("unknown key: {shape}"),
                    ));
                }
                let raw = map
                    .get("path")
                    .and_then(Value::as_str)
                    .ok_or_else(|| ConfigIssue::new(format!("outputs[{i}]"), shape))?;
                let cached = match map.get("cache") {
                    None => true,
                    Some(Value::Bool(b)) => *b,
                    Some(_) => {
                        return Err(ConfigIssue::new(
                            format!("outputs[{i}].cache"),
                            "must be true or false",
                        ));
                    }
                };
                Ok(OutputItem { raw, cached })
            }
            _ => Err(ConfigIssue::new(format!("outputs[{i}]"), shape)),
        })
        .collect()
}

/// Every declared workspace output as (relative path, how it is kept):
/// `outputs:` in order, then `temp:`. Invalid ones are left out (the
/// compiler has reported them).
fn declared_outputs(config: &Value) -> Vec<(String, Keep)> {
    let mut out: Vec<(String, Keep)> = output_items(config)
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .filter_map(|(i, item)| {
            let keep = if item.cached {
                Keep::Stored
            } else {
                Keep::Uncached
            };
            Some((output_path(item.raw, i).ok()?, keep))
        })
        .collect();
    out.extend(
        strings(config, "temp")
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .filter_map(|(i, raw)| Some((output_path(raw, i).ok()?, Keep::Temp))),
    );
    out
}

/// An output path must stay inside the workflow's directory.
fn output_path(raw: &str, index: usize) -> Result<String, ConfigIssue> {
    let path = normalize(Path::new(raw));
    let escapes = path.is_absolute() || path.starts_with("..") || path.as_os_str().is_empty();
    if escapes {
        return Err(ConfigIssue::new(
            format!("outputs[{index}]"),
            format!("`{raw}` must be a relative path inside the workflow's directory"),
        ));
    }
    let mut rel = path.to_string_lossy().replace('\\', "/");
    // A trailing `/` declares a directory output, stored and restored whole.
    if raw.ends_with('/') {
        rel.push('/');
    }
    Ok(rel)
}

/// Expand one `inputs:` glob: walk only below its literal prefix, so a
/// pattern like `data/*.csv` never scans the rest of the project. Files
/// other phases declare as outputs (`produced`) match too, existing yet
/// or not.
///
/// A glob that can match files inside another phase's directory output
/// stands for that whole directory (the directory's path is returned in
/// place of its files): what it holds is known only once its phase ran,
/// so listing it at load would differ between a cold and a warm build.
/// The directory makes the edge, and its tree digest enters the key
/// through that phase's output digest.
fn expand_glob(
    pattern: &str,
    index: usize,
    base_dir: &Path,
    produced: &[PathBuf],
    reads: &Reads,
) -> Result<Vec<PathBuf>, ConfigIssue> {
    let key = format!("inputs[{index}]");
    let glob = PathGlob::new(pattern, base_dir).map_err(|e| ConfigIssue::new(&key, e))?;
    let root = glob.dir();
    // Directory outputs come with a trailing `/`.
    let dirs = produced
        .iter()
        .filter(|p| p.as_os_str().as_encoded_bytes().ends_with(b"/"));
    if let Some(dir) = dirs.clone().find(|d| root.starts_with(d)) {
        return Ok(vec![dir.clone()]);
    }
    // Directory outputs below the glob's directory that matches can lie in.
    let within: Vec<&PathBuf> = dirs
        .filter(|d| d.starts_with(&root) && glob.may_match_below(d))
        .collect();
    // Walkdir yields a directory before listing it: a file added or
    // removed later changes the stat noted here.
    let mut found = glob.files(reads);
    found.retain(|f| {
        let f = normalize(&std::path::absolute(f).unwrap_or_else(|_| f.clone()));
        !within.iter().any(|d| f.starts_with(d))
    });
    let existing: std::collections::HashSet<PathBuf> = found
        .iter()
        .map(|f| normalize(&std::path::absolute(f).unwrap_or_else(|_| f.clone())))
        .collect();
    found.extend(
        produced
            .iter()
            .filter(|p| glob.is_match(p) && !existing.contains(*p))
            .cloned(),
    );
    found.extend(within.into_iter().cloned());
    if found.is_empty() {
        return Err(ConfigIssue::new(
            key,
            format!("`{pattern}` matches no file"),
        ));
    }
    Ok(found)
}

impl Phase for Command {
    fn version(&self) -> &'static str {
        // 2: the environment is an allow-list, no longer the build's own.
        "command-2"
    }

    /// A shell step runs whatever the machine has: its outputs may differ
    /// between platforms.
    fn platform_dependent(&self) -> bool {
        true
    }

    fn passed_env<'a>(&self, config: &'a Value) -> Vec<&'a str> {
        pass_env(config)
    }

    /// The files `inputs:` lists are relative to the phase's file.
    fn relative_paths(&self) -> &'static [&'static str] {
        &["inputs"]
    }

    /// A workflow-wide `pass_env:`; a phase's own list replaces it.
    fn inherits(&self) -> &'static [&'static str] {
        &["pass_env"]
    }

    /// Outputs go to the commit by path and the metrics as bytes.
    fn writes_files(&self, _role: &super::Role) -> bool {
        false
    }

    fn validate(&self, config: &Value) -> Result<(), ConfigIssue> {
        let map = config
            .as_object()
            .ok_or_else(|| ConfigIssue::new("run", "a command phase needs `run:`"))?;
        for key in map.keys() {
            if !KEYS.contains(&key.as_str()) {
                let mut issue = ConfigIssue::new(key, "unknown key for mode `command`");
                issue.hint = did_you_mean(key, KEYS.iter().copied());
                return Err(issue);
            }
        }
        match map.get("run") {
            Some(Value::String(s)) if !s.trim().is_empty() => {}
            Some(_) => return Err(ConfigIssue::new("run", "must be a non-empty shell command")),
            None => return Err(ConfigIssue::new("run", "a command phase needs `run:`")),
        }
        strings(config, "inputs")?;
        let items = output_items(config)?;
        for (i, item) in items.iter().enumerate() {
            output_path(item.raw, i)?;
        }
        self.validate_temp(config)?;
        if let Some(metrics) = map.get("metrics") {
            let declared: Vec<&str> = items.iter().map(|item| item.raw).collect();
            let named = metrics
                .as_str()
                .filter(|m| declared.contains(m) && !m.ends_with('/'));
            if named.is_none() {
                return Err(ConfigIssue::new(
                    "metrics",
                    "must be one of the file paths in `outputs:`",
                ));
            }
            // The node keeps the metrics file's content as its own
            // `metrics.json`; an output of that name would be overwritten
            // in the store and then restored over the user's file.
            let clash = declared.iter().position(|raw| {
                Some(*raw) != named && output_path(raw, 0).is_ok_and(|p| p == "metrics.json")
            });
            if let Some(i) = clash {
                return Err(ConfigIssue::new(
                    format!("outputs[{i}]"),
                    format!(
                        "`metrics.json` is where the node keeps the content of `metrics: {}`; name this output otherwise, or make it the `metrics:` file",
                        named.unwrap_or_default()
                    ),
                ));
            }
        }
        let outputs: Vec<String> = declared_outputs(config)
            .into_iter()
            .map(|(rel, _)| rel)
            .collect();
        for (i, raw) in strings(config, "logs")?.into_iter().enumerate() {
            let rel = output_path(raw, i)
                .map_err(|e| ConfigIssue::new(format!("logs[{i}]"), e.message))?;
            if rel.ends_with('/') {
                return Err(ConfigIssue::new(
                    format!("logs[{i}]"),
                    "must be a file path",
                ));
            }
            if outputs.contains(&rel) {
                return Err(ConfigIssue::new(
                    format!("logs[{i}]"),
                    format!("`{raw}` is also an output; a log is kept out of the output digest"),
                ));
            }
        }
        if items.iter().any(|item| !item.cached)
            && let Some(i) = outputs.iter().position(|rel| rel == UNCACHED_RECORD)
        {
            let key = match i.checked_sub(items.len()) {
                Some(t) => format!("temp[{t}]"),
                None => format!("outputs[{i}]"),
            };
            return Err(ConfigIssue::new(
                key,
                format!(
                    "`{UNCACHED_RECORD}` is where the node keeps the digests of its `cache: false` outputs; name this output otherwise"
                ),
            ));
        }
        if map.contains_key("timeout") {
            timeout(config)?;
        }
        if let Some(names) = map.get("pass_env") {
            let names = names
                .as_array()
                .ok_or_else(|| ConfigIssue::new("pass_env", "must be a list of variable names"))?;
            for (i, name) in names.iter().enumerate() {
                let valid = name.as_str().is_some_and(|n| {
                    !n.is_empty()
                        && !n.starts_with(|c: char| c.is_ascii_digit())
                        && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                });
                if !valid {
                    return Err(ConfigIssue::new(
                        format!("pass_env[{i}]"),
                        "must be a variable name (letters, digits and _, not starting with a digit)",
                    ));
                }
            }
        }
        if let Some(env) = map.get("env") {
            let env = env
                .as_object()
                .ok_or_else(|| ConfigIssue::new("env", "must be a mapping of NAME: value"))?;
            for (k, v) in env {
                if v.is_array() || v.is_object() || v.is_null() {
                    return Err(ConfigIssue::new(
                        format!("env.{k}"),
                        "must be a string or number",
                    ));
                }
            }
        }
        Ok(())
    }

    /// Outside a build (no graph, no trace): the directories its globs
    /// list are noted in a list of their own that nothing rests on.
    fn inputs(&self, config: &Value, base_dir: &Path) -> Result<Vec<PathBuf>, ConfigIssue> {
        self.inputs_given(config, base_dir, &[], &Reads::new())
    }

    fn inputs_given(
        &self,
        config: &Value,
        base_dir: &Path,
        produced: &[PathBuf],
        reads: &Reads,
    ) -> Result<Vec<PathBuf>, ConfigIssue> {
        let mut out = Vec::new();
        // A glob never matches the node's own outputs: they are removed
        // before the command runs and rewritten by it, so a key over them
        // would never settle.
        let own: Vec<PathBuf> = self
            .workspace_outputs(config, base_dir)
            .into_iter()
            .map(|(_, path)| normalize(&std::path::absolute(&path).unwrap_or(path)))
            .collect();
        let is_own = |file: &PathBuf| {
            let file = normalize(&std::path::absolute(file).unwrap_or_else(|_| file.clone()));
            own.iter().any(|o| file == *o || file.starts_with(o))
        };
        for (i, pattern) in strings(config, "inputs")?.into_iter().enumerate() {
            if is_glob(pattern) {
                let found = expand_glob(pattern, i, base_dir, produced, reads)?;
                out.extend(found.into_iter().filter(|f| !is_own(f)));
            } else {
                out.push(base_dir.join(pattern));
            }
        }
        Ok(out)
    }

    fn workspace_outputs(&self, config: &Value, base_dir: &Path) -> Vec<(String, PathBuf)> {
        declared_outputs(config)
            .into_iter()
            .map(|(rel, _)| {
                let path = base_dir.join(rel.trim_end_matches('/'));
                (rel, path)
            })
            .collect()
    }

    /// A command's entry holds its declared outputs, under their paths:
    /// only an output declared as `metrics.json` itself, or a directory
    /// (whose files are named by what the command left in it), can be one.
    fn may_store_metrics(&self, workspace_outputs: &[(String, PathBuf)]) -> bool {
        workspace_outputs
            .iter()
            .any(|(rel, _)| rel == "metrics.json" || is_dir_output(rel))
    }

    fn output_keeps(&self, config: &Value) -> Vec<Keep> {
        declared_outputs(config)
            .into_iter()
            .map(|(_, keep)| keep)
            .collect()
    }

    fn execute(&self, ctx: &mut PhaseContext<'_>) -> Result<(), PhaseError> {
        let run = ctx.config["run"].as_str().unwrap_or_default();
        let outputs = self.workspace_outputs(ctx.config, ctx.base_dir);
        // Every output's directory is made (or found) inside the
        // workflow's directory, symlinks resolved, before anything there
        // is removed: an output path leading out through a symlink fails
        // the node and touches nothing outside.
        for (rel, path) in &outputs {
            let cannot_remove = |e: std::io::Error| {
                PhaseError::new(format!(
                    "output `{rel}`: cannot remove old {}: {e}",
                    path.display()
                ))
            };
            if is_dir_output(rel) {
                let parent = path.parent().unwrap_or(Path::new("."));
                crate::workspace::open_dir_inside(parent, ctx.base_dir).map_err(cannot_remove)?;
                remove_dir_output(path)?;
                continue;
            }
            crate::workspace::remove_file_inside(path, ctx.base_dir).map_err(cannot_remove)?;
            crate::workspace::remove_dead_temps(path);
        }
        // One pipe for both streams keeps their interleaving; this thread
        // keeps the head and tail of what comes through it while the
        // command runs.
        let (capture, capture_writer) = std::io::pipe()?;
        // An absolute path, as ninja and make use: no PATH search per node.
        let mut cmd = std::process::Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(run)
            .current_dir(if ctx.base_dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                ctx.base_dir
            })
            .stdin(dev_null()?)
            .stdout(capture_writer.try_clone()?)
            .stderr(capture_writer)
            .env_clear()
            .envs(base_env(ctx.config));
        // Held until the command has finished: the folders go with it.
        let upstream = super::upstream_env::prepare(ctx.upstream, ctx.log)
            .map_err(|e| PhaseError::new(format!("cannot lay out upstream outputs: {e}")))?;
        cmd.envs(upstream.env.iter().map(|(k, v)| (k, v)));
        if let Some(env) = ctx.config.get("env").and_then(Value::as_object) {
            for (k, v) in env {
                let value = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                cmd.env(k, value);
            }
        }
        let logs = log_paths(ctx.config, ctx.base_dir);
        for (_, path) in &logs {
            match std::fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(PhaseError::new(format!(
                        "cannot remove old {}: {e}",
                        path.display()
                    )));
                }
                _ => {}
            }
        }
        let limit = timeout(ctx.config).map_err(|e| PhaseError::bad_input(e.message))?;
        let (ended, output) = run_capturing(cmd, capture, limit)?;
        ctx.log.write_all(&output)?;
        // Declared logs join the node's log: stored and shown by `admf
        // show`, never part of the output digest, so timings in them do
        // not defeat early cutoff.
        for (rel, path) in &logs {
            match File::open(path).and_then(CappedOutput::read) {
                Ok(kept) => {
                    let bytes = kept.finish();
                    writeln!(ctx.log, "--- log {rel} ---")?;
                    ctx.log.write_all(&bytes)?;
                    if !bytes.ends_with(b"\n") && !bytes.is_empty() {
                        writeln!(ctx.log)?;
                    }
                }
                Err(_) => writeln!(ctx.log, "--- log {rel} (not written) ---")?,
            }
        }
        let Ended {
            status,
            timed_out,
            left_running,
        } = ended;
        if let Some(limit) = timed_out.then_some(limit).flatten() {
            return Err(PhaseError::new(format!(
                "command timed out after {}s and was killed",
                limit.as_secs_f64()
            )));
        }
        if left_running {
            return Err(PhaseError::new(
                "the command exited but left processes running in its process group (a daemon, or `cmd &` without `wait`); they were killed and no output is stored, since they could still write to it: `wait` for them before the command exits",
            ));
        }
        if !status.success() {
            return Err(PhaseError::new(match status.code() {
                Some(code) => format!("command exited with status {code}"),
                None => "command was killed by a signal".to_string(),
            }));
        }
        if let Some(change) = upstream.changed() {
            return Err(PhaseError::new(change));
        }
        // The outputs go to the commit by path: it stores a copy of each,
        // and the node makes no temp dir of its own. A `cache: false`
        // output leaves only its digest in the entry.
        let mut uncached = serde_json::Map::new();
        for ((rel, path), keep) in outputs.iter().zip(self.output_keeps(ctx.config)) {
            let mut put = |name: &str, file: PathBuf| -> Result<(), PhaseError> {
                if keep == Keep::Uncached {
                    let (blake3, size) = crate::workspace::file_digest(&file)?;
                    uncached.insert(
                        name.to_string(),
                        serde_json::json!({"blake3": blake3, "size": size}),
                    );
                } else {
                    ctx.memory.put_file(name, file);
                }
                Ok(())
            };
            if is_dir_output(rel) {
                dir_output_files(rel, path, &mut put)?;
                continue;
            }
            // The store keeps what the command made here, not a file
            // elsewhere that a symlink names.
            if !crate::workspace::is_plain_file(path) {
                let message = if path.is_file() {
                    format!("declared output `{rel}` is a symlink; only files are stored")
                } else {
                    format!("declared output `{rel}` was not created")
                };
                return Err(PhaseError::new(message));
            }
            put(rel, path.clone())?;
        }
        if self.output_keeps(ctx.config).contains(&Keep::Uncached) {
            ctx.memory
                .put_json(UNCACHED_RECORD, &Value::Object(uncached))?;
        }
        if let Some(metrics) = ctx.config.get("metrics").and_then(Value::as_str) {
            let path = ctx.base_dir.join(metrics);
            let text = std::fs::read(&path)?;
            let parsed: Value = serde_json::from_slice(&text).map_err(|e| {
                PhaseError::new(format!("metrics file `{metrics}` is not JSON: {e}"))
            })?;
            if !parsed.is_object() {
                return Err(PhaseError::new(format!(
                    "metrics file `{metrics}` must hold a JSON object"
                )));
            }
            ctx.memory.put("metrics.json", text);
        }
        Ok(())
    }
}

impl Command {
    /// `temp:`: paths (a trailing `/` for a directory) inside the
    /// workflow's directory, none also in `outputs:`.
    fn validate_temp(&self, config: &Value) -> Result<(), ConfigIssue> {
        let outputs: Vec<String> = output_items(config)?
            .iter()
            .enumerate()
            .filter_map(|(i, item)| output_path(item.raw, i).ok())
            .collect();
        let mut seen = Vec::new();
        for (i, raw) in strings(config, "temp")?.into_iter().enumerate() {
            let rel = output_path(raw, i)
                .map_err(|e| ConfigIssue::new(format!("temp[{i}]"), e.message))?;
            if outputs.contains(&rel) || seen.contains(&rel) {
                return Err(ConfigIssue::new(
                    format!("temp[{i}]"),
                    format!(
                        "`{raw}` is declared twice; a temp output is an output: list it once, under `temp:`"
                    ),
                ));
            }
            seen.push(rel);
        }
        Ok(())
    }
}

/// The declared `logs:` as (relative path, workspace path).
fn log_paths(config: &Value, base_dir: &Path) -> Vec<(String, PathBuf)> {
    strings(config, "logs")
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .filter_map(|(i, raw)| output_path(raw, i).ok())
        .map(|rel| {
            let path = base_dir.join(&rel);
            (rel, path)
        })
        .collect()
}

/// `timeout:` as a duration: seconds as a number, or a number with `s`,
/// `m` or `h`.
fn timeout(config: &Value) -> Result<Option<std::time::Duration>, ConfigIssue> {
    let bad = || {
        ConfigIssue::new(
            "timeout",
            "must be a positive number of seconds, or a number with s, m or h (\"90s\", \"5m\")",
        )
    };
    let seconds = match config.get("timeout") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_f64().ok_or_else(bad)?,
        Some(Value::String(text)) => {
            let text = text.trim();
            let (number, unit) = match text.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
                Some((i, _)) => (&text[..i], &text[i..]),
                None => (text, "s"),
            };
            let scale = match unit {
                "s" => 1.0,
                "m" => 60.0,
                "h" => 3600.0,
                _ => return Err(bad()),
            };
            number.trim().parse::<f64>().map_err(|_| bad())? * scale
        }
        Some(_) => return Err(bad()),
    };
    if !(seconds > 0.0 && seconds <= 365.0 * 86400.0) {
        return Err(bad());
    }
    Ok(Some(std::time::Duration::from_secs_f64(seconds)))
}

/// How a command ended.
struct Ended {
    status: std::process::ExitStatus,
    /// Its `timeout:` passed and its group was killed.
    timed_out: bool,
    /// Processes it started were still running in its group after it
    /// exited (and were killed).
    left_running: bool,
}

/// A command's standard input: `/dev/null`, opened once per process and
/// handed to each command as a copy of the descriptor.
fn dev_null() -> std::io::Result<std::process::Stdio> {
    static DEV_NULL: std::sync::OnceLock<File> = std::sync::OnceLock::new();
    let file = match DEV_NULL.get() {
        Some(file) => file,
        None => {
            let opened = File::open("/dev/null")?;
            DEV_NULL.get_or_init(|| opened)
        }
    };
    Ok(file.try_clone()?.into())
}

/// Runs `cmd` in its own process group and keeps what it writes to
/// `output`, read on this thread while it runs (no thread per command):
/// a `poll` waits for output and, on Linux, for the command's exit
/// through a pidfd. With a limit, the group is killed whole when the
/// limit passes. `cmd` is consumed: the parent's copies of the output
/// pipe close with it, so the pipe ends when the command's processes are
/// gone. What came through the pipe is returned with how the command
/// ended; the pipe is read until it closes, or for [`PIPE_LINGER`] after
/// the command and its group are gone when a process outside the group
/// still holds it (what that process writes later is not kept).
fn run_capturing(
    mut cmd: std::process::Command,
    output: std::io::PipeReader,
    limit: Option<std::time::Duration>,
) -> Result<(Ended, Vec<u8>), PhaseError> {
    let start_error = |e: std::io::Error| PhaseError::new(format!("cannot start `sh`: {e}"));
    // Its own process group: a timeout kills the group, and a signal to
    // admf is forwarded to it (see `crate::interrupt`).
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let child = cmd.spawn().map_err(start_error)?;
    drop(cmd);
    let _registered = crate::interrupt::register(child.id() as i32);
    let exit = exit_notice(&child);
    Ok(follow(child, output, exit, limit)?)
}

/// [`run_capturing`] once the command runs: `exit` is its pidfd, or
/// `None` to check for its exit at growing intervals.
fn follow(
    mut child: std::process::Child,
    output: std::io::PipeReader,
    exit: Option<std::os::fd::OwnedFd>,
    limit: Option<std::time::Duration>,
) -> std::io::Result<(Ended, Vec<u8>)> {
    let mut capture = Capture::new(output);
    let started = std::time::Instant::now();
    // Without a pidfd the command's exit is checked at these intervals.
    let mut pause = std::time::Duration::from_millis(1);
    let status = loop {
        let left = limit.map(|limit| limit.saturating_sub(started.elapsed()));
        if left.is_some_and(|left| left.is_zero()) {
            kill_group(&mut child);
            let status = child.wait()?;
            let kept = capture.finish(std::time::Instant::now() + PIPE_LINGER)?;
            let ended = Ended {
                status,
                timed_out: true,
                left_running: false,
            };
            return Ok((ended, kept));
        }
        let wait = match exit {
            Some(_) => left,
            None => Some(left.map_or(pause, |left| left.min(pause))),
        };
        let exited = capture.wait(exit.as_ref(), wait)?;
        if exited || exit.is_none() {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            pause = (pause * 2).min(std::time::Duration::from_millis(50));
        }
    };
    stop_interrupted_group(&child);
    let left_running = group_left_running(child.id(), &mut |pause| {
        // Output keeps being read while the group is waited for: a
        // process blocked on a full pipe could not end.
        capture.wait(None, Some(pause)).map(|_| ())
    })?;
    let kept = capture.finish(std::time::Instant::now() + PIPE_LINGER)?;
    let ended = Ended {
        status,
        timed_out: false,
        left_running,
    };
    Ok((ended, kept))
}

/// A descriptor that becomes readable when `child` exits (a pidfd), where
/// the system has one.
fn exit_notice(child: &std::process::Child) -> Option<std::os::fd::OwnedFd> {
    #[cfg(target_os = "linux")]
    {
        let pid = rustix::process::Pid::from_child(child);
        rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = child;
        None
    }
}

/// A command's output pipe, read as data arrives into a [`CappedOutput`].
struct Capture {
    /// `None` once the pipe has closed (or failed).
    pipe: Option<std::io::PipeReader>,
    kept: CappedOutput,
}

impl Capture {
    fn new(pipe: std::io::PipeReader) -> Capture {
        Capture {
            pipe: Some(pipe),
            kept: CappedOutput::default(),
        }
    }

    /// Waits up to `wait` (`None`: as long as it takes) for output, or for
    /// `exit` to become readable, and reads the output that came; returns
    /// whether `exit` is readable. With the pipe closed and no `exit`,
    /// just sleeps for `wait`.
    fn wait(
        &mut self,
        exit: Option<&std::os::fd::OwnedFd>,
        wait: Option<std::time::Duration>,
    ) -> std::io::Result<bool> {
        use std::os::fd::AsRawFd;
        let watch = |fd: i32| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let mut fds = [watch(-1), watch(-1)];
        if let Some(pipe) = &self.pipe {
            fds[0].fd = pipe.as_raw_fd();
        }
        if let Some(exit) = exit {
            fds[1].fd = exit.as_raw_fd();
        }
        // Milliseconds, rounded up so a short wait is no busy loop.
        let timeout = wait.map_or(-1, |wait| {
            i32::try_from(wait.as_nanos().div_ceil(1_000_000)).unwrap_or(i32::MAX)
        });
        // SAFETY: `fds` is a valid array of two initialised `pollfd`s
        // (a negative descriptor is ignored by `poll`), and the
        // descriptors stay open during the call.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout) };
        if ready < 0 {
            let error = std::io::Error::last_os_error();
            return match error.kind() {
                std::io::ErrorKind::Interrupted => Ok(false),
                _ => Err(error),
            };
        }
        if fds[0].fd >= 0 && fds[0].revents != 0 {
            self.read_some();
        }
        Ok(fds[1].fd >= 0 && fds[1].revents != 0)
    }

    /// One read of the ready pipe; its end or an error closes it.
    fn read_some(&mut self) {
        let Some(pipe) = &mut self.pipe else {
            return;
        };
        let mut buf = [0u8; 16 * 1024];
        match pipe.read(&mut buf) {
            Ok(0) => self.pipe = None,
            Ok(n) => self.kept.push(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => self.pipe = None,
        }
    }

    /// Reads the pipe until it closes or `deadline` passes, and returns
    /// the kept bytes, with a note when the pipe was still open.
    fn finish(mut self, deadline: std::time::Instant) -> std::io::Result<Vec<u8>> {
        while self.pipe.is_some() {
            let now = std::time::Instant::now();
            if now >= deadline {
                break;
            }
            self.wait(None, Some(deadline - now))?;
        }
        let still_open = self.pipe.is_some();
        let mut out = self.kept.finish();
        if still_open {
            if !out.is_empty() && !out.ends_with(b"\n") {
                out.push(b'\n');
            }
            out.extend_from_slice(
                b"[admf: a process outside the command's group still holds its output open; what it writes is not kept]\n",
            );
        }
        Ok(out)
    }
}

/// How long processes left in a command's group after it exited get to
/// end on their own (a pipeline's last member being reaped) before they
/// count as left running.
const GROUP_LINGER: std::time::Duration = std::time::Duration::from_millis(200);

/// After the command (the group's leader, `group`) exited: whether
/// processes it started still run in its group. Those are killed: a
/// daemon writing an output after its digest was taken would make the
/// workspace differ from the entry. Zombies nobody reaped yet (a
/// container's init may never reap) do not count. `pause` waits a
/// little between checks (reading the command's output meanwhile).
fn group_left_running(
    group: u32,
    pause: &mut dyn FnMut(std::time::Duration) -> std::io::Result<()>,
) -> std::io::Result<bool> {
    #[cfg(target_os = "linux")]
    {
        let Some(pid) = rustix::process::Pid::from_raw(group as i32) else {
            return Ok(false);
        };
        let alive = || rustix::process::test_kill_process_group(pid).is_ok();
        let deadline = std::time::Instant::now() + GROUP_LINGER;
        while alive() {
            if std::time::Instant::now() >= deadline {
                if !group_has_live_member(group) {
                    return Ok(false);
                }
                let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
                return Ok(true);
            }
            pause(std::time::Duration::from_millis(5))?;
        }
        Ok(false)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (group, pause);
        Ok(false)
    }
}

/// Whether a process of group `group` other than a zombie exists, from
/// `/proc/<pid>/stat` (state and process group follow the command name
/// in parentheses).
#[cfg(target_os = "linux")]
fn group_has_live_member(group: u32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return true;
    };
    entries.flatten().any(|entry| {
        let is_pid = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()));
        if !is_pid {
            return false;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            return false;
        };
        let Some((_, after)) = stat.rsplit_once(')') else {
            return false;
        };
        // state, ppid, pgrp
        let fields: Vec<&str> = after.split_whitespace().take(3).collect();
        fields.len() == 3 && fields[0] != "Z" && fields[2].parse() == Ok(group)
    })
}

/// After an interrupted build's command has exited, kills what it
/// started and left in its group: a non-interactive `sh` starts `cmd &`
/// with SIGINT ignored, so the forwarded signal alone would orphan it.
fn stop_interrupted_group(child: &std::process::Child) {
    #[cfg(unix)]
    if crate::interrupt::received().is_some()
        && let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32)
    {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

/// Kills the command and everything it started (its process group).
fn kill_group(child: &mut std::process::Child) {
    #[cfg(unix)]
    if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
    let _ = child.kill();
}

/// Removes a directory output's old tree (or a file or symlink in its
/// place) before the command runs, so no stale file passes for a fresh one.
fn remove_dir_output(path: &Path) -> Result<(), PhaseError> {
    let removed = match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
    };
    removed.map_err(|e| PhaseError::new(format!("cannot remove old {}: {e}", path.display())))
}

/// Hands every file of the directory output `rel` (ending in `/`) to
/// `put` under the same relative names (`rel` + path inside): the entry
/// holds the tree, and its output digest covers every name and content.
fn dir_output_files(
    rel: &str,
    path: &Path,
    put: &mut dyn FnMut(&str, PathBuf) -> Result<(), PhaseError>,
) -> Result<(), PhaseError> {
    let is_dir = std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir());
    if !is_dir {
        return Err(PhaseError::new(format!(
            "declared directory output `{rel}` was not created as a directory"
        )));
    }
    let root = rel.trim_end_matches('/');
    for item in walkdir::WalkDir::new(path).sort_by_file_name().min_depth(1) {
        let item = item?;
        let sub = item.path().strip_prefix(path).unwrap_or(item.path());
        let kind = item.file_type();
        if kind.is_symlink() {
            return Err(PhaseError::new(format!(
                "`{}` in directory output `{rel}` is a symlink; only files and directories are stored",
                sub.display()
            )));
        }
        if kind.is_file() {
            let name = sub
                .components()
                .map(|c| c.as_os_str().to_str())
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    PhaseError::new(format!(
                        "`{}` in directory output `{rel}` is not a UTF-8 name",
                        sub.display()
                    ))
                })?
                .join("/");
            put(&format!("{root}/{name}"), item.path().to_path_buf())?;
        }
    }
    Ok(())
}

/// How much of a command's output its log keeps from each end: the
/// first and the last `LOG_KEEP` bytes. What lies between is counted and
/// dropped as it arrives, so a command printing gigabytes costs admf no
/// more memory than this, and its stored log stays small.
pub const LOG_KEEP: usize = 1 << 20;

/// How long the output pipe may stay open after the command and its
/// group are gone: a process that left the group (`setsid`) may hold it
/// forever, and the build does not wait for it.
const PIPE_LINGER: std::time::Duration = std::time::Duration::from_secs(1);

/// Output as it streams in: its first [`LOG_KEEP`] bytes and the last
/// [`LOG_KEEP`] after those.
#[derive(Default)]
struct CappedOutput {
    head: Vec<u8>,
    tail: Vec<u8>,
    dropped: u64,
}

impl CappedOutput {
    /// Everything `reader` yields, capped.
    fn read(mut reader: impl Read) -> std::io::Result<CappedOutput> {
        let mut kept = CappedOutput::default();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => return Ok(kept),
                Ok(n) => kept.push(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn push(&mut self, mut bytes: &[u8]) {
        if self.head.len() < LOG_KEEP {
            let n = (LOG_KEEP - self.head.len()).min(bytes.len());
            self.head.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
        }
        self.tail.extend_from_slice(bytes);
        // Trimmed once it holds twice what it keeps, so each byte is
        // moved at most once.
        if self.tail.len() > 2 * LOG_KEEP {
            self.trim();
        }
    }

    fn trim(&mut self) {
        let excess = self.tail.len().saturating_sub(LOG_KEEP);
        self.tail.drain(..excess);
        self.dropped += excess as u64;
    }

    /// The kept bytes, with a line where output was left out.
    fn finish(mut self) -> Vec<u8> {
        self.trim();
        let mut out = self.head;
        if self.dropped > 0 {
            if !out.ends_with(b"\n") {
                out.push(b'\n');
            }
            out.extend_from_slice(
                format!(
                    "[admf: {} bytes of output left out here; a log keeps the first and the last {} MiB]\n",
                    self.dropped,
                    LOG_KEEP >> 20
                )
                .as_bytes(),
            );
        }
        out.extend_from_slice(&self.tail);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `script` started as `run_capturing` starts a command, in its own
    /// process group, with its output pipe.
    fn started(script: &str) -> (std::process::Child, std::io::PipeReader) {
        let (output, writer) = std::io::pipe().unwrap();
        let mut cmd = std::process::Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(script)
            .stdin(std::process::Stdio::null())
            .stdout(writer.try_clone().unwrap())
            .stderr(writer);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.spawn().unwrap();
        drop(cmd);
        (child, output)
    }

    #[test]
    fn output_is_read_while_the_command_runs_with_or_without_a_pidfd() {
        // Four times what a pipe holds: the command would block on a
        // pipe nobody reads before it could exit.
        let script = "head -c 262144 /dev/zero | tr '\\0' x; echo; echo done >&2";
        for with_pidfd in [true, false] {
            let (child, output) = started(script);
            let exit = with_pidfd.then(|| exit_notice(&child)).flatten();
            assert_eq!(exit.is_some(), with_pidfd && cfg!(target_os = "linux"));
            let (ended, kept) = follow(child, output, exit, None).unwrap();
            assert!(ended.status.success());
            assert!(!ended.timed_out && !ended.left_running);
            let mut expected = vec![b'x'; 262144];
            expected.extend_from_slice(b"\ndone\n");
            assert_eq!(kept, expected, "pidfd: {with_pidfd}");
        }
    }

    #[test]
    fn a_limit_kills_the_command_with_or_without_a_pidfd() {
        for with_pidfd in [true, false] {
            let (child, output) = started("echo started; sleep 5");
            let exit = with_pidfd.then(|| exit_notice(&child)).flatten();
            let limit = Some(std::time::Duration::from_millis(200));
            let (ended, kept) = follow(child, output, exit, limit).unwrap();
            assert!(ended.timed_out, "pidfd: {with_pidfd}");
            assert!(!ended.status.success());
            assert_eq!(kept, b"started\n");
        }
    }

    #[test]
    fn output_held_open_outside_the_group_is_left_after_a_linger() {
        // `setsid` takes the sleep out of the command's group (and
        // session) with the output pipe still open in it.
        let (child, output) = started("echo before; setsid sleep 3 & echo after");
        let exit = exit_notice(&child);
        let (ended, kept) = follow(child, output, exit, None).unwrap();
        assert!(ended.status.success());
        assert!(!ended.timed_out && !ended.left_running);
        assert_eq!(
            String::from_utf8(kept).unwrap(),
            "before\nafter\n[admf: a process outside the command's group still holds its output open; what it writes is not kept]\n"
        );
    }

    #[test]
    fn validate_rejects_unknown_keys_with_hint() {
        let err = Command
            .validate(&json!({"run": "true", "outptus": ["a"]}))
            .unwrap_err();
        assert_eq!(err.key, "outptus");
        assert_eq!(err.hint.as_deref(), Some("did you mean `outputs`?"));
    }

    #[test]
    fn outputs_may_not_escape() {
        for bad in ["../x", "/tmp/x", "a/../../x", "."] {
            let err = Command
                .validate(&json!({"run": "true", "outputs": [bad]}))
                .unwrap_err();
            assert_eq!(err.key, "outputs[0]", "{bad}");
        }
        assert!(
            Command
                .validate(&json!({"run": "true", "outputs": ["a/./b/../c"]}))
                .is_ok()
        );
    }

    #[test]
    fn globs_expand_sorted_below_their_prefix() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("d/sub")).unwrap();
        for f in ["d/b.csv", "d/a.csv", "d/c.txt", "d/sub/e.csv"] {
            std::fs::write(dir.path().join(f), "x").unwrap();
        }
        let got = Command
            .inputs(&json!({"run": "x", "inputs": ["d/*.csv"]}), dir.path())
            .unwrap();
        assert_eq!(
            got,
            vec![dir.path().join("d/a.csv"), dir.path().join("d/b.csv")]
        );
        let err = Command
            .inputs(&json!({"run": "x", "inputs": ["e/*.csv"]}), dir.path())
            .unwrap_err();
        assert_eq!(err.key, "inputs[0]");
    }

    #[test]
    fn a_glob_into_a_directory_output_stands_for_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let base = std::path::absolute(dir.path()).unwrap();
        std::fs::create_dir_all(base.join("out/chunks")).unwrap();
        std::fs::write(base.join("out/chunks/a.csv"), "x").unwrap();
        std::fs::write(base.join("out/b.csv"), "x").unwrap();
        // Directory outputs come with a trailing `/`.
        let produced = [PathBuf::from(format!(
            "{}/",
            base.join("out/chunks").display()
        ))];
        let inputs = |pattern: &str| {
            Command.inputs_given(
                &json!({"run": "x", "inputs": [pattern]}),
                &base,
                &produced,
                &Reads::new(),
            )
        };
        // Inside it, existing files or not: the directory alone.
        assert_eq!(inputs("out/chunks/*.csv").unwrap(), [produced[0].clone()]);
        assert_eq!(
            inputs("out/chunks/sub/*.csv").unwrap(),
            [produced[0].clone()]
        );
        // Above it, deep enough to reach in: other files, then the directory.
        assert_eq!(
            inputs("out/**/*.csv").unwrap(),
            [base.join("out/b.csv"), produced[0].clone()]
        );
        // Above it, not reaching in: only what is there.
        assert_eq!(inputs("out/*.csv").unwrap(), [base.join("out/b.csv")]);
    }
}
