//! One Kafka message into a change: a value as ksqlDB's `VALUE_FORMAT='JSON'` writes it
//! (a row object) or a Debezium envelope (`before`/`after`/`op`), the message key naming
//! the row when the value lacks its key column, and a null value (a tombstone) deleting
//! the key's row. Numbers are read from the text they were written as, so `201.17` is
//! exact, as in the files.

use std::borrow::Cow;

use base64::Engine;
use serde_json::Value;

use crate::input::{
    key_column, parse_change, quoted, CellError, Cells, Column, InputError, JsonCells, JsonObject,
    Op, Reject,
};
use crate::model::{Change, Table};

/// How message values are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ValueFormat {
    /// Each message on its own: a Debezium envelope if it has `op` and `before` or
    /// `after`, else a row.
    #[default]
    Auto,
    /// A row object, as ksqlDB's JSON value format writes it.
    Json,
    /// A Debezium change event, with or without its `schema`/`payload` wrapper.
    Debezium,
}

/// Where a message is, for errors and rejects: `orders partition 3 offset 17`.
pub fn place(topic: &str, partition: i32, offset: i64) -> String {
    format!("{topic} partition {partition} offset {offset}")
}

/// The change a message of `table`'s topic makes, or why it is a bad message.
pub fn decode(
    table: Table,
    format: ValueFormat,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    at: &str,
) -> Result<Change, Reject> {
    decode_cells(table, format, key, value).map_err(|cell| Reject {
        error: InputError {
            file: at.to_string(),
            line: None,
            column: cell.column.map(|c| c.name().to_string()),
            reason: cell.reason,
        },
        row: value.map_or_else(
            || format!("(tombstone) key {}", key.map_or(String::new(), lossy)),
            lossy,
        ),
    })
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn decode_cells(
    table: Table,
    format: ValueFormat,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
) -> Result<Change, CellError> {
    let key = key.map(|key| key_text(table, key)).transpose()?;
    let value = value.map(<[u8]>::trim_ascii).filter(|v| *v != b"null");
    let Some(value) = value else {
        // A tombstone: the key's row is gone.
        return parse_change(table, Op::Delete, &RowCells::key_only(table, key));
    };
    let object = JsonObject::parse(value, "a JSON object or null")?;
    let (entries, schema) = unwrapped(object.0);
    let is_envelope = match format {
        ValueFormat::Json => false,
        ValueFormat::Debezium => true,
        ValueFormat::Auto => {
            field(&entries, "op").is_some()
                && (field(&entries, "after").is_some() || field(&entries, "before").is_some())
        }
    };
    if !is_envelope {
        let cells = JsonCells::new(&entries)?;
        return parse_change(
            table,
            Op::Upsert,
            &RowCells::new(table, cells, key, Vec::new()),
        );
    }
    let op = match field(&entries, "op") {
        Some(Value::String(op)) => op.as_str(),
        _ => {
            return Err(envelope(
                "has no op (a Debezium event has op c, r, u, d or t)",
            ))
        }
    };
    let (op, side) = match op {
        "c" | "r" | "u" => (Op::Upsert, "after"),
        "d" => (Op::Delete, "before"),
        "t" => return Ok(Change::Truncate { table }),
        other => {
            return Err(envelope(&format!(
                "op {} is not one of Debezium's c, r, u, d, t",
                quoted(other)
            )))
        }
    };
    let row = match field(&entries, side) {
        Some(Value::Object(row)) => row
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<Vec<_>>(),
        // A delete's `before` may be absent (REPLICA IDENTITY without the key): the
        // message key names the row.
        None | Some(Value::Null) if op == Op::Delete => Vec::new(),
        _ => return Err(envelope(&format!("op {op:?} has no {side} object"))),
    };
    let converted = schema
        .map(|schema| converted_cells(&row, &schema, side))
        .transpose()?
        .unwrap_or_default();
    let cells = JsonCells::new(&row)?;
    parse_change(table, op, &RowCells::new(table, cells, key, converted))
}

fn envelope(reason: &str) -> CellError {
    CellError {
        column: Some(Column::Op),
        reason: format!("Debezium envelope {reason}"),
    }
}

fn field<'a>(entries: &'a [(String, Value)], name: &str) -> Option<&'a Value> {
    entries.iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

/// A Kafka Connect JSON message (`{"schema": …, "payload": …}`) as its payload's entries
/// and its schema; any other object as it is.
fn unwrapped(entries: Vec<(String, Value)>) -> (Vec<(String, Value)>, Option<Value>) {
    let wrapped = entries.len() == 2
        && matches!(field(&entries, "payload"), Some(Value::Object(_)))
        && field(&entries, "schema").is_some();
    if !wrapped {
        return (entries, None);
    }
    let mut schema = None;
    let mut payload = Vec::new();
    for (name, value) in entries {
        match (name.as_str(), value) {
            ("payload", Value::Object(map)) => payload = map.into_iter().collect(),
            ("schema", value) => schema = Some(value),
            _ => {}
        }
    }
    (payload, Some(schema.unwrap_or(Value::Null)))
}

/// Cells whose JSON form the envelope's schema says is not their value: Kafka Connect's
/// `Decimal` (base64 of the unscaled big-endian integer) and Debezium's micro- and
/// nanosecond timestamps, as the text the file rules read.
fn converted_cells(
    row: &[(String, Value)],
    schema: &Value,
    side: &str,
) -> Result<Vec<(Column, String)>, CellError> {
    let Some(fields) = schema
        .get("fields")
        .and_then(Value::as_array)
        .and_then(|sides| {
            sides
                .iter()
                .find(|f| f.get("field") == Some(&Value::from(side)))
        })
        .and_then(|side| side.get("fields"))
        .and_then(Value::as_array)
    else {
        return Ok(Vec::new());
    };
    let mut converted = Vec::new();
    for (name, value) in row {
        let Some(column) = Column::from_name(name) else {
            continue;
        };
        let Some(described) = fields
            .iter()
            .find(|f| f.get("field").and_then(Value::as_str) == Some(name.as_str()))
        else {
            continue;
        };
        let logical = described.get("name").and_then(Value::as_str).unwrap_or("");
        let text = match (logical, value) {
            ("org.apache.kafka.connect.data.Decimal", Value::String(encoded)) => {
                let scale = described
                    .pointer("/parameters/scale")
                    .and_then(|s| s.as_str().map(str::to_string).or(Some(s.to_string())))
                    .and_then(|s| s.parse::<u32>().ok())
                    .unwrap_or(0);
                connect_decimal(encoded, scale).map_err(|reason| CellError::new(column, reason))?
            }
            ("io.debezium.time.MicroTimestamp", Value::Number(n)) => {
                scaled_down(n.as_str(), 1_000).map_err(|r| CellError::new(column, r))?
            }
            ("io.debezium.time.NanoTimestamp", Value::Number(n)) => {
                scaled_down(n.as_str(), 1_000_000).map_err(|r| CellError::new(column, r))?
            }
            _ => continue,
        };
        converted.push((column, text));
    }
    Ok(converted)
}

/// Kafka Connect's `Decimal`: base64 of a big-endian two's-complement integer, scaled.
fn connect_decimal(encoded: &str, scale: u32) -> Result<String, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|e| {
            format!(
                "{}: not a Kafka Connect decimal (base64: {e})",
                quoted(encoded)
            )
        })?;
    if scale > 38 {
        return Err(format!(
            "a Kafka Connect decimal of scale {scale} is out of range"
        ));
    }
    if bytes.is_empty() || bytes.len() > 16 {
        return Err(format!(
            "{}: a Kafka Connect decimal of {} bytes is out of range",
            quoted(encoded),
            bytes.len()
        ));
    }
    let negative = bytes[0] & 0x80 != 0;
    let mut full = [if negative { 0xff } else { 0 }; 16];
    full[16 - bytes.len()..].copy_from_slice(&bytes);
    let unscaled = i128::from_be_bytes(full);
    Ok(crate::decimal::format_signed(unscaled, scale)
        .trim_start_matches('+')
        .to_string())
}

/// An integer count of `per_ms`ths of a millisecond as whole milliseconds, rounded down
/// (times are kept to the millisecond).
fn scaled_down(text: &str, per_ms: i64) -> Result<String, String> {
    let value: i64 = text
        .parse()
        .map_err(|_| format!("{}: not an integer timestamp", quoted(text)))?;
    Ok(value.div_euclid(per_ms).to_string())
}

/// A message key as the text of the table's key column: a JSON string, number or
/// object holding the key column (as Kafka Connect and ksqlDB's JSON key format write
/// it), plain text (ksqlDB's KAFKA key format for strings), or for orders a 4- or 8-byte
/// big-endian integer (its KAFKA format for INT and BIGINT), told from text by bytes
/// that are not UTF-8 or are control characters.
fn key_text(table: Table, key: &[u8]) -> Result<String, CellError> {
    let column = key_column(table);
    // Binary: not text, or text with control bytes (a small integer's leading zeros).
    let text = std::str::from_utf8(key)
        .ok()
        .filter(|text| !text.bytes().any(|b| b.is_ascii_control()));
    let Some(text) = text else {
        return match (table, key.len()) {
            (Table::Orders, 8) => {
                Ok(i64::from_be_bytes(key.try_into().unwrap_or([0; 8])).to_string())
            }
            (Table::Orders, 4) => {
                Ok(i32::from_be_bytes(key.try_into().unwrap_or([0; 4])).to_string())
            }
            _ => Err(CellError::new(
                column,
                "the message key is neither UTF-8 text nor a 4- or 8-byte integer",
            )),
        };
    };
    let text = text.trim_ascii();
    let Ok(json) = serde_json::from_str::<Value>(text) else {
        return Ok(text.to_string());
    };
    let scalar = |value: &Value| match value {
        Value::String(s) => Some(s.trim_ascii().to_string()),
        Value::Number(n) => Some(n.as_str().to_string()),
        _ => None,
    };
    let of_object = |map: &serde_json::Map<String, Value>| {
        map.iter()
            .find(|(k, _)| k.trim_ascii().eq_ignore_ascii_case(column.name()))
            .and_then(|(_, v)| scalar(v))
    };
    match &json {
        Value::Object(map) => match map.get("payload") {
            Some(Value::Object(payload)) if map.contains_key("schema") => of_object(payload),
            _ => of_object(map),
        }
        .ok_or_else(|| {
            CellError::new(
                column,
                format!("the message key {} has no {}", quoted(text), column.name()),
            )
        }),
        other => Ok(scalar(other).unwrap_or_else(|| text.to_string())),
    }
}

/// A row's cells: the JSON object's, some replaced by their schema's reading, the key
/// column taken from the message key when the row lacks it.
struct RowCells<'a> {
    table: Table,
    cells: Option<JsonCells<'a>>,
    key: Option<String>,
    converted: Vec<(Column, String)>,
}

impl<'a> RowCells<'a> {
    fn new(
        table: Table,
        cells: JsonCells<'a>,
        key: Option<String>,
        converted: Vec<(Column, String)>,
    ) -> Self {
        RowCells {
            table,
            cells: Some(cells),
            key,
            converted,
        }
    }

    fn key_only(table: Table, key: Option<String>) -> Self {
        RowCells {
            table,
            cells: None,
            key,
            converted: Vec::new(),
        }
    }
}

impl Cells for RowCells<'_> {
    fn cell(&self, column: Column) -> Result<Option<Cow<'_, str>>, CellError> {
        if let Some((_, text)) = self.converted.iter().find(|(c, _)| *c == column) {
            return Ok(Some(Cow::Borrowed(text)));
        }
        let cell = match &self.cells {
            Some(cells) => cells.cell(column)?,
            None => None,
        };
        if cell.is_none() && column == key_column(self.table) {
            return Ok(self
                .key
                .as_deref()
                .filter(|k| !k.is_empty())
                .map(Cow::Borrowed));
        }
        Ok(cell)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Order;

    fn order(key: Option<&str>, value: Option<&str>) -> Result<Change, String> {
        decode(
            Table::Orders,
            ValueFormat::Auto,
            key.map(str::as_bytes),
            value.map(str::as_bytes),
            "orders partition 0 offset 7",
        )
        .map_err(|r| r.error.to_string())
    }

    fn upserted(id: i64, subtotal_micros: i64, time: Option<i64>) -> Change {
        Change::Order {
            id,
            row: Some(Order {
                discount_code: "AB15".into(),
                item_ct: 2,
                subtotal_micros,
                customer_id: 3,
                order_time_ms: time,
            }),
        }
    }

    #[test]
    fn ksqldb_rows_read_exactly_with_the_key_from_the_message_when_absent() {
        let row = r#"{"ID":7,"CUSTOMER_ID":3,"ITEM_CT":2,"ORDER_SUBTOTAL":10.50,"DISCOUNT_CODE":"AB15","ORDER_TIME":null}"#;
        assert_eq!(order(None, Some(row)), Ok(upserted(7, 10_500_000, None)));
        let keyless =
            r#"{"CUSTOMER_ID":3,"ITEM_CT":2,"ORDER_SUBTOTAL":10.5,"DISCOUNT_CODE":"AB15"}"#;
        for key in [
            "7",
            "\"7\"",
            r#"{"ID":7}"#,
            r#"{"schema":{},"payload":{"id":7}}"#,
        ] {
            assert_eq!(
                order(Some(key), Some(keyless)),
                Ok(upserted(7, 10_500_000, None)),
                "{key}"
            );
        }
        let binary = decode(
            Table::Orders,
            ValueFormat::Json,
            Some(&7i64.to_be_bytes()),
            Some(keyless.as_bytes()),
            "x",
        );
        assert_eq!(binary, Ok(upserted(7, 10_500_000, None)));
        assert_eq!(
            order(None, Some(keyless)),
            Err("orders partition 0 offset 7: column id: is required but empty or missing".into())
        );
    }

    #[test]
    fn a_tombstone_deletes_the_keys_row() {
        assert_eq!(
            order(Some("7"), None),
            Ok(Change::Order { id: 7, row: None })
        );
        assert_eq!(
            order(Some("7"), Some("null")),
            Ok(Change::Order { id: 7, row: None })
        );
        let code = decode(
            Table::DiscountCodes,
            ValueFormat::Auto,
            Some(b"AB15"),
            None,
            "x",
        );
        assert_eq!(
            code,
            Ok(Change::Code {
                code: "AB15".into(),
                percentage_micros: None
            })
        );
        assert!(order(None, None).unwrap_err().contains("column id"));
    }

    #[test]
    fn debezium_envelopes_upsert_delete_and_truncate() {
        let after = r#"{"id":7,"customer_id":3,"item_ct":2,"order_subtotal":"10.50","discount_code":"AB15","order_time":"2026-11-03T10:15:30Z"}"#;
        let time = Some(1_793_700_930_000);
        for op in ["c", "r", "u"] {
            let event = format!(r#"{{"before":null,"after":{after},"op":"{op}","ts_ms":1}}"#);
            assert_eq!(order(None, Some(&event)), Ok(upserted(7, 10_500_000, time)));
        }
        let delete = r#"{"before":{"id":7},"after":null,"op":"d"}"#;
        assert_eq!(
            order(None, Some(delete)),
            Ok(Change::Order { id: 7, row: None })
        );
        let keyed = r#"{"before":null,"after":null,"op":"d"}"#;
        assert_eq!(
            order(Some(r#"{"id":7}"#), Some(keyed)),
            Ok(Change::Order { id: 7, row: None })
        );
        let truncate = r#"{"before":null,"after":null,"op":"t"}"#;
        assert_eq!(
            order(None, Some(truncate)),
            Ok(Change::Truncate {
                table: Table::Orders
            })
        );
        assert_eq!(
            order(None, Some(r#"{"before":null,"after":null,"op":"x"}"#)),
            Err("orders partition 0 offset 7: column op: Debezium envelope op 'x' is not one of Debezium's c, r, u, d, t".into())
        );
    }

    #[test]
    fn a_schema_reads_connect_decimals_and_micro_timestamps() {
        // 1050 at scale 2 is 10.50; base64 of 0x041a.
        let schema = r#"{"type":"struct","fields":[{"type":"struct","field":"after","fields":[
            {"field":"id","type":"int64"},
            {"field":"order_subtotal","type":"bytes","name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"2"}},
            {"field":"order_time","type":"int64","name":"io.debezium.time.MicroTimestamp"}]}]}"#;
        let payload = r#"{"before":null,"op":"c","after":{"id":7,"customer_id":3,"item_ct":2,"order_subtotal":"BBo=","discount_code":"AB15","order_time":1762164930123456}}"#;
        let event = format!(r#"{{"schema":{schema},"payload":{payload}}}"#);
        assert_eq!(
            order(None, Some(&event)),
            Ok(upserted(7, 10_500_000, Some(1_762_164_930_123)))
        );
        assert_eq!(connect_decimal("/w==", 0), Ok("-1".into()));
        assert_eq!(connect_decimal("AQ==", 7), Ok("0.0000001".into()));
        assert!(connect_decimal("!!", 2)
            .unwrap_err()
            .contains("not a Kafka Connect decimal"));
    }

    #[test]
    fn bad_values_say_why() {
        assert_eq!(
            order(None, Some("{not json")),
            Err("orders partition 0 offset 7: not valid JSON: key must be a string at line 1 column 2".into())
        );
        assert_eq!(
            order(None, Some("[1]")),
            Err("orders partition 0 offset 7: expected a JSON object or null".into())
        );
        let bad = r#"{"ID":7,"CUSTOMER_ID":3,"ITEM_CT":2,"ORDER_SUBTOTAL":1.1234567}"#;
        assert!(order(None, Some(bad))
            .unwrap_err()
            .contains("7 fractional digits"));
    }
}
