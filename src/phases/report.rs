//! `report`: one self-contained `report.html` over the upstream artifacts.
//!
//! No network, no script, no external stylesheet: inline CSS and inline SVG
//! charts drawn with plotters' SVG backend. Each direct upstream node
//! contributes what its mode produced:
//!
//! - `backtest`: the metrics table against buy-and-hold, the curves and
//!   tables below, and the trade list;
//! - `signal_generation` (or, when none is upstream, the `trials.json`
//!   copy an `analysis` holds): the best trials, and a heatmap of Sharpe
//!   over the first two grid parameters that vary (the best Sharpe over
//!   any further parameters);
//! - `analysis`: the best trial per regime and classifier;
//! - `signal_replay`: ensemble weights, train vs test metrics, and the
//!   curves and tables below with the split marked.
//!
//! A curve (backtest or ensemble) is drawn as equity against buy-and-hold
//! (`benchmark.csv`; on a log axis with `log_scale: true`), drawdown and
//! the rolling Sharpe ratio, followed by its deepest drawdown periods and
//! its returns per month and year ([`crate::market::performance`]).
//! Timestamps within a day are shown as times.
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
use super::signal_generation::TrialRecord;
use super::{ConfigIssue, Phase, PhaseContext, PhaseError, Role, Upstream};
use super::{artifacts, config, upstream};
use crate::market::metrics::rank_order;
use crate::market::performance::{display_time, drawdown_periods, period_returns, rolling_sharpe};

pub struct Report;

pub const MAX_POINTS: usize = 2000;

impl Phase for Report {
    fn config_keys(&self) -> Option<&'static [&'static str]> {
        Some(&[
            "data",
            "strategy",
            "costs",
            "execution",
            "split",
            "title",
            "log_scale",
            "rolling_window",
        ])
    }

    fn relative_paths(&self) -> &'static [&'static str] {
        config::DATA_PATHS
    }

    fn inherits(&self) -> &'static [&'static str] {
        config::INHERITS_WITH_SPLIT
    }

    fn version(&self) -> &'static str {
        "report-6"
    }

    fn validate(&self, config: &Value) -> Result<(), ConfigIssue> {
        match config.get("title") {
            None | Some(Value::String(_)) => {}
            Some(_) => return Err(ConfigIssue::new("title", "expected a string")),
        }
        ChartOptions::from_config(config).map(|_| ())
    }

    fn page(&self) -> Option<&'static str> {
        Some("report.html")
    }

    /// The header shows the inherited keys through their parsers (the
    /// data's path and symbols, the costs, fill and split), so their
    /// normal forms show the same; the strategy shown is the upstream's.
    fn normalize(&self, config: Value, _role: &Role) -> Result<Value, ConfigIssue> {
        self.validate(&config)?;
        let opts = ChartOptions::from_config(&config)?;
        let steps = if config.get("data").is_some() {
            config::normal::SELECTING
        } else {
            config::normal::UNLESS_DATA
        };
        let mut m = config::normal::without_strategy(config, steps)?;
        m.insert("log_scale".into(), json!(opts.log_scale));
        m.insert("rolling_window".into(), json!(opts.rolling_window));
        Ok(Value::Object(m))
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
        let opts = ChartOptions::from_config(ctx.config).map_err(super::backtest::issue_error)?;
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
                "backtest" => backtest_section(up, &opts)?,
                "signal_generation" => sweep_section(up)?,
                "analysis" => {
                    let mut s = analysis_section(up)?;
                    if !has_sweep && up.has("trials.json") {
                        s.push_str(&sweep_section(up)?);
                    }
                    s
                }
                "signal_replay" => replay_section(up, &opts)?,
                "holdout" => holdout_section(up, &opts)?,
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
        artifacts::write_file(ctx.out_dir, "report.html", &html)?;
        artifacts::write_json(
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
    let (fee, slippage) = config::costs(config).unwrap_or((0.0, 0.0));
    let fill = config::fill(config).map(|f| f.name()).unwrap_or("close");
    let split = super::split::split(config)
        .map(|s| s.describe())
        .unwrap_or_default();
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
            row(
                "bars",
                format!(
                    "{} from {} to {}",
                    c.ts.len(),
                    display_time(first),
                    display_time(last)
                ),
            );
        }
    }
    row(
        "costs",
        format!("fee {fee}, slippage {slippage} bps per unit of position change"),
    );
    row("fill", fill.to_string());
    row("split", split);
    if let Some(h) = config::data_spec(config, Path::new("."))
        .ok()
        .and_then(|d| d.holdout)
    {
        row(
            "holdout",
            format!(
                "{}, sealed: only a holdout phase sees those bars",
                h.describe()
            ),
        );
    }
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

/// The `ts` and `equity` columns of an `equity.csv`, and where its parts
/// change (the first row of each part after the first, with the label of
/// the boundary) when it has a `part` column.
struct Curve {
    ts: Vec<String>,
    equity: Vec<f64>,
    boundaries: Vec<(usize, String)>,
}

fn read_equity(up: &Upstream) -> Result<Curve, PhaseError> {
    let text = upstream::upstream_text(up, "equity.csv")?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split(',').collect();
    let part_col = header.iter().position(|h| *h == "part");
    let (mut ts, mut eq, mut boundaries) = (Vec::new(), Vec::new(), Vec::new());
    let mut part: Option<&str> = None;
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() < 2 {
            continue;
        }
        if let Some(&now) = part_col.and_then(|c| f.get(c)) {
            if let Some(before) = part.filter(|p| *p != now) {
                boundaries.push((ts.len(), format!("{before} | {now}")));
            }
            part = Some(now);
        }
        ts.push(f[0].to_string());
        eq.push(f[1].parse::<f64>().unwrap_or(f64::NAN));
    }
    Ok(Curve {
        ts,
        equity: eq,
        boundaries,
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

/// How the curves are drawn: `log_scale: true` puts equity on a log
/// axis; `rolling_window: N` (bars, default [`ROLLING_WINDOW`]) sets the
/// trailing window of the rolling Sharpe ratio.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ChartOptions {
    pub log_scale: bool,
    pub rolling_window: usize,
}

pub const ROLLING_WINDOW: usize = 126;

/// How many drawdown periods the report lists.
pub const TOP_DRAWDOWNS: usize = 5;

impl ChartOptions {
    pub fn from_config(config: &Value) -> Result<ChartOptions, ConfigIssue> {
        let log_scale = match config.get("log_scale") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(ConfigIssue::new("log_scale", "expected true or false")),
        };
        let rolling_window = match config.get("rolling_window") {
            None | Some(Value::Null) => ROLLING_WINDOW,
            Some(v) => v
                .as_u64()
                .filter(|n| *n >= 2 && *n <= 100_000)
                .map(|n| n as usize)
                .ok_or_else(|| {
                    ConfigIssue::new(
                        "rolling_window",
                        "expected a whole number of bars from 2 to 100000",
                    )
                })?,
        };
        Ok(ChartOptions {
            log_scale,
            rolling_window,
        })
    }
}

/// The `equity` column of an upstream's `benchmark.csv`, when it wrote one.
fn read_benchmark(up: &Upstream) -> Result<Option<Vec<f64>>, PhaseError> {
    if !up.has("benchmark.csv") {
        return Ok(None);
    }
    let text = upstream::upstream_text(up, "benchmark.csv")?;
    Ok(Some(
        text.lines()
            .skip(1)
            .filter_map(|l| l.split(',').nth(1))
            .map(|x| x.parse::<f64>().unwrap_or(f64::NAN))
            .collect(),
    ))
}

/// The figures of a curve: charts, drawdown periods and calendar returns.
fn curve_block(
    c: &Curve,
    benchmark: Option<&[f64]>,
    ppy: Option<f64>,
    opts: &ChartOptions,
) -> Result<String, PhaseError> {
    let mut s = equity_charts(c, benchmark, opts)?;
    if let Some(ppy) = ppy {
        s.push_str(&rolling_sharpe_chart(c, ppy, opts.rolling_window)?);
    }
    s.push_str(&drawdown_table(&c.ts, &c.equity));
    s.push_str(&returns_table(&c.ts, &c.equity));
    Ok(s)
}

/// The x axis: bar positions labelled with their timestamps.
fn time_label(ts: &[String]) -> impl Fn(&f64) -> String + '_ {
    move |x: &f64| {
        let i = (x.round().max(0.0) as usize).min(ts.len().saturating_sub(1));
        ts.get(i).map_or_else(String::new, |t| display_time(t))
    }
}

/// The axis name of bar timestamps: `time` when bars fall within a day.
fn time_axis(ts: &[String]) -> &'static str {
    if ts.iter().any(|t| display_time(t).len() > 10) {
        "time"
    } else {
        "date"
    }
}

type TimeChart<'a, 'b> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// A chart over bar positions `0..n` with room for named axes.
fn time_chart<'a, 'b>(
    area: &'a DrawingArea<SVGBackend<'b>, plotters::coord::Shift>,
    caption: &str,
    n: f64,
    y: std::ops::Range<f64>,
) -> Result<TimeChart<'a, 'b>, PhaseError> {
    ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 16))
        .margin(8)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..n, y)
        .map_err(draw_error)
}

/// Equity (against buy-and-hold when given) and drawdown, one above the
/// other; the train/test boundary marked when the curve has one.
fn equity_charts(
    c: &Curve,
    benchmark: Option<&[f64]>,
    opts: &ChartOptions,
) -> Result<String, PhaseError> {
    let (ts, equity) = (&c.ts, &c.equity);
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
    let label = time_label(ts);
    // On a log scale the axis carries log10(equity), labelled back in
    // equity; a curve at or below zero (ruin) has no point there.
    let y = |e: f64| -> Option<f64> {
        match opts.log_scale {
            true if e > 0.0 => Some(libm::log10(e)),
            true => None,
            false => e.is_finite().then_some(e),
        }
    };
    let bench = benchmark.filter(|b| b.len() == equity.len());
    let (lo, hi) = equity
        .iter()
        .chain(bench.into_iter().flatten())
        .filter_map(|&e| y(e))
        .fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(x), b.max(x)));
    let (lo, hi) = if lo <= hi { (lo, hi) } else { (0.0, 1.0) };
    let pad = ((hi - lo) * 0.05).max(1e-6);
    let points = |curve: &[f64]| -> Vec<(f64, f64)> {
        idx.iter()
            .filter_map(|&i| y(curve[i]).map(|v| (i as f64, v)))
            .collect()
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 520)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_error)?;
        let (top, bottom) = root.split_vertically(320);
        let caption = if opts.log_scale {
            "equity (log scale)"
        } else {
            "equity"
        };
        let mut chart = time_chart(&top, caption, n, (lo - pad)..(hi + pad))?;
        let log_scale = opts.log_scale;
        chart
            .configure_mesh()
            .x_labels(6)
            .x_label_formatter(&label)
            .y_label_formatter(&|v| {
                format!("{:.2}", if log_scale { libm::pow(10.0, *v) } else { *v })
            })
            .x_desc(time_axis(ts))
            .y_desc("equity (start = 1)")
            .draw()
            .map_err(draw_error)?;
        chart
            .draw_series(LineSeries::new(points(equity), &BLUE))
            .map_err(draw_error)?
            .label("strategy")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BLUE));
        if let Some(b) = bench {
            let grey = RGBColor(120, 120, 120);
            chart
                .draw_series(LineSeries::new(points(b), &grey))
                .map_err(draw_error)?
                .label("buy-and-hold")
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], grey));
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(draw_error)?;
        }
        for (s, label) in &c.boundaries {
            let s = *s;
            chart
                .draw_series(LineSeries::new(
                    [(s as f64, lo - pad), (s as f64, hi + pad)],
                    BLACK.stroke_width(2),
                ))
                .map_err(draw_error)?;
            chart
                .draw_series([Text::new(
                    label.clone(),
                    (s as f64, hi + pad * 0.2),
                    ("sans-serif", 12)
                        .into_font()
                        .color(&BLACK)
                        .pos(Pos::new(HPos::Center, VPos::Top)),
                )])
                .map_err(draw_error)?;
        }
        let dd_lo = drawdown
            .iter()
            .copied()
            .filter(|d| d.is_finite())
            .fold(0.0f64, f64::min)
            .min(-1e-6);
        let mut chart = time_chart(&bottom, "drawdown", n, (dd_lo * 1.05)..0.0)?;
        chart
            .configure_mesh()
            .x_labels(6)
            .x_label_formatter(&label)
            .y_label_formatter(&|y| format!("{:.0}%", y * 100.0))
            .x_desc(time_axis(ts))
            .y_desc("below the running peak")
            .draw()
            .map_err(draw_error)?;
        chart
            .draw_series(
                AreaSeries::new(
                    idx.iter().map(|&i| (i as f64, drawdown[i].max(dd_lo))),
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

/// The trailing-window Sharpe ratio over time, with zero marked.
fn rolling_sharpe_chart(c: &Curve, ppy: f64, window: usize) -> Result<String, PhaseError> {
    let rolling = rolling_sharpe(&c.equity, window, ppy);
    let idx = thin(rolling.len());
    let points: Vec<(f64, f64)> = idx
        .iter()
        .filter_map(|&i| rolling[i].map(|v| (i as f64, v)))
        .collect();
    if points.is_empty() {
        return Ok(format!(
            "<p>rolling Sharpe ratio: undefined (fewer than {window} bars, or no variation in any window)</p>\n"
        ));
    }
    let (lo, hi) = points
        .iter()
        .fold((0.0f64, 0.0f64), |(a, b), &(_, v)| (a.min(v), b.max(v)));
    let pad = ((hi - lo) * 0.05).max(1e-6);
    let n = c.equity.len() as f64;
    let label = time_label(&c.ts);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 240)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_error)?;
        let caption = format!("rolling Sharpe ratio ({window} bars, annualised)");
        let mut chart = time_chart(&root, &caption, n, (lo - pad)..(hi + pad))?;
        chart
            .configure_mesh()
            .x_labels(6)
            .x_label_formatter(&label)
            .y_label_formatter(&|y| format!("{y:.1}"))
            .x_desc(time_axis(&c.ts))
            .y_desc("Sharpe ratio")
            .draw()
            .map_err(draw_error)?;
        chart
            .draw_series(LineSeries::new([(0.0, 0.0), (n, 0.0)], BLACK.mix(0.5)))
            .map_err(draw_error)?;
        chart
            .draw_series(LineSeries::new(points, &BLUE))
            .map_err(draw_error)?;
        root.present().map_err(draw_error)?;
    }
    Ok(inline_svg(svg))
}

/// The deepest drawdown periods: peak, trough, recovery, depth, length.
pub fn drawdown_table(ts: &[String], equity: &[f64]) -> String {
    let periods = drawdown_periods(equity, TOP_DRAWDOWNS);
    if periods.is_empty() {
        return "<p>No drawdown: the curve never fell below a previous high.</p>\n".into();
    }
    let mut s = format!(
        "<p>the {} deepest drawdowns</p>\n<table><tr><th>depth</th><th class=\"l\">peak</th><th class=\"l\">trough</th><th class=\"l\">recovered</th><th>bars to trough</th><th>bars underwater</th></tr>\n",
        periods.len()
    );
    for p in &periods {
        let end = p.recovery.unwrap_or(equity.len() - 1);
        let _ = writeln!(
            s,
            "<tr><td>{:.2}%</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td>{}{}</td></tr>",
            p.depth * 100.0,
            esc(&display_time(&ts[p.peak])),
            esc(&display_time(&ts[p.trough])),
            p.recovery
                .map_or_else(|| "not yet".to_string(), |r| esc(&display_time(&ts[r]))),
            p.trough - p.peak,
            end - p.peak,
            if p.recovery.is_none() { "+" } else { "" }
        );
    }
    s.push_str("</table>\n");
    s
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Returns per calendar month, one row per year, and the year's return.
pub fn returns_table(ts: &[String], equity: &[f64]) -> String {
    let (monthly, yearly) = period_returns(ts, equity);
    if yearly.is_empty() {
        return String::new();
    }
    let cell = |r: Option<f64>| r.map_or_else(|| "–".to_string(), |r| format!("{:.1}%", r * 100.0));
    let mut s =
        String::from("<p>returns by month and year</p>\n<table><tr><th class=\"l\">year</th>");
    for m in MONTHS {
        let _ = write!(s, "<th>{m}</th>");
    }
    s.push_str("<th>year</th></tr>\n");
    for y in &yearly {
        let _ = write!(s, "<tr><td class=\"l\">{}</td>", y.year);
        for m in 1..=12 {
            let r = monthly.iter().find(|p| p.year == y.year && p.month == m);
            let _ = write!(
                s,
                "<td>{}</td>",
                r.map_or_else(String::new, |p| cell(p.ret))
            );
        }
        let _ = writeln!(s, "<th>{}</th></tr>", cell(y.ret));
    }
    s.push_str("</table>\n");
    s
}

/// Every round trip of `trades.csv` (the first [`MAX_TRADES`] when there
/// are more).
fn trade_list(up: &Upstream) -> Result<String, PhaseError> {
    let text = upstream::upstream_text(up, "trades.csv")?;
    let rows: Vec<Vec<&str>> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    let mut s = format!("<p>{} trades", rows.len());
    if rows.len() > MAX_TRADES {
        let _ = write!(s, "; the first {MAX_TRADES}");
    }
    s.push_str("</p>\n<table><tr><th class=\"l\">symbol</th><th class=\"l\">side</th><th class=\"l\">entry</th><th class=\"l\">exit</th><th>bars</th><th>return</th></tr>\n");
    for r in rows.iter().take(MAX_TRADES) {
        let [sym, side, entry, exit, bars, closed, ret] = r[..] else {
            continue;
        };
        let ret = ret
            .parse::<f64>()
            .map_or_else(|_| "–".to_string(), |x| format!("{:.2}%", x * 100.0));
        let _ = writeln!(
            s,
            "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td>{ret}</td></tr>",
            esc(sym),
            esc(side),
            esc(&display_time(entry)),
            if closed == "true" {
                esc(&display_time(exit))
            } else {
                "open".to_string()
            },
            esc(bars),
        );
    }
    s.push_str("</table>\n");
    Ok(s)
}

pub const MAX_TRADES: usize = 500;

fn backtest_section(up: &Upstream, opts: &ChartOptions) -> Result<String, PhaseError> {
    let mut s = String::new();
    let m = upstream::upstream_json(up, "metrics.json")?;
    let _ = writeln!(
        s,
        "<p>strategy <code>{}</code> {} · fee {}</p>",
        esc(m["strategy"].as_str().unwrap_or("")),
        esc(&m["params"].to_string()),
        m["fee"]
    );
    s.push_str(&metrics_table(&[
        ("backtest", &m),
        ("buy-and-hold", &m["benchmark"]["metrics"]),
    ]));
    if up.has("equity.csv") {
        let c = read_equity(up)?;
        let bench = read_benchmark(up)?;
        let ppy = m["periods_per_year"].as_f64();
        s.push_str(&curve_block(&c, bench.as_deref(), ppy, opts)?);
    }
    if up.has("trades.csv") {
        s.push_str(&trade_list(up)?);
    }
    Ok(s)
}

fn load_records(up: &Upstream) -> Result<Vec<TrialRecord>, PhaseError> {
    serde_json::from_value(upstream::upstream_json(up, "trials.json")?)
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
    let summary = upstream::upstream_json(up, "metrics.json")?;
    if let Some(t) = summary.get("train_best").filter(|t| t.is_object()) {
        let _ = writeln!(
            s,
            "<p>best on the train part alone: trial {} <code>{}</code>, train Sharpe {}, train return {}</p>",
            t["trial"],
            esc(t["name"].as_str().unwrap_or("")),
            fmt_metric(&t["sharpe"], false),
            fmt_metric(&t["total_return"], true)
        );
    }
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
        let w = (220 + 70 * xs.len()).clamp(460, 1000) as u32;
        let h = (100 + 40 * ys.len()).clamp(220, 700) as u32;
        let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_error)?;
        let (root, scale) = root.split_horizontally(w - 110);
        colour_scale(&scale, lo, hi, &colour)?;
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

/// The legend of a heatmap: its colours from `lo` (bottom) to `hi` (top),
/// with the Sharpe ratios they stand for on an axis.
fn colour_scale(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    lo: f64,
    hi: f64,
    colour: &dyn Fn(f64) -> RGBColor,
) -> Result<(), PhaseError> {
    const STEPS: usize = 40;
    let (lo, hi) = if hi > lo {
        (lo, hi)
    } else {
        (lo - 0.5, lo + 0.5)
    };
    let mut chart = ChartBuilder::on(area)
        .caption("sharpe", ("sans-serif", 13))
        .margin_top(34)
        .margin_bottom(44)
        .margin_right(8)
        .y_label_area_size(46)
        .build_cartesian_2d(0f64..1.0, lo..hi)
        .map_err(draw_error)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_labels(5)
        .y_label_formatter(&|v| format!("{v:.2}"))
        .draw()
        .map_err(draw_error)?;
    let step = (hi - lo) / STEPS as f64;
    chart
        .draw_series((0..STEPS).map(|k| {
            let a = lo + step * k as f64;
            Rectangle::new([(0.0, a), (1.0, a + step)], colour(a + step / 2.0).filled())
        }))
        .map_err(draw_error)?;
    Ok(())
}

fn analysis_section(up: &Upstream) -> Result<String, PhaseError> {
    let r = upstream::upstream_json(up, "regimes.json")?;
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

/// The sealed holdout's figures: only a report downstream of the
/// `holdout` node shows them.
fn holdout_section(up: &Upstream, opts: &ChartOptions) -> Result<String, PhaseError> {
    let m = upstream::upstream_json(up, "metrics.json")?;
    let mut s = format!(
        "<p>the sealed holdout: {} bars from {}, replaying what <code>{}</code> decided; no other phase saw these bars</p>\n",
        m["bars"],
        esc(&display_time(m["from_ts"].as_str().unwrap_or(""))),
        esc(m["source"].as_str().unwrap_or(""))
    );
    s.push_str(&metrics_table(&[
        ("holdout", &m["holdout"]),
        ("buy-and-hold", &m["benchmark"]["metrics"]),
    ]));
    if up.has("equity.csv") {
        let c = read_equity(up)?;
        let bench = read_benchmark(up)?;
        let ppy = m["holdout"]["periods_per_year"].as_f64();
        s.push_str(&curve_block(&c, bench.as_deref(), ppy, opts)?);
    }
    Ok(s)
}

fn replay_section(up: &Upstream, opts: &ChartOptions) -> Result<String, PhaseError> {
    let w = upstream::upstream_json(up, "weights.json")?;
    let m = upstream::upstream_json(up, "metrics.json")?;
    let mut s = format!(
        "<p>{} weightings searched ({}), objective {}, threshold {}, split at {}</p>\n<table><tr><th>trial</th><th class=\"l\">name</th><th>weight</th></tr>\n",
        m["weightings"],
        esc(&w["search"].to_string()),
        esc(w["objective"].as_str().unwrap_or("")),
        w["threshold"],
        esc(&display_time(w["split_ts"].as_str().unwrap_or("")))
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
    let mut columns: Vec<(&str, &Value)> = vec![("train", &m["train"])];
    if m.get("validation").is_some() {
        columns.push(("validation", &m["validation"]));
    }
    columns.extend([
        ("test", &m["test"]),
        ("buy-and-hold train", &m["benchmark"]["train"]["metrics"]),
    ]);
    if m.get("validation").is_some() {
        columns.push((
            "buy-and-hold validation",
            &m["benchmark"]["validation"]["metrics"],
        ));
    }
    columns.push(("buy-and-hold test", &m["benchmark"]["test"]["metrics"]));
    s.push_str(&metrics_table(&columns));
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
        let bench = read_benchmark(up)?;
        let ppy = m["train"]["periods_per_year"].as_f64();
        s.push_str(&curve_block(&c, bench.as_deref(), ppy, opts)?);
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ten minute bars across two days, with a drawdown that recovers and
    /// one still open at the end.
    fn minute_curve() -> Curve {
        let ts = [
            "20110103 093000",
            "20110103 093100",
            "20110103 093200",
            "20110103 093300",
            "20110131 160000",
            "20110201 093000",
            "20110201 093100",
            "20110201 093200",
            "20120103 093000",
            "20120103 093100",
        ]
        .map(String::from)
        .to_vec();
        let equity = vec![1.0, 1.02, 0.99, 1.03, 1.05, 0.98, 1.01, 1.04, 1.06, 1.0];
        Curve {
            ts,
            equity,
            boundaries: vec![(6, "train | test".into())],
        }
    }

    #[test]
    fn drawdown_and_returns_tables() {
        let c = minute_curve();
        insta::assert_snapshot!(
            drawdown_table(&c.ts, &c.equity) + &returns_table(&c.ts, &c.equity)
        );
    }

    #[test]
    fn a_curve_at_its_high_has_no_drawdown_rows() {
        let ts: Vec<String> = ["2020-01-01", "2020-01-02"].map(String::from).to_vec();
        assert!(drawdown_table(&ts, &[1.0, 1.1]).contains("No drawdown"));
    }

    #[test]
    fn equity_against_buy_and_hold_on_a_log_scale() {
        let c = minute_curve();
        let bench: Vec<f64> = (0..10).map(|i| 1.0 + 0.01 * f64::from(i)).collect();
        let opts = ChartOptions {
            log_scale: true,
            rolling_window: 3,
        };
        let svg = equity_charts(&c, Some(&bench), &opts).unwrap();
        // Axis names, legend and time labels, whatever the geometry.
        for text in [
            "equity (log scale)",
            "equity (start = 1)",
            "below the running peak",
            "\ntime\n",
            "buy-and-hold",
            "2011-01-03 09:30",
        ] {
            assert!(svg.contains(text), "chart lacks `{text}`");
        }
        insta::assert_snapshot!(svg);
        let rolling = rolling_sharpe_chart(&c, 252.0, 3).unwrap();
        assert!(rolling.contains("rolling Sharpe ratio (3 bars, annualised)"));
        insta::assert_snapshot!("rolling_sharpe", rolling);
    }

    #[test]
    fn heatmap_colour_scale_is_labelled() {
        let area_svg = {
            let mut svg = String::new();
            {
                let root = SVGBackend::with_string(&mut svg, (110, 260)).into_drawing_area();
                colour_scale(&root, -0.5, 1.5, &|v| {
                    RGBColor((v * 100.0 + 60.0) as u8, 0, 0)
                })
                .unwrap();
                root.present().unwrap();
            }
            svg
        };
        for text in ["\nsharpe\n", "\n-0.50\n", "\n1.50\n"] {
            assert!(area_svg.contains(text), "scale lacks `{text}`: {area_svg}");
        }
        insta::assert_snapshot!(area_svg);
    }

    #[test]
    fn chart_options_are_checked() {
        assert_eq!(
            ChartOptions::from_config(&json!({})).unwrap(),
            ChartOptions {
                log_scale: false,
                rolling_window: ROLLING_WINDOW
            }
        );
        assert_eq!(
            ChartOptions::from_config(&json!({"log_scale": "yes"}))
                .unwrap_err()
                .key,
            "log_scale"
        );
        assert_eq!(
            ChartOptions::from_config(&json!({"rolling_window": 1}))
                .unwrap_err()
                .key,
            "rolling_window"
        );
    }
}
