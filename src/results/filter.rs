//! `--filter`: conditions on a table's columns, `COLUMN OP VALUE` joined
//! by `and`, e.g. `sharpe > 0.5 and lookback <= 20` or `status == fresh`.
//! OP is one of `>`, `>=`, `<`, `<=`, `==`, `!=`. A number compares as a
//! number, anything else as text. A row whose cell is empty (an undefined
//! metric, a trial never built) matches no comparison but `!=`.

use std::cmp::Ordering;

use serde_json::Value;

use super::table::Table;

#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    pub column: String,
    pub op: Op,
    pub value: Value,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
    Ne,
}

/// Parses a filter; the error says what is wrong and where.
pub fn parse(text: &str) -> Result<Vec<Condition>, String> {
    let mut out = Vec::new();
    for part in split_and(text) {
        let part = part.trim();
        if part.is_empty() {
            return Err(format!(
                "empty condition in `{text}` (expected `COLUMN OP VALUE` joined by `and`)"
            ));
        }
        let ops = [
            (">=", Op::Ge),
            ("<=", Op::Le),
            ("==", Op::Eq),
            ("!=", Op::Ne),
            (">", Op::Gt),
            ("<", Op::Lt),
            ("=", Op::Eq),
        ];
        let found = ops
            .iter()
            .filter_map(|(sym, op)| part.find(sym).map(|i| (i, *sym, *op)))
            .min_by_key(|(i, sym, _)| (*i, std::cmp::Reverse(sym.len())));
        let Some((i, sym, op)) = found else {
            return Err(format!(
                "`{part}` has no comparison (use one of > >= < <= == !=)"
            ));
        };
        let column = part[..i].trim();
        let raw = part[i + sym.len()..].trim();
        if column.is_empty() || column.contains(char::is_whitespace) {
            return Err(format!("`{part}`: expected a column name before `{sym}`"));
        }
        if raw.is_empty() {
            return Err(format!("`{part}`: expected a value after `{sym}`"));
        }
        let unquoted = raw.trim_matches(|c| c == '\'' || c == '"');
        let value = match unquoted.parse::<f64>() {
            Ok(f) if unquoted == raw => serde_json::Number::from_f64(f)
                .map(Value::Number)
                .unwrap_or(Value::String(raw.into())),
            _ => Value::String(unquoted.to_string()),
        };
        out.push(Condition {
            column: column.to_string(),
            op,
            value,
        });
    }
    Ok(out)
}

/// Splits on the word `and` (any case) between conditions.
fn split_and(text: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    for word in text.split_whitespace() {
        if word.eq_ignore_ascii_case("and") {
            parts.push(String::new());
        } else {
            let last = parts.last_mut().expect("one part");
            if !last.is_empty() {
                last.push(' ');
            }
            last.push_str(word);
        }
    }
    parts
}

impl Condition {
    pub fn matches(&self, cell: &Value) -> bool {
        let ord = match (cell, &self.value) {
            (Value::Null, _) => return self.op == Op::Ne,
            (Value::Number(a), Value::Number(b)) => a
                .as_f64()
                .unwrap_or(f64::NAN)
                .partial_cmp(&b.as_f64().unwrap_or(f64::NAN)),
            (a, b) => Some(super::table::full(a).cmp(&super::table::full(b))),
        };
        let Some(ord) = ord else {
            return self.op == Op::Ne;
        };
        match self.op {
            Op::Gt => ord == Ordering::Greater,
            Op::Ge => ord != Ordering::Less,
            Op::Lt => ord == Ordering::Less,
            Op::Le => ord != Ordering::Greater,
            Op::Eq => ord == Ordering::Equal,
            Op::Ne => ord != Ordering::Equal,
        }
    }
}

/// Keeps the rows of `table` that meet every condition; a condition on a
/// column the table lacks is an error naming the columns it has.
pub fn apply(table: &mut Table, conditions: &[Condition]) -> Result<(), String> {
    let mut cols = Vec::new();
    for c in conditions {
        let i = table.column(&c.column).ok_or_else(|| {
            format!(
                "no column `{}` to filter on (columns: {})",
                c.column,
                table.columns.join(", ")
            )
        })?;
        cols.push((i, c));
    }
    table
        .rows
        .retain(|row| cols.iter().all(|(i, c)| c.matches(&row[*i])));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_comparisons_joined_by_and() {
        let c = parse("sharpe > 0.5 and lookback<=20 AND status == fresh").unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!((c[0].column.as_str(), c[0].op), ("sharpe", Op::Gt));
        assert_eq!(c[0].value, json!(0.5));
        assert_eq!((c[1].column.as_str(), c[1].op), ("lookback", Op::Le));
        assert_eq!(c[2].value, json!("fresh"));
    }

    #[test]
    fn rejects_malformed_filters_with_the_reason() {
        assert!(parse("sharpe").unwrap_err().contains("no comparison"));
        assert!(parse("> 1").unwrap_err().contains("column name"));
        assert!(parse("sharpe >").unwrap_err().contains("value after"));
        assert!(
            parse("sharpe > 1 and")
                .unwrap_err()
                .contains("empty condition")
        );
    }

    #[test]
    fn null_matches_nothing_but_not_equal() {
        let gt = &parse("sharpe > -100").unwrap()[0];
        assert!(!gt.matches(&Value::Null));
        assert!(gt.matches(&json!(0.0)));
        assert!(parse("sharpe != 1").unwrap()[0].matches(&Value::Null));
    }

    proptest::proptest! {
        /// `>` and `<=` split every number into two disjoint sets.
        #[test]
        fn gt_and_le_partition(x in -1e6f64..1e6, t in -1e6f64..1e6) {
            let gt = &parse(&format!("m > {t}")).unwrap()[0];
            let le = &parse(&format!("m <= {t}")).unwrap()[0];
            let cell = json!(x);
            proptest::prop_assert!(gt.matches(&cell) != le.matches(&cell));
            proptest::prop_assert_eq!(gt.matches(&cell), x > t);
        }
    }
}
