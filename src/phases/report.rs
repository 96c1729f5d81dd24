//! `report`: one self-contained `report.html` over the upstream artifacts.
//!
//! No network, no script, no external stylesheet: inline CSS and inline SVG
//! charts drawn with plotters' SVG backend. Each direct upstream node
//! contributes what its mode produced:
//!
//! - `backtest`: the metrics table, equity and drawdown curves;
//! - `signal_generation` (or, when none is upstream, the `trials.json`
//!   copy an `analysis` holds): the best trials, and a heatmap of Sharpe
//!   over the first two grid parameters that vary (the best Sharpe over
//!   any further parameters);
//! - `analysis`: the best trial per regime and classifier;
//! - `signal_replay`: ensemble weights, train vs test metrics, equity and
//!   drawdown curves with the split marked.
//!
//! Long curves are thinned to at most [`MAX_POINTS`] evenly spaced points
//! (always keeping the last). Writes `report.html` and a `metrics.json`
//! listing the sections.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde_json::{Value, json};

use super::backtest::fixed;
use super::common;
use super::signal_generation::TrialRecord;
use super::{ConfigIssue, Phase, PhaseContext, PhaseError, Role, Upstream};
use crate::market::metrics::rank_order;

pub struct Report;

pub const MAX_POINTS: usize = 2000;

impl Phase for Report {
    fn config_keys(&self) -> Option<&'static [&'static str]> {
        Some(&["data", "strategy", "costs", "execution", "split", "title"])
    }

    fn inherits(&self) -> &'static [&'static str] {
        common::INHERITS_WITH_SPLIT
    }

    fn version(&self) -> &'static str {
        "report-4"
    }

    fn validate(&self, config: &Value) -> Result<(), ConfigIssue> {
        match config.get("title") {
            None | Some(Value::String(_)) => Ok(()),
            Some(_) => Err(ConfigIssue::new("title", "expected a string")),
        }
    }

    fn inputs(&self, _config: &Value, _base_dir: &Path) -> Result<Vec<PathBuf>, ConfigIssue> {
        Ok(vec![])
    }

    fn execute(&self, ctx: &mut PhaseContext<'_>) -> Result<(), PhaseError> {
        let title = ctx
            .config
            .get("title")
            .and_then(Value::as_str)
            .map_or_else(|| format!("admf report: {}", ctx.node), str::to_string);
        let mut body = String::new();
        let mut sections = Vec::new();
        let has_sweep = ctx
            .upstream
            .iter()
            .any(|u| u.mode == "signal_generation" && !matches!(u.role, Role::Trial { .. }));
        for up in ctx.upstream {
            if matches!(up.role, Role::Trial { .. }) {
                continue;
            }
            let html = match up.mode.as_str() {
                "backtest" => backtest_section(up)?,
                "signal_generation" => sweep_section(up)?,
                "analysis" => {
                    let mut s = analysis_section(up)?;
                    if !has_sweep && up.has("trials.json") {
                        s.push_str(&sweep_section(up)?);
                    }
                    s
                }
                "signal_replay" => replay_section(up)?,
                _ => continue,
            };
            writeln!(ctx.log, "section for {} ({})", up.node, up.mode)?;
            sections.push(json!({"node": up.node, "mode": up.mode}));
            let _ = write!(
                body,
                "<section><h2>{} <small>{}</small></h2>\n{html}</section>\n",
                esc(&up.node),
                esc(&up.mode)
            );
        }
        if sections.is_empty() {
            body.push_str("<p>No upstream trading artifacts to show.</p>\n");
        }
        let body = header(ctx.config, ctx.upstream)? + &body;
        let html = format!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{t}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{t}</h1>\n{body}</body>\n</html>\n",
            t = esc(&title)
        );
        common::write_file(ctx.out_dir, "report.html", &html)?;
        common::write_json(
            ctx.out_dir,
            "metrics.json",
            &json!({"sections": sections, "bytes": html.len()}),
        )
    }
}

/// What a reader needs before any figure: the data, its range, the
/// costs, the fill rule and the split.
fn header(config: &Value, upstream: &[Upstream]) -> Result<String, PhaseError> {
    let data = &config["data"];
    let file = data["path"]
        .as_str()
        .or(data["dir"].as_str())
        .unwrap_or("(no data)");
    let symbols = match &data["symbols"] {
        Value::Array(a) => a
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(", "),
        Value::String(s) => s.clone(),
        _ => String::new(),
    };
    let (fee, slippage) = common::costs(config).unwrap_or((0.0, 0.0));
    let fill = common::fill(config).map(|f| f.name()).unwrap_or("close");
    let split = common::split_fraction(config).unwrap_or(0.8);
    let mut s = String::from("<table class=\"header\">\n");
    let mut row = |k: &str, v: String| {
        let _ = writeln!(
            s,
            "<tr><th class=\"l\">{k}</th><td class=\"l\">{}</td></tr>",
            esc(&v)
        );
    };
    row("data", format!("{file} ({symbols})"));
    // The range and bar count of the first upstream equity curve.
    if let Some(up) = upstream
        .iter()
        .find(|u| !matches!(u.role, Role::Trial { .. }) && u.has("equity.csv"))
    {
        let c = read_equity(up)?;
        if let (Some(first), Some(last)) = (c.ts.first(), c.ts.last()) {
            row("bars", format!("{} from {first} to {last}", c.ts.len()));
        }
    }
    row(
        "costs",
        format!("fee {fee}, slippage {slippage} bps per unit of position change"),
    );
    row("fill", fill.to_string());
    row(
        "split",
        format!(
            "the first {:.0}% of the bars train every selection; the rest is the test",
            split * 100.0
        ),
    );
    s.push_str("</table>\n");
    Ok(s)
}

const STYLE: &str = "body{font-family:sans-serif;margin:2em;color:#222;max-width:1000px}\
table{border-collapse:collapse;margin:.5em 0 1em}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:right}\
th{background:#f3f3f3}td.l,th.l{text-align:left}section{margin-bottom:2.5em}small{color:#777;font-weight:normal}\
svg{display:block;margin:.5em 0}";

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const METRIC_ROWS: &[(&str, bool)] = &[
    ("total_return", true),
    ("cagr", true),
    ("volatility", true),
    ("sharpe", false),
    ("sortino", false),
    ("max_drawdown", true),
    ("calmar", false),
    ("entries", false),
    ("trades", false),
    ("win_rate", true),
    ("exposure", true),
    ("turnover", false),
    ("bars", false),
];

fn fmt_metric(v: &Value, percent: bool) -> String {
    match v.as_f64() {
        Some(x) if percent => format!("{:.2}%", x * 100.0),
        Some(x) if v.is_u64() || v.is_i64() => format!("{x}"),
        Some(x) => format!("{x:.3}"),
        None => "–".into(),
    }
}

/// A table with one column per `(heading, metrics object)`.
fn metrics_table(columns: &[(&str, &Value)]) -> String {
    let mut s = String::from("<table><tr><th class=\"l\">metric</th>");
    for (h, _) in columns {
        let _ = write!(s, "<th>{}</th>", esc(h));
    }
    s.push_str("</tr>\n");
    for (key, percent) in METRIC_ROWS {
        let _ = write!(s, "<tr><td class=\"l\">{key}</td>");
        for (_, m) in columns {
            let _ = write!(s, "<td>{}</td>", fmt_metric(&m[*key], *percent));
        }
        s.push_str("</tr>\n");
    }
    s.push_str("</table>\n");
    s
}

/// The `ts` and `equity` columns of an `equity.csv`, and the first row of
/// the test part when it has a `part` column.
struct Curve {
    ts: Vec<String>,
    equity: Vec<f64>,
    split: Option<usize>,
}

fn read_equity(up: &Upstream) -> Result<Curve, PhaseError> {
    let text = common::upstream_text(up, "equity.csv")?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split(',').collect();
    let part_col = header.iter().position(|h| *h == "part");
    let (mut ts, mut eq, mut split) = (Vec::new(), Vec::new(), None);
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() < 2 {
            continue;
        }
        if split.is_none() && part_col.and_then(|c| f.get(c)) == Some(&"test") {
            split = Some(ts.len());
        }
        ts.push(f[0].to_string());
        eq.push(f[1].parse::<f64>().unwrap_or(f64::NAN));
    }
    Ok(Curve {
        ts,
        equity: eq,
        split,
    })
}

fn thin(n: usize) -> Vec<usize> {
    if n <= MAX_POINTS {
        return (0..n).collect();
    }
    let step = n.div_ceil(MAX_POINTS);
    let mut idx: Vec<usize> = (0..n).step_by(step).collect();
    if idx.last() != Some(&(n - 1)) {
        idx.push(n - 1);
    }
    idx
}

/// An `<svg>` inside HTML takes the SVG namespace from the parser; the
/// `xmlns` URL the backend writes is dropped so that the page holds no
/// URL at all.
fn inline_svg(svg: String) -> String {
    svg.replacen(" xmlns=\"http://www.w3.org/2000/svg\"", "", 1)
}

fn draw_error<E: std::fmt::Debug>(e: E) -> PhaseError {
    PhaseError::new(format!("drawing a chart: {e:?}"))
}

/// Equity and drawdown charts, one above the other.
fn equity_charts(
    ts: &[String],
    equity: &[f64],
    split: Option<usize>,
) -> Result<String, PhaseError> {
    if equity.is_empty() {
        return Ok(String::new());
    }
    let idx = thin(equity.len());
    let mut peak = 1.0f64;
    let drawdown: Vec<f64> = equity
        .iter()
        .map(|&e| {
            peak = peak.max(e);
            e / peak - 1.0
        })
        .collect();
    let n = equity.len() as f64;
    let label = |x: &f64| {
        let i = (x.round().max(0.0) as usize).min(ts.len() - 1);
        ts[i].clone()
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 480)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_error)?;
        let (top, bottom) = root.split_vertically(300);
        let (lo, hi) = equity
            .iter()
            .filter(|x| x.is_finite())
            .fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
        let pad = ((hi - lo) * 0.05).max(1e-6);
        let mut chart = ChartBuilder::on(&top)
            .caption("equity", ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..n, (lo - pad)..(hi + pad))
            .map_err(draw_error)?;
        chart
            .configure_mesh()
            .x_labels(6)
            .x_label_formatter(&label)
            .y_label_formatter(&|y| format!("{y:.2}"))
            .draw()
            .map_err(draw_error)?;
        chart
            .draw_series(LineSeries::new(
                idx.iter().map(|&i| (i as f64, equity[i])),
                &BLUE,
            ))
            .map_err(draw_error)?;
        if let Some(s) = split {
            chart
                .draw_series(LineSeries::new(
                    [(s as f64, lo - pad), (s as f64, hi + pad)],
                    BLACK.stroke_width(2),
                ))
                .map_err(draw_error)?;
            chart
                .draw_series([Text::new(
                    "train | test",
                    (s as f64, hi + pad * 0.2),
                    ("sans-serif", 12)
                        .into_font()
                        .color(&BLACK)
                        .pos(Pos::new(HPos::Center, VPos::Top)),
                )])
                .map_err(draw_error)?;
        }
        let dd_lo = drawdown.iter().copied().fold(0.0f64, f64::min).min(-1e-6);
        let mut chart = ChartBuilder::on(&bottom)
            .caption("drawdown", ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..n, (dd_lo * 1.05)..0.0)
            .map_err(draw_error)?;
        chart
            .configure_mesh()
            .x_labels(6)
            .x_label_formatter(&label)
            .y_label_formatter(&|y| format!("{:.0}%", y * 100.0))
            .draw()
            .map_err(draw_error)?;
        chart
            .draw_series(
                AreaSeries::new(
                    idx.iter().map(|&i| (i as f64, drawdown[i])),
                    0.0,
                    RED.mix(0.3),
                )
                .border_style(RED),
            )
            .map_err(draw_error)?;
        root.present().map_err(draw_error)?;
    }
    Ok(inline_svg(svg))
}

fn backtest_section(up: &Upstream) -> Result<String, PhaseError> {
    let mut s = String::new();
    let m = common::upstream_json(up, "metrics.json")?;
    let _ = writeln!(
        s,
        "<p>strategy <code>{}</code> {} · fee {}</p>",
        esc(m["strategy"].as_str().unwrap_or("")),
        esc(&m["params"].to_string()),
        m["fee"]
    );
    s.push_str(&metrics_table(&[("backtest", &m)]));
    if up.has("equity.csv") {
        let c = read_equity(up)?;
        s.push_str(&equity_charts(&c.ts, &c.equity, None)?);
    }
    Ok(s)
}

fn load_records(up: &Upstream) -> Result<Vec<TrialRecord>, PhaseError> {
    serde_json::from_value(common::upstream_json(up, "trials.json")?)
        .map_err(|e| PhaseError::new(format!("{}: {e}", up.describe("trials.json"))))
}

fn sweep_section(up: &Upstream) -> Result<String, PhaseError> {
    let records = load_records(up)?;
    let mut s = String::new();
    let mut order: Vec<&TrialRecord> = records.iter().collect();
    // Undefined Sharpe ratios rank last, as in every ranking.
    order
        .sort_by(|a, b| rank_order(a.metrics.sharpe, b.metrics.sharpe).then(a.index.cmp(&b.index)));
    let _ = writeln!(
        s,
        "<p>{} trials; the best by Sharpe:</p>\n<table><tr><th>trial</th><th class=\"l\">name</th><th>sharpe</th><th>total return</th><th>max drawdown</th><th>entries</th></tr>",
        records.len()
    );
    for r in order.iter().take(10) {
        let _ = writeln!(
            s,
            "<tr><td>{}</td><td class=\"l\">{}</td><td>{}</td><td>{:.2}%</td><td>{:.2}%</td><td>{}</td></tr>",
            r.index,
            esc(&r.name),
            fixed(r.metrics.sharpe, 1.0, 3, ""),
            r.metrics.total_return * 100.0,
            r.metrics.max_drawdown * 100.0,
            r.metrics.entries
        );
    }
    s.push_str("</table>\n");
    let summary = common::upstream_json(up, "metrics.json")?;
    if let Some(o) = summary.get("overfitting") {
        s.push_str(&overfitting_panel(o));
    }
    if let Some(svg) = heatmap(&records)? {
        s.push_str(&svg);
    }
    Ok(s)
}

/// The deflated Sharpe ratio, PBO and minimum backtest length of a sweep,
/// with a verdict in plain words.
fn overfitting_panel(o: &Value) -> String {
    let trials = o["trials"].as_u64().unwrap_or(0);
    let mut s = String::from("<h3>Is the best trial luck?</h3>\n<ul>\n");
    let _ = match o["dsr"].as_f64() {
        Some(d) => writeln!(
            s,
            "<li>Deflated Sharpe ratio {d:.3}: the probability that the best of {trials} trials has a true Sharpe ratio above what the best of {trials} unskilled trials reaches by chance. {}</li>",
            if d >= 0.95 {
                "Above 0.95: unlikely to be luck alone."
            } else {
                "Below 0.95: not distinguishable from luck."
            }
        ),
        None => writeln!(s, "<li>Deflated Sharpe ratio: undefined.</li>"),
    };
    let _ = match o["pbo"].as_f64() {
        Some(p) => writeln!(
            s,
            "<li>Probability of backtest overfitting {p:.3}: in {:.0}% of {} in-sample/out-of-sample splits the best in-sample trial did no better than the median trial out of sample. {}</li>",
            p * 100.0,
            o["pbo_combinations"],
            if p > 0.5 {
                "Above one half: the selection is likely overfit."
            } else {
                "At most one half: the selection tends to hold out of sample."
            }
        ),
        None => writeln!(
            s,
            "<li>Probability of backtest overfitting: undefined (needs two trials).</li>"
        ),
    };
    if let (Some(min), Some(have)) = (
        o["min_backtest_years"].as_f64(),
        o["backtest_years"].as_f64(),
    ) {
        let _ = writeln!(
            s,
            "<li>Minimum backtest length {min:.1} years for {trials} trials at the best trial's Sharpe ratio; the data cover {have:.1} years{}.</li>",
            if have < min { ", too short" } else { "" }
        );
    }
    s.push_str("</ul>\n");
    s
}

/// Parameters whose values differ across trials, in the order they appear
/// in the trial names (the grid's declared order).
fn varying(records: &[TrialRecord]) -> Vec<String> {
    let Some(Value::Object(first)) = records.first().map(|r| &r.params) else {
        return Vec::new();
    };
    let mut keys: Vec<String> = first
        .keys()
        .filter(|k| {
            records
                .iter()
                .any(|r| r.params.get(k.as_str()) != first.get(k.as_str()))
        })
        .cloned()
        .collect();
    let name = &records[0].name;
    keys.sort_by_key(|k| name.find(&format!("{k}=")).unwrap_or(usize::MAX));
    keys
}

fn heatmap(records: &[TrialRecord]) -> Result<Option<String>, PhaseError> {
    let keys = varying(records);
    if keys.len() < 2 {
        return Ok(None);
    }
    let values = |k: &str| {
        let mut v: Vec<f64> = records
            .iter()
            .filter_map(|r| r.params.get(k).and_then(Value::as_f64))
            .collect();
        v.sort_by(f64::total_cmp);
        v.dedup();
        v
    };
    let (xs, ys) = (values(&keys[0]), values(&keys[1]));
    if xs.is_empty() || ys.is_empty() {
        return Ok(None);
    }
    let mut cell: Vec<Option<f64>> = vec![None; xs.len() * ys.len()];
    for r in records {
        let (Some(x), Some(y)) = (
            r.params.get(&keys[0]).and_then(Value::as_f64),
            r.params.get(&keys[1]).and_then(Value::as_f64),
        ) else {
            continue;
        };
        let i = xs.iter().position(|v| *v == x).unwrap_or(0);
        let j = ys.iter().position(|v| *v == y).unwrap_or(0);
        let c = &mut cell[j * xs.len() + i];
        if let Some(sharpe) = r.metrics.sharpe {
            *c = Some(c.map_or(sharpe, |o: f64| o.max(sharpe)));
        }
    }
    let (lo, hi) = cell
        .iter()
        .flatten()
        .fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
    let colour = |v: f64| {
        let t = if hi > lo { (v - lo) / (hi - lo) } else { 0.5 };
        let lerp = |a: u8, b: u8, t: f64| (f64::from(a) + (f64::from(b) - f64::from(a)) * t) as u8;
        if t < 0.5 {
            let u = t * 2.0;
            RGBColor(lerp(215, 255, u), lerp(48, 255, u), lerp(39, 191, u))
        } else {
            let u = (t - 0.5) * 2.0;
            RGBColor(lerp(255, 26, u), lerp(255, 152, u), lerp(191, 80, u))
        }
    };
    let mut svg = String::new();
    {
        let w = (120 + 70 * xs.len()).clamp(360, 900) as u32;
        let h = (100 + 40 * ys.len()).clamp(220, 700) as u32;
        let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("sharpe by {} × {}", keys[0], keys[1]),
                ("sans-serif", 16),
            )
            .margin(8)
            .x_label_area_size(36)
            .y_label_area_size(60)
            // A segmented 0..n range has n + 1 segments; the last is unused.
            .build_cartesian_2d(
                (0..xs.len() - 1).into_segmented(),
                (0..ys.len() - 1).into_segmented(),
            )
            .map_err(draw_error)?;
        let fmt_axis = |vals: &[f64], v: &SegmentValue<usize>| match v {
            SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => {
                vals.get(*i).map_or(String::new(), |x| format!("{x}"))
            }
            SegmentValue::Last => String::new(),
        };
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc(keys[0].as_str())
            .y_desc(keys[1].as_str())
            .x_label_formatter(&|v| fmt_axis(&xs, v))
            .y_label_formatter(&|v| fmt_axis(&ys, v))
            .draw()
            .map_err(draw_error)?;
        for j in 0..ys.len() {
            for i in 0..xs.len() {
                let Some(v) = cell[j * xs.len() + i] else {
                    continue;
                };
                chart
                    .draw_series([Rectangle::new(
                        [
                            (SegmentValue::Exact(i), SegmentValue::Exact(j)),
                            (SegmentValue::Exact(i + 1), SegmentValue::Exact(j + 1)),
                        ],
                        colour(v).filled(),
                    )])
                    .map_err(draw_error)?;
                chart
                    .draw_series([Text::new(
                        format!("{v:.2}"),
                        (SegmentValue::CenterOf(i), SegmentValue::CenterOf(j)),
                        ("sans-serif", 12)
                            .into_font()
                            .color(&BLACK)
                            .pos(Pos::new(HPos::Center, VPos::Center)),
                    )])
                    .map_err(draw_error)?;
            }
        }
        root.present().map_err(draw_error)?;
    }
    Ok(Some(inline_svg(svg)))
}

fn analysis_section(up: &Upstream) -> Result<String, PhaseError> {
    let r = common::upstream_json(up, "regimes.json")?;
    let mut s = format!(
        "<p>best trial per regime by {}</p>\n<table><tr><th class=\"l\">classifier</th><th class=\"l\">regime</th><th>bars</th><th>trial</th><th class=\"l\">name</th><th>sharpe</th><th>total return</th></tr>\n",
        esc(r["objective"].as_str().unwrap_or("sharpe"))
    );
    if let Some(Value::Object(cs)) = r.get("classifiers") {
        for (c, v) in cs {
            if let Some(Value::Object(rs)) = v.get("regimes") {
                for (label, g) in rs {
                    let b = &g["best"];
                    let _ = writeln!(
                        s,
                        "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td></tr>",
                        esc(c),
                        esc(label),
                        g["bars"],
                        b["trial"],
                        esc(b["name"].as_str().unwrap_or("")),
                        fmt_metric(&b["sharpe"], false),
                        fmt_metric(&b["total_return"], true)
                    );
                }
            }
        }
    }
    s.push_str("</table>\n");
    Ok(s)
}

fn replay_section(up: &Upstream) -> Result<String, PhaseError> {
    let w = common::upstream_json(up, "weights.json")?;
    let m = common::upstream_json(up, "metrics.json")?;
    let mut s = format!(
        "<p>{} weightings searched ({}), objective {}, threshold {}, split at {}</p>\n<table><tr><th>trial</th><th class=\"l\">name</th><th>weight</th></tr>\n",
        m["weightings"],
        esc(&w["search"].to_string()),
        esc(w["objective"].as_str().unwrap_or("")),
        w["threshold"],
        esc(w["split_ts"].as_str().unwrap_or(""))
    );
    for sig in w["signals"].as_array().into_iter().flatten() {
        let _ = writeln!(
            s,
            "<tr><td>{}</td><td class=\"l\">{}</td><td>{:.3}</td></tr>",
            sig["trial"],
            esc(sig["name"].as_str().unwrap_or("")),
            sig["weight"].as_f64().unwrap_or(0.0)
        );
    }
    s.push_str("</table>\n");
    if let Some(Value::Object(rs)) = w.pointer("/per_regime/regimes") {
        let _ = writeln!(
            s,
            "<p>weights per {} regime</p>\n<table><tr><th class=\"l\">regime</th><th>train bars</th><th class=\"l\">weights (trial: weight)</th></tr>",
            esc(w["per_regime"]["classifier"].as_str().unwrap_or(""))
        );
        for (label, g) in rs {
            let list: Vec<String> = g["weights"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|x| x["weight"].as_f64().unwrap_or(0.0) > 0.0)
                .map(|x| format!("{}: {:.2}", x["trial"], x["weight"].as_f64().unwrap_or(0.0)))
                .collect();
            let _ = writeln!(
                s,
                "<tr><td class=\"l\">{}</td><td>{}</td><td class=\"l\">{}</td></tr>",
                esc(label),
                g["train_bars"],
                esc(&list.join(", "))
            );
        }
        s.push_str("</table>\n");
    }
    // Buy-and-hold of the same bars and costs gives the figures context.
    s.push_str(&metrics_table(&[
        ("train", &m["train"]),
        ("test", &m["test"]),
        ("buy-and-hold train", &m["benchmark"]["train"]["metrics"]),
        ("buy-and-hold test", &m["benchmark"]["test"]["metrics"]),
    ]));
    if let Some(o) = m.get("overfitting") {
        let _ = writeln!(
            s,
            "<p>The weights were chosen among {} weightings by train Sharpe ratio; deflated Sharpe ratio of the choice {}: {}</p>",
            o["trials"],
            fmt_metric(&o["dsr"], false),
            match o["dsr"].as_f64() {
                Some(d) if d >= 0.95 => "its train figure is unlikely to be luck alone.",
                Some(_) =>
                    "its train figure is not distinguishable from the luck of trying that many.",
                None => "undefined.",
            }
        );
    }
    if let Some(b) = m["benchmark"]["test"].as_object() {
        let _ = writeln!(
            s,
            "<p>test part against buy-and-hold: excess return {}, beta {}, alpha {}, information ratio {}</p>",
            fmt_metric(&b["excess_return"], true),
            fmt_metric(&b["beta"], false),
            fmt_metric(&b["alpha"], true),
            fmt_metric(&b["information_ratio"], false)
        );
    }
    if up.has("equity.csv") {
        let c = read_equity(up)?;
        s.push_str(&equity_charts(&c.ts, &c.equity, c.split)?);
    }
    Ok(s)
}
