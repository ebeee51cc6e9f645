//! JSON Lines files: one object per line, keys are column names.
//!
//! Numbers are kept as the text they were written as (serde_json's
//! `arbitrary_precision`), so `201.17` is read exactly like the CSV cell `201.17`.

use std::borrow::Cow;
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;

use super::csv_file::changed;
use super::error::quoted;
use super::layout::{self, Part};
use super::row::{self, CellError, Cells, Column, COLUMN_COUNT};
use super::{parse_row, InputError, Role, Share, ShareReader};
use crate::model::Change;

/// Reads this worker's share; its cuts come from every worker's part (`parts`) or, without
/// them, from scanning the whole file.
pub(super) fn read(
    file: &mut File,
    share: Share,
    parts: Option<&[Part]>,
    reader: &mut ShareReader<'_>,
) -> Result<(), InputError> {
    let name = reader.name;
    let io_error = |e: std::io::Error| InputError::file(name, format!("cannot read: {e}"));
    let layout = match parts {
        Some(parts) => layout::layout(parts, 1).ok_or_else(|| changed(name))?,
        None => layout::scan(file, 0, share.peers, false).map_err(io_error)?,
    };
    let chunk = *layout
        .chunks
        .get(share.index)
        .ok_or_else(|| changed(name))?;
    file.seek(SeekFrom::Start(chunk.start)).map_err(io_error)?;
    let mut lines = BufReader::with_capacity(1 << 16, (&*file).take(chunk.end - chunk.start));
    let mut buffer = Vec::new();
    let (mut line, mut position) = (chunk.first_line, chunk.start);
    loop {
        buffer.clear();
        let read = lines.read_until(b'\n', &mut buffer).map_err(io_error)?;
        if read == 0 {
            break;
        }
        let (this_line, this_position) = (line, position);
        line += 1;
        position += read as u64;
        let mut text = buffer.trim_ascii();
        if this_position == 0 {
            text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
        }
        if text.is_empty() {
            continue;
        }
        let parsed = parse_line(text, reader.role);
        reader.accept(
            || this_line,
            this_position,
            parsed,
            || String::from_utf8_lossy(text).into_owned(),
        )?;
    }
    Ok(())
}

fn parse_line(text: &[u8], role: Role) -> Result<Change, CellError> {
    let object = JsonObject::parse(text, "a JSON object")?;
    let cells = JsonCells::new(&object.0)?;
    match role {
        Role::Snapshot(table) => {
            if cells.columns[Column::Op as usize].is_some() {
                return Err(CellError {
                    column: None,
                    reason: "a base snapshot has no op column".into(),
                });
            }
            parse_row(role, table, &cells)
        }
        Role::Update => {
            let name = cells
                .cell(Column::Table)?
                .ok_or_else(|| CellError::new(Column::Table, "is required but empty or missing"))?;
            let table = row::parse_table(&name).ok_or_else(|| {
                CellError::new(
                    Column::Table,
                    format!(
                        "unknown table {} (expected orders or discount_codes)",
                        quoted(&name)
                    ),
                )
            })?;
            parse_row(role, table, &cells)
        }
    }
}

/// A JSON object's entries in order, duplicates kept so that they can be refused.
pub struct JsonObject(pub Vec<(String, Value)>);

impl JsonObject {
    /// Reads one JSON object; `expected` names what else may stand there, for the error
    /// when the text is valid JSON of another kind.
    pub fn parse(text: &[u8], expected: &str) -> Result<JsonObject, CellError> {
        serde_json::from_slice(text).map_err(|e| CellError {
            column: None,
            reason: match e.classify() {
                serde_json::error::Category::Data => format!("expected {expected}"),
                _ => format!("not valid JSON: {e}"),
            },
        })
    }
}

impl<'de> Deserialize<'de> for JsonObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor;
        impl<'de> Visitor<'de> for EntriesVisitor {
            type Value = JsonObject;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JsonObject, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, Value>()? {
                    entries.push(entry);
                }
                Ok(JsonObject(entries))
            }
        }
        deserializer.deserialize_map(EntriesVisitor)
    }
}

/// The cells of one JSON object.
pub struct JsonCells<'a> {
    entries: &'a [(String, Value)],
    columns: [Option<usize>; COLUMN_COUNT],
}

impl<'a> JsonCells<'a> {
    /// The object's columns, or the duplicate column that makes it a bad row.
    pub fn new(entries: &'a [(String, Value)]) -> Result<Self, CellError> {
        let mut columns = [None; COLUMN_COUNT];
        // An object has a few keys: comparing each with those before it is cheaper than
        // a set of lower-cased copies, on every line.
        for (index, (key, _)) in entries.iter().enumerate() {
            let key = row::trim(key);
            let repeated = entries[..index]
                .iter()
                .any(|(earlier, _)| row::trim(earlier).eq_ignore_ascii_case(key));
            if repeated {
                return Err(CellError {
                    column: None,
                    reason: format!("duplicate column {}", quoted(&key.to_ascii_lowercase())),
                });
            }
            if let Some(column) = Column::from_name(key) {
                columns[column as usize] = Some(index);
            }
        }
        Ok(JsonCells { entries, columns })
    }
}

impl Cells for JsonCells<'_> {
    fn cell(&self, column: Column) -> Result<Option<Cow<'_, str>>, CellError> {
        let Some(index) = self.columns[column as usize] else {
            return Ok(None);
        };
        let found = |what: &str| {
            Err(CellError::new(
                column,
                format!("expected a string or a number, found {what}"),
            ))
        };
        match &self.entries[index].1 {
            Value::Null => Ok(None),
            Value::String(text) => {
                let text = row::trim(text);
                Ok((!text.is_empty()).then_some(Cow::Borrowed(text)))
            }
            Value::Number(number) => Ok(Some(Cow::Borrowed(number.as_str()))),
            Value::Bool(_) => found("a boolean"),
            Value::Array(_) => found("an array"),
            Value::Object(_) => found("an object"),
        }
    }
}
