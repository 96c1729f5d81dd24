//! One table, four renderings: what `trials`, `runs`, `diff`, `log` and
//! `exp show` print. Cells are JSON values so that `--format json` keeps
//! numbers as numbers and an undefined metric as `null`; the text formats
//! print such a cell empty, never as 0.

use serde_json::{Map, Value};

use crate::error::Error;

/// How a table is printed (`--format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Table,
    Csv,
    Json,
    Markdown,
}

impl std::str::FromStr for Format {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "table" => Ok(Format::Table),
            "csv" => Ok(Format::Csv),
            "json" => Ok(Format::Json),
            "markdown" | "md" => Ok(Format::Markdown),
            other => Err(Error::Usage {
                message: format!("unknown format `{other}`"),
                hint: Some("use table, csv, json or markdown".into()),
            }),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

impl Table {
    pub fn new(columns: Vec<String>) -> Table {
        Table {
            columns,
            rows: Vec::new(),
        }
    }

    /// The index of column `name`.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }

    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Table => self.text(),
            Format::Csv => self.csv(),
            Format::Json => self.json(),
            Format::Markdown => self.markdown(),
        }
    }

    /// The rows as a JSON list of objects, columns in order.
    pub fn to_json(&self) -> Value {
        Value::Array(
            self.rows
                .iter()
                .map(|row| {
                    let map: Map<String, Value> = self
                        .columns
                        .iter()
                        .cloned()
                        .zip(row.iter().cloned())
                        .collect();
                    Value::Object(map)
                })
                .collect(),
        )
    }

    fn json(&self) -> String {
        let mut s = serde_json::to_string_pretty(&self.to_json()).unwrap_or_default();
        s.push('\n');
        s
    }

    fn text(&self) -> String {
        let mut t = comfy_table::Table::new();
        t.load_preset(comfy_table::presets::UTF8_BORDERS_ONLY);
        t.set_header(self.columns.clone());
        for row in &self.rows {
            t.add_row(row.iter().map(|v| {
                let cell = comfy_table::Cell::new(short(v));
                if v.is_number() {
                    cell.set_alignment(comfy_table::CellAlignment::Right)
                } else {
                    cell
                }
            }));
        }
        format!("{t}\n")
    }

    fn csv(&self) -> String {
        let mut w = csv::Writer::from_writer(Vec::new());
        let _ = w.write_record(&self.columns);
        for row in &self.rows {
            let _ = w.write_record(row.iter().map(full));
        }
        String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
    }

    fn markdown(&self) -> String {
        let esc = |s: String| s.replace('|', "\\|");
        let mut s = format!("| {} |\n", self.columns.join(" | "));
        s.push_str(&format!(
            "|{}\n",
            self.columns.iter().map(|_| "---|").collect::<String>()
        ));
        for row in &self.rows {
            let cells: Vec<String> = row.iter().map(|v| esc(short(v))).collect();
            s.push_str(&format!("| {} |\n", cells.join(" | ")));
        }
        s
    }
}

/// A cell for reading: a float with more than 4 decimals rounded to 4
/// (a parameter such as 0.02 prints as written), null empty.
pub fn short(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Number(n) if n.is_f64() => {
            let written = n.to_string();
            if written.contains('e') {
                return format!("{:.3e}", n.as_f64().unwrap_or(f64::NAN));
            }
            match written.split_once('.') {
                Some((_, decimals)) if decimals.len() > 4 => {
                    format!("{:.4}", n.as_f64().unwrap_or(f64::NAN))
                }
                _ => written,
            }
        }
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A cell at full precision (CSV): null empty.
pub fn full(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Orders two cells: numbers by value, then strings, null always last
/// whatever the direction.
pub fn compare(a: &Value, b: &Value, descending: bool) -> std::cmp::Ordering {
    use std::cmp::Ordering::*;
    let ord = match (a, b) {
        (Value::Null, Value::Null) => return Equal,
        (Value::Null, _) => return Greater,
        (_, Value::Null) => return Less,
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            x.partial_cmp(&y).unwrap_or(Equal)
        }
        (Value::Number(_), _) => Less,
        (_, Value::Number(_)) => Greater,
        (x, y) => full(x).cmp(&full(y)),
    };
    if descending { ord.reverse() } else { ord }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn table() -> Table {
        Table {
            columns: vec!["name".into(), "sharpe".into()],
            rows: vec![
                vec![json!("a|b"), json!(0.123456)],
                vec![json!("c"), Value::Null],
            ],
        }
    }

    #[test]
    fn undefined_cells_print_empty_or_null_never_zero() {
        let t = table();
        assert_eq!(t.render(Format::Csv), "name,sharpe\na|b,0.123456\nc,\n");
        assert_eq!(
            t.render(Format::Markdown),
            "| name | sharpe |\n|---|---|\n| a\\|b | 0.1235 |\n| c |  |\n"
        );
        let json: Value = serde_json::from_str(&t.render(Format::Json)).unwrap();
        assert_eq!(json[1]["sharpe"], Value::Null);
        assert!(
            !t.render(Format::Table).contains('0') || t.render(Format::Table).contains("0.1235")
        );
    }

    #[test]
    fn null_sorts_last_in_both_directions() {
        use std::cmp::Ordering::*;
        assert_eq!(compare(&Value::Null, &json!(1), true), Greater);
        assert_eq!(compare(&Value::Null, &json!(1), false), Greater);
        assert_eq!(compare(&json!(2), &json!(1), true), Less);
        assert_eq!(compare(&json!(2), &json!(1), false), Greater);
    }
}
