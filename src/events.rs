//! `events.jsonl`: one JSON object per line, written for every build at
//! `<store>/runs/<workflow-id>/events.jsonl` (replaced by the next build).
//!
//! ```text
//! {"event":"plan","order":["a","b","c"]}          the planned sequence
//! {"event":"start","node":"a"}
//! {"event":"finish","node":"a","status":"ran","key":"…","ms":12}
//! {"event":"end","ran":1,"cached":0,"skipped":0,"failed":0,"not_run":0}
//! ```
//! The `plan` line is a function of the workflow alone; start/finish lines
//! follow completion order, which varies with `-j`.
//!
//! A build started by `admf watch` opens with one `trigger` line per reason
//! it started (several events arriving together make one build):
//!
//! ```text
//! {"event":"trigger","kind":"start","time":"…","targets":[]}         the first build
//! {"event":"trigger","kind":"change","time":"…","paths":["in/a.txt"],"targets":[]}
//! {"event":"trigger","kind":"data_available","time":"…","paths":["data/incoming/x.csv"],"targets":["ingest"]}
//! {"event":"trigger","kind":"schedule","time":"2026-11-27T14:30:00Z","cron":"30 9 * * 1-5","tz":"America/New_York","targets":["report"]}
//! ```
//! `time` is UTC: a schedule's fire time, else when the build was decided.
//! `paths` are relative to the project root. `targets` are what the
//! trigger builds (empty: the whole workflow); the `plan` line lists every
//! node that build covers, and `finish` lines say what ran.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

pub struct EventLog {
    lines: Vec<u8>,
    path: PathBuf,
}

impl EventLog {
    pub fn new(store_root: &Path, workflow_id: &str) -> Self {
        EventLog {
            lines: Vec::new(),
            path: store_root
                .join("runs")
                .join(workflow_id)
                .join("events.jsonl"),
        }
    }

    /// A log written to `path` instead of the store's runs directory.
    pub fn at(path: PathBuf) -> Self {
        EventLog {
            lines: Vec::new(),
            path,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn push(&mut self, event: Value) {
        // Serialising a Value cannot fail.
        let _ = serde_json::to_writer(&mut self.lines, &event);
        self.lines.push(b'\n');
    }

    /// `{"event":"start","node":…}`.
    pub fn start(&mut self, node: &str) {
        // Written directly rather than through a `Value`: on a no-op build
        // of many nodes these lines are much of the work.
        let node = serde_json::to_string(node).unwrap_or_default();
        self.line(format_args!(r#"{{"event":"start","node":{node}}}"#));
    }

    /// `{"event":"finish","node":…,"status":…,"key":…,"ms":…}`.
    pub fn finish(&mut self, node: &str, status: &str, key: Option<&str>, ms: u64) {
        // Each part written straight into the log: a build settles every
        // node through here.
        let out = &mut self.lines;
        out.extend_from_slice(br#"{"event":"finish","node":"#);
        let _ = serde_json::to_writer(&mut *out, node);
        out.extend_from_slice(br#","status":"#);
        let _ = serde_json::to_writer(&mut *out, status);
        out.extend_from_slice(br#","key":"#);
        let _ = serde_json::to_writer(&mut *out, &key);
        out.extend_from_slice(br#","ms":"#);
        let _ = serde_json::to_writer(&mut *out, &ms);
        out.extend_from_slice(b"}\n");
    }

    fn line(&mut self, json_object: std::fmt::Arguments<'_>) {
        let _ = self.lines.write_fmt(json_object);
        self.lines.push(b'\n');
    }

    pub fn plan(&mut self, order: Vec<&str>) {
        self.push(json!({"event": "plan", "order": order}));
    }

    /// Write the log through a temp file and a rename.
    pub fn save(&self) -> std::io::Result<()> {
        crate::atomic_file::write(&self.path, &self.lines)
    }
}
