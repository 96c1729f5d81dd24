//! The workflow's say in where misses run: the root file's `executor:`
//! block and each phase's `resources:`. Neither enters a key: where and
//! with how much memory a phase ran does not change its outputs.

use serde_yaml::{Mapping, Value};

use super::forms::TopLevel;
use super::yaml::Document;
use crate::error::Error;
use crate::ir::executor::{
    ExecutorConfig, ExecutorKind, Resources, is_memory, is_plain_word, is_time_limit,
};

pub const EXECUTOR: &str = "executor";
pub const RESOURCES: &str = "resources";

/// The root file's `executor:` block (the default when absent).
pub fn read_executor(doc: &Document, top: &TopLevel<'_>) -> Result<ExecutorConfig, Error> {
    let Some(value) = top.map.get(EXECUTOR) else {
        return Ok(ExecutorConfig::default());
    };
    let path = format!("{}{EXECUTOR}", top.prefix);
    let map = as_mapping(doc, &path, EXECUTOR, value)?;
    let mut config = ExecutorConfig::default();
    for (k, v) in map {
        let key = k.as_str().unwrap_or("?");
        let at = format!("{path}.{key}");
        let invalid = |message: &str| Error::invalid(doc.locate(&at), key, message.to_string());
        match key {
            "type" => {
                config.kind = Some(
                    v.as_str()
                        .and_then(ExecutorKind::parse)
                        .ok_or_else(|| invalid("must be `local` or `slurm`"))?,
                )
            }
            "partition" | "account" => {
                let text = v
                    .as_str()
                    .filter(|s| is_plain_word(s))
                    .ok_or_else(|| invalid("must be a Slurm name (letters, digits, `-_.`)"))?
                    .to_string();
                if key == "partition" {
                    config.partition = Some(text);
                } else {
                    config.account = Some(text);
                }
            }
            "max_jobs" | "pack" => {
                let n = v
                    .as_u64()
                    .filter(|n| (1..=100_000).contains(n))
                    .ok_or_else(|| invalid("must be an integer from 1 to 100000"))?
                    as usize;
                if key == "max_jobs" {
                    config.max_jobs = Some(n);
                } else {
                    config.pack = Some(n);
                }
            }
            _ => {
                return Err(Error::invalid(
                    doc.locate(&at),
                    key,
                    "unknown key of `executor:` (type, partition, account, max_jobs, pack)",
                ));
            }
        }
    }
    Ok(config)
}

/// The error for `executor:` in an included file: the root decides
/// where the whole build runs.
pub fn not_in_include(doc: &Document, top: &TopLevel<'_>) -> Option<Error> {
    top.map.contains_key(EXECUTOR).then(|| {
        Error::invalid(
            doc.locate(&format!("{}{EXECUTOR}", top.prefix)),
            EXECUTOR,
            "only the root workflow file (the one given to admf) may choose the executor",
        )
    })
}

/// A phase's `resources:` (none when absent); `path` is the phase's YAML path.
pub fn read_resources(doc: &Document, path: &str, fields: &Mapping) -> Result<Resources, Error> {
    let Some(value) = fields.get(RESOURCES) else {
        return Ok(Resources::default());
    };
    let path = format!("{path}.{RESOURCES}");
    let map = as_mapping(doc, &path, RESOURCES, value)?;
    let mut resources = Resources::default();
    for (k, v) in map {
        let key = k.as_str().unwrap_or("?");
        let at = format!("{path}.{key}");
        let invalid = |message: &str| Error::invalid(doc.locate(&at), key, message.to_string());
        match key {
            "cpus" => {
                resources.cpus = Some(
                    v.as_u64()
                        .filter(|n| (1..=4096).contains(n))
                        .ok_or_else(|| invalid("must be an integer from 1 to 4096"))?
                        as u32,
                )
            }
            "mem" => {
                let text = scalar_text(v).filter(|s| is_memory(s)).ok_or_else(|| {
                    invalid("must be a size such as 500M or 4G (a number in MB without a unit)")
                })?;
                resources.mem = Some(text);
            }
            "time" => {
                let text = scalar_text(v).filter(|s| is_time_limit(s)).ok_or_else(|| {
                    invalid("must be a time limit such as 30 (minutes), 1:30:00 or 2-00:00:00")
                })?;
                resources.time = Some(text);
            }
            _ => {
                return Err(Error::invalid(
                    doc.locate(&at),
                    key,
                    "unknown key of `resources:` (cpus, mem, time)",
                ));
            }
        }
    }
    Ok(resources)
}

fn as_mapping<'a>(
    doc: &Document,
    path: &str,
    key: &str,
    value: &'a Value,
) -> Result<&'a Mapping, Error> {
    value
        .as_mapping()
        .ok_or_else(|| Error::invalid(doc.locate(path), key, "must be a mapping"))
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}
