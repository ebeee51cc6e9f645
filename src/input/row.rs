//! Columns, and turning one row's cells into a `Change`, the same way for CSV and JSON.

use std::borrow::Cow;

use super::error::quoted;
pub use super::timestamp::parse_timestamp;
use crate::decimal::{self, NumberError};
use crate::model::{Change, Code, Order, Table, MAX_PERCENTAGE_MICROS};

/// Every column the SPEC names. Others are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    Op,
    Table,
    Id,
    OrderTime,
    CustomerId,
    ItemCt,
    OrderSubtotal,
    DiscountCode,
    Code,
    Percentage,
}

pub const COLUMN_COUNT: usize = 10;

impl Column {
    const ALL: [Column; COLUMN_COUNT] = [
        Column::Op,
        Column::Table,
        Column::Id,
        Column::OrderTime,
        Column::CustomerId,
        Column::ItemCt,
        Column::OrderSubtotal,
        Column::DiscountCode,
        Column::Code,
        Column::Percentage,
    ];

    /// Matches a column name, trimmed and in any case (ksqlDB writes upper case). JSON
    /// Lines rows name their columns on every line, so this allocates nothing.
    pub fn from_name(name: &str) -> Option<Column> {
        let name = trim(name);
        // Folding only the key's case (JSON Lines rows name their columns on every line:
        // `eq_ignore_ascii_case` against every name was some 140 instructions a key).
        Column::ALL
            .into_iter()
            .find(|column| is_name(name.as_bytes(), column.name().as_bytes()))
    }

    pub fn name(self) -> &'static str {
        match self {
            Column::Op => "op",
            Column::Table => "table",
            Column::Id => "id",
            Column::OrderTime => "order_time",
            Column::CustomerId => "customer_id",
            Column::ItemCt => "item_ct",
            Column::OrderSubtotal => "order_subtotal",
            Column::DiscountCode => "discount_code",
            Column::Code => "code",
            Column::Percentage => "percentage",
        }
    }
}

/// Whether `key` is `name` (lower-case ASCII letters and `_`) in any case: for such names
/// `eq_ignore_ascii_case`, with the case bit set on the key's byte where the name has a
/// letter and every byte compared (no early exit: a few wide operations).
fn is_name(key: &[u8], name: &[u8]) -> bool {
    key.len() == name.len()
        && key.iter().zip(name).fold(0u8, |differ, (&k, &n)| {
            let fold = if n.is_ascii_lowercase() { 0x20 } else { 0 };
            differ | ((k | fold) ^ n)
        }) == 0
}

/// Columns a base snapshot of `table` (a file or a database table) must have.
pub fn required_columns(table: Table) -> &'static [Column] {
    match table {
        Table::DiscountCodes => &[Column::Code, Column::Percentage],
        Table::Orders => &[
            Column::Id,
            Column::CustomerId,
            Column::ItemCt,
            Column::OrderSubtotal,
        ],
    }
}

/// The key column of `table`.
pub fn key_column(table: Table) -> Column {
    match table {
        Table::DiscountCodes => Column::Code,
        Table::Orders => Column::Id,
    }
}

/// A row's cell could not be read: which column, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellError {
    pub column: Option<Column>,
    pub reason: String,
}

impl CellError {
    pub fn new(column: Column, reason: impl Into<String>) -> CellError {
        CellError {
            column: Some(column),
            reason: reason.into(),
        }
    }
}

/// Read access to one row's cells, already trimmed; an empty or absent cell is `None`.
pub trait Cells {
    fn cell(&self, column: Column) -> Result<Option<Cow<'_, str>>, CellError>;
}

/// Trims the ASCII whitespace the SPEC says surrounds values.
pub fn trim(text: &str) -> &str {
    text.trim_ascii()
}

/// Upsert or delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Upsert,
    Delete,
}

/// Reads an `op` word: ours, Debezium's and Flink's, in any case.
pub fn parse_op(text: &str) -> Option<Op> {
    const UPSERT: [&str; 8] = ["upsert", "insert", "+", "c", "r", "u", "+i", "+u"];
    const DELETE: [&str; 5] = ["delete", "-", "d", "-d", "-u"];
    let is = |word: &&str| text.eq_ignore_ascii_case(word);
    if UPSERT.iter().any(is) {
        Some(Op::Upsert)
    } else if DELETE.iter().any(is) {
        Some(Op::Delete)
    } else {
        None
    }
}

/// Reads a `table` cell of a JSON Lines update.
pub fn parse_table(text: &str) -> Option<Table> {
    [Table::Orders, Table::DiscountCodes]
        .into_iter()
        .find(|table| table.name().eq_ignore_ascii_case(text))
}

/// Reads the op of an update row.
pub fn read_op(cells: &impl Cells) -> Result<Op, CellError> {
    let text = required(cells, Column::Op)?;
    parse_op(&text).ok_or_else(|| {
        CellError::new(
            Column::Op,
            format!("unknown op {} (expected upsert or delete, or insert, +, -, c, r, u, d, +I, +U, -U, -D)", quoted(&text)),
        )
    })
}

/// Turns one row of `table` into a change. A delete reads only the key.
pub fn parse_change(table: Table, op: Op, cells: &impl Cells) -> Result<Change, CellError> {
    match table {
        Table::DiscountCodes => {
            let code = Code::from(required(cells, Column::Code)?.as_ref());
            let percentage_micros = match op {
                Op::Delete => None,
                Op::Upsert => Some(percentage(cells)?),
            };
            Ok(Change::Code {
                code,
                percentage_micros,
            })
        }
        Table::Orders => {
            let id = integer(cells, Column::Id)?;
            let row = match op {
                Op::Delete => None,
                Op::Upsert => Some(order(cells)?),
            };
            Ok(Change::Order { id, row })
        }
    }
}

fn order(cells: &impl Cells) -> Result<Order, CellError> {
    let customer_id = integer(cells, Column::CustomerId)?;
    let item_ct = integer(cells, Column::ItemCt)?;
    if item_ct < 0 {
        return Err(CellError::new(Column::ItemCt, "must not be negative"));
    }
    let subtotal_micros = decimal_cell(cells, Column::OrderSubtotal)?;
    if subtotal_micros < 0 {
        return Err(CellError::new(
            Column::OrderSubtotal,
            "must not be negative",
        ));
    }
    let order_time_ms = match cells.cell(Column::OrderTime)? {
        None => None,
        Some(text) => Some(
            parse_timestamp(&text).map_err(|reason| CellError::new(Column::OrderTime, reason))?,
        ),
    };
    Ok(Order {
        discount_code: cells
            .cell(Column::DiscountCode)?
            .map(|code| Code::from(code.as_ref()))
            .unwrap_or_default(),
        item_ct,
        subtotal_micros,
        customer_id,
        order_time_ms,
    })
}

fn percentage(cells: &impl Cells) -> Result<i64, CellError> {
    let micros = decimal_cell(cells, Column::Percentage)?;
    if !(0..=MAX_PERCENTAGE_MICROS).contains(&micros) {
        return Err(CellError::new(
            Column::Percentage,
            "must be between 0 and 100",
        ));
    }
    Ok(micros)
}

fn required<'a>(cells: &'a impl Cells, column: Column) -> Result<Cow<'a, str>, CellError> {
    cells
        .cell(column)?
        .ok_or_else(|| CellError::new(column, "is required but empty or missing"))
}

fn integer(cells: &impl Cells, column: Column) -> Result<i64, CellError> {
    let text = required(cells, column)?;
    decimal::parse_integer(&text).map_err(|e| number_error(column, &text, e, "an integer"))
}

fn decimal_cell(cells: &impl Cells, column: Column) -> Result<i64, CellError> {
    let text = required(cells, column)?;
    decimal::parse_micros(&text).map_err(|e| number_error(column, &text, e, "a decimal"))
}

fn number_error(column: Column, text: &str, error: NumberError, what: &str) -> CellError {
    let reason = match error {
        NumberError::NotANumber => format!("{} is not {what}", quoted(text)),
        NumberError::OutOfRange if what == "an integer" => {
            format!("{} does not fit in 64 bits", quoted(text))
        }
        other => format!("{}: {other}", quoted(text)),
    };
    CellError::new(column, reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_names_match_in_any_case_and_trimmed() {
        assert_eq!(Column::from_name("ITEM_CT"), Some(Column::ItemCt));
        assert_eq!(
            Column::from_name(" Order_Subtotal "),
            Some(Column::OrderSubtotal)
        );
        assert_eq!(Column::from_name("rowtime"), None);
        for column in Column::ALL {
            let upper = column.name().to_ascii_uppercase();
            assert_eq!(Column::from_name(column.name()), Some(column));
            assert_eq!(Column::from_name(&format!(" {upper}\t")), Some(column));
            // One byte off in length is another name.
            assert_eq!(Column::from_name(&format!("{}x", column.name())), None);
            assert_eq!(Column::from_name(&column.name()[1..]), None);
        }
    }

    /// Every key one byte away from a column's name (each byte value at each place) is
    /// that column exactly when `eq_ignore_ascii_case` says so.
    #[test]
    fn names_fold_only_the_case_of_letters() {
        for column in Column::ALL {
            let name = column.name().as_bytes();
            for at in 0..name.len() {
                for byte in 0..=255u8 {
                    let mut key = name.to_vec();
                    key[at] = byte;
                    assert_eq!(
                        is_name(&key, name),
                        key.eq_ignore_ascii_case(name),
                        "{key:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn ops_of_other_tools_are_read() {
        for word in ["upsert", "INSERT", "+", "c", "r", "U", "+I", "+u"] {
            assert_eq!(parse_op(word), Some(Op::Upsert), "{word}");
        }
        for word in ["delete", "DELETE", "-", "d", "-D", "-U"] {
            assert_eq!(parse_op(word), Some(Op::Delete), "{word}");
        }
        assert_eq!(parse_op("merge"), None);
        assert_eq!(parse_op(""), None);
    }
}
