//! A database row, as text values in the table's column order, into a change: the same
//! cells and checks as the files' rows, with the database's own timestamp form.

use std::borrow::Cow;

use crate::input::{
    key_column, parse_change, required_columns, CellError, Cells, Column, InputError, Op, Reject,
};
use crate::model::{Change, Table};

/// How one table's columns map to the SPEC's, by position: from the catalog for a
/// snapshot, from the stream's relation message for changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    pub table: Table,
    /// The table's name as given (`orders`, `shop.orders`), for messages.
    pub name: String,
    /// The table's column names, in order.
    pub names: Vec<String>,
    pub columns: Vec<Option<Column>>,
}

impl Shape {
    /// The shape of columns named `names`, or why the table cannot be read.
    pub fn new(table: Table, name: &str, names: &[String]) -> Result<Shape, String> {
        let columns: Vec<Option<Column>> = names.iter().map(|n| Column::from_name(n)).collect();
        for required in required_columns(table) {
            if !columns.contains(&Some(*required)) {
                return Err(format!(
                    "table {name} has no column {} (it has {})",
                    required.name(),
                    names.join(", ")
                ));
            }
        }
        Ok(Shape {
            table,
            name: name.to_string(),
            names: names.to_vec(),
            columns,
        })
    }

    /// The same table with only the columns the job reads.
    pub fn read_columns(&self) -> Shape {
        let (names, columns) = self
            .names
            .iter()
            .zip(&self.columns)
            .filter(|(_, column)| column.is_some())
            .map(|(name, column)| (name.clone(), *column))
            .unzip();
        Shape {
            names,
            columns,
            ..self.clone()
        }
    }

    fn position(&self, column: Column) -> Option<usize> {
        self.columns.iter().position(|c| *c == Some(column))
    }

    /// The key column of the table.
    pub fn key(&self) -> Column {
        key_column(self.table)
    }

    /// A row of this table (`values` in column order; `None` is NULL) into a change.
    /// `at` says where the row came from (`snapshot`, `LSN 0/16B3F28`) for errors.
    pub fn change<S: AsRef<str>>(
        &self,
        op: Op,
        values: &[Option<S>],
        at: &str,
    ) -> Result<Change, Reject> {
        let cells = RowCells {
            shape: self,
            values,
        };
        parse_change(self.table, op, &cells).map_err(|cell| self.reject(values, at, cell))
    }

    /// A bad row: table, key, column, where, why; the row's values as CSV.
    pub fn reject<S: AsRef<str>>(&self, values: &[Option<S>], at: &str, cell: CellError) -> Reject {
        let key = self
            .position(self.key())
            .and_then(|p| values.get(p)?.as_ref())
            .map_or("", |v| v.as_ref());
        let place = format!("{} {}={key} ({at})", self.name, self.key().name());
        Reject {
            error: InputError {
                file: place,
                line: None,
                column: cell.column.map(|c| c.name().to_string()),
                reason: cell.reason,
            },
            row: csv_line(values),
        }
    }
}

struct RowCells<'a, S> {
    shape: &'a Shape,
    values: &'a [Option<S>],
}

impl<S: AsRef<str>> Cells for RowCells<'_, S> {
    fn cell(&self, column: Column) -> Result<Option<Cow<'_, str>>, CellError> {
        let Some(text) = self
            .shape
            .position(column)
            .and_then(|p| self.values.get(p))
            .and_then(|v| v.as_ref().map(AsRef::as_ref))
        else {
            return Ok(None);
        };
        let text = text.trim_ascii();
        if text.is_empty() {
            return Ok(None);
        }
        Ok(Some(match column {
            Column::OrderTime => as_rfc3339(text),
            _ => Cow::Borrowed(text),
        }))
    }
}

/// PostgreSQL writes a `timestamptz` as `2026-11-03 10:15:30.25+00` (ISO DateStyle): the
/// offset makes it RFC 3339 once the space is a `T` and the offset has minutes. A
/// `timestamp` without zone (`2026-11-03 10:15:30`) is one of the file forms already.
fn as_rfc3339(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let has_date = bytes.len() > 19 && bytes[10] == b' ' && bytes[4] == b'-';
    let Some(sign) = text[19.min(text.len())..]
        .find(['+', '-'])
        .map(|p| p + 19)
        .filter(|_| has_date)
    else {
        return Cow::Borrowed(text);
    };
    let (time, offset) = text.split_at(sign);
    let offset = match offset.len() {
        3 => format!("{offset}:00"),
        6 => offset.to_string(),
        // Seconds in an offset (historic zones) have no RFC 3339 form.
        _ => return Cow::Borrowed(text),
    };
    Cow::Owned(format!("{}T{}{offset}", &time[..10], &time[11..]))
}

/// Values as one CSV line (NULL as an empty cell), for the rejects file.
fn csv_line<S: AsRef<str>>(values: &[Option<S>]) -> String {
    let mut out = Vec::new();
    {
        let mut writer = csv::WriterBuilder::new()
            .terminator(csv::Terminator::Any(b'\n'))
            .from_writer(&mut out);
        let _ = writer.write_record(values.iter().map(|v| v.as_ref().map_or("", AsRef::as_ref)));
    }
    String::from_utf8_lossy(&out).trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::parse_timestamp;

    #[test]
    fn database_timestamps_read_as_the_same_instant() {
        let utc = parse_timestamp("2026-11-03T10:15:30Z").unwrap();
        for (text, expected) in [
            ("2026-11-03 10:15:30+00", utc),
            ("2026-11-03 11:15:30+01", utc),
            ("2026-11-03 10:45:30+00:30", utc),
            ("2026-11-03 10:15:30.25+00", utc + 250),
            ("2026-11-03 05:15:30.123456-05", utc + 123),
            ("2026-11-03 10:15:30", utc),
            ("2026-11-03 10:15:30.5", utc + 500),
        ] {
            assert_eq!(parse_timestamp(&as_rfc3339(text)), Ok(expected), "{text}");
        }
        assert!(parse_timestamp(&as_rfc3339("infinity")).is_err());
        assert!(parse_timestamp(&as_rfc3339("2026-11-03 10:15:30+00 BC")).is_err());
    }

    #[test]
    fn a_row_becomes_a_change_or_a_reject_naming_table_key_and_column() {
        let names: Vec<String> = [
            "ID",
            "order_time",
            "customer_id",
            "item_ct",
            "order_subtotal",
            "discount_code",
            "note",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let shape = Shape::new(Table::Orders, "orders", &names).unwrap();
        let row = |subtotal: &str| {
            vec![
                Some("7".to_string()),
                None,
                Some("3".to_string()),
                Some("2".to_string()),
                Some(subtotal.to_string()),
                Some("AB15".to_string()),
                Some("x".to_string()),
            ]
        };
        let change = shape.change(Op::Upsert, &row("10.50"), "snapshot").unwrap();
        let Change::Order {
            id: 7,
            row: Some(order),
        } = change
        else {
            panic!("{change:?}")
        };
        assert_eq!(order.subtotal_micros, 10_500_000);
        assert_eq!(order.order_time_ms, None);
        let reject = shape
            .change(Op::Upsert, &row("1.1234567"), "LSN 0/16B3F28")
            .unwrap_err();
        assert_eq!(
            reject.error.to_string(),
            "orders id=7 (LSN 0/16B3F28): column order_subtotal: '1.1234567': 7 fractional digits, at most 6 are accepted"
        );
        assert_eq!(reject.row, "7,,3,2,1.1234567,AB15,x");
        assert!(Shape::new(Table::Orders, "orders", &names[..3]).is_err());
    }
}
