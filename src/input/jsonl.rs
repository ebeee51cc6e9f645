//! JSON Lines files: one object per line, keys are column names.
//!
//! Numbers are kept as the text they were written as, so `201.17` is read exactly like
//! the CSV cell `201.17`. A line is read as raw values (`RawLine`): each value's text as
//! written, and no `Value` is built, which cost a few allocations for every key and
//! number. A flat line (strings without a backslash, no nested value, as users' exports
//! write them) is split by a reader of its own (`flat_entries`), which answers only for
//! lines it reads as serde_json does and otherwise leaves them to serde_json. A line the
//! raw reading cannot take as it is (any error, or a backslash it would have to decode in
//! a nested value) is read again the general way (`JsonObject`), which gives every error
//! its message.

use std::borrow::Cow;
use std::fmt;
use std::io::{BufReader, Read, Seek, SeekFrom};

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::Value;

use super::csv_file::changed;
use super::error::quoted;
use super::layout::{self, Part};
use super::lines::read_line;
use super::row::{self, CellError, Cells, Column, COLUMN_COUNT};
use super::{parse_row, InputError, Role, Share, ShareReader};
use crate::model::Change;

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
    let layout = match parts {
        Some(parts) => layout::layout(parts, 1).ok_or_else(|| changed(name))?,
        None => layout::scan(file, 0, share.peers, false).map_err(io_error)?,
    };
    let chunk = *layout
        .chunks
        .get(share.index)
        .ok_or_else(|| changed(name))?;
    file.seek(SeekFrom::Start(chunk.start)).map_err(io_error)?;
    let mut lines = BufReader::with_capacity(1 << 16, file.take(chunk.end - chunk.start));
    let mut buffer = Vec::new();
    let (mut line, mut position) = (chunk.first_line, chunk.start);
    loop {
        buffer.clear();
        let read = read_line(&mut lines, &mut buffer).map_err(io_error)?;
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
    match RawLine::parse(text).and_then(RawLine::cells) {
        Some(cells) => change(&cells, role),
        None => parse_line_general(text, role),
    }
}

/// The general way, and the one whose errors are given.
fn parse_line_general(text: &[u8], role: Role) -> Result<Change, CellError> {
    let object = JsonObject::parse(text, "a JSON object")?;
    let cells = JsonCells::new(&object.0)?;
    change(&cells, role)
}

fn change<C: Cells + ColumnsOf>(cells: &C, role: Role) -> Result<Change, CellError> {
    match role {
        Role::Snapshot(table) => {
            if cells.has(Column::Op) {
                return Err(CellError {
                    column: None,
                    reason: "a base snapshot has no op column".into(),
                });
            }
            parse_row(role, table, cells)
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
            parse_row(role, table, cells)
        }
    }
}

/// Whether a row names a column at all (a snapshot row must not name `op`).
trait ColumnsOf {
    fn has(&self, column: Column) -> bool;
}

/// The columns of a row's keys, or the duplicate column that makes it a bad row.
fn columns_of<'k>(
    keys: impl Iterator<Item = &'k str> + Clone,
) -> Result<[Option<usize>; COLUMN_COUNT], CellError> {
    let mut columns = [None; COLUMN_COUNT];
    let duplicate = |key: &str| CellError {
        column: None,
        reason: format!("duplicate column {}", quoted(&key.to_ascii_lowercase())),
    };
    // Two keys that are the same but for case are the same column, or both unknown: a
    // known key is checked against its column's slot, and only an unknown one is
    // compared with the keys before it (unknown keys are few).
    for (index, key) in keys.clone().enumerate() {
        let key = row::trim(key);
        match Column::from_name(key) {
            Some(column) => {
                if columns[column as usize].replace(index).is_some() {
                    return Err(duplicate(key));
                }
            }
            None => {
                let repeated = keys
                    .clone()
                    .take(index)
                    .any(|earlier| row::trim(earlier).eq_ignore_ascii_case(key));
                if repeated {
                    return Err(duplicate(key));
                }
            }
        }
    }
    Ok(columns)
}

/// The error for a cell that is neither a string nor a number.
fn not_a_cell<T>(column: Column, what: &str) -> Result<T, CellError> {
    Err(CellError::new(
        column,
        format!("expected a string or a number, found {what}"),
    ))
}

/// A line's entries as written: keys decoded (borrowed unless escaped), values raw.
struct RawLine<'a> {
    entries: Vec<(Key<'a>, &'a str)>,
    /// Whether the line holds a backslash, so that a value may need decoding: one search
    /// of the line, not one of each value (which took some 490 instructions a line).
    escaped: bool,
}

/// An object key, borrowed from the line unless it holds an escape.
struct Key<'a>(Cow<'a, str>);

impl<'a> RawLine<'a> {
    /// The line as raw entries, or `None` for any error (the general way gives it).
    fn parse(text: &'a [u8]) -> Option<RawLine<'a>> {
        // The flat reader takes no string with a backslash.
        let flat = flat_entries(text).map(|entries| RawLine {
            entries,
            escaped: false,
        });
        flat.or_else(|| {
            let entries = serde_json::from_slice::<RawEntries>(text).ok()?.0;
            let escaped = memchr::memchr(b'\\', text).is_some();
            Some(RawLine { entries, escaped })
        })
    }

    /// Its cells, or `None` where the general way must read the line: a duplicate
    /// column (for its error), an escaped string that does not decode (the raw reading
    /// checks an escape's form, not that it makes a character), or a backslash inside a
    /// nested value.
    fn cells(self) -> Option<RawCells<'a>> {
        let columns = columns_of(self.entries.iter().map(|(key, _)| &*key.0)).ok()?;
        // The general way decodes every string, known column or not.
        let escaped = |(_, value): &&(Key, &str)| value.contains('\\');
        if self.escaped {
            for (_, value) in self.entries.iter().filter(escaped) {
                if !value.starts_with('"') || serde_json::from_str::<String>(value).is_err() {
                    return None;
                }
            }
        }
        let mut cells: [Option<RawCell<'a>>; COLUMN_COUNT] = Default::default();
        for (column, index) in columns.iter().enumerate() {
            if let Some(index) = *index {
                cells[column] = Some(RawCell::of(self.entries[index].1, self.escaped));
            }
        }
        Some(RawCells { cells })
    }
}

/// A line that is one flat JSON object (strings without a backslash or a control
/// character, no nested value) as its entries, keys and values as written; `None` for
/// anything else, valid or not, which serde_json then reads. Its grammar is JSON's
/// (RFC 8259) for what it takes, so it refuses every line serde_json refuses.
fn flat_entries(text: &[u8]) -> Option<Vec<(Key<'_>, &str)>> {
    // Outside strings JSON is ASCII, so this is serde_json's check of every string.
    let text = std::str::from_utf8(text).ok()?;
    let bytes = text.as_bytes();
    let mut at = json_space(bytes, 0);
    if bytes.get(at) != Some(&b'{') {
        return None;
    }
    at = json_space(bytes, at + 1);
    let mut entries = Vec::with_capacity(COLUMN_COUNT);
    if bytes.get(at) == Some(&b'}') {
        at += 1;
    } else {
        loop {
            let key_end = flat_string(bytes, at)?;
            let key = &text[at + 1..key_end - 1];
            at = json_space(bytes, key_end);
            if bytes.get(at) != Some(&b':') {
                return None;
            }
            at = json_space(bytes, at + 1);
            let end = match bytes.get(at)? {
                b'"' => flat_string(bytes, at)?,
                b'-' | b'0'..=b'9' => number_end(bytes, at)?,
                b't' => word_end(bytes, at, b"true")?,
                b'f' => word_end(bytes, at, b"false")?,
                b'n' => word_end(bytes, at, b"null")?,
                _ => return None,
            };
            entries.push((Key(Cow::Borrowed(key)), &text[at..end]));
            at = json_space(bytes, end);
            match bytes.get(at)? {
                b',' => at = json_space(bytes, at + 1),
                b'}' => {
                    at += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    (json_space(bytes, at) == bytes.len()).then_some(entries)
}

/// The first byte from `at` that is not JSON whitespace.
fn json_space(bytes: &[u8], mut at: usize) -> usize {
    while matches!(bytes.get(at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        at += 1;
    }
    at
}

/// Just after the closing quote of the string that opens at `at`, if it holds no
/// backslash (an escape, left to serde_json) and no control character (an error).
fn flat_string(bytes: &[u8], at: usize) -> Option<usize> {
    if bytes.get(at) != Some(&b'"') {
        return None;
    }
    let inside = &bytes[at + 1..];
    let close = memchr::memchr2(b'"', b'\\', inside)?;
    (inside[close] == b'"' && inside[..close].iter().all(|&b| b >= 0x20)).then_some(at + 2 + close)
}

/// Just after the number that starts at `at`: `-`? (`0` | `[1-9][0-9]*`) (`.[0-9]+`)?
/// (`[eE][+-]?[0-9]+`)?.
fn number_end(bytes: &[u8], mut at: usize) -> Option<usize> {
    let digits_end = |from: usize| {
        from + bytes[from.min(bytes.len())..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count()
    };
    if bytes.get(at) == Some(&b'-') {
        at += 1;
    }
    at = match bytes.get(at)? {
        b'0' => at + 1,
        b'1'..=b'9' => digits_end(at),
        _ => return None,
    };
    if bytes.get(at) == Some(&b'.') {
        let end = digits_end(at + 1);
        if end == at + 1 {
            return None;
        }
        at = end;
    }
    if matches!(bytes.get(at), Some(b'e' | b'E')) {
        at += 1;
        if matches!(bytes.get(at), Some(b'+' | b'-')) {
            at += 1;
        }
        let end = digits_end(at);
        if end == at {
            return None;
        }
        at = end;
    }
    Some(at)
}

/// Just after `word` (`true`, `false`, `null`) if it stands at `at`.
fn word_end(bytes: &[u8], at: usize, word: &[u8]) -> Option<usize> {
    bytes[at..].starts_with(word).then_some(at + word.len())
}

/// One cell of a raw line, as the general way would read it.
enum RawCell<'a> {
    Null,
    Text(Cow<'a, str>),
    Kind(&'static str),
}

impl<'a> RawCell<'a> {
    /// `raw` is a value as written; `escaped` whether its line holds a backslash.
    fn of(raw: &'a str, escaped: bool) -> RawCell<'a> {
        match raw.as_bytes()[0] {
            b'n' => RawCell::Null,
            b't' | b'f' => RawCell::Kind("a boolean"),
            b'[' => RawCell::Kind("an array"),
            b'{' => RawCell::Kind("an object"),
            // Checked by `cells` to decode.
            b'"' if escaped && raw.contains('\\') => {
                RawCell::Text(Cow::Owned(serde_json::from_str(raw).unwrap_or_default()))
            }
            b'"' => RawCell::Text(Cow::Borrowed(&raw[1..raw.len() - 1])),
            // A number, checked by serde_json: its text as written.
            _ => RawCell::Text(Cow::Borrowed(raw)),
        }
    }
}

struct RawCells<'a> {
    cells: [Option<RawCell<'a>>; COLUMN_COUNT],
}

impl ColumnsOf for RawCells<'_> {
    fn has(&self, column: Column) -> bool {
        self.cells[column as usize].is_some()
    }
}

impl Cells for RawCells<'_> {
    fn cell(&self, column: Column) -> Result<Option<Cow<'_, str>>, CellError> {
        match &self.cells[column as usize] {
            None | Some(RawCell::Null) => Ok(None),
            Some(RawCell::Text(text)) => {
                let text = row::trim(text);
                Ok((!text.is_empty()).then_some(Cow::Borrowed(text)))
            }
            Some(RawCell::Kind(what)) => not_a_cell(column, what),
        }
    }
}

/// A line's entries as serde_json reads them.
struct RawEntries<'a>(Vec<(Key<'a>, &'a str)>);

impl<'de> Deserialize<'de> for RawEntries<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor;
        impl<'de> Visitor<'de> for EntriesVisitor {
            type Value = RawEntries<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawEntries<'de>, A::Error> {
                let mut entries = Vec::with_capacity(COLUMN_COUNT);
                while let Some((key, value)) = map.next_entry::<Key<'de>, &'de RawValue>()? {
                    entries.push((key, value.get()));
                }
                Ok(RawEntries(entries))
            }
        }
        deserializer.deserialize_map(EntriesVisitor)
    }
}

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E>(self, key: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(key)))
            }
            fn visit_str<E>(self, key: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(key.to_owned())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
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
        let columns = columns_of(entries.iter().map(|(key, _)| key.as_str()))?;
        Ok(JsonCells { entries, columns })
    }
}

impl ColumnsOf for JsonCells<'_> {
    fn has(&self, column: Column) -> bool {
        self.columns[column as usize].is_some()
    }
}

impl Cells for JsonCells<'_> {
    fn cell(&self, column: Column) -> Result<Option<Cow<'_, str>>, CellError> {
        let Some(index) = self.columns[column as usize] else {
            return Ok(None);
        };
        let found = |what: &str| not_a_cell(column, what);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Table;
    use proptest::prelude::*;

    /// Keys: every column in two cases, with spaces, escaped, and unknown ones.
    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("op"),
            Just("OP"),
            Just("table"),
            Just("id"),
            Just("ID"),
            Just(" id "),
            Just("order_time"),
            Just("customer_id"),
            Just("ITEM_CT"),
            Just("order_subtotal"),
            Just("Discount_Code"),
            Just("code"),
            Just("percentage"),
            Just("name"),
            Just("\\u0069d"),
            Just("n\\u00e9"),
            Just("x\\ud800"),
        ]
        .prop_map(|key| format!("\"{key}\""))
    }

    /// Values of every JSON kind, the forms a cell takes and the escapes that go wrong;
    /// no exponents, which the two ways quote differently (see below).
    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("\"d\""),
            Just("\"u\""),
            Just("\"orders\""),
            Just("\"discount_codes\""),
            Just("7"),
            Just("-0"),
            Just("12.500"),
            Just("99999999999999999999999"),
            Just("\"12.5\""),
            Just("\" 3 \""),
            Just("\"\""),
            Just("\"A\\u0042C\""),
            Just("\"2026-11-03 00:00:19.915\""),
            Just("\"2026-11-03T09:11:40+09:00\""),
            Just("1793664189287"),
            Just("\"FWJZV40\""),
            Just("\"\\ud800\""),
            Just("\"\\\"q\\\"\""),
            Just("null"),
            Just("true"),
            Just("false"),
            Just("[1,\"\\u00e9\"]"),
            Just("[]"),
            Just("{\"a\":\"\\udc00\"}"),
            Just("{\"b\":1}"),
        ]
        .prop_map(str::to_string)
    }

    fn object() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec((key(), value()), 0..9).prop_map(|entries| {
            let inner: Vec<String> = entries.iter().map(|(k, v)| format!("{k}:{v}")).collect();
            format!("{{{}}}", inner.join(",")).into_bytes()
        })
    }

    fn line() -> impl Strategy<Value = Vec<u8>> {
        let mangled = (object(), any::<usize>(), any::<u8>()).prop_map(|(mut line, at, byte)| {
            let at = at % (line.len() + 1);
            line.insert(at, byte);
            line
        });
        prop_oneof![4 => object(), 1 => mangled, 1 => proptest::collection::vec(any::<u8>(), 0..40)]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

        /// The raw reading gives every line the result, or the error, of the general way.
        /// A byte inserted into a number can make an exponent, which the two ways quote
        /// differently by design (below): such lines are left out.
        #[test]
        fn raw_lines_read_as_the_general_way(text in line()) {
            let exponent = text.windows(2).any(|w| w[0].is_ascii_digit() && matches!(w[1], b'e' | b'E'));
            prop_assume!(!exponent);
            for role in [Role::Update, Role::Snapshot(Table::Orders), Role::Snapshot(Table::DiscountCodes)] {
                prop_assert_eq!(parse_line(&text, role), parse_line_general(&text, role));
            }
        }
    }

    /// Pieces of flat and not quite flat lines: JSON whitespace and other spaces,
    /// numbers of every form and the near misses, strings with escapes and control
    /// characters, nested values, words and their misspellings.
    fn flat_piece() -> impl Strategy<Value = &'static str> {
        proptest::sample::select(vec![
            "{",
            "}",
            ",",
            ":",
            " ",
            "\t",
            "\r\n",
            "\u{c}",
            "\"id\"",
            "\"ORDER_TIME\"",
            "\"a b\"",
            "\"\"",
            "\"é\"",
            "\"q\\\"\"",
            "\"\u{1}\"",
            "\"x",
            "0",
            "-0",
            "7",
            "01",
            "12.500",
            "1.",
            ".5",
            "-",
            "1e3",
            "1E+3",
            "2e-",
            "1e400",
            "99999999999999999999999",
            "true",
            "false",
            "null",
            "nul",
            "truex",
            "[1]",
            "{}",
        ])
    }

    /// Objects of well-formed entries, spaced at random, and lines of random pieces.
    fn flat_line() -> impl Strategy<Value = Vec<u8>> {
        let space = proptest::sample::select(vec!["", " ", "\t", "  ", "\n"]);
        let value = prop_oneof![value(), flat_piece().prop_map(str::to_string)];
        let entry =
            (key(), value, space.clone(), space.clone()).prop_map(|(key, value, before, after)| {
                format!("{before}{key}{after}:{before}{value}{after}")
            });
        let object =
            (proptest::collection::vec(entry, 0..9), space).prop_map(|(entries, space)| {
                format!("{space}{{{}}}{space}", entries.join(",")).into_bytes()
            });
        let pieces =
            proptest::collection::vec(flat_piece(), 0..16).prop_map(|p| p.concat().into_bytes());
        prop_oneof![3 => object, 2 => pieces, 1 => line()]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 5000, failure_persistence: None, ..ProptestConfig::default() })]

        /// The flat reader answers only for lines serde_json reads, and as serde_json does.
        #[test]
        fn flat_lines_read_as_serde_json_reads_them(text in flat_line()) {
            let as_written = |entries: Vec<(Key, &str)>| -> Vec<(String, String)> {
                entries.into_iter().map(|(key, value)| (key.0.into_owned(), value.to_string())).collect()
            };
            if let Some(flat) = flat_entries(&text) {
                let serde: Option<RawEntries> = serde_json::from_slice(&text).ok();
                prop_assert_eq!(Some(as_written(flat)), serde.map(|line| as_written(line.0)));
            }
        }
    }

    #[test]
    fn flat_lines_of_users_exports_take_the_flat_reader() {
        for text in [
            &br#"{"op":"u","table":"orders","id":2,"order_subtotal":232.5,"discount_code":"NBERO35"}"#[..],
            br#" { "id" : -0.5e-3 , "x" : null, "y": true } "#,
            b"{}",
        ] {
            assert!(flat_entries(text).is_some(), "{}", String::from_utf8_lossy(text));
        }
        for text in [
            &br#"{"id":"\u0031"}"#[..],
            br#"{"id":[1]}"#,
            br#"{"id":01}"#,
            b"{\"id\":1}x",
        ] {
            assert!(
                flat_entries(text).is_none(),
                "{}",
                String::from_utf8_lossy(text)
            );
        }
    }

    /// A number's text is as written: the general way (serde_json's
    /// `arbitrary_precision`) would quote `1e3` as `1e+3`.
    #[test]
    fn an_exponent_is_quoted_as_written() {
        let text = br#"{"op":"d","table":"orders","id":1e3}"#;
        let error = parse_line(text, Role::Update).unwrap_err();
        assert_eq!(error.column, Some(Column::Id));
        assert!(error.reason.contains("'1e3'"), "{}", error.reason);
    }

    #[test]
    fn a_raw_line_is_read_without_the_general_way() {
        let text = br#"{"op":"u","table":"orders","ID":2,"ORDER_TIME":"2026-11-03 00:06:49.115","CUSTOMER_ID":9,"ITEM_CT":7,"ORDER_SUBTOTAL":232.5,"DISCOUNT_CODE":"NBERO35"}"#;
        let cells = RawLine::parse(text)
            .and_then(RawLine::cells)
            .expect("read raw");
        assert_eq!(
            cells.cell(Column::OrderSubtotal).unwrap().as_deref(),
            Some("232.5")
        );
        assert_eq!(
            cells.cell(Column::DiscountCode).unwrap().as_deref(),
            Some("NBERO35")
        );
        assert!(matches!(
            parse_line(text, Role::Update),
            Ok(Change::Order { .. })
        ));
    }
}
