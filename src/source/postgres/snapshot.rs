//! Epoch 0 from the database: each worker, on its own connection, imports the snapshot
//! the replication slot exported and copies its share of each table's pages, so the
//! snapshot is read in parallel and fits the stream exactly (no gap, no overlap).

use std::borrow::Cow;

use postgres::Client;

use super::checks::Tables;
use super::rows::Shape;
use crate::input::lines::read_line;
use crate::input::{BadRows, InputError, Op, Share, ShareReport};
use crate::model::{Change, Position};
use crate::pg::{error_text, quote_ident, Database};

/// Copies this worker's share of both tables inside `snapshot`: rows on pages
/// `[blocks × index / peers, blocks × (index + 1) / peers)`, the last worker's share open
/// at the end. `blocks` were counted once, by the leader, so that the shares fit.
pub fn copy_share(
    database: &Database,
    tables: &Tables,
    snapshot: &str,
    blocks: [u64; 2],
    share: Share,
    bad_rows: BadRows,
    sink: &mut dyn FnMut(Position, Change),
) -> Result<Vec<ShareReport>, (usize, InputError)> {
    let fail = |index: usize, reason: String| (index, InputError::file("snapshot", reason));
    let mut client = database.connect().map_err(|e| fail(0, e))?;
    client
        .batch_execute(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT '{}'",
            snapshot.replace('\'', "''")
        ))
        .map_err(|e| {
            fail(
                0,
                format!("cannot import the snapshot {snapshot}: {}", error_text(&e)),
            )
        })?;
    let mut position: Position = 0;
    let mut reports = Vec::new();
    for (index, shape) in tables.shapes.iter().enumerate() {
        let (start, end) = page_range(blocks[index], share);
        let report = copy_table(
            &mut client,
            &shape.read_columns(),
            &tables.quoted[index],
            (start, end),
            bad_rows,
            &mut position,
            sink,
        )
        .map_err(|e| (index, e))?;
        reports.push(report);
    }
    client
        .batch_execute("COMMIT")
        .map_err(|e| fail(1, error_text(&e)))?;
    Ok(reports)
}

/// The pages of a share; `None` as the end is open.
fn page_range(blocks: u64, share: Share) -> (u64, Option<u64>) {
    let peers = share.peers as u64;
    let index = share.index as u64;
    let start = blocks * index / peers;
    let end = (index + 1 < peers).then(|| blocks * (index + 1) / peers);
    (start, end)
}

fn copy_table(
    client: &mut Client,
    shape: &Shape,
    table_sql: &str,
    (start, end): (u64, Option<u64>),
    bad_rows: BadRows,
    position: &mut Position,
    sink: &mut dyn FnMut(Position, Change),
) -> Result<ShareReport, InputError> {
    let columns: Vec<String> = shape.names.iter().map(|n| quote_ident(n)).collect();
    let mut range = format!("ctid >= '({start},0)'::tid");
    if let Some(end) = end {
        range.push_str(&format!(" AND ctid < '({end},0)'::tid"));
    }
    let sql = format!(
        "COPY (SELECT {} FROM {table_sql} WHERE {range}) TO STDOUT",
        columns.join(", ")
    );
    let where_ = format!("snapshot of {}", shape.name);
    let io_error = |e: std::io::Error| InputError::file(&where_, format!("cannot read: {e}"));
    let reader = client
        .copy_out(&sql)
        .map_err(|e| InputError::file(&where_, error_text(&e)))?;
    let mut reader = std::io::BufReader::with_capacity(1 << 16, reader);
    let mut report = ShareReport::default();
    let mut line = Vec::new();
    loop {
        line.clear();
        if read_line(&mut reader, &mut line).map_err(io_error)? == 0 {
            break;
        }
        let mut values = Vec::with_capacity(shape.names.len());
        copy_text_values(&line, &mut values);
        let parsed = shape.change(Op::Upsert, &values, "snapshot");
        if let Some(change) = report.accept(parsed, bad_rows)? {
            *position += 1;
            sink(*position, change);
        }
    }
    Ok(report)
}

/// One line of COPY's text format: tab-separated, `\N` for NULL, backslash escapes;
/// a field without a backslash is borrowed from the line as it is.
pub fn copy_text_values<'a>(line: &'a [u8], values: &mut Vec<Option<Cow<'a, str>>>) {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    for field in line.split(|&b| b == b'\t') {
        if field == b"\\N" {
            values.push(None);
        } else if !field.contains(&b'\\') {
            values.push(Some(String::from_utf8_lossy(field)));
        } else {
            values.push(Some(Cow::Owned(unescape(field))));
        }
    }
}

fn unescape(field: &[u8]) -> String {
    let mut text = Vec::with_capacity(field.len());
    let mut bytes = field.iter().copied().peekable();
    while let Some(b) = bytes.next() {
        if b != b'\\' {
            text.push(b);
            continue;
        }
        match bytes.next() {
            Some(b'n') => text.push(b'\n'),
            Some(b'r') => text.push(b'\r'),
            Some(b't') => text.push(b'\t'),
            Some(b'b') => text.push(8),
            Some(b'f') => text.push(12),
            Some(b'v') => text.push(11),
            Some(d @ b'0'..=b'7') => {
                let mut value = u32::from(d - b'0');
                for _ in 0..2 {
                    match bytes.peek() {
                        Some(&o @ b'0'..=b'7') => {
                            value = value * 8 + u32::from(o - b'0');
                            bytes.next();
                        }
                        _ => break,
                    }
                }
                text.push(value as u8);
            }
            Some(other) => text.push(other),
            None => text.push(b'\\'),
        }
    }
    String::from_utf8_lossy(&text).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_text_lines_unescape() {
        let mut values = Vec::new();
        copy_text_values(b"1\t\\N\ta\\tb\\\\c\\n\t\\101\n", &mut values);
        assert_eq!(
            values,
            [
                Some(Cow::Borrowed("1")),
                None,
                Some(Cow::Owned("a\tb\\c\n".to_string())),
                Some(Cow::Owned("A".to_string()))
            ]
        );
    }

    #[test]
    fn page_ranges_cover_every_page_once() {
        for peers in 1..5 {
            let ranges: Vec<_> = (0..peers)
                .map(|index| page_range(10, Share { index, peers }))
                .collect();
            assert_eq!(ranges[0].0, 0);
            for pair in ranges.windows(2) {
                assert_eq!(pair[0].1, Some(pair[1].0));
            }
            assert_eq!(ranges[peers - 1].1, None);
        }
    }
}
