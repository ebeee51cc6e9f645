//! A self-contained HTML report (no scripts, no network resources): the final table, a
//! bar chart of the average subtotal, total and discount per percentage, how every
//! figure moved epoch by epoch, and for `what-if` the baseline and the scenario side by
//! side with the changes marked.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::output::comparison_csv;
use crate::result::{compare, ResultRow, COLUMNS};
use crate::run::JobOutput;

/// What the report is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportKind {
    Run,
    WhatIf,
}

/// The whole report as one HTML document.
pub fn html_report(result: &JobOutput, kind: ReportKind) -> String {
    let mut html = String::new();
    let title = match kind {
        ReportKind::Run => "Discount analysis",
        ReportKind::WhatIf => "Discount analysis: what if",
    };
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\n<style>{STYLE}</style></head><body>\n<h1>{title}</h1>\n"
    );
    let files: Vec<String> = result
        .epochs
        .iter()
        .flat_map(|e| e.files.iter().cloned())
        .collect();
    let _ = writeln!(
        html,
        "<p class=\"files\">{} epochs from {}</p>",
        result.epochs.len(),
        escape(&files.join(", "))
    );
    if kind == ReportKind::WhatIf {
        html.push_str("<h2>Baseline and scenario</h2>\n");
        html.push_str(&comparison_table(&result.baseline, &result.table));
        // One scale for both charts, so that bars compare across them.
        let scale = largest_subtotal(&result.baseline).max(largest_subtotal(&result.table));
        html.push_str("<h2>Baseline</h2>\n");
        html.push_str(&bar_chart(&result.baseline, scale));
        html.push_str("<h2>Scenario</h2>\n");
        html.push_str(&bar_chart(&result.table, scale));
    } else {
        html.push_str("<h2>Final table</h2>\n");
        html.push_str(&table(
            &COLUMNS,
            result.table.iter().map(|r| r.values().to_vec()),
        ));
        html.push_str(&bar_chart(&result.table, largest_subtotal(&result.table)));
    }
    if result.epochs.len() > 1 {
        html.push_str("<h2>Epoch by epoch</h2>\n");
        html.push_str(&history(result));
    }
    html.push_str("</body></html>\n");
    html
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222}\
table{border-collapse:collapse;margin:1em 0}th,td{padding:.25em .7em;border-bottom:1px solid #ddd;text-align:right}\
th{background:#f4f4f4}.up{background:#e3f5e1}.down{background:#fbe4e4}.files{color:#666}\
svg text{font-size:11px;fill:#333}.legend span{display:inline-block;width:1em;height:1em;margin:0 .3em 0 1em;vertical-align:middle}";

/// The colours of the three bars: average subtotal, total after discount, discount.
const BARS: [(&str, usize, &str); 3] = [
    ("average subtotal", 2, "#4e79a7"),
    ("average total", 3, "#59a14f"),
    ("average discount", 4, "#e15759"),
];

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn table(header: &[&str], rows: impl Iterator<Item = Vec<String>>) -> String {
    let mut html = String::from("<table><tr>");
    for name in header {
        let _ = write!(html, "<th>{}</th>", escape(name));
    }
    html.push_str("</tr>\n");
    for row in rows {
        html.push_str("<tr>");
        for cell in row {
            let _ = write!(html, "<td>{}</td>", escape(&cell));
        }
        html.push_str("</tr>\n");
    }
    html.push_str("</table>\n");
    html
}

/// A printed money figure in cents, for drawing only.
fn cents(row: &ResultRow, column: usize) -> f64 {
    row.figures()[column - 1].for_drawing() * 100.0
}

/// The largest average subtotal of a table, in cents (at least 1).
fn largest_subtotal(rows: &[ResultRow]) -> f64 {
    rows.iter().map(|r| cents(r, 2)).fold(1.0, f64::max)
}

/// Grouped bars per percentage; `largest` (in cents) is the full height, marked by a
/// dashed line and its value.
fn bar_chart(rows: &[ResultRow], largest: f64) -> String {
    let value = cents;
    let (group, bar, height) = (60.0, 16.0, 200.0);
    let width = 50.0 + group * rows.len() as f64;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{}\" role=\"img\">\n",
        height + 40.0
    );
    let _ = writeln!(
        svg,
        "<line x1=\"45\" y1=\"10\" x2=\"{width}\" y2=\"10\" stroke=\"#bbb\" stroke-dasharray=\"3\"/><text x=\"0\" y=\"14\">{:.2}</text>\
         <line x1=\"45\" y1=\"{1}\" x2=\"{width}\" y2=\"{1}\" stroke=\"#888\"/><text x=\"30\" y=\"{1}\">0</text>",
        largest / 100.0,
        10.0 + height,
    );
    for (i, row) in rows.iter().enumerate() {
        let x = 50.0 + group * i as f64;
        for (b, (name, column, colour)) in BARS.iter().enumerate() {
            let h = value(row, *column) / largest * height;
            let _ = writeln!(
                svg,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{bar}\" height=\"{h:.1}\" fill=\"{colour}\"><title>{}%: {name} {}</title></rect>",
                x + bar * b as f64,
                10.0 + height - h,
                escape(&row.percentage()),
                escape(&row.values()[*column]),
            );
        }
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}%</text>",
            x + bar * 1.5,
            height + 28.0,
            escape(&row.percentage())
        );
    }
    svg.push_str("</svg>\n<div class=\"legend\">");
    for (name, _, colour) in BARS {
        let _ = write!(svg, "<span style=\"background:{colour}\"></span>{name}");
    }
    svg.push_str("</div>\n");
    svg
}

/// Baseline, scenario and change per figure; a change up or down is marked.
fn comparison_table(baseline: &[ResultRow], scenario: &[ResultRow]) -> String {
    let (header, rows) = comparison_csv(&compare(baseline, scenario));
    let mut html = String::from("<table><tr>");
    for name in &header {
        let _ = write!(html, "<th>{}</th>", escape(&name.replace('_', " ")));
    }
    html.push_str("</tr>\n");
    for row in rows {
        html.push_str("<tr>");
        for (i, cell) in row.iter().enumerate() {
            let is_change = i > 0 && i % 3 == 0;
            let class = match cell.chars().next() {
                _ if !is_change || cell.trim_start_matches(['+', '-', '0', '.']).is_empty() => "",
                Some('+') => " class=\"up\"",
                Some('-') => " class=\"down\"",
                _ => "",
            };
            let _ = write!(html, "<td{class}>{}</td>", escape(cell));
        }
        html.push_str("</tr>\n");
    }
    html.push_str("</table>\n");
    html
}

/// For each figure, its value per percentage after every epoch.
fn history(result: &JobOutput) -> String {
    // The table after each epoch, replayed from the changelog.
    let mut current: BTreeMap<i64, ResultRow> = BTreeMap::new();
    let mut tables = Vec::new();
    for epoch in &result.epochs {
        for change in &epoch.changes {
            if change.diff < 0 {
                current.remove(&change.row.percentage_micros);
            } else {
                current.insert(change.row.percentage_micros, change.row.clone());
            }
        }
        tables.push(current.clone());
    }
    let percentages: Vec<(i64, String)> = tables
        .iter()
        .flat_map(|t| t.values().map(|r| (r.percentage_micros, r.percentage())))
        .collect::<BTreeMap<_, _>>()
        .into_iter()
        .collect();
    let mut html = String::new();
    for (column, name) in COLUMNS.iter().enumerate().skip(1) {
        let _ = writeln!(html, "<h3>{}</h3>", escape(&name.replace('_', " ")));
        let mut header = vec!["percentage".to_string()];
        header.extend((0..tables.len()).map(|e| format!("epoch {e}")));
        let rows = percentages.iter().map(|(p, shown)| {
            let mut cells = vec![shown.clone()];
            cells.extend(tables.iter().map(|t| {
                t.get(p)
                    .map(|r| r.values()[column].clone())
                    .unwrap_or_default()
            }));
            cells
        });
        let header: Vec<&str> = header.iter().map(String::as_str).collect();
        html.push_str(&table(&header, rows));
    }
    html
}
