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
    let mut last: Option<usize> = None;
    let mut value = 0i8;
    let mut from = 0usize;
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
        out[from..c.i].fill(value);
        value = c.v;
        from = c.i;
        last = Some(c.i);
    }
    out[from..].fill(value);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
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

    proptest! {
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
            prop_assert_eq!(densify_text(&s, "B", p.len(), Some(&t)).unwrap(), b);
            prop_assert_eq!(densify_text(&s, "A", p.len(), None).unwrap(), p.clone());
        }
    }
}
