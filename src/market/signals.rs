//! Sparse signal files (`*.jsonl`).
//!
//! One JSON object per line, one line per position change, in bar order
//! (and, for several symbols, one symbol after another):
//!
//! ```text
//! {"i":20,"ts":"1999-11-30","sym":"SPY","v":1}
//! {"i":31,"ts":"1999-12-15","sym":"SPY","v":0}
//! ```
//!
//! `i` is the 0-based bar index, `ts` the bar's timestamp as written in the
//! data file, `v` the position from bar `i` on. The position before the
//! first line is 0 (the same p_{−1} = 0 as the equity recursion), so a
//! series that is flat on bar 0 has no line for it. Reading back needs the
//! number of bars, which comes from the data: [`densify`] then rebuilds the
//! dense series exactly.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub i: usize,
    pub ts: String,
    pub sym: String,
    pub v: i8,
}

/// Appends the changes of `positions` to `out`.
pub fn write_sparse(out: &mut String, sym: &str, ts_text: &[String], positions: &[i8]) {
    let sym_json = serde_json::to_string(sym).unwrap_or_default();
    let mut prev = 0i8;
    // Pieces pushed rather than formatted: a sweep writes a line per
    // position change of every trial.
    for (i, &v) in positions.iter().enumerate() {
        if v != prev {
            out.push_str("{\"i\":");
            push_decimal(out, i);
            out.push_str(",\"ts\":");
            push_json_string(out, &ts_text[i]);
            out.push_str(",\"sym\":");
            out.push_str(&sym_json);
            match v {
                1 => out.push_str(",\"v\":1}\n"),
                0 => out.push_str(",\"v\":0}\n"),
                -1 => out.push_str(",\"v\":-1}\n"),
                _ => {
                    let _ = writeln!(out, ",\"v\":{v}}}");
                }
            }
            prev = v;
        }
    }
}

/// The start of every bar's line of one symbol in a signal file, up to
/// the position: `{"i":I,"ts":TS,"sym":SYM,"v":`, all in one buffer. A
/// sweep writes a line per position change of every trial over the same
/// bars, each then a copy and the position.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LinePrefixes {
    text: String,
    /// Where bar i's prefix ends in `text` (it starts where bar i − 1's ends).
    ends: Vec<usize>,
}

impl LinePrefixes {
    pub fn new(sym: &str, ts_text: &[String]) -> LinePrefixes {
        let sym_json = serde_json::to_string(sym).unwrap_or_default();
        let mut text = String::new();
        let mut ends = Vec::with_capacity(ts_text.len());
        for (i, ts) in ts_text.iter().enumerate() {
            text.push_str("{\"i\":");
            push_decimal(&mut text, i);
            text.push_str(",\"ts\":");
            push_json_string(&mut text, ts);
            text.push_str(",\"sym\":");
            text.push_str(&sym_json);
            text.push_str(",\"v\":");
            ends.push(text.len());
        }
        LinePrefixes { text, ends }
    }

    fn line(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.text[start..self.ends[i]]
    }

    /// [`write_sparse`] of `positions` (over the bars these prefixes
    /// were made of), the same bytes.
    pub fn write(&self, out: &mut String, positions: &[i8]) {
        let mut prev = 0i8;
        let mut changes = 0usize;
        for &v in positions {
            changes += usize::from(v != prev);
            prev = v;
        }
        let longest = self
            .ends
            .len()
            .checked_sub(1)
            .map_or(0, |last| self.line(last).len());
        out.reserve(changes * (longest + 5));
        prev = 0;
        for (i, &v) in positions.iter().enumerate() {
            if v != prev {
                out.push_str(self.line(i));
                match v {
                    1 => out.push_str("1}\n"),
                    0 => out.push_str("0}\n"),
                    -1 => out.push_str("-1}\n"),
                    _ => {
                        let _ = writeln!(out, "{v}}}");
                    }
                }
                prev = v;
            }
        }
    }
}

/// `n` in decimal, as `write!` puts it.
fn push_decimal(out: &mut String, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend(digits[at..].iter().map(|&d| char::from(d)));
}

/// `s` as a JSON string, the bytes `serde_json` writes: a sweep writes a
/// timestamp per position change of every trial, and almost none needs
/// escaping.
fn push_json_string(out: &mut String, s: &str) {
    if s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        out.push_str(&serde_json::to_string(s).unwrap_or_default());
    } else {
        out.push('"');
        out.push_str(s);
        out.push('"');
    }
}

/// One line of a signal file, borrowed from the text where it can be.
struct ChangeRef<'a> {
    i: usize,
    ts: std::borrow::Cow<'a, str>,
    sym: std::borrow::Cow<'a, str>,
    v: i8,
}

impl ChangeRef<'_> {
    fn into_owned(self) -> Change {
        Change {
            i: self.i,
            ts: self.ts.into_owned(),
            sym: self.sym.into_owned(),
            v: self.v,
        }
    }
}

impl<'a> From<&'a Change> for ChangeRef<'a> {
    fn from(c: &'a Change) -> ChangeRef<'a> {
        ChangeRef {
            i: c.i,
            ts: std::borrow::Cow::Borrowed(&c.ts),
            sym: std::borrow::Cow::Borrowed(&c.sym),
            v: c.v,
        }
    }
}

/// The changes of a signal file in order; errors name the 1-based line.
fn changes(text: &str) -> impl Iterator<Item = Result<ChangeRef<'_>, String>> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| {
            let c = match parse_written_line(l) {
                Some(c) => c,
                None => {
                    let c: Change =
                        serde_json::from_str(l).map_err(|e| format!("line {}: {e}", n + 1))?;
                    ChangeRef {
                        i: c.i,
                        ts: c.ts.into(),
                        sym: c.sym.into(),
                        v: c.v,
                    }
                }
            };
            if !(-1..=1).contains(&c.v) {
                return Err(format!(
                    "line {}: position {} is not -1, 0 or 1",
                    n + 1,
                    c.v
                ));
            }
            Ok(c)
        })
}

/// Parses a signal file; errors name the 1-based line.
pub fn read_sparse(text: &str) -> Result<Vec<Change>, String> {
    changes(text)
        .map(|c| c.map(ChangeRef::into_owned))
        .collect()
}

/// A line exactly as [`write_sparse`] writes it, parsed without a JSON
/// parser and without copying its strings (a sweep's gather reads every
/// trial's file); `None` for any other line (other spacing or key order,
/// escapes, leading zeros), which the JSON parser then reads, so both
/// accept and reject the same lines.
fn parse_written_line(line: &str) -> Option<ChangeRef<'_>> {
    let rest = line.strip_prefix("{\"i\":")?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let (i, rest) = rest.split_at(digits);
    let rest = rest.strip_prefix(",\"ts\":\"")?;
    // Neither string may hold a quote, a backslash or a control
    // character: the first quote ends each.
    let plain_until_quote = |s: &'_ str| -> Option<usize> {
        let end = s
            .bytes()
            .position(|b| b == b'"' || b == b'\\' || b < 0x20)?;
        (s.as_bytes()[end] == b'"').then_some(end)
    };
    let end = plain_until_quote(rest)?;
    let (ts, rest) = rest.split_at(end);
    let rest = rest.strip_prefix("\",\"sym\":\"")?;
    let end = plain_until_quote(rest)?;
    let (sym, rest) = rest.split_at(end);
    let v = match rest.strip_prefix("\",\"v\":")? {
        "1}" => 1,
        "0}" => 0,
        "-1}" => -1,
        _ => return None,
    };
    if i.is_empty() || (i != "0" && i.starts_with('0')) {
        return None;
    }
    Some(ChangeRef {
        i: i.parse().ok()?,
        ts: ts.into(),
        sym: sym.into(),
        v,
    })
}

/// The dense series of `sym` over `len` bars. When `ts_text` is given,
/// every change's `ts` must match the bar it names, which catches signal
/// files read against the wrong data.
pub fn densify(
    changes: &[Change],
    sym: &str,
    len: usize,
    ts_text: Option<&[String]>,
) -> Result<Vec<i8>, String> {
    densify_changes(changes.iter().map(|c| Ok(c.into())), sym, len, ts_text)
}

/// [`densify`] of the changes in signal file `text` ([`read_sparse`]),
/// read without copying them.
pub fn densify_text(
    text: &str,
    sym: &str,
    len: usize,
    ts_text: Option<&[String]>,
) -> Result<Vec<i8>, String> {
    densify_changes(changes(text), sym, len, ts_text)
}

fn densify_changes<'a>(
    changes: impl Iterator<Item = Result<ChangeRef<'a>, String>>,
    sym: &str,
    len: usize,
    ts_text: Option<&[String]>,
) -> Result<Vec<i8>, String> {
    let mut out = vec![0i8; len];
    let mut value = 0i8;
    let mut from = 0usize;
    each_change(changes, sym, len, ts_text, |i, v| {
        out[from..i].fill(value);
        value = v;
        from = i;
    })?;
    out[from..].fill(value);
    Ok(out)
}

/// The changes of `sym` in signal file `text` as (bar, position) pairs
/// into `out`, checked as [`densify_text`] checks them: the series
/// [`densify_text`] returns is 0 before the first pair and takes each
/// pair's position from its bar on. A sweep's gather reads thousands of
/// files of a few hundred changes over thousands of bars each.
pub fn sparse_changes(
    text: &str,
    sym: &str,
    len: usize,
    ts_text: Option<&[String]>,
    out: &mut Vec<(usize, i8)>,
) -> Result<(), String> {
    out.clear();
    if let Some(ts_text) = ts_text
        && written_changes(text, sym, len, ts_text, out)
    {
        return Ok(());
    }
    out.clear();
    each_change(changes(text), sym, len, ts_text, |i, v| out.push((i, v)))
}

/// Whether a byte stops a JSON string as [`write_sparse`] writes it
/// unescaped.
fn needs_escape(b: u8) -> bool {
    b == b'"' || b == b'\\' || b < 0x20
}

/// [`sparse_changes`] of a file of `sym` alone in which every line is
/// exactly as [`write_sparse`] writes it over `ts_text` (newline-ended,
/// its bar below `len` and after the one before, its `ts` that bar's,
/// nothing to escape): the pairs pushed onto `out`, matched byte for
/// byte against the line expected instead of parsed. `false`, with
/// `out` in any state, for any other file, which the line parser then
/// reads; on the files it takes, both give the same pairs.
fn written_changes(
    text: &str,
    sym: &str,
    len: usize,
    ts_text: &[String],
    out: &mut Vec<(usize, i8)>,
) -> bool {
    if sym.bytes().any(needs_escape) {
        return false;
    }
    let middle = format!("\",\"sym\":\"{sym}\",\"v\":");
    let mut rest = text.as_bytes();
    let mut last: Option<usize> = None;
    while !rest.is_empty() {
        let Some(after) = rest.strip_prefix(b"{\"i\":") else {
            return false;
        };
        let digits = after.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 || digits > 18 || (digits > 1 && after[0] == b'0') {
            return false;
        }
        let i = after[..digits]
            .iter()
            .fold(0usize, |n, d| n * 10 + usize::from(d - b'0'));
        if i >= len || last.is_some_and(|l| i <= l) {
            return false;
        }
        let ts = ts_text[i].as_bytes();
        let Some(after) = after[digits..]
            .strip_prefix(b",\"ts\":\"")
            .and_then(|a| a.strip_prefix(ts))
            .and_then(|a| a.strip_prefix(middle.as_bytes()))
        else {
            return false;
        };
        if ts.iter().copied().any(needs_escape) {
            return false;
        }
        let (v, after) = if let Some(a) = after.strip_prefix(b"1}\n") {
            (1, a)
        } else if let Some(a) = after.strip_prefix(b"0}\n") {
            (0, a)
        } else if let Some(a) = after.strip_prefix(b"-1}\n") {
            (-1, a)
        } else {
            return false;
        };
        out.push((i, v));
        last = Some(i);
        rest = after;
    }
    true
}

/// Calls `each(bar, position)` for every change of `sym` in order, after
/// checking that it lies inside the `len` bars, after the one before, and
/// (with `ts_text`) on the bar its `ts` names.
fn each_change<'a>(
    changes: impl Iterator<Item = Result<ChangeRef<'a>, String>>,
    sym: &str,
    len: usize,
    ts_text: Option<&[String]>,
    mut each: impl FnMut(usize, i8),
) -> Result<(), String> {
    let mut last: Option<usize> = None;
    for c in changes {
        let c = c?;
        if c.sym != sym {
            continue;
        }
        if c.i >= len {
            return Err(format!(
                "change at bar {} beyond the {len} bars of the data",
                c.i
            ));
        }
        if last.is_some_and(|l| c.i <= l) {
            return Err(format!("changes not in bar order at bar {}", c.i));
        }
        if let Some(ts) = ts_text
            && ts[c.i] != c.ts
        {
            return Err(format!(
                "bar {} is `{}` in the data but `{}` in the signal file",
                c.i, ts[c.i], c.ts
            ));
        }
        each(c.i, c.v);
        last = Some(c.i);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn lines_from_prefixes_are_the_bytes_written(
            p in proptest::collection::vec(-2i8..=2, 0..200),
            sym in "[A-Z\"\\\\]{1,5}",
            odd_ts in "[\"\\\\\\x00-\\x1f 0-9:-]{0,12}",
        ) {
            let mut t = ts(p.len());
            if let Some(first) = t.first_mut() {
                *first = odd_ts;
            }
            let mut want = String::from("x");
            write_sparse(&mut want, &sym, &t, &p);
            let mut got = String::from("x");
            LinePrefixes::new(&sym, &t).write(&mut got, &p);
            prop_assert_eq!(got, want);
        }

        #[test]
        fn written_lines_parse_as_json_does(
            i in 0usize..100_000,
            ts in "\\PC{0,12}|[\"\\\\\\x00-\\x1f 0-9:-]{0,12}",
            sym in "[A-Z\"\\\\]{1,5}",
            v in -1i8..=1,
        ) {
            let mut positions = vec![0i8; i + 1];
            positions[i] = if v == 0 { 1 } else { v };
            let mut ts_text = vec![String::new(); i + 1];
            ts_text[i] = ts.clone();
            let mut out = String::new();
            write_sparse(&mut out, &sym, &ts_text, &positions);
            let line = out.trim_end();
            let fast = parse_written_line(line).map(ChangeRef::into_owned);
            let json: Change = serde_json::from_str(line).unwrap();
            if let Some(fast) = fast {
                prop_assert_eq!(fast, json);
            } else {
                prop_assert!(ts.contains(['"', '\\']) || ts.bytes().any(|b| b < 0x20)
                    || sym.contains(['"', '\\']));
            }
        }

        #[test]
        fn lines_the_fast_path_takes_are_json_with_the_same_change(
            line in "\\{\"i\":(0|[1-9][0-9]{0,3}|0[0-9]|-1|1e3),\"ts\":\"[a-z0-9 \\\\\"]{0,4}\",\"sym\":\"[A-Z]{0,2}\",\"v\":(-1|0|1|2|01| 1)\\} ?"
        ) {
            if let Some(fast) = parse_written_line(&line).map(ChangeRef::into_owned) {
                let json: Change = serde_json::from_str(&line).unwrap();
                prop_assert_eq!(fast, json);
            }
        }

        #[test]
        fn json_strings_are_the_bytes_serde_json_writes(s in "\\PC*|[\"\\\\\\x00-\\x1f\\x7f a-z]*") {
            let mut out = String::new();
            push_json_string(&mut out, &s);
            prop_assert_eq!(out, serde_json::to_string(&s).unwrap());
        }
    }

    #[test]
    fn decimals_are_written_as_format_writes_them() {
        for n in [0, 7, 10, 99, 100, 5240, 1 << 40, usize::MAX] {
            let mut out = String::from("x");
            push_decimal(&mut out, n);
            assert_eq!(out, format!("x{n}"));
        }
    }

    #[test]
    fn positions_outside_the_usual_three_are_written_as_numbers() {
        let mut s = String::new();
        write_sparse(&mut s, "A", &ts(2), &[0, 2]);
        assert_eq!(s, "{\"i\":1,\"ts\":\"t1\",\"sym\":\"A\",\"v\":2}\n");
    }

    fn ts(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("t{i}")).collect()
    }

    #[test]
    fn writes_one_line_per_change() {
        let mut s = String::new();
        write_sparse(&mut s, "SPY", &ts(5), &[0, 1, 1, -1, 0]);
        assert_eq!(
            s,
            "{\"i\":1,\"ts\":\"t1\",\"sym\":\"SPY\",\"v\":1}\n\
             {\"i\":3,\"ts\":\"t3\",\"sym\":\"SPY\",\"v\":-1}\n\
             {\"i\":4,\"ts\":\"t4\",\"sym\":\"SPY\",\"v\":0}\n"
        );
    }

    #[test]
    fn mismatched_data_is_caught() {
        let c = read_sparse("{\"i\":1,\"ts\":\"x\",\"sym\":\"A\",\"v\":1}\n").unwrap();
        assert!(
            densify(&c, "A", 3, Some(&ts(3)))
                .unwrap_err()
                .contains("`t1`")
        );
        assert!(densify(&c, "A", 1, None).is_err());
        assert!(read_sparse("{\"i\":1}").unwrap_err().starts_with("line 1"));
    }

    #[test]
    fn text_is_densified_as_its_parsed_changes_are() {
        let t = ts(4);
        for text in [
            "{\"i\":1,\"ts\":\"t1\",\"sym\":\"A\",\"v\":1}\n{\"i\":3,\"ts\":\"t3\",\"sym\":\"A\",\"v\":0}\n",
            // Not as written (spacing, key order, escapes): the JSON parser reads it.
            "{\"i\": 2, \"v\": -1, \"sym\": \"A\", \"ts\": \"t\\u0032\"}\n\n",
            "{\"i\":1,\"ts\":\"t1\",\"sym\":\"B\",\"v\":1}\n",
            "{\"i\":1,\"ts\":\"x\",\"sym\":\"A\",\"v\":1}\n",
            "{\"i\":4,\"ts\":\"t4\",\"sym\":\"A\",\"v\":1}\n",
            "{\"i\":2,\"ts\":\"t2\",\"sym\":\"A\",\"v\":1}\n{\"i\":1,\"ts\":\"t1\",\"sym\":\"A\",\"v\":0}\n",
            "{\"i\":1,\"ts\":\"t1\",\"sym\":\"A\",\"v\":2}\n",
            "{\"i\":01,\"ts\":\"t1\",\"sym\":\"A\",\"v\":1}\n",
        ] {
            let parsed = read_sparse(text).and_then(|c| densify(&c, "A", 4, Some(&t)));
            assert_eq!(densify_text(text, "A", 4, Some(&t)), parsed, "{text}");
            let mut pairs = Vec::new();
            let sparse = sparse_changes(text, "A", 4, Some(&t), &mut pairs);
            assert_eq!(sparse.err(), parsed.err(), "{text}");
            assert_same_as_parsed(text, "A", 4, &t);
        }
        assert_eq!(
            densify_text(
                "{\"i\": 2, \"v\": -1, \"sym\": \"A\", \"ts\": \"t\\u0032\"}",
                "A",
                4,
                Some(&t)
            ),
            Ok(vec![0, 0, -1, -1])
        );
    }

    /// When the byte-matching path takes `text`, it gives the pairs of
    /// the line parser, which finds no fault. Whether it took it.
    fn assert_same_as_parsed(text: &str, sym: &str, len: usize, t: &[String]) -> bool {
        let mut fast = Vec::new();
        if !written_changes(text, sym, len, t, &mut fast) {
            return false;
        }
        let mut parsed = Vec::new();
        let all = each_change(changes(text), sym, len, Some(t), |i, v| parsed.push((i, v)));
        assert_eq!(all, Ok(()), "{text}");
        assert_eq!(fast, parsed, "{text}");
        true
    }

    proptest! {
        /// One byte of a written file replaced by one of the bytes that
        /// matter to the format.
        #[test]
        fn byte_matching_takes_only_what_the_parser_reads_alike(
            p in proptest::collection::vec(-1i8..=1, 1..40),
            at in 0usize..2000,
            byte in proptest::sample::select(b"0123456789-{}\":,\\\n\r ivAts1".to_vec()),
        ) {
            let t = ts(p.len());
            let mut text = String::new();
            write_sparse(&mut text, "A", &t, &p);
            prop_assert!(text.is_empty() || assert_same_as_parsed(&text, "A", p.len(), &t));
            let mut bytes = text.into_bytes();
            if !bytes.is_empty() {
                let at = at % bytes.len();
                bytes[at] = byte;
            }
            let text = String::from_utf8(bytes).unwrap();
            assert_same_as_parsed(&text, "A", p.len(), &t);
        }

        #[test]
        fn round_trip(p in proptest::collection::vec(-1i8..=1, 0..300)) {
            let t = ts(p.len());
            let mut s = String::new();
            write_sparse(&mut s, "A", &t, &p);
            write_sparse(&mut s, "B", &t, &p.iter().map(|v| -v).collect::<Vec<_>>());
            let changes = read_sparse(&s).unwrap();
            prop_assert_eq!(densify(&changes, "A", p.len(), Some(&t)).unwrap(), p.clone());
            let b: Vec<i8> = p.iter().map(|v| -v).collect();
            prop_assert_eq!(densify(&changes, "B", p.len(), Some(&t)).unwrap(), b.clone());
            prop_assert_eq!(densify_text(&s, "B", p.len(), Some(&t)).unwrap(), b.clone());
            prop_assert_eq!(densify_text(&s, "A", p.len(), None).unwrap(), p.clone());
            let mut pairs = Vec::new();
            let mut only_a = String::new();
            write_sparse(&mut only_a, "A", &t, &p);
            prop_assert!(written_changes(&only_a, "A", p.len(), &t, &mut pairs));
            let mut rebuilt = vec![0i8; p.len()];
            for &(i, v) in &pairs {
                rebuilt[i..].fill(v);
            }
            prop_assert_eq!(&rebuilt, &p);
            // Two symbols in one file: not as one symbol's file is written.
            prop_assert!(pairs.is_empty() || !written_changes(&s, "B", p.len(), &t, &mut pairs));
            sparse_changes(&s, "B", p.len(), Some(&t), &mut pairs).unwrap();
            let mut rebuilt = vec![0i8; p.len()];
            for &(i, v) in &pairs {
                rebuilt[i..].fill(v);
            }
            prop_assert_eq!(rebuilt, b);
        }
    }
}
