//! `when:` conditions: comparisons of upstream `metrics.json` values joined
//! by `and` / `or` (`and` binds tighter), e.g.
//! `regime_analysis.best.sharpe > 0.5 and report.trials >= 6`.
//! The first segment of each path names an upstream phase; the rest is a
//! dotted path into that phase's `metrics.json`.

use std::fmt;

use serde_json::Value;

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Condition {
    Compare {
        phase: String,
        path: Vec<String>,
        op: Op,
        literal: Literal,
    },
    And(Box<Condition>, Box<Condition>),
    Or(Box<Condition>, Box<Condition>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Op {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
    Ne,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Literal {
    Number(f64),
    Text(String),
    Bool(bool),
}

impl Condition {
    pub fn parse(text: &str) -> Result<Condition, String> {
        let tokens = tokenize(text)?;
        let mut parser = CondParser { tokens, pos: 0 };
        let cond = parser.or()?;
        if parser.pos != parser.tokens.len() {
            return Err(format!(
                "unexpected `{}` after a complete condition",
                parser.tokens[parser.pos]
            ));
        }
        Ok(cond)
    }

    /// Every phase the condition reads, in order of appearance.
    pub fn phases(&self) -> Vec<&str> {
        match self {
            Condition::Compare { phase, .. } => vec![phase.as_str()],
            Condition::And(a, b) | Condition::Or(a, b) => {
                let mut v = a.phases();
                v.extend(b.phases());
                v
            }
        }
    }

    /// Rewrite phase names (the loader qualifies them with their namespace).
    pub fn map_phases(&mut self, f: &dyn Fn(&str) -> String) {
        match self {
            Condition::Compare { phase, .. } => *phase = f(phase),
            Condition::And(a, b) | Condition::Or(a, b) => {
                a.map_phases(f);
                b.map_phases(f);
            }
        }
    }

    /// Evaluate with `metrics(phase)` giving that phase's `metrics.json`.
    /// A path missing from the metrics is an error, not `false`: a typo must
    /// not silently skip half a workflow.
    pub fn eval(&self, metrics: &dyn Fn(&str) -> Option<Value>) -> Result<bool, String> {
        match self {
            Condition::Compare {
                phase,
                path,
                op,
                literal,
            } => {
                let root = metrics(phase)
                    .ok_or_else(|| format!("`{phase}` has no metrics.json to test"))?;
                let mut v = &root;
                for seg in path {
                    v = match v {
                        Value::Object(m) => m.get(seg),
                        Value::Array(a) => seg.parse::<usize>().ok().and_then(|i| a.get(i)),
                        _ => None,
                    }
                    .ok_or_else(|| {
                        format!("metrics.json of `{phase}` has no `{}`", path.join("."))
                    })?;
                }
                compare(v, *op, literal).ok_or_else(|| {
                    format!(
                        "cannot compare `{phase}.{}` = {v} with {literal}",
                        path.join(".")
                    )
                })
            }
            Condition::And(a, b) => Ok(a.eval(metrics)? && b.eval(metrics)?),
            Condition::Or(a, b) => Ok(a.eval(metrics)? || b.eval(metrics)?),
        }
    }
}

fn compare(v: &Value, op: Op, literal: &Literal) -> Option<bool> {
    use std::cmp::Ordering;
    let ord = match (v, literal) {
        (Value::Number(n), Literal::Number(x)) => n.as_f64()?.partial_cmp(x)?,
        (Value::String(s), Literal::Text(t)) => s.as_str().cmp(t.as_str()),
        (Value::Bool(b), Literal::Bool(c)) => b.cmp(c),
        _ => return None,
    };
    Some(match op {
        Op::Gt => ord == Ordering::Greater,
        Op::Ge => ord != Ordering::Less,
        Op::Lt => ord == Ordering::Less,
        Op::Le => ord != Ordering::Greater,
        Op::Eq => ord == Ordering::Equal,
        Op::Ne => ord != Ordering::Equal,
    })
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Number(n) => write!(f, "{n}"),
            Literal::Text(s) => write!(f, "'{s}'"),
            Literal::Bool(b) => write!(f, "{b}"),
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Eq => "==",
            Op::Ne => "!=",
        })
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Condition::Compare {
                phase,
                path,
                op,
                literal,
            } => write!(f, "{phase}.{} {op} {literal}", path.join(".")),
            Condition::And(a, b) => write!(f, "({a} and {b})"),
            Condition::Or(a, b) => write!(f, "({a} or {b})"),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Path(String),
    Op(Op),
    Lit(Literal),
    And,
    Or,
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Path(p) => f.write_str(p),
            Token::Op(o) => write!(f, "{o}"),
            Token::Lit(l) => write!(f, "{l}"),
            Token::And => f.write_str("and"),
            Token::Or => f.write_str("or"),
        }
    }
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if "<>=!".contains(c) {
            let two = chars.get(i + 1) == Some(&'=');
            let op = match (c, two) {
                ('>', true) => Op::Ge,
                ('>', false) => Op::Gt,
                ('<', true) => Op::Le,
                ('<', false) => Op::Lt,
                ('=', true) => Op::Eq,
                ('!', true) => Op::Ne,
                _ => return Err(format!("unknown operator `{c}` (use > >= < <= == !=)")),
            };
            tokens.push(Token::Op(op));
            i += if two { 2 } else { 1 };
        } else if c == '\'' || c == '"' {
            let end = chars[i + 1..]
                .iter()
                .position(|&d| d == c)
                .ok_or("unterminated string")?;
            tokens.push(Token::Lit(Literal::Text(
                chars[i + 1..i + 1 + end].iter().collect(),
            )));
            i += end + 2;
        } else {
            let start = i;
            while i < chars.len() && !chars[i].is_whitespace() && !"<>=!'\"".contains(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            tokens.push(match word.as_str() {
                "and" => Token::And,
                "or" => Token::Or,
                "true" => Token::Lit(Literal::Bool(true)),
                "false" => Token::Lit(Literal::Bool(false)),
                _ => match word.parse::<f64>() {
                    Ok(n) if n.is_finite() => Token::Lit(Literal::Number(n)),
                    Ok(_) => return Err(format!("`{word}` is not a finite number")),
                    Err(_) => Token::Path(word),
                },
            });
        }
    }
    Ok(tokens)
}

struct CondParser {
    tokens: Vec<Token>,
    pos: usize,
}

impl CondParser {
    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn or(&mut self) -> Result<Condition, String> {
        let mut left = self.and()?;
        while self.tokens.get(self.pos) == Some(&Token::Or) {
            self.pos += 1;
            left = Condition::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Condition, String> {
        let mut left = self.compare()?;
        while self.tokens.get(self.pos) == Some(&Token::And) {
            self.pos += 1;
            left = Condition::And(Box::new(left), Box::new(self.compare()?));
        }
        Ok(left)
    }

    fn compare(&mut self) -> Result<Condition, String> {
        let path = match self.next() {
            Some(Token::Path(p)) => p,
            Some(t) => return Err(format!("expected `phase.metric`, found `{t}`")),
            None => return Err("expected `phase.metric`, found the end".to_string()),
        };
        let mut segments = path.split('.').map(str::to_string);
        let phase = segments.next().unwrap_or_default();
        let path: Vec<String> = segments.collect();
        if phase.is_empty() || path.is_empty() || path.iter().any(String::is_empty) {
            return Err(format!(
                "`{phase}` must be `phase.metric` (a phase name, then a path into its metrics.json)"
            ));
        }
        let op = match self.next() {
            Some(Token::Op(op)) => op,
            _ => return Err("expected a comparison operator (> >= < <= == !=)".to_string()),
        };
        let literal = match self.next() {
            Some(Token::Lit(l)) => l,
            Some(Token::Path(p)) => Literal::Text(p),
            _ => return Err("expected a number, 'text', true or false".to_string()),
        };
        Ok(Condition::Compare {
            phase,
            path,
            op,
            literal,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn eval(text: &str, metrics: Value) -> Result<bool, String> {
        Condition::parse(text)
            .unwrap()
            .eval(&|p| (p == "a").then(|| metrics.clone()))
    }

    #[test]
    fn compares_numbers_strings_and_bools() {
        let m = json!({"best": {"sharpe": 0.7, "name": "x"}, "ok": true});
        assert!(eval("a.best.sharpe > 0.5", m.clone()).unwrap());
        assert!(!eval("a.best.sharpe >= 0.71", m.clone()).unwrap());
        assert!(eval("a.best.name == 'x'", m.clone()).unwrap());
        assert!(eval("a.ok == true", m.clone()).unwrap());
        assert!(eval("a.ok != false", m).unwrap());
    }

    #[test]
    fn and_binds_tighter_than_or() {
        let c = Condition::parse("a.x > 1 or a.y > 1 and a.z > 1").unwrap();
        assert!(matches!(c, Condition::Or(..)));
        let m = json!({"x": 2, "y": 0, "z": 0});
        assert!(c.eval(&|_| Some(m.clone())).unwrap());
    }

    #[test]
    fn missing_paths_are_errors() {
        let err = eval("a.best.sortino > 1", json!({"best": {}})).unwrap_err();
        assert!(err.contains("best.sortino"), "{err}");
    }

    #[test]
    fn rejects_malformed_text() {
        for bad in [
            "",
            "a.b",
            "a > 1",
            "a.b >",
            "a.b => 1",
            "a.b > 1 and",
            "a.b > 'x",
        ] {
            assert!(Condition::parse(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn lists_phases_in_order() {
        let c = Condition::parse("x.m > 1 and y.n < 2").unwrap();
        assert_eq!(c.phases(), vec!["x", "y"]);
    }
}
