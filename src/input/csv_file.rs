//! CSV files: the header read once, then this worker's byte range record by record.
//!
//! Records are read into one reused record (`csv_records`: lines split at commas,
//! csv-core only for records with a quote). Cells are parsed straight from the record's
//! bytes; only a rejected row is ever turned back into text.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};

use csv::ByteRecord;

use super::csv_orders;
use super::csv_records::{Record, Records};
use super::error::quoted;
use super::layout::{self, Part};
use super::row::{self, CellError, Cells, Column, COLUMN_COUNT};
use super::{parse_row, InputError, Role, Share, ShareReader};
use crate::model::Table;

/// The header: where each known column is, how many fields a row has, where rows start.
struct Header {
    columns: [Option<usize>; COLUMN_COUNT],
    fields: usize,
    line: u64,
    data_start: u64,
}

/// Where the records of a CSV file start (just after its header).
pub(super) fn data_start(file: &mut (impl Read + Seek), name: &str) -> Result<u64, InputError> {
    Ok(read_header(file, name)?.data_start)
}

/// Reads this worker's share; its cuts come from every worker's part (`parts`) or, without
/// them, from scanning the whole file.
pub(super) fn read(
    file: &mut (impl Read + Seek),
    share: Share,
    parts: Option<&[Part]>,
    reader: &mut ShareReader<'_>,
) -> Result<(), InputError> {
    let name = reader.name;
    let io_error = |e: std::io::Error| InputError::file(name, format!("cannot read: {e}"));
    let header = read_header(file, name)?;
    let table = table_of(&header, reader.role, name)?;

    let layout = match parts {
        Some(parts) => {
            let data_line =
                1 + layout::newlines_before(file, header.data_start, true).map_err(io_error)?;
            layout::layout(parts, data_line).ok_or_else(|| changed(name))?
        }
        None => layout::scan(file, header.data_start, share.peers, true).map_err(io_error)?,
    };
    if let Some(offset) = layout.unclosed_quote {
        let line = 1 + layout::newlines_before(file, offset, true).map_err(io_error)?;
        return Err(InputError::at(
            name,
            line,
            None,
            "a quoted field is never closed",
        ));
    }
    let chunk = *layout
        .chunks
        .get(share.index)
        .ok_or_else(|| changed(name))?;
    if chunk.start >= chunk.end {
        return Ok(());
    }
    // The line end before the chunk tells the line cursor whether a `\n` that starts it
    // ends a `\r\n` line.
    let before = byte_before(file, chunk.start).map_err(io_error)?;
    let start = chunk.start;
    file.seek(SeekFrom::Start(start)).map_err(io_error)?;
    let input = BufReader::with_capacity(1 << 16, file.take(chunk.end - start));
    let mut range = Range {
        header: &header,
        table,
        start,
        lines: layout::LineCursor::new(chunk.start, chunk.first_line, before),
    };
    let mut records = Records::new(input);
    while let Some(record) = records.next_record().map_err(io_error)? {
        let text = || record_text(&record.to_byte_record());
        range.accept(reader, record, record.byte(), text)?;
    }
    Ok(())
}

/// What every record of a worker's range is read with.
struct Range<'a> {
    header: &'a Header,
    table: Table,
    /// Where the range starts in the file.
    start: u64,
    /// The lines of its rejected records.
    lines: layout::LineCursor,
}

impl Range<'_> {
    /// Parses one record (at `byte` from the start of the range) and hands its change,
    /// or its error, to `reader`.
    fn accept(
        &mut self,
        reader: &mut ShareReader<'_>,
        record: &Record,
        byte: u64,
        row_text: impl FnOnce() -> String,
    ) -> Result<(), InputError> {
        // A short row leaves its last cells empty (a delete needs only its key); a long
        // row has cells no column names, which is an error.
        let fits = record.len() <= self.header.fields;
        let fast = match reader.role {
            Role::Snapshot(Table::Orders) if fits => {
                csv_orders::snapshot_order(record, &self.header.columns)
            }
            _ => None,
        };
        let parsed = if let Some(change) = fast {
            Ok(change)
        } else if fits {
            parse_row(
                reader.role,
                self.table,
                &CsvCells {
                    record,
                    text: std::str::from_utf8(record.as_slice()).ok(),
                    columns: &self.header.columns,
                },
            )
        } else {
            Err(CellError {
                column: None,
                reason: format!(
                    "{} fields, but the header names only {}",
                    record.len(),
                    self.header.fields
                ),
            })
        };
        let position = self.start + byte;
        let path = reader.path;
        let lines = &mut self.lines;
        let line = || lines.record_line(path, position);
        reader.accept(line, position, parsed, row_text)
    }
}

/// The error for parts that do not fit together: the workers saw different files.
pub(super) fn changed(name: &str) -> InputError {
    InputError::file(
        name,
        "changed while it was being read (the workers saw different versions)",
    )
}

/// The byte before `offset`, if there is one.
fn byte_before(file: &mut (impl Read + Seek), offset: u64) -> std::io::Result<Option<u8>> {
    if offset == 0 {
        return Ok(None);
    }
    file.seek(SeekFrom::Start(offset - 1))?;
    let mut byte = [0u8];
    file.read_exact(&mut byte)?;
    Ok(Some(byte[0]))
}

/// Reads the header with the records reader the rows use (the `csv` crate's reader would
/// build its own DFA for every file, which cost more than a small update file's rows).
fn read_header(file: &mut (impl Read + Seek), name: &str) -> Result<Header, InputError> {
    let empty = || InputError::file(name, "empty file: a CSV file needs a header row");
    let cannot_read = |e: std::io::Error| InputError::file(name, format!("cannot read: {e}"));
    let mut input = BufReader::new(file.by_ref());
    // A UTF-8 byte order mark before the header is no part of it (as csv-core takes it).
    let bom = input
        .fill_buf()
        .map_err(cannot_read)?
        .starts_with(b"\xEF\xBB\xBF");
    let bom = if bom { 3 } else { 0 };
    input.consume(bom);
    let mut records = Records::new(input);
    let Some(record) = records.next_record().map_err(cannot_read)? else {
        return Err(empty());
    };
    let skipped = record.byte();
    let fields: Vec<Vec<u8>> = (0..record.len())
        .filter_map(|index| record.range(index))
        .map(|range| record.as_slice()[range].to_vec())
        .collect();
    let data_start = bom as u64 + records.consumed();
    drop(records);
    // Blank lines before the header: its line is counted as the rows' lines are.
    let line = match skipped {
        0 => 1,
        _ => 1 + layout::newlines_before(file, bom as u64 + skipped, true).map_err(cannot_read)?,
    };
    let mut columns = [None; COLUMN_COUNT];
    let mut seen = HashSet::new();
    for (index, field) in fields.iter().enumerate() {
        let text = std::str::from_utf8(field)
            .map_err(|_| InputError::at(name, line, None, "the header is not valid UTF-8"))?;
        let column_name = row::trim(text).to_ascii_lowercase();
        if column_name.is_empty() {
            continue;
        }
        if let Some(column) = Column::from_name(&column_name) {
            columns[column as usize] = Some(index);
        }
        if !seen.insert(column_name.clone()) {
            return Err(InputError::at(
                name,
                line,
                None,
                format!("duplicate column {}", quoted(&column_name)),
            ));
        }
    }
    if seen.is_empty() {
        return Err(empty());
    }
    Ok(Header {
        columns,
        fields: fields.len(),
        line,
        data_start,
    })
}

/// Which table a CSV file's rows belong to, checking the header fits its role.
fn table_of(header: &Header, role: Role, name: &str) -> Result<Table, InputError> {
    let has = |column: Column| header.columns[column as usize].is_some();
    let refuse = |reason: String| Err(InputError::at(name, header.line, None, reason));
    match role {
        Role::Snapshot(table) => {
            if has(Column::Op) {
                return refuse("a base snapshot has no op column".into());
            }
            if let Some(missing) = row::required_columns(table).iter().find(|c| !has(**c)) {
                return refuse(format!("missing column '{}'", missing.name()));
            }
            Ok(table)
        }
        Role::Update => match (has(Column::Id), has(Column::Code)) {
            _ if !has(Column::Op) => refuse("an update header needs an op column".into()),
            (true, false) => Ok(Table::Orders),
            (false, true) => Ok(Table::DiscountCodes),
            (true, true) => refuse(
                "an update header has both id and code: one CSV update file changes one table"
                    .into(),
            ),
            (false, false) => refuse(
                "an update header needs an id column (orders) or a code column (discount_codes)"
                    .into(),
            ),
        },
    }
}

/// The cells of one CSV record.
pub(super) struct CsvCells<'a> {
    pub(super) record: &'a Record,
    /// All the record's cells as text, when they are valid UTF-8 together (checked once
    /// per record rather than once per cell).
    pub(super) text: Option<&'a str>,
    pub(super) columns: &'a [Option<usize>; COLUMN_COUNT],
}

impl Cells for CsvCells<'_> {
    fn cell(&self, column: Column) -> Result<Option<std::borrow::Cow<'_, str>>, CellError> {
        let Some(index) = self.columns[column as usize] else {
            return Ok(None);
        };
        let Some(range) = self.record.range(index) else {
            return Ok(None);
        };
        // A cell is sliced from the checked text; where that is not possible (the record
        // is not UTF-8, or a character straddles two cells) the cell is checked alone.
        let text = match self.text.and_then(|text| text.get(range.clone())) {
            Some(text) => text,
            None => std::str::from_utf8(&self.record.as_slice()[range])
                .map_err(|_| CellError::new(column, "is not valid UTF-8"))?,
        };
        let text = row::trim(text);
        Ok((!text.is_empty()).then_some(std::borrow::Cow::Borrowed(text)))
    }
}

/// A rejected record as one CSV line, for the rejects file.
fn record_text(record: &ByteRecord) -> String {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    let text = writer
        .write_byte_record(record)
        .ok()
        .and_then(|_| writer.into_inner().ok())
        .unwrap_or_default();
    String::from_utf8_lossy(&text)
        .trim_end_matches('\n')
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The header as the `csv` crate reads it (what `read_header` did before): the
    /// columns, the number of fields and where the rows start, or that there is none.
    fn by_csv_crate(bytes: &[u8]) -> Option<(Vec<Vec<u8>>, u64)> {
        let mut csv = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(bytes);
        let mut record = ByteRecord::new();
        csv.read_byte_record(&mut record).unwrap().then(|| {
            let fields = record.iter().map(<[u8]>::to_vec).collect();
            (fields, csv.position().byte())
        })
    }

    fn header_of(bytes: &[u8]) -> Result<Header, InputError> {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let path =
            std::env::temp_dir().join(format!("discounting-header-{}-{n}.csv", std::process::id()));
        std::fs::write(&path, bytes).unwrap();
        let header = read_header(&mut std::fs::File::open(&path).unwrap(), "h.csv");
        std::fs::remove_file(&path).unwrap();
        header
    }

    #[test]
    fn the_header_line_counts_blank_lines_before_it() {
        let header = header_of(b"\xEF\xBB\xBF\r\n\n\rid,op\r\n1,upsert").unwrap();
        assert_eq!((header.line, header.fields, header.data_start), (4, 2, 13));
        let error = header_of(b"\n\nid,ID\n").map(|_| ()).unwrap_err();
        assert_eq!(error.to_string(), "h.csv:3: duplicate column 'id'");
    }

    const PIECES: &[&[u8]] = &[
        b"id",
        b"ID",
        b"op",
        b"code",
        b"x",
        b",",
        b"\"",
        b"\n",
        b"\r",
        b"\r\n",
        b" ",
        b"\xEF\xBB\xBF",
        b"\xEF",
        b"\xFF",
        b"1,2",
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// Known and unknown names, quotes, commas, every line end and byte order mark
        /// bytes, at the start and anywhere: the same header as the `csv` crate reads.
        #[test]
        fn headers_read_as_the_csv_crate_reads_them(
            parts in proptest::collection::vec(proptest::sample::select(PIECES), 0..12)
        ) {
            let bytes = parts.concat();
            let ours = header_of(&bytes);
            match by_csv_crate(&bytes) {
                None => prop_assert!(ours.is_err()),
                Some((fields, data_start)) => {
                    let names: Vec<String> = fields
                        .iter()
                        .filter_map(|f| std::str::from_utf8(f).ok())
                        .map(|f| row::trim(f).to_ascii_lowercase())
                        .filter(|f| !f.is_empty())
                        .collect();
                    let unique: HashSet<&String> = names.iter().collect();
                    let valid = fields.iter().all(|f| std::str::from_utf8(f).is_ok());
                    if !valid || names.is_empty() || unique.len() != names.len() {
                        prop_assert!(ours.is_err());
                    } else {
                        let ours = ours.unwrap();
                        prop_assert_eq!(ours.fields, fields.len());
                        prop_assert_eq!(ours.data_start, data_start);
                        for (index, field) in fields.iter().enumerate() {
                            let name = row::trim(std::str::from_utf8(field).unwrap())
                                .to_ascii_lowercase();
                            if let Some(column) = Column::from_name(&name) {
                                prop_assert_eq!(ours.columns[column as usize], Some(index));
                            }
                        }
                    }
                }
            }
        }
    }
}
