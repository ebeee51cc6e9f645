//! Writing results: the final table (text, CSV, JSON Lines), the changelog, the enriched
//! orders, the rejects, and the what-if comparison.

use std::io::{self, Write};

use chrono::{DateTime, SecondsFormat};

use crate::decimal::{self, format_micros};
use crate::input::Reject;
use crate::model::{Epoch, MAX_PERCENTAGE_MICROS};
use crate::result::{compare, ChangeRow, Comparison, FigureChange, ResultRow, COLUMNS};
use crate::run::{EnrichedChange, EpochOutput};

/// How the final table is printed on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum TableFormat {
    /// Aligned columns for people.
    #[default]
    Table,
    /// The SPEC's CSV columns.
    Csv,
    /// One JSON object per row, with ksqlDB's upper-case column names.
    Json,
}

/// Writes the final table in `format`.
pub fn write_table(out: &mut dyn Write, rows: &[ResultRow], format: TableFormat) -> io::Result<()> {
    match format {
        TableFormat::Table => {
            let cells: Vec<Vec<String>> = rows.iter().map(|r| r.values().to_vec()).collect();
            write_aligned(out, &COLUMNS, &cells)
        }
        TableFormat::Csv => {
            let mut csv = csv::Writer::from_writer(out);
            csv.write_record(COLUMNS)?;
            for row in rows {
                csv.write_record(row.values())?;
            }
            csv.flush()
        }
        TableFormat::Json => {
            for row in rows {
                writeln!(out, "{}", json_row(row))?;
            }
            Ok(())
        }
    }
}

/// How the changelog is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ChangelogFormat {
    /// The SPEC's CSV: `epoch,diff,` and the result's columns; a change is -1 then +1.
    #[default]
    Csv,
    /// JSON Lines in Debezium's envelope: `op` `c`/`u`/`d` with `before` and `after` rows
    /// (ksqlDB's upper-case columns), and the `epoch`.
    Debezium,
    /// CSV with Flink's row kinds instead of diffs: `epoch,op,` and the columns, `op`
    /// being `+I`, `-U` then `+U`, or `-D`.
    Flink,
}

/// Writes the changelog, every epoch in order.
pub fn write_changelog(
    out: &mut dyn Write,
    format: ChangelogFormat,
    epochs: &[EpochOutput],
) -> io::Result<()> {
    write_changelog_header(out, format)?;
    for epoch in epochs {
        write_changelog_rows(out, format, &epoch.changes)?;
    }
    Ok(())
}

/// The changelog's header line, for the formats that have one.
pub fn write_changelog_header(out: &mut dyn Write, format: ChangelogFormat) -> io::Result<()> {
    let first = match format {
        ChangelogFormat::Csv => ["epoch", "diff"],
        ChangelogFormat::Flink => ["epoch", "op"],
        ChangelogFormat::Debezium => return Ok(()),
    };
    let mut csv = csv::Writer::from_writer(out);
    csv.write_record(first.iter().chain(COLUMNS.iter()))?;
    csv.flush()
}

/// Changelog lines, without the header.
pub fn write_changelog_rows(
    out: &mut dyn Write,
    format: ChangelogFormat,
    changes: &[ChangeRow],
) -> io::Result<()> {
    match format {
        ChangelogFormat::Csv => {
            let mut csv = csv::Writer::from_writer(out);
            for change in changes {
                csv.write_record(changelog_record(change))?;
            }
            csv.flush()
        }
        ChangelogFormat::Flink => {
            let mut csv = csv::Writer::from_writer(out);
            for (epoch, event) in events(changes) {
                let kinds = match event {
                    Event::Insert(row) => vec![("+I", row)],
                    Event::Update(before, after) => vec![("-U", before), ("+U", after)],
                    Event::Delete(row) => vec![("-D", row)],
                };
                for (kind, row) in kinds {
                    let mut record = vec![epoch.to_string(), kind.to_string()];
                    record.extend(row.values());
                    csv.write_record(&record)?;
                }
            }
            csv.flush()
        }
        ChangelogFormat::Debezium => {
            for (epoch, event) in events(changes) {
                let (op, before, after) = match event {
                    Event::Insert(row) => ("c", None, Some(row)),
                    Event::Update(before, after) => ("u", Some(before), Some(after)),
                    Event::Delete(row) => ("d", Some(row), None),
                };
                let row = |r: Option<&ResultRow>| r.map_or("null".to_string(), json_row);
                writeln!(
                    out,
                    "{{\"op\":\"{op}\",\"epoch\":{epoch},\"before\":{},\"after\":{}}}",
                    row(before),
                    row(after)
                )?;
            }
            Ok(())
        }
    }
}

/// A change to one row of the result, as stream processors name them.
enum Event<'a> {
    Insert(&'a ResultRow),
    Update(&'a ResultRow, &'a ResultRow),
    Delete(&'a ResultRow),
}

/// Pairs each -1 with the +1 of the same percentage and epoch that follows it.
fn events(changes: &[ChangeRow]) -> Vec<(Epoch, Event<'_>)> {
    let mut events = Vec::new();
    let mut rest = changes.iter().peekable();
    while let Some(change) = rest.next() {
        let event = if change.diff < 0 {
            let same_row = |next: &&ChangeRow| {
                next.diff > 0
                    && next.epoch == change.epoch
                    && next.row.percentage_micros == change.row.percentage_micros
            };
            match rest.next_if(same_row) {
                Some(after) => Event::Update(&change.row, &after.row),
                None => Event::Delete(&change.row),
            }
        } else {
            Event::Insert(&change.row)
        };
        events.push((change.epoch, event));
    }
    events
}

/// One result row as a JSON object with ksqlDB's upper-case column names.
/// A result row as one JSON object with ksqlDB's upper-case names, figures as exact
/// JSON numbers.
pub fn json_row(row: &ResultRow) -> String {
    let fields: Vec<String> = COLUMNS
        .iter()
        .zip(row.values())
        .map(|(name, value)| format!("\"{}\":{value}", name.to_ascii_uppercase()))
        .collect();
    format!("{{{}}}", fields.join(","))
}

/// Changes as JSON Lines: `EPOCH`, `DIFF` and the result's columns, upper case.
pub fn write_changes_json(out: &mut dyn Write, changes: &[ChangeRow]) -> io::Result<()> {
    for change in changes {
        let row = json_row(&change.row);
        writeln!(
            out,
            "{{\"EPOCH\":{},\"DIFF\":{},{}",
            change.epoch,
            change.diff,
            &row[1..]
        )?;
    }
    Ok(())
}

fn changelog_record(change: &ChangeRow) -> Vec<String> {
    let mut record = vec![change.epoch.to_string(), format!("{:+}", change.diff)];
    record.extend(change.row.values());
    record
}

/// Prints each epoch's changes as aligned text, for people watching a run.
pub fn write_epochs_text(out: &mut dyn Write, epochs: &[EpochOutput]) -> io::Result<()> {
    for epoch in epochs {
        let rows = if epoch.rows == 1 { "row" } else { "rows" };
        writeln!(
            out,
            "epoch {}: {} ({} {rows})",
            epoch.epoch,
            epoch.files.join(", "),
            epoch.rows
        )?;
        if epoch.changes.is_empty() {
            writeln!(out, "  no change to the result")?;
        } else {
            let mut header = vec!["diff"];
            header.extend(COLUMNS);
            let cells: Vec<Vec<String>> = epoch
                .changes
                .iter()
                .map(|c| changelog_record(c)[1..].to_vec())
                .collect();
            write_aligned(out, &header, &cells)?;
        }
        writeln!(out)?;
    }
    Ok(())
}

/// Writes one `stats:` line per epoch, then the peak resident memory, for scripts.
pub fn write_stats(out: &mut dyn Write, epochs: &[EpochOutput]) -> io::Result<()> {
    for epoch in epochs {
        write_epoch_stats(out, epoch)?;
    }
    if let Some(peak) = crate::memory::peak_resident_bytes() {
        writeln!(out, "stats: peak_resident_bytes={peak}")?;
    }
    Ok(())
}

/// One epoch's `stats:` line.
pub fn write_epoch_stats(out: &mut dyn Write, epoch: &EpochOutput) -> io::Result<()> {
    {
        let seconds = epoch.elapsed.as_secs_f64();
        let per_second = if seconds > 0.0 {
            (epoch.rows as f64 / seconds) as u64
        } else {
            0
        };
        write!(
            out,
            "stats: epoch={} rows={} seconds={seconds:.6} rows_per_sec={per_second}",
            epoch.epoch, epoch.rows
        )?;
        if let Some(position) = &epoch.position {
            write!(
                out,
                " position={position} transactions={}",
                epoch.transactions
            )?;
        }
        if let Some(freshness) = epoch.freshness {
            write!(out, " freshness_ms={:.3}", freshness.as_secs_f64() * 1e3)?;
        }
        if let Some(delay) = epoch.stream_delay {
            write!(out, " stream_delay_ms={:.3}", delay.as_secs_f64() * 1e3)?;
        }
        // Live stats come after every other live output (see `app`), so this is how
        // fresh the result is once they all hold it: a database table, HTTP clients.
        if let Some(at) = epoch.committed_at {
            if let Ok(held) = std::time::SystemTime::now().duration_since(at) {
                write!(out, " outputs_freshness_ms={:.3}", held.as_secs_f64() * 1e3)?;
            }
        }
        if let Some(bytes) = epoch.resident_bytes {
            write!(out, " resident_bytes={bytes}")?;
        }
        writeln!(out)
    }
}

/// Writes the enriched orders' changes, as the ksqlDB recipe's enriched stream shows them:
/// each counted order with its percentage, order total and discount total (exact).
pub fn write_enriched(out: &mut dyn Write, enriched: &[EnrichedChange]) -> io::Result<()> {
    let mut csv = csv::Writer::from_writer(out);
    csv.write_record([
        "epoch",
        "diff",
        "id",
        "order_time",
        "customer_id",
        "item_ct",
        "order_subtotal",
        "discount_code",
        "percentage",
        "order_total",
        "discount_total",
    ])?;
    // subtotal (micros) × percentage (micros) / 100 has 14 fractional digits, exactly.
    let hundred = i128::from(MAX_PERCENTAGE_MICROS);
    for change in enriched {
        let order = &change.order;
        let subtotal = i128::from(order.subtotal_micros);
        let p = i128::from(change.percentage_micros);
        csv.write_record([
            change.epoch.to_string(),
            format!("{:+}", change.diff),
            change.id.to_string(),
            order.order_time_ms.map(format_time).unwrap_or_default(),
            order.customer_id.to_string(),
            order.item_ct.to_string(),
            format_micros(order.subtotal_micros),
            order.discount_code.to_string(),
            format_micros(change.percentage_micros),
            decimal::format_scaled(subtotal * (hundred - p), 14),
            decimal::format_scaled(subtotal * p, 14),
        ])?;
    }
    csv.flush()
}

fn format_time(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_else(|| ms.to_string())
}

/// Writes the rejected rows: where each was, why, and its text.
pub fn write_rejects(out: &mut dyn Write, rejects: &[Reject]) -> io::Result<()> {
    let mut csv = csv::Writer::from_writer(out);
    csv.write_record(["file", "line", "column", "reason", "row"])?;
    for reject in rejects {
        let error = &reject.error;
        csv.write_record([
            error.file.clone(),
            error.line.map(|l| l.to_string()).unwrap_or_default(),
            error.column.clone().unwrap_or_default(),
            error.reason.clone(),
            reject.row.clone(),
        ])?;
    }
    csv.flush()
}

/// The what-if comparison's CSV: per percentage, each figure in the baseline, in the
/// scenario, and the change between the two rounded figures (16 columns).
pub fn comparison_csv(compared: &[Comparison]) -> (Vec<String>, Vec<Vec<String>>) {
    let mut header = vec!["percentage".to_string()];
    for column in &COLUMNS[1..] {
        for suffix in ["baseline", "scenario", "change"] {
            header.push(format!("{column}_{suffix}"));
        }
    }
    let text = |f: Option<crate::result::Figure>| f.map(|f| f.to_string()).unwrap_or_default();
    let rows = compared
        .iter()
        .map(|c| {
            let mut cells = vec![c.percentage()];
            for figure in &c.figures {
                cells.extend([
                    text(figure.baseline),
                    text(figure.scenario),
                    figure.change.map(|f| f.signed()).unwrap_or_default(),
                ]);
            }
            cells
        })
        .collect();
    (header, rows)
}

/// Writes the what-if comparison in `format`: for people, one block per percentage
/// (figures down, baseline / scenario / change across, under 100 columns); CSV in 16
/// columns; JSON Lines with `run --format json`'s upper-case names and number values.
pub fn write_comparison(
    out: &mut dyn Write,
    baseline: &[ResultRow],
    scenario: &[ResultRow],
    format: TableFormat,
) -> io::Result<()> {
    let compared = compare(baseline, scenario);
    match format {
        TableFormat::Table => write_comparison_blocks(out, &compared),
        TableFormat::Csv => {
            let (header, rows) = comparison_csv(&compared);
            let mut csv = csv::Writer::from_writer(out);
            csv.write_record(&header)?;
            for row in &rows {
                csv.write_record(row)?;
            }
            csv.flush()
        }
        TableFormat::Json => {
            for c in &compared {
                writeln!(out, "{}", comparison_json(c))?;
            }
            Ok(())
        }
    }
}

/// `{"PERCENTAGE":10,"BASELINE":{row},"SCENARIO":{row},"CHANGE":{...}}`: the two sides
/// are rows exactly as `run --format json` writes them (`null` for a missing group), the
/// change has the same names for the figures, `null` where a side has no average.
fn comparison_json(c: &Comparison) -> String {
    let side = |row: &Option<ResultRow>| row.as_ref().map_or("null".to_string(), json_row);
    let change: Vec<String> = COLUMNS[1..]
        .iter()
        .zip(&c.figures)
        .map(|(name, f)| {
            let value = f.change.map_or("null".to_string(), |f| f.to_string());
            format!("\"{}\":{value}", name.to_ascii_uppercase())
        })
        .collect();
    format!(
        "{{\"PERCENTAGE\":{},\"BASELINE\":{},\"SCENARIO\":{},\"CHANGE\":{{{}}}}}",
        c.percentage(),
        side(&c.baseline),
        side(&c.scenario),
        change.join(",")
    )
}

/// One block per percentage: a title line, then a line per figure with its baseline,
/// scenario and change, the columns aligned across every block.
fn write_comparison_blocks(out: &mut dyn Write, compared: &[Comparison]) -> io::Result<()> {
    let cell = |f: &FigureChange| {
        let text = |f: Option<crate::result::Figure>| f.map(|f| f.to_string()).unwrap_or_default();
        [
            text(f.baseline),
            text(f.scenario),
            f.change.map(|f| f.signed()).unwrap_or_default(),
        ]
    };
    let mut widths = ["baseline".len(), "scenario".len(), "change".len()];
    for c in compared {
        for figure in &c.figures {
            for (width, text) in widths.iter_mut().zip(cell(figure)) {
                *width = (*width).max(text.chars().count());
            }
        }
    }
    let label = COLUMNS[1..].iter().map(|c| c.len()).max().unwrap_or(0);
    let line = |name: &str, cells: [String; 3]| {
        let [b, s, c] = cells;
        let [wb, ws, wc] = widths;
        format!("  {name:<label$}  {b:>wb$}  {s:>ws$}  {c:>wc$}")
            .trim_end()
            .to_string()
    };
    if compared.is_empty() {
        return writeln!(out, "no rows in the baseline or the scenario");
    }
    for (i, c) in compared.iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        let only = match (&c.baseline, &c.scenario) {
            (None, _) => " (only in the scenario)",
            (_, None) => " (only in the baseline)",
            _ => "",
        };
        writeln!(out, "percentage {}{only}", c.percentage())?;
        writeln!(
            out,
            "{}",
            line("", ["baseline", "scenario", "change"].map(String::from))
        )?;
        for (name, figure) in COLUMNS[1..].iter().zip(&c.figures) {
            writeln!(out, "{}", line(name, cell(figure)))?;
        }
    }
    Ok(())
}

/// Writes rows under a header with every column as wide as its widest cell; numbers
/// (every cell here) are right-aligned.
fn write_aligned(out: &mut dyn Write, header: &[&str], rows: &[Vec<String>]) -> io::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| -> String {
        cells
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:>width$}"))
            .collect::<Vec<_>>()
            .join("  ")
    };
    writeln!(out, "{}", line(&mut header.iter().copied()))?;
    for row in rows {
        writeln!(out, "{}", line(&mut row.iter().map(String::as_str)))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::result_row;

    fn row(p: i64, sums: crate::model::Sums) -> ResultRow {
        result_row(p * 1_000_000, sums).unwrap()
    }

    #[test]
    fn csv_and_json_tables() {
        let rows = vec![row(15, (2, 3, 112_410_000)), row(50, (1, 3, 201_170_000))];
        let mut csv = Vec::new();
        write_table(&mut csv, &rows, TableFormat::Csv).unwrap();
        assert_eq!(
            String::from_utf8(csv).unwrap(),
            "percentage,avg_item_ct,avg_order_subtotal,avg_order_total,avg_discount_total,order_count\n\
             15,2,56.21,47.77,8.43,2\n\
             50,3,201.17,100.59,100.59,1\n"
        );
        let mut json = Vec::new();
        write_table(&mut json, &rows[1..], TableFormat::Json).unwrap();
        assert_eq!(
            String::from_utf8(json).unwrap(),
            "{\"PERCENTAGE\":50,\"AVG_ITEM_CT\":3,\"AVG_ORDER_SUBTOTAL\":201.17,\"AVG_ORDER_TOTAL\":100.59,\"AVG_DISCOUNT_TOTAL\":100.59,\"ORDER_COUNT\":1}\n"
        );
    }

    #[test]
    fn text_table_aligns_any_width() {
        let rows = vec![
            row(5, (1, 1, 1_000_000)),
            row(50, (1_000_000, 3, 123_456_789_000_000)),
        ];
        let mut text = Vec::new();
        write_table(&mut text, &rows, TableFormat::Table).unwrap();
        let text = String::from_utf8(text).unwrap();
        let widths: Vec<usize> = text.lines().map(str::len).collect();
        assert!(widths.windows(2).all(|w| w[0] == w[1]), "{text}");
    }

    #[test]
    fn comparison_csv_shows_change_of_rounded_figures() {
        let baseline = vec![row(40, (1, 11, 163_990_000))];
        let scenario = vec![row(50, (1, 3, 201_170_000))];
        let (header, rows) = comparison_csv(&compare(&baseline, &scenario));
        assert_eq!(header.len(), 16);
        assert_eq!(rows[0][..4], ["40", "11", "", ""]);
        assert_eq!(rows[0][13..], ["1", "0", "-1"]);
        assert_eq!(rows[1][13..], ["0", "1", "+1"]);
    }

    #[test]
    fn comparison_json_rows_are_run_rows() {
        let baseline = vec![row(40, (1, 11, 163_990_000))];
        let scenario = vec![row(40, (2, 12, 163_990_000))];
        let mut json = Vec::new();
        write_comparison(&mut json, &baseline, &scenario, TableFormat::Json).unwrap();
        let mut run = Vec::new();
        write_table(&mut run, &baseline, TableFormat::Json).unwrap();
        let (json, run) = (
            String::from_utf8(json).unwrap(),
            String::from_utf8(run).unwrap(),
        );
        assert!(
            json.contains(&format!("\"BASELINE\":{},", run.trim_end())),
            "{json}"
        );
        assert!(
            json.ends_with("\"CHANGE\":{\"AVG_ITEM_CT\":-5,\"AVG_ORDER_SUBTOTAL\":-81.99,\"AVG_ORDER_TOTAL\":-49.19,\"AVG_DISCOUNT_TOTAL\":-32.80,\"ORDER_COUNT\":1}}\n"),
            "{json}"
        );
    }
}
