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
    for (i, &v) in positions.iter().enumerate() {
        if v != prev {
            let _ = write!(out, "{{\"i\":{i},\"ts\":");
            push_json_string(out, &ts_text[i]);
            let _ = writeln!(out, ",\"sym\":{sym_json},\"v\":{v}}}");
            prev = v;
        }
    }
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

/// Parses a signal file; errors name the 1-based line.
pub fn read_sparse(text: &str) -> Result<Vec<Change>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| {
            let c: Change = match parse_written_line(l) {
                Some(c) => c,
                None => serde_json::from_str(l).map_err(|e| format!("line {}: {e}", n + 1))?,
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
        .collect()
}

/// A line exactly as [`write_sparse`] writes it, parsed without a JSON
/// parser (a sweep's gather reads every trial's file); `None` for any
/// other line (other spacing or key order, escapes, leading zeros), which
/// the JSON parser then reads, so both accept and reject the same lines.
fn parse_written_line(line: &str) -> Option<Change> {
    let rest = line.strip_prefix("{\"i\":")?;
    let (i, rest) = rest.split_once(",\"ts\":\"")?;
    let (ts, rest) = rest.split_once("\",\"sym\":\"")?;
    let (sym, rest) = rest.split_once("\",\"v\":")?;
    let v = match rest {
        "1}" => 1,
        "0}" => 0,
        "-1}" => -1,
        _ => return None,
    };
    let canonical_index =
        !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()) && (i == "0" || !i.starts_with('0'));
    let plain = |s: &str| !s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20);
    if !(canonical_index && plain(ts) && plain(sym)) {
        return None;
    }
    Some(Change {
        i: i.parse().ok()?,
        ts: ts.to_string(),
        sym: sym.to_string(),
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
    let mut out = vec![0i8; len];
    let mut last: Option<usize> = None;
    let mut value = 0i8;
    let mut from = 0usize;
    for c in changes.iter().filter(|c| c.sym == sym) {
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
            let fast = parse_written_line(line);
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
            if let Some(fast) = parse_written_line(&line) {
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
            prop_assert_eq!(densify(&changes, "B", p.len(), Some(&t)).unwrap(), b);
        }
    }
}
