//! Exact fixed-point decimals: parsing, half-up rounding of exact quotients, formatting.
//!
//! Every money amount and percentage is held as an integer count of millionths ("micros",
//! six fractional digits). Sums are `i128`; averages are exact rationals that are rounded
//! only when printed. No float ever touches a figure.

use std::fmt;

/// Fractional digits kept for every decimal input.
pub const FRACTION_DIGITS: u32 = 6;
/// One unit in micros.
pub const SCALE: i64 = 1_000_000;

/// Why a decimal or integer cell was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NumberError {
    Empty,
    NotANumber,
    NotFinite,
    TooManyFractionDigits(usize),
    OutOfRange,
}

impl fmt::Display for NumberError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NumberError::Empty => write!(f, "value is empty"),
            NumberError::NotANumber => write!(f, "not a number"),
            NumberError::NotFinite => write!(f, "NaN and infinities are not accepted"),
            NumberError::TooManyFractionDigits(n) => write!(
                f,
                "{n} fractional digits, at most {FRACTION_DIGITS} are accepted"
            ),
            NumberError::OutOfRange => write!(f, "out of range"),
        }
    }
}

/// Parses a plain decimal (`12`, `-3.5`, `.25`, `15.000000`) into micros, exactly.
///
/// Exponents, NaN and infinities are refused; so is any seventh fractional digit, even a
/// zero, because "fractional digits" counts the digits written.
///
/// ```
/// use discounting::decimal::{parse_micros, NumberError};
/// assert_eq!(parse_micros("201.17"), Ok(201_170_000));
/// assert_eq!(parse_micros("1.5000000"), Err(NumberError::TooManyFractionDigits(7)));
/// ```
pub fn parse_micros(text: &str) -> Result<i64, NumberError> {
    parse_micros_bytes(text.as_bytes())
}

/// `parse_micros` of a text's bytes (every accepted text is ASCII, so bytes that are not
/// UTF-8 are never a number).
pub fn parse_micros_bytes(bytes: &[u8]) -> Result<i64, NumberError> {
    let (negative, body) = match bytes.first() {
        None => return Err(NumberError::Empty),
        Some(b'-') => (true, &bytes[1..]),
        Some(b'+') => (false, &bytes[1..]),
        Some(_) => (false, bytes),
    };
    // One pass over the digits (this runs for every amount of every row); errors keep
    // their order: not a number, then too many fractional digits, then out of range.
    let mut value: Option<u64> = Some(0);
    let mut digits = 0;
    let mut dot = None;
    for (index, &byte) in body.iter().enumerate() {
        match byte {
            b'0'..=b'9' => {
                digits += 1;
                value = value
                    .and_then(|v| v.checked_mul(10))
                    .and_then(|v| v.checked_add(u64::from(byte - b'0')));
            }
            b'.' if dot.is_none() => dot = Some(index),
            _ => {
                let named = |name: &str| body.eq_ignore_ascii_case(name.as_bytes());
                if named("nan") || named("inf") || named("infinity") {
                    return Err(NumberError::NotFinite);
                }
                return Err(NumberError::NotANumber);
            }
        }
    }
    if digits == 0 {
        return Err(NumberError::NotANumber);
    }
    let fraction_digits = dot.map_or(0, |dot| body.len() - dot - 1);
    if fraction_digits > FRACTION_DIGITS as usize {
        return Err(NumberError::TooManyFractionDigits(fraction_digits));
    }
    let micros = value
        .and_then(|v| v.checked_mul(10u64.pow(FRACTION_DIGITS - fraction_digits as u32)))
        .ok_or(NumberError::OutOfRange)?;
    let micros = if negative {
        -i128::from(micros)
    } else {
        i128::from(micros)
    };
    i64::try_from(micros).map_err(|_| NumberError::OutOfRange)
}

/// 1 to 18 decimal digits (which always fit in an `i64`) and nothing else, for the fast
/// paths of readers that leave every other text to their full parser.
pub fn plain_digits(bytes: &[u8]) -> Option<i64> {
    if !(1..=18).contains(&bytes.len()) {
        return None;
    }
    let mut value = 0i64;
    for &byte in bytes {
        let digit = byte.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        value = value * 10 + i64::from(digit);
    }
    Some(value)
}

/// Parses a 64-bit integer; `1.0` is not an integer.
pub fn parse_integer(text: &str) -> Result<i64, NumberError> {
    if text.is_empty() {
        return Err(NumberError::Empty);
    }
    text.parse::<i64>().map_err(|e| match e.kind() {
        std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
            NumberError::OutOfRange
        }
        _ => NumberError::NotANumber,
    })
}

/// `numerator / denominator` rounded half up to `digits` fractional digits, as a count
/// of 10^−`digits` units. Both are non-negative, so "half up" and "half away from zero"
/// agree; the quotient is split into whole and remainder first, so only
/// `denominator × 10^digits` has to fit. `None` when it does not, or on a zero
/// denominator.
pub fn rounded_quotient(numerator: u128, denominator: u128, digits: u32) -> Option<u128> {
    let unit = 10u128.pow(digits);
    denominator.checked_mul(unit)?;
    let whole = numerator.checked_div(denominator)?;
    let remainder = numerator % denominator;
    let fraction = remainder * unit / denominator;
    let rest = remainder * unit % denominator;
    // Half up: round when the rest is at least half of the denominator.
    let round_up = rest >= denominator - rest;
    whole
        .checked_mul(unit)?
        .checked_add(fraction + u128::from(round_up))
}

/// Formats `numerator / denominator` rounded half up to `digits` fractional digits.
///
/// Both are non-negative, so "half up" and "half away from zero" agree. The quotient is
/// split into whole and remainder first, so only `denominator * 10^digits` has to fit in a
/// `u128`; `None` when it does not, or when the denominator is zero.
///
/// ```
/// use discounting::decimal::format_quotient;
/// // 73.035 rounds half up to 73.04; 5 / 2 = 2.5 to 3.
/// assert_eq!(format_quotient(73_035, 1_000, 2).as_deref(), Some("73.04"));
/// assert_eq!(format_quotient(5, 2, 0).as_deref(), Some("3"));
/// ```
pub fn format_quotient(numerator: u128, denominator: u128, digits: u32) -> Option<String> {
    let unit = 10u128.pow(digits);
    let scaled = rounded_quotient(numerator, denominator, digits)?;
    let (whole_part, fraction_part) = (scaled / unit, scaled % unit);
    Some(if digits == 0 {
        whole_part.to_string()
    } else {
        format!(
            "{whole_part}.{fraction_part:0width$}",
            width = digits as usize
        )
    })
}

/// Formats micros exactly, dropping trailing fractional zeros (`15000000` → `15`,
/// `12500000` → `12.5`).
pub fn format_micros(micros: i64) -> String {
    format_scaled(i128::from(micros), FRACTION_DIGITS)
}

/// Formats `value / 10^digits` exactly, dropping trailing fractional zeros.
pub fn format_scaled(value: i128, digits: u32) -> String {
    let unit = 10i128.pow(digits);
    let sign = if value < 0 { "-" } else { "" };
    let magnitude = value.unsigned_abs();
    let whole = magnitude / unit as u128;
    let fraction = magnitude % unit as u128;
    if fraction == 0 {
        return format!("{sign}{whole}");
    }
    let text = format!("{fraction:0width$}", width = digits as usize);
    format!("{sign}{whole}.{}", text.trim_end_matches('0'))
}

/// Parses a printed fixed-point figure (as `format_quotient` writes it) back into an
/// integer count of `10^-digits` units, for exact differences of printed figures.
pub fn parse_scaled(text: &str, digits: u32) -> Option<i128> {
    let micros = parse_micros(text).ok()?;
    let drop = FRACTION_DIGITS.checked_sub(digits)?;
    Some(i128::from(micros) / 10i128.pow(drop))
}

/// Formats a scaled difference with an explicit sign and exactly `digits` fractional digits.
pub fn format_signed(value: i128, digits: u32) -> String {
    let unit = 10u128.pow(digits);
    let sign = if value < 0 { "-" } else { "+" };
    let magnitude = value.unsigned_abs();
    if digits == 0 {
        return format!("{sign}{magnitude}");
    }
    format!(
        "{sign}{}.{:0width$}",
        magnitude / unit,
        magnitude % unit,
        width = digits as usize
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(n: u128, d: u128, digits: u32) -> String {
        format_quotient(n, d, digits).unwrap()
    }

    #[test]
    fn parses_exact_micros() {
        assert_eq!(parse_micros("15.0"), Ok(15_000_000));
        assert_eq!(parse_micros("201.17"), Ok(201_170_000));
        assert_eq!(parse_micros(".5"), Ok(500_000));
        assert_eq!(parse_micros("7."), Ok(7_000_000));
        assert_eq!(parse_micros("+0.000001"), Ok(1));
        assert_eq!(parse_micros("-2.5"), Ok(-2_500_000));
        assert_eq!(parse_micros("1.500000"), Ok(1_500_000));
        assert_eq!(
            parse_micros("9223372036854.775807"),
            Ok(i64::MAX),
            "the largest amount fits exactly"
        );
    }

    #[test]
    fn refuses_what_is_not_an_exact_decimal() {
        assert_eq!(
            parse_micros("1.5000000"),
            Err(NumberError::TooManyFractionDigits(7))
        );
        assert_eq!(parse_micros("NaN"), Err(NumberError::NotFinite));
        assert_eq!(parse_micros("-inf"), Err(NumberError::NotFinite));
        assert_eq!(parse_micros("Infinity"), Err(NumberError::NotFinite));
        assert_eq!(parse_micros("1e3"), Err(NumberError::NotANumber));
        assert_eq!(parse_micros("."), Err(NumberError::NotANumber));
        assert_eq!(parse_micros("1.2.3"), Err(NumberError::NotANumber));
        assert_eq!(parse_micros("12a"), Err(NumberError::NotANumber));
        assert_eq!(parse_micros(""), Err(NumberError::Empty));
        assert_eq!(
            parse_micros("9223372036854.775808"),
            Err(NumberError::OutOfRange)
        );
        assert_eq!(
            parse_micros("99999999999999999999999999999999999999999"),
            Err(NumberError::OutOfRange)
        );
    }

    #[test]
    fn integers_are_64_bit_and_whole() {
        assert_eq!(parse_integer("1000"), Ok(1000));
        assert_eq!(parse_integer("-7"), Ok(-7));
        assert_eq!(parse_integer("1.0"), Err(NumberError::NotANumber));
        assert_eq!(
            parse_integer("9223372036854775808"),
            Err(NumberError::OutOfRange)
        );
        assert_eq!(parse_integer(""), Err(NumberError::Empty));
    }

    #[test]
    fn rounds_half_up_on_the_exact_value() {
        assert_eq!(q(5, 2, 0), "3", "2.5 -> 3");
        assert_eq!(q(7, 2, 0), "4", "3.5 -> 4");
        assert_eq!(q(73035, 1000, 2), "73.04", "73.035 -> 73.04");
        assert_eq!(q(73034, 1000, 2), "73.03");
        assert_eq!(q(1, 3, 2), "0.33");
        assert_eq!(q(2, 3, 2), "0.67");
        assert_eq!(q(0, 7, 2), "0.00");
        assert_eq!(q(99_995, 1000, 2), "100.00", "carry into the whole");
        assert_eq!(q(10, 1, 2), "10.00");
    }

    #[test]
    fn rounding_is_exact_for_huge_operands() {
        let d = u128::MAX / 1000;
        assert_eq!(q(d, d, 2), "1.00");
        assert_eq!(q(d / 2 + 1, d, 0), "1");
        assert_eq!(q(d / 2 - 1, d, 0), "0");
        assert_eq!(q(u128::MAX, 1, 0), u128::MAX.to_string());
        assert_eq!(
            format_quotient(1, u128::MAX, 2),
            None,
            "denominator too large"
        );
        assert_eq!(format_quotient(1, 0, 2), None);
    }

    #[test]
    fn formats_micros_without_trailing_zeros() {
        assert_eq!(format_micros(15_000_000), "15");
        assert_eq!(format_micros(12_500_000), "12.5");
        assert_eq!(format_micros(1), "0.000001");
        assert_eq!(format_micros(-2_500_000), "-2.5");
        assert_eq!(format_scaled(10_058_500, 5), "100.585");
    }

    #[test]
    fn printed_figures_round_trip_for_differences() {
        assert_eq!(parse_scaled("100.59", 2), Some(10059));
        assert_eq!(parse_scaled("3", 0), Some(3));
        assert_eq!(format_signed(-1941, 2), "-19.41");
        assert_eq!(format_signed(5, 2), "+0.05");
        assert_eq!(format_signed(0, 0), "+0");
    }
}
