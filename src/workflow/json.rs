//! YAML values into the JSON values configs are held and keyed in.

use serde_json::Map;
use serde_yaml::Value;

use super::yaml::Document;
use crate::error::Error;

/// YAML → JSON config values. JSON has no NaN, infinities or non-string
/// keys; a workflow that uses them gets an error at the value.
pub fn to_json(doc: &Document, path: &str, v: &Value) -> Result<serde_json::Value, Error> {
    Ok(match v {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into()
            } else if let Some(u) = n.as_u64() {
                u.into()
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                serde_json::Number::from_f64(f)
                    .map(serde_json::Value::Number)
                    .ok_or_else(|| {
                        Error::invalid(
                            doc.locate(path),
                            last_key(path),
                            format!("{f} is not a finite number"),
                        )
                    })?
            }
        }
        Value::String(s) => serde_json::Value::String(s.clone()),
        Value::Sequence(items) => serde_json::Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| to_json(doc, &format!("{path}[{i}]"), item))
                .collect::<Result<_, _>>()?,
        ),
        Value::Mapping(m) => {
            let mut out = Map::new();
            for (k, item) in m {
                let key = match k {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    _ => {
                        return Err(Error::invalid(
                            doc.locate(path),
                            last_key(path),
                            "mapping keys must be plain strings",
                        ));
                    }
                };
                let child = format!("{path}.{key}");
                out.insert(key, to_json(doc, &child, item)?);
            }
            serde_json::Value::Object(out)
        }
        Value::Tagged(t) => {
            return Err(Error::invalid(
                doc.locate(path),
                last_key(path),
                format!("YAML tags such as `{}` are not supported", t.tag),
            ));
        }
    })
}

fn last_key(path: &str) -> &str {
    path.rsplit('.').next().unwrap_or(path)
}
