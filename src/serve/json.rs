//! The JSON the API sends, written directly: figures go out as JSON numbers made of their
//! exact printed digits (`73.04` stays `73.04`, never a float's nearest neighbour).

use std::fmt::Write as _;
use std::time::SystemTime;

use crate::result::{ChangeRow, ResultRow};

/// ksqlDB's column names of the result, in `result::COLUMNS` order.
pub const KSQL_COLUMNS: [&str; 6] = [
    "PERCENTAGE",
    "AVG_ITEM_CT",
    "AVG_ORDER_SUBTOTAL",
    "AVG_ORDER_TOTAL",
    "AVG_DISCOUNT_TOTAL",
    "ORDER_COUNT",
];

/// Whether `text` is a number as JSON writes one (`-?(0|[1-9][0-9]*)(.[0-9]+)?`, no
/// exponent: the job never prints one).
pub fn is_json_number(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let (whole, fraction) = match digits.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (digits, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    all_digits(whole)
        && (whole == "0" || !whole.starts_with('0'))
        && fraction.is_none_or(all_digits)
}

/// Appends `text` as a JSON number when it is one; anything else goes out as a JSON
/// string, so that the document stays valid whatever a figure holds.
pub fn push_number(out: &mut String, text: &str) {
    if is_json_number(text) {
        out.push_str(text);
    } else {
        push_string(out, text);
    }
}

/// Appends `text` as a JSON string.
pub fn push_string(out: &mut String, text: &str) {
    out.push_str(&serde_json::Value::from(text).to_string());
}

/// Appends the fields of one row (without braces): `"PERCENTAGE":15,...`.
fn push_row_fields(out: &mut String, row: &ResultRow) {
    for (i, (name, value)) in KSQL_COLUMNS.iter().zip(row.values()).enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        out.push_str(name);
        out.push_str("\":");
        push_number(out, &value);
    }
}

/// One row as a JSON object with ksqlDB's names.
pub fn push_row(out: &mut String, row: &ResultRow) {
    out.push('{');
    push_row_fields(out, row);
    out.push('}');
}

/// One changelog line: `{"DIFF":-1,"PERCENTAGE":15,...}`.
pub fn push_change(out: &mut String, change: &ChangeRow) {
    let _ = write!(out, "{{\"DIFF\":{},", change.diff);
    push_row_fields(out, &change.row);
    out.push('}');
}

/// A time as RFC 3339 in UTC with milliseconds, e.g. `2024-05-01T12:00:00.123Z`.
pub fn rfc3339(time: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(time).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The fields every document about one epoch starts with (without the opening brace):
/// `"epoch":N,"position":"…"|null,"completed_at":"…"`.
pub fn push_epoch_fields(
    out: &mut String,
    epoch: u64,
    position: Option<&str>,
    completed_at: SystemTime,
) {
    let _ = write!(out, "\"epoch\":{epoch},\"position\":");
    match position {
        Some(p) => push_string(out, p),
        None => out.push_str("null"),
    }
    out.push_str(",\"completed_at\":");
    push_string(out, &rfc3339(completed_at));
}

/// `{"error":"…"}`.
pub fn error(message: &str) -> String {
    let mut out = String::from("{\"error\":");
    push_string(&mut out, message);
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_as_json_writes_them() {
        for ok in [
            "0",
            "15",
            "12.5",
            "73.04",
            "-1",
            "0.00",
            "100000000000000000000.01",
        ] {
            assert!(is_json_number(ok), "{ok}");
        }
        for bad in ["", "-", "01", "1.", ".5", "1e5", "+1", "NaN", "1.2.3", " 1"] {
            assert!(!is_json_number(bad), "{bad}");
        }
    }

    #[test]
    fn a_row_keeps_its_digits() {
        use crate::result::Figure;
        let row = ResultRow {
            percentage_micros: 15_000_000,
            avg_item_ct: Figure::new(4, 0),
            avg_order_subtotal: Figure::new(7_304, 2),
            avg_order_total: Figure::new(6_208, 2),
            avg_discount_total: Figure::new(1_096, 2),
            order_count: 5,
        };
        let mut out = String::new();
        push_change(
            &mut out,
            &ChangeRow {
                epoch: 3,
                diff: -1,
                row,
            },
        );
        assert_eq!(
            out,
            "{\"DIFF\":-1,\"PERCENTAGE\":15,\"AVG_ITEM_CT\":4,\"AVG_ORDER_SUBTOTAL\":73.04,\
             \"AVG_ORDER_TOTAL\":62.08,\"AVG_DISCOUNT_TOTAL\":10.96,\"ORDER_COUNT\":5}"
        );
    }

    #[test]
    fn what_is_not_a_number_goes_out_as_a_string() {
        let mut out = String::new();
        push_number(&mut out, "n/a \"x\"");
        assert_eq!(out, "\"n/a \\\"x\\\"\"");
    }
}
