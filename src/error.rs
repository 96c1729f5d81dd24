//! Every user-facing error is a variant of [`Error`], carrying its data;
//! [`Error::render`] is the one place that turns them into text.

use std::fmt;
use std::path::{Path, PathBuf};

/// A position in a workflow or data file, 1-based.
#[derive(
    Clone,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl Location {
    pub fn new(file: impl Into<PathBuf>, line: usize, column: usize) -> Self {
        Location {
            file: file.into(),
            line,
            column,
        }
    }

    /// The start of a file, for errors about a file as a whole.
    pub fn file(file: impl Into<PathBuf>) -> Self {
        Location::new(file, 1, 1)
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// One member of a cycle, as printed in cycle errors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CycleMember {
    pub name: String,
    pub location: Location,
}

#[derive(Debug)]
pub enum Error {
    /// The YAML itself does not parse.
    Yaml {
        location: Location,
        message: String,
    },
    /// A value is of the wrong shape or an unknown name, at `key`.
    Invalid {
        location: Location,
        key: String,
        message: String,
        hint: Option<String>,
    },
    DuplicatePhase {
        location: Location,
        first: Location,
        name: String,
    },
    IncludeNotFound {
        location: Location,
        key: String,
        path: PathBuf,
    },
    IncludeCycle {
        cycle: Vec<CycleMember>,
    },
    DependencyCycle {
        cycle: Vec<CycleMember>,
    },
    DuplicateOutput {
        location: Location,
        path: PathBuf,
        first_node: String,
        second_node: String,
    },
    MissingInput {
        location: Location,
        node: String,
        path: PathBuf,
    },
    /// A market data file breaks a rule of the data format (docs/design.md §6).
    Data {
        location: Location,
        rule: String,
    },
    /// Bad command-line usage that clap itself cannot see.
    Usage {
        message: String,
        hint: Option<String>,
    },
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// One or more phases failed; their logs were already shown.
    /// `bad_input` when every failure lay in the input (a data file
    /// breaking a rule, a config value checked at run time).
    BuildFailed {
        failed: Vec<String>,
        bad_input: bool,
    },
    /// A build stopped by SIGINT, SIGTERM or SIGHUP (see
    /// [`crate::interrupt`]); exits with 128 + the signal's number.
    Interrupted {
        signal: i32,
    },
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub fn invalid(location: Location, key: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid {
            location,
            key: key.into(),
            message: message.into(),
            hint: None,
        }
    }

    pub fn with_hint(mut self, new_hint: Option<String>) -> Self {
        if let Error::Invalid { hint, .. } | Error::Usage { hint, .. } = &mut self {
            *hint = new_hint;
        }
        self
    }

    /// 1 when a phase failed, 2 for bad input of any kind (docs/design.md §1),
    /// including a build whose every failure was bad input.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::BuildFailed {
                bad_input: false, ..
            } => 1,
            Error::Interrupted { signal } => 128 + signal,
            _ => 2,
        }
    }

    fn location(&self) -> Option<&Location> {
        match self {
            Error::Yaml { location, .. }
            | Error::Invalid { location, .. }
            | Error::DuplicatePhase { location, .. }
            | Error::IncludeNotFound { location, .. }
            | Error::DuplicateOutput { location, .. }
            | Error::MissingInput { location, .. }
            | Error::Data { location, .. } => Some(location),
            Error::IncludeCycle { cycle } | Error::DependencyCycle { cycle } => {
                cycle.first().map(|m| &m.location)
            }
            Error::Usage { .. }
            | Error::Io { .. }
            | Error::BuildFailed { .. }
            | Error::Interrupted { .. } => None,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            Error::Invalid { hint, .. } | Error::Usage { hint, .. } => hint.clone(),
            Error::DuplicatePhase { first, .. } => Some(format!("first defined at {first}")),
            Error::IncludeCycle { .. } | Error::DependencyCycle { .. } => {
                Some("remove one of the edges above to break the cycle".to_string())
            }
            _ => None,
        }
    }

    /// The full report: headline, `file:line:column`, a source snippet when
    /// the file can be read, cycle members, and the hint.
    pub fn render(&self, color: bool) -> String {
        use annotate_snippets::{Level, Renderer, Snippet};
        let headline = self.to_string();
        let hint = self.hint();
        let mut out = String::new();
        let location = self.location();
        let source = location.and_then(|l| quoted_line(&l.file, l.line));
        match (location, source) {
            (Some(loc), Some(quoted)) => {
                let (line_text, line_start) = (quoted.as_str(), loc.line);
                let origin = loc.file.display().to_string();
                let mut col = loc.column.saturating_sub(1).min(line_text.len());
                while !line_text.is_char_boundary(col) {
                    col -= 1;
                }
                let end = span_end(line_text, col);
                let mut message = Level::Error.title(&headline).snippet(
                    Snippet::source(line_text)
                        .line_start(line_start)
                        .origin(&origin)
                        .annotation(Level::Error.span(col..end).label(self.label())),
                );
                let footer;
                if let Some(h) = &hint {
                    footer = h.clone();
                    message = message.footer(Level::Help.title(&footer));
                }
                let renderer = if color {
                    Renderer::styled()
                } else {
                    Renderer::plain()
                };
                out.push_str(&renderer.render(message).to_string());
                out.push('\n');
            }
            (Some(loc), _) => {
                out.push_str(&format!("error: {headline}\n  --> {loc}\n"));
                if let Some(h) = &hint {
                    out.push_str(&format!("  = help: {h}\n"));
                }
            }
            (None, _) => {
                out.push_str(&format!("error: {headline}\n"));
                if let Some(h) = &hint {
                    out.push_str(&format!("  = help: {h}\n"));
                }
            }
        }
        if let Error::IncludeCycle { cycle } | Error::DependencyCycle { cycle } = self {
            for (i, member) in cycle.iter().enumerate() {
                let arrow = if i == 0 { "   " } else { "-> " };
                out.push_str(&format!("  {arrow}{} ({})\n", member.name, member.location));
            }
            if let Some(first) = cycle.first() {
                out.push_str(&format!("  -> {} ({})\n", first.name, first.location));
            }
        }
        out
    }

    fn label(&self) -> &str {
        match self {
            Error::Invalid { key, .. } | Error::IncludeNotFound { key, .. } => key,
            Error::DuplicatePhase { .. } => "duplicate",
            Error::MissingInput { .. } => "input",
            Error::DuplicateOutput { .. } => "output",
            Error::Data { .. } => "here",
            _ => "",
        }
    }
}

/// Whether the file has a non-empty line `line` short enough to quote
/// (a megabyte-long line is named by position only).
const MAX_QUOTED_LINE: usize = 1000;

/// Line `line` (1-based) of `path`, without its line ending, when it can
/// be read, is not empty and is short enough to quote. The file is read
/// a buffer at a time and the lines before are skipped unkept, so
/// quoting the last row of a gigabyte data file holds one short line.
fn quoted_line(path: &std::path::Path, line: usize) -> Option<String> {
    use std::io::BufRead;
    if line == 0 {
        return None;
    }
    let mut reader = std::io::BufReader::new(std::fs::File::open(path).ok()?);
    let mut skipped = 1;
    let mut kept = Vec::new();
    loop {
        let buf = reader.fill_buf().ok()?;
        if buf.is_empty() {
            break;
        }
        let newline = buf.iter().position(|&b| b == b'\n');
        let used = newline.map_or(buf.len(), |i| i + 1);
        if skipped == line {
            let piece = &buf[..newline.unwrap_or(buf.len())];
            if kept.len() + piece.len() > MAX_QUOTED_LINE + 1 {
                return None;
            }
            kept.extend_from_slice(piece);
        }
        reader.consume(used);
        if newline.is_some() {
            if skipped == line {
                break;
            }
            skipped += 1;
        }
    }
    if skipped < line {
        return None;
    }
    let text = String::from_utf8_lossy(&kept);
    let text = text.strip_suffix('\r').unwrap_or(&text);
    (!text.is_empty() && text.len() <= MAX_QUOTED_LINE).then(|| text.to_string())
}

/// Underline one word: up to the next space, colon or comma.
fn span_end(line: &str, start: usize) -> usize {
    let rest = &line.as_bytes()[start..];
    let len = rest
        .iter()
        .position(|b| matches!(b, b' ' | b':' | b',' | b'}' | b']'))
        .unwrap_or(rest.len());
    let mut end = start + len.clamp(1, 80).min(rest.len().max(1));
    while end < line.len() && !line.is_char_boundary(end) {
        end += 1;
    }
    end
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Yaml { message, .. } => write!(f, "invalid YAML: {message}"),
            Error::Invalid { key, message, .. } => write!(f, "`{key}`: {message}"),
            Error::DuplicatePhase { name, .. } => write!(f, "duplicate phase name `{name}`"),
            Error::IncludeNotFound { path, .. } => {
                write!(f, "included workflow `{}` not found", path.display())
            }
            Error::IncludeCycle { .. } => write!(f, "include cycle"),
            Error::DependencyCycle { .. } => write!(f, "dependency cycle"),
            Error::DuplicateOutput {
                path,
                first_node,
                second_node,
                ..
            } => write!(
                f,
                "output `{}` is declared by both `{first_node}` and `{second_node}`",
                path.display()
            ),
            Error::MissingInput { node, path, .. } => {
                write!(f, "input `{}` of `{node}` does not exist", path.display())
            }
            Error::Data { rule, .. } => write!(f, "bad data: {rule}"),
            Error::Usage { message, .. } => write!(f, "{message}"),
            Error::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Error::BuildFailed { failed, .. } => {
                write!(f, "{} phase(s) failed: {}", failed.len(), failed.join(", "))
            }
            Error::Interrupted { signal } => {
                let name = match *signal {
                    libc::SIGINT => "SIGINT",
                    libc::SIGTERM => "SIGTERM",
                    libc::SIGHUP => "SIGHUP",
                    _ => "a signal",
                };
                write!(
                    f,
                    "interrupted by {name}: running commands were stopped and nothing of theirs was stored"
                )
            }
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The closest candidate within a small edit distance, for "did you mean".
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, c)| *d <= (c.len() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| format!("did you mean `{c}`?"))
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(row[j]).min(row[j + 1])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

/// Paths in messages are shown as the user wrote them where possible.
pub fn display_path(path: &Path) -> String {
    path.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_mode_names() {
        let modes = ["backtest", "signal_replay", "signal_generation", "command"];
        assert_eq!(
            did_you_mean("signal_replai", modes).as_deref(),
            Some("did you mean `signal_replay`?")
        );
        assert_eq!(did_you_mean("zzzzzzzz", modes), None);
    }

    #[test]
    fn edit_distance_counts_operations() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }
}
