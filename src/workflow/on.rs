//! The root workflow's `on:` key → [`Trigger`]s.
//!
//! ```yaml
//! on:                                   # one group, or a list of groups
//!   data_available: data/incoming/*.csv # a glob or a list of globs
//!   schedule:                           # an entry or a list of entries
//!     - "30 9 * * 1-5 America/New_York" # MIN HOUR DOM MON DOW [ZONE]
//!     - {cron: "0 17 * * 1-5", tz: America/New_York}
//!   targets: [report]                   # optional; default: everything
//! ```
//!
//! A group's `data_available` globs make one trigger and each `schedule`
//! entry another, all building the group's `targets`. Globs are relative
//! to the workflow file and confined to the workflow root like every
//! other path it reads. A schedule without a zone is in UTC, never the
//! machine's zone, so a workflow fires at the same instants everywhere.
//! Only the root workflow file may have `on:`: what to build when is the
//! business of the workflow being watched, not of a file it includes.

use std::path::Path;

use serde_yaml::Value;

use super::forms::{self, TopLevel};
use super::yaml::Document;
use crate::error::{Error, did_you_mean};
use crate::paths::PathGlob;
use crate::paths::root::{ALLOW_OUTSIDE, Confinement};
use crate::trigger::cron::Cron;
use crate::trigger::schedule::Schedule;
use crate::trigger::{Event, Target, Trigger};

/// The top-level key.
pub const ON: &str = "on";

const GROUP_KEYS: &[&str] = &["data_available", "schedule", "targets"];
const ENTRY_KEYS: &[&str] = &["cron", "tz"];

/// The triggers of the root workflow file `doc` (none without `on:`).
pub fn read(doc: &Document, confinement: &Confinement) -> Result<Vec<Trigger>, Error> {
    let Ok(top) = forms::top_level(doc) else {
        // The loader reports a malformed file.
        return Ok(Vec::new());
    };
    let Some(on) = top.map.get(ON) else {
        return Ok(Vec::new());
    };
    let reader = Reader {
        doc,
        confinement,
        base: super::inherit::file_dir(doc),
    };
    let path = format!("{}{ON}", top.prefix);
    let mut triggers = Vec::new();
    match on {
        Value::Mapping(_) => reader.group(&path, on, &mut triggers)?,
        Value::Sequence(items) if !items.is_empty() => {
            for (i, item) in items.iter().enumerate() {
                reader.group(&format!("{path}[{i}]"), item, &mut triggers)?;
            }
        }
        _ => {
            return Err(reader.error(
                &path,
                ON,
                "must be a mapping with `data_available:` and/or `schedule:` (or a list of them)",
            ));
        }
    }
    Ok(triggers)
}

/// The error for `on:` in an included file.
pub fn not_in_include(doc: &Document, top: &TopLevel<'_>) -> Option<Error> {
    top.map.contains_key(ON).then(|| {
        Error::invalid(
            doc.locate(&format!("{}{ON}", top.prefix)),
            ON,
            "only the root workflow file (the one given to admf) may declare triggers",
        )
        .with_hint(Some(
            "move `on:` to the root file; its `targets:` can name `include/phase`".into(),
        ))
    })
}

struct Reader<'a> {
    doc: &'a Document,
    confinement: &'a Confinement,
    base: std::path::PathBuf,
}

impl Reader<'_> {
    fn error(&self, path: &str, key: &str, message: impl Into<String>) -> Error {
        Error::invalid(self.doc.locate(path), key, message)
    }

    fn group(&self, path: &str, value: &Value, out: &mut Vec<Trigger>) -> Result<(), Error> {
        let Value::Mapping(map) = value else {
            return Err(self.error(
                path,
                ON,
                "a trigger is a mapping with `data_available:` and/or `schedule:`",
            ));
        };
        for key in map.keys() {
            let name = key.as_str().unwrap_or("?");
            if !GROUP_KEYS.contains(&name) {
                return Err(self
                    .error(&format!("{path}.{name}"), name, "unknown key in `on:`")
                    .with_hint(did_you_mean(name, GROUP_KEYS.iter().copied())));
            }
        }
        let targets = match map.get("targets") {
            None => Vec::new(),
            Some(v) => self.targets(&format!("{path}.targets"), v)?,
        };
        if !map.contains_key("data_available") && !map.contains_key("schedule") {
            return Err(self.error(
                path,
                ON,
                "a trigger needs `data_available:` (globs) or `schedule:` (cron entries)",
            ));
        }
        if let Some(v) = map.get("data_available") {
            let key_path = format!("{path}.data_available");
            let globs = self
                .strings(
                    &key_path,
                    "data_available",
                    v,
                    "a glob such as `data/incoming/*.csv`",
                )?
                .into_iter()
                .map(|(p, text)| self.glob(&p, &text))
                .collect::<Result<Vec<_>, _>>()?;
            out.push(Trigger {
                event: Event::DataAvailable(globs),
                targets: targets.clone(),
                location: self.doc.locate(&key_path),
            });
        }
        if let Some(v) = map.get("schedule") {
            let key_path = format!("{path}.schedule");
            let entries: Vec<(String, &Value)> = match v {
                Value::Sequence(items) if !items.is_empty() => items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| (format!("{key_path}[{i}]"), item))
                    .collect(),
                Value::Sequence(_) => {
                    return Err(self.error(&key_path, "schedule", "the list is empty"));
                }
                other => vec![(key_path.clone(), other)],
            };
            for (p, entry) in entries {
                out.push(Trigger {
                    event: Event::Schedule(self.schedule(&p, entry)?),
                    targets: targets.clone(),
                    location: self.doc.locate(&p),
                });
            }
        }
        Ok(())
    }

    /// A string or a non-empty list of strings, each with its YAML path.
    fn strings(
        &self,
        path: &str,
        key: &str,
        value: &Value,
        what: &str,
    ) -> Result<Vec<(String, String)>, Error> {
        match value {
            Value::String(s) => Ok(vec![(path.to_string(), s.clone())]),
            Value::Sequence(items) if !items.is_empty() => items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    let p = format!("{path}[{i}]");
                    match item {
                        Value::String(s) => Ok((p, s.clone())),
                        _ => Err(self.error(&p, key, format!("must be {what}"))),
                    }
                })
                .collect(),
            _ => Err(self.error(
                path,
                key,
                format!("must be {what}, or a non-empty list of them"),
            )),
        }
    }

    fn targets(&self, path: &str, value: &Value) -> Result<Vec<Target>, Error> {
        let names = self
            .strings(path, "targets", value, "a node name")
            .map_err(|e| {
                e.with_hint(Some(
                    "leave `targets:` out to build the whole workflow".into(),
                ))
            })?;
        Ok(names
            .into_iter()
            .map(|(p, name)| Target {
                name,
                location: self.doc.locate(&p),
            })
            .collect())
    }

    fn glob(&self, path: &str, pattern: &str) -> Result<PathGlob, Error> {
        let glob = PathGlob::new(pattern, &self.base)
            .map_err(|e| self.error(path, "data_available", format!("`{pattern}`: {e}")))?;
        // The directory may not exist yet: judge by what does.
        let dir = glob.dir();
        let existing = dir
            .ancestors()
            .find(|a| a.exists())
            .unwrap_or(Path::new("/"));
        if let Err(root) = self.confinement.check(existing) {
            return Err(self
                .error(
                    path,
                    "data_available",
                    format!(
                        "`{pattern}` is outside the workflow root {} (through `..` or a symlink)",
                        root.display()
                    ),
                )
                .with_hint(Some(format!(
                    "add `{ALLOW_OUTSIDE}: true` at the top of the root workflow file to watch it anyway"
                ))));
        }
        Ok(glob)
    }

    fn schedule(&self, path: &str, value: &Value) -> Result<Schedule, Error> {
        let (text, text_path, tz) = match value {
            Value::String(s) => (s.as_str(), path.to_string(), None),
            Value::Mapping(map) => {
                for key in map.keys() {
                    let name = key.as_str().unwrap_or("?");
                    if !ENTRY_KEYS.contains(&name) {
                        return Err(self
                            .error(
                                &format!("{path}.{name}"),
                                name,
                                "unknown key in a schedule entry",
                            )
                            .with_hint(did_you_mean(name, ENTRY_KEYS.iter().copied())));
                    }
                }
                let cron_path = format!("{path}.cron");
                let text = match map.get("cron") {
                    Some(Value::String(s)) => s.as_str(),
                    Some(_) => {
                        return Err(self.error(
                            &cron_path,
                            "cron",
                            "must be a cron expression string",
                        ));
                    }
                    None => {
                        return Err(self.error(path, "schedule", "a schedule entry needs `cron:`"));
                    }
                };
                let tz = match map.get("tz") {
                    None => None,
                    Some(Value::String(s)) => Some((s.as_str(), format!("{path}.tz"))),
                    Some(_) => {
                        return Err(self.error(
                            &format!("{path}.tz"),
                            "tz",
                            "must be a time zone name such as `America/New_York`",
                        ));
                    }
                };
                (text, cron_path, tz)
            }
            _ => {
                return Err(self.error(
                    path,
                    "schedule",
                    "must be a cron entry such as \"30 9 * * 1-5 America/New_York\" or {cron: ..., tz: ...}",
                ));
            }
        };
        let key = if text_path.ends_with(".cron") {
            "cron"
        } else {
            "schedule"
        };
        let (expression, zone_in_text) = split_zone(text);
        let (tz_name, tz_path) = match (zone_in_text, tz) {
            (Some(_), Some((_, tz_path))) => {
                return Err(self.error(
                    &tz_path,
                    "tz",
                    "the time zone is given twice (in `cron:` and in `tz:`)",
                ));
            }
            (Some(zone), None) => (zone.to_string(), text_path.clone()),
            (None, Some((zone, tz_path))) => (zone.to_string(), tz_path),
            (None, None) => ("UTC".to_string(), text_path.clone()),
        };
        let cron = Cron::parse(&expression).map_err(|e| {
            self.error(&text_path, key, format!("`{text}`: {e}"))
                .with_hint(Some(
                    "MIN HOUR DAY-OF-MONTH MONTH DAY-OF-WEEK [TIME ZONE], e.g. \"30 9 * * 1-5 America/New_York\"".into(),
                ))
        })?;
        let tz = jiff::tz::db().get(&tz_name).map_err(|_| {
            let tz_key = if tz_path.ends_with(".tz") { "tz" } else { key };
            let names: Vec<String> = jiff::tz::db()
                .available()
                .map(|n| n.as_str().to_string())
                .collect();
            self.error(&tz_path, tz_key, format!("unknown time zone `{tz_name}`"))
                .with_hint(did_you_mean(&tz_name, names.iter().map(String::as_str)))
        })?;
        Ok(Schedule {
            cron,
            expression,
            tz,
            tz_name,
        })
    }
}

/// `"30 9 * * 1-5 America/New_York"` → the expression and the zone: the
/// sixth field, or the second after an `@` shorthand.
fn split_zone(text: &str) -> (String, Option<&str>) {
    let fields: Vec<&str> = text.split_whitespace().collect();
    let plain = if text.trim_start().starts_with('@') {
        1
    } else {
        5
    };
    if fields.len() == plain + 1 {
        (fields[..plain].join(" "), Some(fields[plain]))
    } else {
        (fields.join(" "), None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_zone_is_the_sixth_field() {
        assert_eq!(
            split_zone("30 9 * * 1-5 America/New_York"),
            ("30 9 * * 1-5".to_string(), Some("America/New_York"))
        );
        assert_eq!(
            split_zone("30  9 * * 1-5"),
            ("30 9 * * 1-5".to_string(), None)
        );
        assert_eq!(
            split_zone("@daily UTC"),
            ("@daily".to_string(), Some("UTC"))
        );
        assert_eq!(split_zone("@daily"), ("@daily".to_string(), None));
        // Too many or too few fields are left for the cron parser to report.
        assert_eq!(split_zone("1 2 3").1, None);
    }
}
