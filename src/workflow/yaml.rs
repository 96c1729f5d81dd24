//! The only module that parses YAML. Values come from `serde_yaml` (the
//! authoritative parse: syntax errors, duplicate keys, anchors); a pass
//! over the events with `yaml-rust2` before it refuses documents past the
//! bounds on nesting and alias expansion and records where every key and
//! sequence item starts, so later errors can name `file:line:column`.
//! Replacing the YAML crate means changing this file only.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde_yaml::Value;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

use crate::error::{Error, Location};

/// A parsed YAML document with the position of each node.
#[derive(Debug, Clone)]
pub struct Document {
    pub value: Value,
    positions: BTreeMap<String, (usize, usize)>,
    file: std::path::PathBuf,
    /// The bytes it was parsed from, when read from a file: what the
    /// workflow's digest covers ([`crate::ir::Workflow::files_digest`]).
    pub source: std::sync::Arc<[u8]>,
}

impl Document {
    /// The location of the node at `path` (`phases[2].depends_on[0]`), or of
    /// its closest located ancestor.
    pub fn locate(&self, path: &str) -> Location {
        let mut probe = path;
        loop {
            if let Some(&(line, column)) = self.positions.get(probe) {
                return Location::new(&self.file, line, column);
            }
            match probe.rfind(['.', '[']) {
                Some(i) => probe = &probe[..i],
                None => return Location::new(&self.file, 1, 1),
            }
        }
    }

    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Every recorded path under `prefix`, mapped to its location, with
    /// `prefix.` stripped. Used to carry key positions into the IR.
    /// The positions of the items of the list at `prefix` and of what
    /// they hold, as (`[i]...`, location).
    pub fn item_positions_under(&self, prefix: &str) -> Vec<(String, Location)> {
        let start = format!("{prefix}[");
        self.positions
            .range(start.clone()..)
            .take_while(|(path, _)| path.starts_with(&start))
            .map(|(path, &(line, column))| {
                (
                    path[prefix.len()..].to_string(),
                    Location::new(&self.file, line, column),
                )
            })
            .collect()
    }

    pub fn positions_under(&self, prefix: &str) -> Vec<(String, Location)> {
        // A sorted map turns this into a range scan: loading stays linear
        // in the number of phases.
        let start = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}.")
        };
        self.positions
            .range(start.clone()..)
            .take_while(|(path, _)| path.starts_with(&start))
            .map(|(path, &(line, column))| {
                (
                    path[start.len()..].to_string(),
                    Location::new(&self.file, line, column),
                )
            })
            .collect()
    }
}

/// Parse one YAML file's bytes. `file` is used in error locations.
pub fn parse(bytes: &[u8], file: &Path) -> Result<Document, Error> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let (line, column) = line_col(bytes, e.valid_up_to());
        Error::Yaml {
            location: Location::new(file, line, column),
            message: "file is not valid UTF-8".to_string(),
        }
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    // Before anything is built: an alias bomb is refused here.
    let index = index_within_bounds(text).map_err(|(message, line, column)| Error::Yaml {
        location: Location::new(file, line, column),
        message,
    })?;
    let value: Value = serde_yaml::from_str(text).map_err(|e| {
        let (line, column) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((1, 1));
        Error::Yaml {
            location: Location::new(file, line, column),
            message: strip_position(&e.to_string()),
        }
    })?;
    let mut value = value;
    value.apply_merge().map_err(|e| Error::Yaml {
        location: Location::file(file),
        message: e.to_string(),
    })?;
    // serde_yaml accepted the text; a disagreement only costs positions.
    Ok(Document {
        value,
        positions: index.positions,
        file: file.to_path_buf(),
        source: std::sync::Arc::from([]),
    })
}

/// Parse a `--set` value as a YAML scalar or flow collection.
pub fn parse_value(text: &str) -> Result<Value, String> {
    index_within_bounds(text).map_err(|(message, ..)| message)?;
    serde_yaml::from_str(text).map_err(|e| strip_position(&e.to_string()))
}

/// The deepest nesting of collections a workflow may use.
pub const MAX_DEPTH: usize = 64;

/// The most nodes a document may hold once every alias is expanded: a
/// few kilobytes of aliases of aliases can otherwise stand for billions
/// of nodes, which the parser would build in memory before anything
/// could refuse them.
pub const MAX_EXPANDED_NODES: u64 = 1_000_000;

/// Streams the events of `text` once (nothing is built), recording where
/// every key and sequence item starts, and refuses, at the line and column
/// where the bound is crossed, nesting deeper than [`MAX_DEPTH`] or more
/// than [`MAX_EXPANDED_NODES`] nodes with aliases expanded. Syntax errors
/// are left to the parser that follows (the positions stop there).
fn index_within_bounds(text: &str) -> Result<Indexer, (String, usize, usize)> {
    let mut index = Indexer::default();
    match Parser::new_from_str(text).load(&mut index, true) {
        // The scanner's own nesting limit, hit before ours on flow
        // collections (`[[[[…`): the parser that follows would take time
        // quadratic in the depth to say the same.
        Err(e) if e.info().contains("recursion limit") => {
            let mark = e.marker();
            return Err((
                format!("collections nested more than {MAX_DEPTH} deep"),
                mark.line(),
                mark.col() + 1,
            ));
        }
        // Syntax errors are for the authoritative parser to report.
        Err(_) | Ok(()) => {}
    }
    match index.bounds.crossed.take() {
        Some(crossed) => Err(crossed),
        None => Ok(index),
    }
}

/// What [`index_within_bounds`] counts as the events come.
#[derive(Default)]
struct Bounds {
    /// Per open collection: its anchor id (0 for none) and its node count.
    open: Vec<(usize, u64)>,
    /// Node count of each anchored node, by anchor id.
    anchored: HashMap<usize, u64>,
    total: u64,
    /// The first bound crossed: the message, line and column.
    crossed: Option<(String, usize, usize)>,
}

impl Bounds {
    /// Counts `event`; false once a bound is crossed (nothing more counts).
    fn count(&mut self, event: &Event, mark: Marker) -> bool {
        if self.crossed.is_some() {
            return false;
        }
        let at = |message: String| Some((message, mark.line(), mark.col() + 1));
        let nodes = match *event {
            Event::Scalar(_, _, anchor, _) => {
                if anchor != 0 {
                    self.anchored.insert(anchor, 1);
                }
                1
            }
            Event::Alias(anchor) => self.anchored.get(&anchor).copied().unwrap_or(1),
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if self.open.len() >= MAX_DEPTH {
                    self.crossed = at(format!("collections nested more than {MAX_DEPTH} deep"));
                    return false;
                }
                self.open.push((anchor, 0));
                return true;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let Some((anchor, inner)) = self.open.pop() else {
                    return true;
                };
                if anchor != 0 {
                    self.anchored.insert(anchor, inner + 1);
                }
                // The collection itself; its contents were counted as
                // they came.
                if let Some((_, count)) = self.open.last_mut() {
                    *count = count.saturating_add(inner + 1);
                }
                self.total = self.total.saturating_add(1);
                return true;
            }
            _ => return true,
        };
        if let Some((_, count)) = self.open.last_mut() {
            *count = count.saturating_add(nodes);
        }
        self.total = self.total.saturating_add(nodes);
        if self.total > MAX_EXPANDED_NODES {
            self.crossed = at(format!(
                "more than {MAX_EXPANDED_NODES} values once aliases are expanded"
            ));
            return false;
        }
        true
    }
}

/// serde_yaml appends " at line L column C"; we print the location ourselves.
fn strip_position(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

fn line_col(bytes: &[u8], offset: usize) -> (usize, usize) {
    let before = &bytes[..offset];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let column = offset
        - before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |p| p + 1)
        + 1;
    (line, column)
}

enum Frame {
    Map {
        path: String,
        key: Option<String>,
    },
    Seq {
        path: String,
        next: usize,
    },
    /// Inside a complex (non-scalar) mapping key: nothing is recorded.
    Skip {
        depth: usize,
    },
}

#[derive(Default)]
struct Indexer {
    stack: Vec<Frame>,
    positions: BTreeMap<String, (usize, usize)>,
    bounds: Bounds,
}

impl Indexer {
    /// Called when a node starts; returns the node's path, or None when the
    /// node is a mapping key (recorded) or inside a skipped key.
    fn node_path(&mut self, scalar: Option<&str>, mark: Marker) -> Option<String> {
        let at = (mark.line(), mark.col() + 1);
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Skip { .. }) => None,
            Some(Frame::Seq { path, next }) => {
                let p = format!("{path}[{next}]");
                *next += 1;
                self.positions.entry(p.clone()).or_insert(at);
                Some(p)
            }
            Some(Frame::Map { path, key }) => match key.take() {
                Some(k) => Some(join(path, &k)),
                None => {
                    let k = scalar.unwrap_or("?").to_string();
                    self.positions.entry(join(path, &k)).or_insert(at);
                    *key = Some(k);
                    None
                }
            },
        }
    }

    fn is_key_position(&self) -> bool {
        matches!(self.stack.last(), Some(Frame::Map { key: None, .. }))
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

impl MarkedEventReceiver for Indexer {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        // Past a bound the document is refused: nothing more is recorded.
        if !self.bounds.count(&ev, mark) {
            return;
        }
        match ev {
            Event::Scalar(text, ..) => {
                self.node_path(Some(&text), mark);
            }
            Event::Alias(_) => {
                self.node_path(Some("*"), mark);
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let is_map = matches!(ev, Event::MappingStart(..));
                if let Some(Frame::Skip { depth }) = self.stack.last_mut() {
                    *depth += 1;
                    return;
                }
                if self.is_key_position() {
                    self.node_path(None, mark);
                    self.stack.push(Frame::Skip { depth: 1 });
                    return;
                }
                let path = self.node_path(None, mark).unwrap_or_default();
                self.stack.push(if is_map {
                    Frame::Map { path, key: None }
                } else {
                    Frame::Seq { path, next: 0 }
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                if let Some(Frame::Skip { depth }) = self.stack.last_mut() {
                    *depth -= 1;
                    if *depth > 0 {
                        return;
                    }
                }
                self.stack.pop();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> Document {
        parse(text.as_bytes(), Path::new("wf.yaml")).unwrap()
    }

    #[test]
    fn locates_keys_and_items() {
        let d = doc("phases:\n  - name: a\n    mode: backtest\n  - name: b\n    depends_on: [a]\n");
        assert_eq!(d.locate("phases").line, 1);
        assert_eq!(d.locate("phases[1]").line, 4);
        assert_eq!(d.locate("phases[1].depends_on").line, 5);
        let item = d.locate("phases[1].depends_on[0]");
        assert_eq!((item.line, item.column), (5, 18));
        assert_eq!(d.locate("phases[0].mode").column, 5);
        // unknown paths fall back to the nearest ancestor
        assert_eq!(d.locate("phases[1].nothing.here").line, 4);
    }

    #[test]
    fn syntax_errors_carry_line_and_column() {
        let err = parse(b"a: [1, 2\nb: 3\n", Path::new("x.yaml")).unwrap_err();
        match err {
            Error::Yaml { location, .. } => assert!(location.line >= 1),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn duplicate_keys_are_rejected() {
        let err = parse(b"a: 1\na: 2\n", Path::new("x.yaml")).unwrap_err();
        assert!(
            matches!(err, Error::Yaml { ref message, .. } if message.contains("duplicate")),
            "{err:?}"
        );
    }

    #[test]
    fn non_utf8_names_the_line() {
        let err = parse(b"a: 1\nb: \xff\n", Path::new("x.yaml")).unwrap_err();
        match err {
            Error::Yaml { location, .. } => assert_eq!((location.line, location.column), (2, 4)),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn bom_and_anchors_are_accepted() {
        let d = doc("\u{feff}base: &b {x: 1}\nother: *b\n");
        assert_eq!(d.value["other"]["x"], Value::from(1));
    }

    #[test]
    fn complex_keys_do_not_confuse_positions() {
        let d = doc("? [a, b]\n: 1\nc: 2\n");
        assert_eq!(d.locate("c").line, 3);
    }
}
