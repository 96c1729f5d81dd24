//! Loading OHLCV CSV files, with their validation rules (docs/design.md §6).
//!
//! Two forms are read:
//! - **header form**: a first line of column names, any order and case:
//!   a time column (`date`, `datetime`, `timestamp` or `time`; `date` plus
//!   `time` are joined), `open`, `high`, `low`, `close` and optionally
//!   `volume`; other columns (such as pandas' unnamed index) are ignored;
//! - **headerless form**: the first field of the first line is already a
//!   timestamp, and the columns are `time, open, high, low, close[, volume]`
//!   (NinjaTrader's `YYYYMMDD HHMMSS;O;H;L;C;V`).
//!
//! The delimiter is `;` when the first line holds one, else `,`, else tab.
//! LF and CRLF line endings, a missing final newline, a UTF-8 BOM, blank
//! lines and double-quoted fields (without embedded delimiters) are
//! accepted; volume may be written as a float.
//!
//! Every row must satisfy, in this order: the fields parse (the timestamp
//! per [`super::timestamp`], numbers finite); prices > 0; volume ≥ 0;
//! high ≥ max(open, close); low ≤ min(open, close); its time is strictly
//! after the previous accepted row (equal is a duplicate, earlier is out
//! of order). The first violation is an [`Error::Data`] naming file:line
//! and the rule, unless `on_bad_rows` says otherwise ([`BadRowPolicy`]).

use std::path::Path;

use super::bars::Bars;
use super::timestamp;
use crate::error::{Error, Location};

/// What to do with a row that breaks a rule.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum BadRowPolicy {
    /// Stop at the first bad row (the default).
    #[default]
    Error,
    /// Leave every bad row out, and count them.
    Drop,
    /// Widen high/low to cover open and close (counted as fixed); drop any
    /// other bad row.
    Fix,
}

impl BadRowPolicy {
    pub const NAMES: &[&str] = &["error", "drop", "fix"];

    pub fn parse(name: &str) -> Option<BadRowPolicy> {
        match name {
            "error" => Some(BadRowPolicy::Error),
            "drop" => Some(BadRowPolicy::Drop),
            "fix" => Some(BadRowPolicy::Fix),
            _ => None,
        }
    }
}

/// A loaded file: its bars and what the policy did.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub bars: Bars,
    pub dropped: usize,
    pub fixed: usize,
    /// The first bad row (line, rule), when the policy let it pass.
    pub first_problem: Option<(usize, String)>,
}

/// Reads `path` a line at a time into the columns, so memory holds the
/// bars and one line, never the whole text.
pub fn load_csv(path: &Path, symbol: &str, policy: BadRowPolicy) -> Result<Loaded, Error> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let size = file.metadata().map_or(0, |m| m.len());
    let mut reader = std::io::BufReader::with_capacity(1 << 16, file);
    let mut parser = Parser::new(path, symbol, policy, size);
    let mut line = Vec::new();
    let mut line_no = 0;
    loop {
        line.clear();
        let read = std::io::BufRead::read_until(&mut reader, b'\n', &mut line)
            .map_err(|e| Error::io(path, e))?;
        if read == 0 {
            break;
        }
        line_no += 1;
        let bytes = line.strip_suffix(b"\n").unwrap_or(&line);
        let text = std::str::from_utf8(bytes).map_err(|e| {
            let column = String::from_utf8_lossy(&bytes[..e.valid_up_to()])
                .chars()
                .count();
            Error::Data {
                location: Location::new(path, line_no, column + 1),
                rule: format!("not UTF-8 text ({e})"),
            }
        })?;
        parser.line(line_no, text)?;
    }
    parser.finish()
}

struct Columns {
    time: usize,
    /// A separate time-of-day column joined to `time`.
    time_of_day: Option<usize>,
    ohlc: [usize; 4],
    volume: Option<usize>,
    needed: usize,
}

const PRICE_NAMES: [&str; 4] = ["open", "high", "low", "close"];

/// [`load_csv`] on text already read; `path` is used in errors only.
pub fn parse_csv(
    text: &str,
    path: &Path,
    symbol: &str,
    policy: BadRowPolicy,
) -> Result<Loaded, Error> {
    let mut parser = Parser::new(path, symbol, policy, text.len() as u64);
    for (i, line) in text.split('\n').enumerate() {
        parser.line(i + 1, line)?;
    }
    parser.finish()
}

/// The file's form, fixed by its first non-blank line.
struct Form {
    delim: char,
    columns: Columns,
    /// The first non-blank line, for "no valid data rows".
    first_no: usize,
}

/// The rows of one file, fed a line at a time.
struct Parser<'p> {
    path: &'p Path,
    policy: BadRowPolicy,
    form: Option<Form>,
    bars: Bars,
    last_line: usize,
    dropped: usize,
    fixed: usize,
    first_problem: Option<(usize, String)>,
    /// The file's size, to size the columns from the first row.
    size: u64,
}

impl<'p> Parser<'p> {
    fn new(path: &'p Path, symbol: &str, policy: BadRowPolicy, size: u64) -> Self {
        Parser {
            path,
            policy,
            size,
            form: None,
            bars: Bars {
                symbol: symbol.to_string(),
                source: path.to_path_buf(),
                ..Bars::default()
            },
            last_line: 0,
            dropped: 0,
            fixed: 0,
            first_problem: None,
        }
    }

    fn data_error(&self, line: usize, column: usize, rule: String) -> Error {
        Error::Data {
            location: Location::new(self.path, line, column),
            rule,
        }
    }

    /// Line `line_no` (1-based) without its `\n`.
    fn line(&mut self, line_no: usize, line: &str) -> Result<(), Error> {
        let line = if line_no == 1 {
            line.strip_prefix('\u{feff}').unwrap_or(line)
        } else {
            line
        };
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            return Ok(());
        }
        let Some(form) = &self.form else {
            let delim = if line.contains(';') {
                ';'
            } else if line.contains(',') {
                ','
            } else {
                '\t'
            };
            let first_fields = split(line, delim);
            let headerless = timestamp::parse(first_fields[0].1).is_some();
            let columns = if headerless {
                Columns {
                    time: 0,
                    time_of_day: None,
                    ohlc: [1, 2, 3, 4],
                    volume: (first_fields.len() > 5).then_some(5),
                    needed: 5,
                }
            } else {
                header_columns(&first_fields).map_err(|rule| self.data_error(line_no, 1, rule))?
            };
            self.form = Some(Form {
                delim,
                columns,
                first_no: line_no,
            });
            return if headerless {
                self.line(line_no, line)
            } else {
                Ok(())
            };
        };
        let delim = form.delim;
        if self.bars.ts.capacity() == 0 {
            self.reserve(line.len());
        }
        let Some(form) = &self.form else {
            return Ok(());
        };
        let fields = split(line, delim);
        match check_row(
            &fields,
            &form.columns,
            self.policy,
            &self.bars,
            self.last_line,
        ) {
            Ok((row, was_fixed)) => {
                if was_fixed {
                    self.fixed += 1;
                    self.first_problem
                        .get_or_insert((line_no, was_fixed_rule(&row)));
                }
                let bars = &mut self.bars;
                bars.ts.push(row.ts);
                std::sync::Arc::make_mut(&mut bars.ts_text).push(row.ts_text);
                bars.open.push(row.ohlc[0]);
                bars.high.push(row.ohlc[1]);
                bars.low.push(row.ohlc[2]);
                bars.close.push(row.ohlc[3]);
                bars.volume.push(row.volume);
                self.last_line = line_no;
            }
            Err((column, rule)) => {
                if self.policy == BadRowPolicy::Error {
                    return Err(self.data_error(line_no, column, rule));
                }
                self.dropped += 1;
                self.first_problem.get_or_insert((line_no, rule));
            }
        }
        Ok(())
    }

    /// Sizes the columns for the rows a file of this size holds when
    /// they are about as long as the first (`row_len` bytes), with an
    /// eighth to spare: growing by doubling would leave the old halves
    /// resident in the allocator, half as much again. Capacity that is
    /// never written takes no memory.
    fn reserve(&mut self, row_len: usize) {
        let rows = self.size / (row_len as u64 + 1);
        let rows = (rows + rows / 8 + 16).min(self.size / 8 + 16);
        let Ok(rows) = usize::try_from(rows) else {
            return;
        };
        let bars = &mut self.bars;
        // A refused reservation only means growing as usual.
        let _ = bars.ts.try_reserve_exact(rows);
        let _ = std::sync::Arc::make_mut(&mut bars.ts_text).try_reserve_exact(rows);
        for column in [
            &mut bars.open,
            &mut bars.high,
            &mut bars.low,
            &mut bars.close,
            &mut bars.volume,
        ] {
            let _ = column.try_reserve_exact(rows);
        }
    }

    fn finish(self) -> Result<Loaded, Error> {
        let Some(form) = &self.form else {
            return Err(self.data_error(1, 1, "no data rows".into()));
        };
        if self.bars.is_empty() {
            return Err(self.data_error(form.first_no, 1, "no valid data rows".into()));
        }
        Ok(Loaded {
            bars: self.bars,
            dropped: self.dropped,
            fixed: self.fixed,
            first_problem: self.first_problem,
        })
    }
}

fn was_fixed_rule(row: &Row) -> String {
    format!(
        "high/low widened to cover open and close at {}",
        row.ts_text
    )
}

/// Fields with the 1-based column where each starts; surrounding spaces
/// and double quotes removed.
fn split(line: &str, delim: char) -> Vec<(usize, &str)> {
    let mut out = Vec::with_capacity(8);
    let mut start = 0;
    for piece in line.split(delim) {
        let t = piece.trim();
        let t = t
            .strip_prefix('"')
            .and_then(|s| s.strip_suffix('"'))
            .unwrap_or(t);
        out.push((start + 1, t));
        start += piece.len() + delim.len_utf8();
    }
    out
}

fn header_columns(fields: &[(usize, &str)]) -> Result<Columns, String> {
    let names: Vec<String> = fields.iter().map(|(_, f)| f.to_ascii_lowercase()).collect();
    let find = |wanted: &[&str]| {
        wanted
            .iter()
            .find_map(|w| names.iter().position(|n| n == w))
    };
    let (time, time_of_day) = match find(&["datetime", "timestamp"]) {
        Some(t) => (t, None),
        None => match (find(&["date"]), find(&["time"])) {
            (Some(d), t) => (d, t),
            (None, Some(t)) => (t, None),
            (None, None) => {
                return Err(
                    "header has no time column (`date`, `datetime`, `timestamp` or `time`)".into(),
                );
            }
        },
    };
    let mut ohlc = [0; 4];
    for (slot, name) in ohlc.iter_mut().zip(PRICE_NAMES) {
        *slot = find(&[name]).ok_or_else(|| format!("header has no `{name}` column"))?;
    }
    let volume = find(&["volume", "vol"]);
    let needed = [Some(time), time_of_day, volume]
        .into_iter()
        .flatten()
        .chain(ohlc)
        .max()
        .unwrap_or(0)
        + 1;
    Ok(Columns {
        time,
        time_of_day,
        ohlc,
        volume,
        needed,
    })
}

struct Row {
    ts: i64,
    ts_text: String,
    ohlc: [f64; 4],
    volume: f64,
}

type RowError = (usize, String);

fn check_row(
    fields: &[(usize, &str)],
    columns: &Columns,
    policy: BadRowPolicy,
    bars: &Bars,
    last_line: usize,
) -> Result<(Row, bool), RowError> {
    if fields.len() < columns.needed {
        return Err((
            1,
            format!(
                "unparsable row: expected {} fields, found {}",
                columns.needed,
                fields.len()
            ),
        ));
    }
    let (tcol, ttext) = fields[columns.time];
    let ts_text = match columns.time_of_day {
        Some(c) => format!("{ttext} {}", fields[c].1),
        None => ttext.to_string(),
    };
    let ts = timestamp::parse(&ts_text)
        .ok_or_else(|| (tcol, format!("unparsable timestamp `{}`", clip(&ts_text))))?;
    let mut ohlc = [0.0; 4];
    for (k, &c) in columns.ohlc.iter().enumerate() {
        ohlc[k] = number(fields[c], PRICE_NAMES[k])?;
    }
    let volume = match columns.volume {
        Some(c) if !fields[c].1.is_empty() => number(fields[c], "volume")?,
        _ => 0.0,
    };
    for (k, &c) in columns.ohlc.iter().enumerate() {
        if ohlc[k] <= 0.0 {
            return Err((
                fields[c].0,
                format!("non-positive price: {} = {}", PRICE_NAMES[k], fields[c].1),
            ));
        }
    }
    if volume < 0.0 {
        let col = columns.volume.map_or(1, |c| fields[c].0);
        return Err((col, format!("negative volume {volume}")));
    }
    let [o, h, l, c] = ohlc;
    let mut fixed = false;
    if h < o.max(c) || l > o.min(c) {
        if policy == BadRowPolicy::Fix {
            ohlc[1] = h.max(o).max(c);
            ohlc[2] = l.min(o).min(c);
            fixed = true;
        } else if h < o.max(c) {
            return Err((
                fields[columns.ohlc[1]].0,
                format!("high {h} is below max(open, close) = {}", o.max(c)),
            ));
        } else {
            return Err((
                fields[columns.ohlc[2]].0,
                format!("low {l} is above min(open, close) = {}", o.min(c)),
            ));
        }
    }
    if let (Some(&prev), Some(prev_text)) = (bars.ts.last(), bars.ts_text.last()) {
        if ts == prev {
            return Err((
                tcol,
                format!(
                    "duplicate timestamp `{}` (also at line {last_line})",
                    clip(&ts_text)
                ),
            ));
        }
        if ts < prev {
            return Err((
                tcol,
                format!(
                    "rows not in time order: `{}` comes after `{}` (line {last_line})",
                    clip(&ts_text),
                    clip(prev_text)
                ),
            ));
        }
    }
    Ok((
        Row {
            ts,
            ts_text,
            ohlc,
            volume,
        },
        fixed,
    ))
}

fn number((col, text): (usize, &str), name: &str) -> Result<f64, RowError> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err((col, format!("unparsable `{name}`: `{}`", clip(text)))),
    }
}

/// A field quoted in an error, cut to a readable length.
fn clip(text: &str) -> String {
    const MAX: usize = 60;
    match text.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}… ({} bytes)", &text[..i], text.len()),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, policy: BadRowPolicy) -> Result<Loaded, Error> {
        parse_csv(text, Path::new("t.csv"), "T", policy)
    }

    fn rule_at(text: &str) -> (usize, usize, String) {
        match parse(text, BadRowPolicy::Error) {
            Err(Error::Data { location, rule }) => (location.line, location.column, rule),
            other => panic!("expected a data error, got {other:?}"),
        }
    }

    const HEAD: &str = "Date,Open,High,Low,Close,Volume\n";

    #[test]
    fn header_form_any_order_and_case() {
        let text =
            "x,CLOSE,date,LOW,high,open\n1,2.5,2020-01-02,2,3,2.2\n2,2.6,2020-01-03,2.1,2.7,2.5";
        let l = parse(text, BadRowPolicy::Error).unwrap();
        assert_eq!(l.bars.close, vec![2.5, 2.6]);
        assert_eq!(l.bars.open, vec![2.2, 2.5]);
        assert_eq!(l.bars.volume, vec![0.0, 0.0]);
        assert_eq!(*l.bars.ts_text, vec!["2020-01-02", "2020-01-03"]);
    }

    #[test]
    fn headerless_crlf_form() {
        let text = "20110103 090100;1;2;0.5;1.5;10\r\n20110103 090200;1.5;1.6;1.4;1.5;20\r\n";
        let l = parse(text, BadRowPolicy::Error).unwrap();
        assert_eq!(l.bars.len(), 2);
        assert_eq!(l.bars.ts[1] - l.bars.ts[0], 60);
        assert_eq!(l.bars.volume, vec![10.0, 20.0]);
    }

    #[test]
    fn each_rule_names_its_line() {
        let ok = "2020-01-02,1,2,0.5,1.5,10\n";
        let cases = [
            ("2020-01-03,1,2,0.5,abc,10\n", 5, "unparsable `close`"),
            ("2020-13-03,1,2,0.5,1,10\n", 1, "unparsable timestamp"),
            ("2020-01-03,1,2,0.5\n", 1, "expected 6 fields"),
            ("2020-01-03,0,2,0.5,1,10\n", 2, "non-positive price: open"),
            ("2020-01-03,1,2,-1,1,10\n", 4, "non-positive price: low"),
            ("2020-01-03,1,1.2,0.5,1.5,10\n", 3, "high 1.2 is below"),
            ("2020-01-03,1,2,1.1,1.5,10\n", 4, "low 1.1 is above"),
            ("2020-01-02,1,2,0.5,1.5,10\n", 1, "duplicate timestamp"),
            ("2020-01-01,1,2,0.5,1.5,10\n", 1, "not in time order"),
            ("2020-01-03,1,2,0.5,1.5,-3\n", 6, "negative volume"),
        ];
        for (bad, field, rule) in cases {
            let column = 1 + bad
                .split(',')
                .take(field - 1)
                .map(|f| f.len() + 1)
                .sum::<usize>();
            let text = format!("{HEAD}{ok}{bad}{ok}");
            let (line, col, got) = rule_at(&text);
            assert_eq!(line, 3, "{bad}: {got}");
            assert_eq!(col, column, "{bad}: {got}");
            assert!(got.contains(rule), "{bad}: {got}");
        }
    }

    #[test]
    fn missing_columns_are_reported_on_the_header() {
        let (line, _, rule) = rule_at("\n\ndate,open,high,low\n2020-01-02,1,2,0.5\n");
        assert_eq!(line, 3);
        assert!(rule.contains("`close`"), "{rule}");
        let (line, _, rule) = rule_at("");
        assert_eq!((line, rule.as_str()), (1, "no data rows"));
    }

    #[test]
    fn drop_policy_counts_dropped_rows() {
        let text = format!(
            "{HEAD}2020-01-02,1,2,0.5,1.5,10\n2020-01-02,1,2,0.5,1.5,10\n2020-01-03,1,1,0.5,1.5,10\n2020-01-04,1,2,0.5,1.5,10"
        );
        let l = parse(&text, BadRowPolicy::Drop).unwrap();
        assert_eq!((l.bars.len(), l.dropped, l.fixed), (2, 2, 0));
        assert_eq!(l.first_problem.unwrap().0, 3);
        let l = parse(&text, BadRowPolicy::Fix).unwrap();
        assert_eq!((l.bars.len(), l.dropped, l.fixed), (3, 1, 1));
        assert_eq!(l.bars.high[1], 1.5);
    }
}
