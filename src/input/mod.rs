//! Reading base snapshots and update files into changes.
//!
//! A file is cut into one byte range per worker (`layout`), and each worker parses only
//! its own range, so parsing scales with the workers. Every change carries the byte offset
//! of its row, which orders changes to one key in file order whoever parsed them. Rows are
//! read the same way from CSV and JSON Lines (`row`): columns in any case and order, cells
//! trimmed, unknown columns ignored.

pub mod block;
mod csv_file;
mod csv_orders;
mod csv_records;
mod error;
mod jsonl;
mod layout;
pub mod lines;
mod row;
mod timestamp;

use std::fs::File;
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use error::{quoted, InputError, Reject};
pub use jsonl::{JsonCells, JsonObject};
pub use layout::Part;
pub use row::{
    key_column, parse_change, parse_timestamp, required_columns, CellError, Cells, Column, Op,
};

use crate::model::{Change, Position, Table};

/// What a file holds: a table's initial contents, or one epoch of changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    Snapshot(Table),
    Update,
}

/// A file's format, read off its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    JsonLines,
}

/// A file to read and what it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    pub path: PathBuf,
    pub role: Role,
}

impl Source {
    pub fn new(path: impl Into<PathBuf>, role: Role) -> Source {
        Source {
            path: path.into(),
            role,
        }
    }

    /// The name errors and rejects use for this file.
    pub fn name(&self) -> String {
        self.path.display().to_string()
    }

    pub fn format(&self) -> Result<Format, InputError> {
        format_of(&self.path).ok_or_else(|| {
            InputError::file(
                &self.name(),
                "unknown file type: expected a .csv, .jsonl, .json or .ndjson file",
            )
        })
    }
}

fn format_of(path: &Path) -> Option<Format> {
    let extension = path.extension()?.to_str()?.to_ascii_lowercase();
    match extension.as_str() {
        "csv" => Some(Format::Csv),
        "jsonl" | "json" | "ndjson" => Some(Format::JsonLines),
        _ => None,
    }
}

/// Which worker this is and how many there are, across all processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Share {
    pub index: usize,
    pub peers: usize,
}

/// What to do with a bad row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BadRows {
    /// Stop at the first bad row; nothing of its file is applied.
    #[default]
    Fail,
    /// Leave bad rows out, keep them as rejects, and apply the rest.
    Skip,
}

/// What one worker read of its share of one file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareReport {
    /// Rows turned into changes.
    pub rows: u64,
    /// Rows left out (only under `BadRows::Skip`).
    pub rejects: Vec<Reject>,
}

impl ShareReport {
    /// Counts a row read into a change and hands the change back, or deals with a bad
    /// row as `bad_rows` says: its error under `Fail`, a reject (and `None`) under `Skip`.
    pub fn accept(
        &mut self,
        parsed: Result<Change, Reject>,
        bad_rows: BadRows,
    ) -> Result<Option<Change>, InputError> {
        match (parsed, bad_rows) {
            (Ok(change), _) => {
                self.rows += 1;
                Ok(Some(change))
            }
            (Err(reject), BadRows::Fail) => Err(reject.error),
            (Err(reject), BadRows::Skip) => {
                self.rejects.push(reject);
                Ok(None)
            }
        }
    }
}

/// Reads this worker's share of `source` and hands every change to `sink`.
///
/// Under `BadRows::Fail` the first bad row ends the read with its error; under `Skip` it
/// becomes a reject. A bad file (unreadable, empty, a wrong header) is always an error.
/// The worker finds where its share starts and ends by scanning the whole file; workers
/// that can talk share that work instead (`summarize_share`, `read_share_with`).
pub fn read_share(
    source: &Source,
    share: Share,
    bad_rows: BadRows,
    sink: &mut dyn FnMut(Position, Change),
) -> Result<ShareReport, InputError> {
    read_share_with(source, share, bad_rows, None, None, sink)
}

/// This worker's part of `source`, summarized (a scan of one share of the file, or of
/// `content`, its bytes read once): with every worker's part, in worker order, each can
/// place its cuts (`read_share_with`).
pub fn summarize_share(
    source: &Source,
    share: Share,
    content: Option<&[u8]>,
) -> Result<Part, InputError> {
    let name = source.name();
    let mut input = Input::of(source, content)?;
    let io_error = |e: std::io::Error| InputError::file(&name, format!("cannot read: {e}"));
    let (data_start, csv) = match source.format()? {
        Format::Csv => (csv_file::data_start(&mut input, &name)?, true),
        Format::JsonLines => (0, false),
    };
    layout::summarize(&mut input, data_start, share.peers, share.index, csv).map_err(io_error)
}

/// Reads this worker's share as `read_share` does, its cuts placed from every worker's
/// part (`summarize_share`, in worker order) when `parts` are given, and from `content`
/// when it is given: the whole file as this worker read it once (`read_whole`), which is
/// then scanned and parsed in memory rather than read again for each pass.
pub fn read_share_with(
    source: &Source,
    share: Share,
    bad_rows: BadRows,
    parts: Option<&[Part]>,
    content: Option<&[u8]>,
    sink: &mut dyn FnMut(Position, Change),
) -> Result<ShareReport, InputError> {
    let name = source.name();
    let mut input = Input::of(source, content)?;
    let mut reader = ShareReader {
        path: &source.path,
        name: &name,
        role: source.role,
        bad_rows,
        report: ShareReport::default(),
        sink,
    };
    match source.format()? {
        Format::Csv => csv_file::read(&mut input, share, parts, &mut reader)?,
        Format::JsonLines => jsonl::read(&mut input, share, parts, &mut reader)?,
    }
    Ok(reader.report)
}

/// What a file is read from: the file, or its bytes as this worker read them once.
enum Input<'a> {
    File(File),
    Memory(std::io::Cursor<&'a [u8]>),
}

impl<'a> Input<'a> {
    fn of(source: &Source, content: Option<&'a [u8]>) -> Result<Input<'a>, InputError> {
        Ok(match content {
            Some(content) => Input::Memory(std::io::Cursor::new(content)),
            None => Input::File(open(source, &source.name())?),
        })
    }
}

impl Read for Input<'_> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Input::File(file) => file.read(buffer),
            Input::Memory(bytes) => bytes.read(buffer),
        }
    }
}

impl Seek for Input<'_> {
    fn seek(&mut self, to: std::io::SeekFrom) -> std::io::Result<u64> {
        match self {
            Input::File(file) => file.seek(to),
            Input::Memory(bytes) => bytes.seek(to),
        }
    }
}

/// The whole of `source`, read once, when it has at most `limit` bytes (`None` when it
/// is larger: it is read in passes from the file). Errors are the reader's own.
pub fn read_whole(source: &Source, limit: u64) -> Result<Option<Vec<u8>>, InputError> {
    let name = source.name();
    let cannot_read = |e: std::io::Error| InputError::file(&name, format!("cannot read: {e}"));
    let file = open(source, &name)?;
    let len = file.metadata().map_err(cannot_read)?.len();
    // One byte past the limit tells a file that grew past it from one that did not.
    let mut content = Vec::with_capacity(len.min(limit) as usize + 1);
    file.take(limit + 1)
        .read_to_end(&mut content)
        .map_err(cannot_read)?;
    Ok((content.len() as u64 <= limit).then_some(content))
}

/// Opens a file to read a share of it. Shares are byte ranges, read with seeks, so the
/// file must be a regular file: a pipe or a device is refused with one clear line, and
/// before it is opened (opening a FIFO waits for a writer).
fn open(source: &Source, name: &str) -> Result<File, InputError> {
    let cannot_open = |e: std::io::Error| InputError::file(name, format!("cannot open: {e}"));
    let regular = |metadata: std::fs::Metadata| {
        if metadata.is_file() {
            Ok(())
        } else if metadata.is_dir() {
            Err(InputError::file(name, "is a directory, not a file"))
        } else {
            Err(InputError::file(
                name,
                "not a regular file (a pipe or device cannot be read in parallel shares); copy it to a file first",
            ))
        }
    };
    std::fs::metadata(&source.path)
        .map_err(cannot_open)
        .and_then(regular)?;
    let file = File::open(&source.path).map_err(cannot_open)?;
    // Checked again on what was opened, in case the path was replaced in between.
    file.metadata().map_err(cannot_open).and_then(regular)?;
    Ok(file)
}

/// Turns rows into changes for one share, keeping count and rejects.
struct ShareReader<'a> {
    path: &'a Path,
    name: &'a str,
    role: Role,
    bad_rows: BadRows,
    report: ShareReport,
    sink: &'a mut dyn FnMut(Position, Change),
}

impl ShareReader<'_> {
    /// Hands on the change a row makes, or deals with its error; `line` and `row_text`
    /// are only called for a rejected row.
    fn accept(
        &mut self,
        line: impl FnOnce() -> u64,
        position: Position,
        parsed: Result<Change, CellError>,
        row_text: impl FnOnce() -> String,
    ) -> Result<(), InputError> {
        match parsed {
            Ok(change) => {
                self.report.rows += 1;
                (self.sink)(position, change);
                Ok(())
            }
            Err(cell) => self.reject(
                InputError::at(
                    self.name,
                    line(),
                    cell.column.map(Column::name),
                    cell.reason,
                ),
                row_text,
            ),
        }
    }

    fn reject(
        &mut self,
        error: InputError,
        row_text: impl FnOnce() -> String,
    ) -> Result<(), InputError> {
        match self.bad_rows {
            BadRows::Fail => Err(error),
            BadRows::Skip => {
                self.report.rejects.push(Reject {
                    error,
                    row: row_text(),
                });
                Ok(())
            }
        }
    }
}

/// Parses one row of a file whose table is known (a snapshot, or a CSV update).
fn parse_row(role: Role, table: Table, cells: &impl Cells) -> Result<Change, CellError> {
    match role {
        Role::Snapshot(_) => row::parse_change(table, row::Op::Upsert, cells),
        Role::Update => {
            let op = row::read_op(cells)?;
            row::parse_change(table, op, cells)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Order;

    fn read_text(
        file_name: &str,
        text: &[u8],
        role: Role,
        share: Share,
        bad_rows: BadRows,
    ) -> Result<(Vec<(Position, Change)>, ShareReport), InputError> {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir =
            std::env::temp_dir().join(format!("discounting-input-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(file_name);
        std::fs::write(&path, text).unwrap();
        let source = Source::new(&path, role);
        let mut changes = Vec::new();
        let result = read_share(&source, share, bad_rows, &mut |p, c| changes.push((p, c)));
        // Every text is also read from memory, as a small update file is: the same
        // changes, report and error.
        let mut in_memory = Vec::new();
        let from_memory =
            read_share_with(&source, share, bad_rows, None, Some(text), &mut |p, c| {
                in_memory.push((p, c))
            });
        std::fs::remove_dir_all(&dir).unwrap();
        let result = result.map(|report| (changes, report));
        let from_memory = from_memory.map(|report| (in_memory, report));
        assert_eq!(result, from_memory, "read from the file and from memory");
        result
    }

    fn read_all(file_name: &str, text: &str, role: Role) -> Result<Vec<Change>, InputError> {
        let one = Share { index: 0, peers: 1 };
        read_text(file_name, text.as_bytes(), role, one, BadRows::Fail)
            .map(|(changes, _)| changes.into_iter().map(|(_, c)| c).collect())
    }

    /// Reads `text` as `peers` workers do, each its share, and returns all their changes
    /// in file order and all their rejects.
    fn read_shares(
        file_name: &str,
        text: &str,
        role: Role,
        peers: usize,
        bad_rows: BadRows,
    ) -> (Vec<Change>, Vec<Reject>) {
        let mut changes = Vec::new();
        let mut rejects = Vec::new();
        for index in 0..peers {
            let (share, report) = read_text(
                file_name,
                text.as_bytes(),
                role,
                Share { index, peers },
                bad_rows,
            )
            .unwrap();
            assert_eq!(
                report.rows as usize,
                share.len(),
                "a share counts the rows it hands on"
            );
            changes.extend(share);
            rejects.extend(report.rejects);
        }
        changes.sort_by_key(|(position, _)| *position);
        (
            changes.into_iter().map(|(_, change)| change).collect(),
            rejects,
        )
    }

    fn error_of(file_name: &str, text: &str, role: Role) -> String {
        let error = read_all(file_name, text, role).expect_err("the file must be refused");
        let shown = error.to_string();
        shown[error.file.len()..]
            .trim_start_matches(':')
            .trim_start()
            .to_string()
    }

    const ORDERS: Role = Role::Snapshot(Table::Orders);
    const CODES: Role = Role::Snapshot(Table::DiscountCodes);

    fn order(code: &str, item_ct: i64, subtotal_micros: i64) -> Order {
        Order {
            discount_code: code.into(),
            item_ct,
            subtotal_micros,
            customer_id: 7,
            order_time_ms: None,
        }
    }

    #[test]
    fn csv_columns_in_any_case_and_order_with_bom_and_crlf() {
        let text = "\u{feff}DISCOUNT_CODE,Item_Ct,ID,order_subtotal,customer_id,extra\r\n AB15 ,2,1,10.5,7,x\r\n,0,2,0,7,\r\n";
        let changes = read_all("o.csv", text, ORDERS).unwrap();
        assert_eq!(
            changes,
            vec![
                Change::Order {
                    id: 1,
                    row: Some(order("AB15", 2, 10_500_000))
                },
                Change::Order {
                    id: 2,
                    row: Some(order("", 0, 0))
                },
            ]
        );
    }

    #[test]
    fn quoted_fields_with_commas_quotes_and_newlines() {
        let text = "code,percentage\n\"A,\"\"1\"\"\nB\",15\nC,20";
        let changes = read_all("c.csv", text, CODES).unwrap();
        assert_eq!(
            changes,
            vec![
                Change::Code {
                    code: "A,\"1\"\nB".into(),
                    percentage_micros: Some(15_000_000)
                },
                Change::Code {
                    code: "C".into(),
                    percentage_micros: Some(20_000_000)
                },
            ]
        );
    }

    #[test]
    fn errors_name_line_and_column() {
        let text = "code,percentage\nA,15\n\"B\nB\",101\n";
        let error = read_all("c.csv", text, CODES).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "{}:3: column percentage: must be between 0 and 100",
                error.file
            )
        );
        assert!(error.file.ends_with("c.csv"));
    }

    #[test]
    fn bad_files_and_headers() {
        assert_eq!(
            error_of("e.csv", "", CODES),
            "empty file: a CSV file needs a header row"
        );
        assert_eq!(
            error_of("d.csv", "code,Code,percentage\n", CODES),
            "1: duplicate column 'code'"
        );
        assert_eq!(
            error_of("m.csv", "code\nA\n", CODES),
            "1: missing column 'percentage'"
        );
        assert_eq!(
            error_of("o.csv", "op,code,percentage\n", CODES),
            "1: a base snapshot has no op column"
        );
        assert_eq!(
            error_of("u.csv", "op,name\n", Role::Update),
            "1: an update header needs an id column (orders) or a code column (discount_codes)"
        );
        assert_eq!(
            error_of("b.csv", "op,id,code\n", Role::Update),
            "1: an update header has both id and code: one CSV update file changes one table"
        );
        assert_eq!(
            error_of("q.csv", "code,percentage\nA,1\n\"B,2\n", CODES),
            "3: a quoted field is never closed"
        );
        assert_eq!(
            error_of("x.txt", "code,percentage\n", CODES),
            "unknown file type: expected a .csv, .jsonl, .json or .ndjson file"
        );
    }

    #[test]
    fn row_errors() {
        let orders = "id,customer_id,item_ct,order_subtotal,order_time\n";
        let cases = [
            ("1,7,-1,5,", "2: column item_ct: must not be negative"),
            ("1,7,1,-5,", "2: column order_subtotal: must not be negative"),
            ("1,7,1.0,5,", "2: column item_ct: '1.0' is not an integer"),
            ("1,7,1,1.0000001,", "2: column order_subtotal: '1.0000001': 7 fractional digits, at most 6 are accepted"),
            ("1,7,1,NaN,", "2: column order_subtotal: 'NaN': NaN and infinities are not accepted"),
            ("99999999999999999999,7,1,5,", "2: column id: '99999999999999999999' does not fit in 64 bits"),
            ("1,,1,5,", "2: column customer_id: is required but empty or missing"),
            ("1,7,1,5,today", "2: column order_time: 'today' is not a timestamp (expected epoch milliseconds, RFC 3339, or YYYY-MM-DD HH:MM:SS[.fff])"),
            ("1,7,1", "2: column order_subtotal: is required but empty or missing"),
            ("1,7,1,5,,x", "2: 6 fields, but the header names only 5"),
        ];
        for (row, expected) in cases {
            assert_eq!(
                error_of("o.csv", &format!("{orders}{row}\n"), ORDERS),
                expected,
                "{row}"
            );
        }
        let bad_utf8 = read_text(
            "o.csv",
            b"id,customer_id,item_ct,order_subtotal\n1,7,1,\xff\n",
            ORDERS,
            Share { index: 0, peers: 1 },
            BadRows::Fail,
        )
        .unwrap_err();
        assert_eq!(bad_utf8.reason, "is not valid UTF-8");
        assert_eq!(bad_utf8.column.as_deref(), Some("order_subtotal"));
    }

    #[test]
    fn a_character_split_across_two_cells_is_invalid_utf8() {
        // Together the two cells' bytes are "é"; each alone is not UTF-8.
        let one = Share { index: 0, peers: 1 };
        let error = read_text(
            "c.csv",
            b"code,percentage\n\xC3,\xA9\n",
            CODES,
            one,
            BadRows::Fail,
        )
        .unwrap_err();
        assert_eq!(
            (error.column.as_deref(), error.reason.as_str()),
            (Some("code"), "is not valid UTF-8")
        );
    }

    #[test]
    fn updates_need_only_the_key_to_delete() {
        let text = "op,id\ndelete,5\n-D,6\n";
        let changes = read_all("u.csv", text, Role::Update).unwrap();
        assert_eq!(
            changes,
            vec![
                Change::Order { id: 5, row: None },
                Change::Order { id: 6, row: None }
            ]
        );
        assert_eq!(
            error_of("u.csv", "op,id\nupsert,5\n", Role::Update),
            "2: column customer_id: is required but empty or missing"
        );
        assert_eq!(error_of("u.csv", "op,id\nmerge,5\n", Role::Update), "2: column op: unknown op 'merge' (expected upsert or delete, or insert, +, -, c, r, u, d, +I, +U, -U, -D)");
    }

    #[test]
    fn json_lines_rows() {
        let text = concat!(
            "{\"op\":\"upsert\",\"table\":\"discount_codes\",\"CODE\":\"A\",\"PERCENTAGE\":12.5}\n",
            "\n",
            "{\"op\":\"+I\",\"table\":\"orders\",\"ID\":3,\"CUSTOMER_ID\":\"7\",\"ITEM_CT\":1,\"ORDER_SUBTOTAL\":1.25,\"DISCOUNT_CODE\":null,\"ORDER_TIME\":null}\n",
            "{\"op\":\"d\",\"table\":\"orders\",\"id\":4}\n",
        );
        let changes = read_all("u.jsonl", text, Role::Update).unwrap();
        assert_eq!(
            changes,
            vec![
                Change::Code {
                    code: "A".into(),
                    percentage_micros: Some(12_500_000)
                },
                Change::Order {
                    id: 3,
                    row: Some(order("", 1, 1_250_000))
                },
                Change::Order { id: 4, row: None },
            ]
        );
    }

    #[test]
    fn json_lines_errors() {
        let cases = [
            ("[1,2]", "1: expected a JSON object"),
            (
                "{\"code\":\"A\",\"percentage\":5} x",
                "1: not valid JSON: trailing characters at line 1 column 29",
            ),
            (
                "{\"code\":\"A\",\"percentage\":true}",
                "1: column percentage: expected a string or a number, found a boolean",
            ),
            (
                "{\"code\":\"A\",\"CODE\":\"B\",\"percentage\":5}",
                "1: duplicate column 'code'",
            ),
            (
                "{\"code\":\"A\",\"percentage\":1e2}",
                "1: column percentage: '1e2' is not a decimal",
            ),
            (
                "{\"op\":\"upsert\",\"code\":\"A\",\"percentage\":5}",
                "1: a base snapshot has no op column",
            ),
        ];
        for (line, expected) in cases {
            assert_eq!(error_of("c.jsonl", line, CODES), expected, "{line}");
        }
        assert_eq!(
            error_of(
                "u.jsonl",
                "{\"op\":\"upsert\",\"table\":\"customers\",\"id\":1}",
                Role::Update
            ),
            "1: column table: unknown table 'customers' (expected orders or discount_codes)"
        );
    }

    #[test]
    fn shares_cover_every_row_once() {
        let mut text = String::from("id,customer_id,item_ct,order_subtotal,discount_code\n");
        for id in 0..100 {
            text.push_str(&format!("{id},1,{id},\"{id}.5\",\"C\n{id}\"\n"));
        }
        for peers in [1, 2, 3, 7] {
            let (changes, _) = read_shares("o.csv", &text, ORDERS, peers, BadRows::Fail);
            let ids: Vec<i64> = changes
                .iter()
                .map(|c| match c {
                    Change::Order { id, .. } => *id,
                    _ => -1,
                })
                .collect();
            assert_eq!(ids, (0..100).collect::<Vec<_>>(), "{peers} workers");
        }
    }

    #[test]
    fn lines_after_blank_lines_are_the_same_whatever_the_workers() {
        let text = "code,percentage\n\r\n\n\nA,x\n\nB,5\n";
        for peers in 1..=4 {
            let (_, rejects) = read_shares("c.csv", text, CODES, peers, BadRows::Skip);
            let lines: Vec<Option<u64>> = rejects.iter().map(|r| r.error.line).collect();
            assert_eq!(lines, vec![Some(5)], "{peers} workers");
        }
    }

    /// Found by `tests/fuzz.rs`: a worker whose share began with a row starting with the
    /// bytes of a BOM lost them (csv-core strips a BOM wherever it starts reading).
    #[test]
    fn a_row_starting_with_bom_bytes_keeps_them_whatever_the_workers() {
        let text = "code,percentage\n\n\u{feff}X,1\nA,2\n";
        for peers in 1..=4 {
            let (codes, _) = read_shares("c.csv", text, CODES, peers, BadRows::Fail);
            let names: Vec<String> = codes
                .iter()
                .map(|c| match c {
                    Change::Code { code, .. } => code.to_string(),
                    _ => String::new(),
                })
                .collect();
            assert_eq!(names, ["\u{feff}X", "A"], "{peers} workers");
        }
    }

    #[test]
    fn skip_mode_keeps_rejects_and_applies_the_rest() {
        let text = "code,percentage\nA,5\nB,500\nC,x\nD,50\n";
        let (changes, report) = read_text(
            "c.csv",
            text.as_bytes(),
            CODES,
            Share { index: 0, peers: 1 },
            BadRows::Skip,
        )
        .unwrap();
        assert_eq!(changes.len(), 2);
        assert_eq!(report.rows, 2);
        let lines: Vec<(Option<u64>, &str)> = report
            .rejects
            .iter()
            .map(|r| (r.error.line, r.row.as_str()))
            .collect();
        assert_eq!(lines, vec![(Some(3), "B,500"), (Some(4), "C,x")]);
    }
}
