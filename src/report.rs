//! The HTML report: one self-contained file (inline style, script and data; nothing
//! loaded from anywhere) in the live dashboard's look — the same style sheet and the
//! same chart function (`src/look/`).
//!
//! It shows the final table and its bar chart; how every figure moved over the epochs
//! as line charts, sampled down to at most `MAX_SAMPLES` epochs, with the exact figures
//! of the last `RECENT` epochs in tables; and for `what-if`, baseline → scenario (change)
//! per figure. What it keeps while a run goes on is bounded by those two numbers, never
//! by the epochs seen, so a long followed run can write it too.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;

use serde_json::{json, Value};

use crate::model::Epoch;
use crate::result::{compare, Figure, FigureChange, ResultRow};
use crate::run::EpochOutput;

/// What the report is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportKind {
    Run,
    WhatIf,
}

/// Epochs drawn in the line charts at most; past that, every other sample is dropped
/// and the sampling step doubles.
pub const MAX_SAMPLES: usize = 300;

/// The last epochs whose exact figures the report shows in tables.
pub const RECENT: usize = 8;

const CSS: &str = include_str!("look/look.css");
const CHART_JS: &str = include_str!("look/chart.js");

/// The headings of a result table, as the dashboard's table has them.
const HEADINGS: [&str; 6] = [
    "discount %",
    "avg items",
    "avg subtotal",
    "avg total",
    "avg discount",
    "orders",
];

/// The figures after the percentage: heading, what a line chart's y axis says.
const FIGURES: [(&str, &str); 5] = [
    ("Average items per order", "items per order"),
    ("Average subtotal per order", "currency units per order"),
    ("Average total per order", "currency units per order"),
    ("Average discount per order", "currency units per order"),
    ("Orders", "orders"),
];

/// Colours of the lines, one per percentage (repeating past twelve).
const PALETTE: [&str; 12] = [
    "#3465a4", "#4e9a06", "#ce5c00", "#75507b", "#c4a000", "#cc0000", "#06989a", "#8f5902",
    "#555753", "#ad7fa8", "#e377c2", "#17becf",
];

/// What the report keeps of a run as it goes: sampled tables for the charts, the last
/// tables for the exact figures, and which files the epochs read.
#[derive(Debug, Default)]
pub struct ReportHistory {
    /// Every `stride`-th epoch's table, at most `MAX_SAMPLES`.
    samples: Vec<(Epoch, Vec<ResultRow>)>,
    stride: u64,
    recent: VecDeque<(Epoch, Vec<ResultRow>)>,
    epochs: u64,
    base_files: Vec<String>,
    first_update: Option<String>,
    last_update: Option<String>,
    updates: u64,
}

impl ReportHistory {
    /// Keeps what the report needs of one completed epoch.
    pub fn record(&mut self, epoch: &EpochOutput) {
        self.stride = self.stride.max(1);
        self.epochs += 1;
        if self.epochs == 1 {
            self.base_files = epoch.files.clone();
        } else {
            for file in &epoch.files {
                self.first_update.get_or_insert_with(|| file.clone());
                self.last_update = Some(file.clone());
                self.updates += 1;
            }
        }
        if epoch.epoch % self.stride == 0 {
            self.samples.push((epoch.epoch, epoch.table.clone()));
            if self.samples.len() > MAX_SAMPLES {
                self.stride *= 2;
                let stride = self.stride;
                self.samples.retain(|(e, _)| e % stride == 0);
            }
        }
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back((epoch.epoch, epoch.table.clone()));
    }

    /// The sampled tables, ending with the last epoch's.
    fn drawn(&self) -> Vec<&(Epoch, Vec<ResultRow>)> {
        let mut drawn: Vec<_> = self.samples.iter().collect();
        if let Some(last) = self.recent.back() {
            if drawn.last().map(|(e, _)| *e) != Some(last.0) {
                drawn.push(last);
            }
        }
        drawn
    }
}

/// The whole report as one HTML document.
pub fn html_report(
    history: &ReportHistory,
    baseline: &[ResultRow],
    table: &[ResultRow],
    kind: ReportKind,
) -> String {
    let title = match kind {
        ReportKind::Run => "Discount analysis",
        ReportKind::WhatIf => "Discount analysis: what if",
    };
    let mut charts: Vec<Value> = Vec::new();
    let mut html = String::new();
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n<style>\n{CSS}</style>\n</head>\n<body>\n<header>\n<h1>{title}</h1>\n"
    );
    html.push_str(&status(history));
    html.push_str("</header>\n<main>\n<noscript><p class=\"note\">The charts are drawn by the page's own script; the tables hold every figure.</p></noscript>\n");
    match kind {
        ReportKind::Run => {
            card_start(&mut html, "Average per order, by discount percentage");
            chart_box(&mut html, &mut charts, bar_chart(table, None));
            html.push_str("</section>\n");
            card_start(&mut html, "Final table");
            html.push_str(&result_table(table));
            html.push_str("</section>\n");
        }
        ReportKind::WhatIf => {
            card_start(&mut html, "Baseline → scenario (change)");
            html.push_str(
                "<p class=\"note\">Per percentage, each figure in the baseline (the base \
                 snapshots), then in the scenario, then the change between the two rounded \
                 figures; a group missing on one side has no averages there and 0 orders.</p>\n",
            );
            html.push_str(&comparison_table(baseline, table));
            html.push_str("</section>\n");
            // One scale for both charts, so that bars compare across them.
            let top = largest_money(baseline).max(largest_money(table));
            for (heading, rows) in [("Baseline", baseline), ("Scenario", table)] {
                card_start(&mut html, &format!("{heading}: average per order"));
                chart_box(&mut html, &mut charts, bar_chart(rows, Some(top)));
                html.push_str("</section>\n");
            }
        }
    }
    if history.epochs > 1 {
        over_the_epochs(&mut html, &mut charts, history);
        recent_tables(&mut html, history);
    }
    html.push_str("</main>\n<script type=\"application/json\" id=\"charts\">");
    // Inside a script element only `</` could end it early.
    html.push_str(&Value::Array(charts).to_string().replace("</", "<\\/"));
    let _ = write!(
        html,
        "</script>\n<script>\n{CHART_JS}(function () {{\n  \"use strict\";\n  \
         var charts = JSON.parse(document.getElementById(\"charts\").textContent);\n  \
         function draw() {{ charts.forEach(function (c) {{ drawChart(document.getElementById(c.box), c.spec); }}); }}\n  \
         draw();\n  var resized = null;\n  \
         window.addEventListener(\"resize\", function () {{ clearTimeout(resized); resized = setTimeout(draw, 100); }});\n\
         }})();\n</script>\n</body>\n</html>\n"
    );
    html
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The epochs and the files they read, in a line that stays short for any run.
fn status(history: &ReportHistory) -> String {
    let mut html = String::from("<div class=\"status\">");
    let _ = write!(html, "<span>epochs <b>{}</b></span>", history.epochs);
    if !history.base_files.is_empty() {
        let _ = write!(
            html,
            "<span>base <b>{}</b></span>",
            escape(&history.base_files.join(", "))
        );
    }
    let updates = match (&history.first_update, &history.last_update) {
        (Some(first), Some(last)) if history.updates > 1 => {
            format!("{} … {} ({} files)", first, last, history.updates)
        }
        (Some(only), _) => only.clone(),
        _ => String::new(),
    };
    if !updates.is_empty() {
        let _ = write!(html, "<span>updates <b>{}</b></span>", escape(&updates));
    }
    html.push_str("</div>\n");
    html
}

fn card_start(html: &mut String, heading: &str) {
    let _ = writeln!(
        html,
        "<section class=\"card\">\n<h2>{}</h2>",
        escape(heading)
    );
}

/// A box for a chart, drawn by the script from `spec`.
fn chart_box(html: &mut String, charts: &mut Vec<Value>, spec: Value) {
    let id = format!("chart-{}", charts.len());
    let _ = writeln!(html, "<div id=\"{id}\" class=\"chart\"></div>");
    charts.push(json!({ "box": id, "spec": spec }));
}

/// A table's cells, escaped, each row's first cell the percentage.
fn table_html(headings: &[&str], rows: &[Vec<String>]) -> String {
    let mut html = String::from("<div class=\"scroll\"><table>\n<thead><tr>");
    for name in headings {
        let _ = write!(html, "<th>{}</th>", escape(name));
    }
    html.push_str("</tr></thead>\n<tbody>\n");
    if rows.is_empty() {
        let _ = writeln!(
            html,
            "<tr><td class=\"empty\" colspan=\"{}\">no rows</td></tr>",
            headings.len()
        );
    }
    for row in rows {
        html.push_str("<tr>");
        for cell in row {
            let _ = write!(html, "<td>{cell}</td>");
        }
        html.push_str("</tr>\n");
    }
    html.push_str("</tbody>\n</table></div>\n");
    html
}

fn result_table(rows: &[ResultRow]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.values().iter().map(|v| escape(v)).collect())
        .collect();
    table_html(&HEADINGS, &cells)
}

/// The largest average money figure of a table, for a shared scale.
fn largest_money(rows: &[ResultRow]) -> f64 {
    rows.iter()
        .flat_map(|r| {
            [
                r.avg_order_subtotal,
                r.avg_order_total,
                r.avg_discount_total,
            ]
        })
        .map(Figure::for_drawing)
        .fold(0.0, f64::max)
}

/// The dashboard's chart: subtotal, total and discount per percentage.
fn bar_chart(rows: &[ResultRow], top: Option<f64>) -> Value {
    type Money = fn(&ResultRow) -> Figure;
    let money: [(&str, &str, Money); 3] = [
        ("avg subtotal", "--subtotal", |r| r.avg_order_subtotal),
        ("avg total", "--total", |r| r.avg_order_total),
        ("avg discount", "--discount", |r| r.avg_discount_total),
    ];
    let series: Vec<Value> = money
        .iter()
        .map(|(name, colour, figure)| {
            json!({
                "name": name,
                "color": colour,
                "values": rows.iter().map(|r| figure(r).for_drawing()).collect::<Vec<_>>(),
                "labels": rows.iter().map(|r| figure(r).to_string()).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "kind": "bars",
        "xLabel": "discount percentage",
        "yLabel": "currency units",
        "categories": rows.iter().map(|r| format!("{}%", r.percentage())).collect::<Vec<_>>(),
        "series": series,
        "yMax": top,
    })
}

/// One line chart per figure: a line per percentage over the sampled epochs.
fn over_the_epochs(html: &mut String, charts: &mut Vec<Value>, history: &ReportHistory) {
    let drawn = history.drawn();
    let percentages: BTreeMap<i64, String> = drawn
        .iter()
        .flat_map(|(_, table)| table.iter().map(|r| (r.percentage_micros, r.percentage())))
        .collect();
    let indexed: Vec<BTreeMap<i64, &ResultRow>> = drawn
        .iter()
        .map(|(_, table)| table.iter().map(|r| (r.percentage_micros, r)).collect())
        .collect();
    card_start(html, "Over the epochs");
    let sampled = if history.stride > 1 {
        format!(
            " One epoch in {} is drawn ({} of {}), and the last.",
            history.stride,
            drawn.len(),
            history.epochs
        )
    } else {
        String::new()
    };
    let _ = writeln!(
        html,
        "<p class=\"note\">Each figure per discount percentage after each epoch (epoch 0 is \
         the base snapshots).{sampled} The exact figures of the last epochs are below.</p>"
    );
    for (i, (heading, unit)) in FIGURES.iter().enumerate() {
        let _ = writeln!(html, "<h2>{}</h2>", escape(heading));
        let series: Vec<Value> = percentages
            .iter()
            .enumerate()
            .map(|(n, (p, shown))| {
                let values: Vec<Value> = indexed
                    .iter()
                    .map(|table| {
                        table
                            .get(p)
                            .map_or(Value::Null, |r| json!(r.figures()[i].for_drawing()))
                    })
                    .collect();
                json!({ "name": format!("{shown}%"), "color": PALETTE[n % PALETTE.len()], "values": values })
            })
            .collect();
        let spec = json!({
            "kind": "lines",
            "xLabel": "epoch",
            "yLabel": unit,
            "x": drawn.iter().map(|(e, _)| *e).collect::<Vec<_>>(),
            "series": series,
        });
        chart_box(html, charts, spec);
    }
    html.push_str("</section>\n");
}

/// The exact figures of the last epochs: per figure, a percentage per row and an epoch
/// per column.
fn recent_tables(html: &mut String, history: &ReportHistory) {
    let recent: Vec<(Epoch, BTreeMap<i64, &ResultRow>)> = history
        .recent
        .iter()
        .map(|(e, table)| (*e, table.iter().map(|r| (r.percentage_micros, r)).collect()))
        .collect();
    let percentages: BTreeSet<i64> = recent.iter().flat_map(|(_, t)| t.keys().copied()).collect();
    card_start(
        html,
        &format!("The last {} epochs, exact", recent.len().min(RECENT)),
    );
    let mut headings = vec!["discount %".to_string()];
    headings.extend(recent.iter().map(|(e, _)| format!("epoch {e}")));
    let headings: Vec<&str> = headings.iter().map(String::as_str).collect();
    for (i, (heading, _)) in FIGURES.iter().enumerate() {
        let _ = writeln!(html, "<h2>{}</h2>", escape(heading));
        let rows: Vec<Vec<String>> = percentages
            .iter()
            .map(|p| {
                let mut cells = vec![escape(&crate::decimal::format_micros(*p))];
                cells.extend(recent.iter().map(|(_, table)| {
                    table
                        .get(p)
                        .map(|r| r.figures()[i].to_string())
                        .unwrap_or_default()
                }));
                cells
            })
            .collect();
        html.push_str(&table_html(&headings, &rows));
    }
    html.push_str("</section>\n");
}

/// Per percentage and figure: `baseline → scenario` and the change, marked when it
/// rises or falls.
fn comparison_table(baseline: &[ResultRow], scenario: &[ResultRow]) -> String {
    let cell = |f: &FigureChange| {
        let side = |f: Option<Figure>| f.map_or("–".to_string(), |f| f.to_string());
        let change = match f.change {
            Some(c) if c.units > 0 => format!(" <span class=\"change up\">{}</span>", c.signed()),
            Some(c) if c.units < 0 => {
                format!(" <span class=\"change down\">{}</span>", c.signed())
            }
            Some(c) => format!(" <span class=\"change\">{}</span>", c.signed()),
            None => String::new(),
        };
        format!(
            "<span class=\"was\">{}</span> → {}{change}",
            side(f.baseline),
            side(f.scenario)
        )
    };
    let rows: Vec<Vec<String>> = compare(baseline, scenario)
        .iter()
        .map(|c| {
            let mut cells = vec![escape(&c.percentage())];
            cells.extend(c.figures.iter().map(cell));
            cells
        })
        .collect();
    table_html(&HEADINGS, &rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decimal::SCALE;
    use crate::result::result_row;

    fn epoch(e: Epoch, orders: i128) -> EpochOutput {
        EpochOutput {
            epoch: e,
            files: vec![format!("u{e}.csv")],
            position: None,
            transactions: 0,
            freshness: None,
            committed_at: None,
            stream_delay: None,
            rows: 1,
            changes: Vec::new(),
            rejects: Vec::new(),
            elapsed: std::time::Duration::ZERO,
            resident_bytes: None,
            table: vec![result_row(10 * SCALE, (orders, orders, 1_000_000 * orders)).unwrap()],
            enriched: Vec::new(),
        }
    }

    #[test]
    fn history_stays_bounded_and_keeps_the_last_epoch() {
        let mut history = ReportHistory::default();
        for e in 0..5_000 {
            history.record(&epoch(e, 1 + e as i128));
        }
        assert!(history.samples.len() <= MAX_SAMPLES);
        assert_eq!(history.recent.len(), RECENT);
        let drawn = history.drawn();
        assert_eq!(drawn.first().unwrap().0, 0);
        assert_eq!(drawn.last().unwrap().0, 4_999);
        assert!(drawn.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(history.updates, 4_999);
    }
}
