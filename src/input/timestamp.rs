//! Reading an order time without allocating, in one pass over the bytes for the usual
//! shapes.
//!
//! This replaces chrono's `DateTime::parse_from_rfc3339` and `NaiveDateTime::parse_from_str`
//! with the format `%Y-%m-%d %H:%M:%S%.f`, whose format-string machinery a profile showed
//! at about a fifth of load time. It accepts exactly what they accepted, quirks included
//! (whitespace before every number of the space form, one-digit fields, signed years of
//! any width, leap second 60, the Unicode minus sign in an offset), so that no file reads
//! differently; the property test below holds it to the chrono reader it replaced.

use super::error::quoted;

/// The order times the enriched output can write back as RFC 3339 with a four-digit year:
/// 0000-01-01T00:00:00.000Z ..= 9999-12-31T23:59:59.999Z, in epoch milliseconds.
pub const ORDER_TIME_MS: std::ops::RangeInclusive<i64> = -62_167_219_200_000..=253_402_300_799_999;

/// Reads an order time: epoch milliseconds, RFC 3339, or `YYYY-MM-DD HH:MM:SS[.fff]` as
/// UTC, within `ORDER_TIME_MS` (what is read can be written back in the same form).
pub fn parse_timestamp(text: &str) -> Result<i64, String> {
    let ms = parse_any_timestamp(text)?;
    if ORDER_TIME_MS.contains(&ms) {
        Ok(ms)
    } else {
        Err(format!(
            "{} is outside the years 0000 to 9999",
            quoted(text)
        ))
    }
}

/// The common forms read straight from bytes, for the snapshot's fast path: epoch
/// milliseconds of at most 18 digits, or what `fixed_form` reads; within `ORDER_TIME_MS`.
/// `Some` only where `parse_timestamp` gives the same time; `None` says "ask it".
pub(super) fn plain_timestamp(bytes: &[u8]) -> Option<i64> {
    let ms = match crate::decimal::plain_digits(bytes) {
        Some(ms) => ms,
        None => fixed_form(bytes)?,
    };
    ORDER_TIME_MS.contains(&ms).then_some(ms)
}

fn parse_any_timestamp(text: &str) -> Result<i64, String> {
    // Epoch milliseconds, the common form (std's parser is a fast single pass already);
    // anything else that starts like a number goes on to the date forms. A date's `-` at
    // byte 4 is never part of an integer, and at most four digits before it never overflow.
    let bytes = text.as_bytes();
    if matches!(bytes.first(), Some(b'0'..=b'9' | b'-')) && bytes.get(4) != Some(&b'-') {
        match text.parse::<i64>() {
            Ok(ms) => return Ok(ms),
            Err(e) if *e.kind() != std::num::IntErrorKind::InvalidDigit => {
                return Err(format!("{} does not fit in 64 bits", quoted(text)));
            }
            Err(_) => {}
        }
    }
    if let Some(ms) = fixed_form(bytes).or_else(|| date_time(text)) {
        return Ok(ms);
    }
    Err(format!(
        "{} is not a timestamp (expected epoch milliseconds, RFC 3339, or YYYY-MM-DD HH:MM:SS[.fff])",
        quoted(text)
    ))
}

/// `YYYY-MM-DD?HH:MM:SS[.f…]` at fixed positions, `?` a `T`, `t` or space, then an
/// offset: RFC 3339 exactly as chrono's `parse_from_rfc3339` reads it (leap second 60,
/// read as second 59 plus one second; any number of fraction digits; `Z`, `z`, or `+`,
/// `-` or U+2212 then `HH:MM` with minutes up to 59 and the offset under 24 hours).
/// Without an offset and with a space, it is the usual shape of the space form, which
/// `date_time` would read to the same time; `None` leaves every other text to it.
fn fixed_form(bytes: &[u8]) -> Option<i64> {
    let head: &[u8; 19] = bytes.get(..19)?.try_into().ok()?;
    let separators = (head[4] == b'-')
        & (head[7] == b'-')
        & (head[13] == b':')
        & (head[16] == b':')
        & matches!(head[10], b'T' | b't' | b' ');
    if !separators {
        return None;
    }
    let pair = |at: usize| {
        let (tens, ones) = (head[at].wrapping_sub(b'0'), head[at + 1].wrapping_sub(b'0'));
        (tens <= 9 && ones <= 9).then(|| u32::from(tens) * 10 + u32::from(ones))
    };
    let year = pair(0)? * 100 + pair(2)?;
    let (month, day) = (pair(5)?, pair(8)?);
    let (hour, minute, second) = (pair(11)?, pair(14)?, pair(17)?);
    let (milli, end) = match bytes.get(19) {
        Some(b'.') => fraction(bytes, 20)?,
        _ => (0, 19),
    };
    let rest = bytes.get(end..)?;
    let offset = if rest.is_empty() && head[10] == b' ' {
        0
    } else {
        rfc3339_offset(rest)?
    };
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let days = days_from_civil(i64::from(year), month, day)?;
    to_epoch_ms(days, hour, minute, second, milli, offset)
}

/// The offset of an RFC 3339 time, in seconds east of UTC, which must end the text.
fn rfc3339_offset(bytes: &[u8]) -> Option<i64> {
    const MINUS_SIGN: &[u8] = "\u{2212}".as_bytes();
    let (negative, rest) = match bytes {
        [b'Z' | b'z'] => return Some(0),
        [b'+', rest @ ..] => (false, rest),
        [b'-', rest @ ..] => (true, rest),
        _ => match bytes.strip_prefix(MINUS_SIGN) {
            Some(rest) => (true, rest),
            None => return None,
        },
    };
    if rest.len() != 5 {
        return None;
    }
    let hours = two_digits(rest, 0)?;
    expect(rest, 2, b':')?;
    let minutes = two_digits(rest, 3)?;
    // chrono's FixedOffset holds less than a day.
    if hours > 23 || minutes > 59 {
        return None;
    }
    let seconds = i64::from(hours * 3600 + minutes * 60);
    Some(if negative { -seconds } else { seconds })
}

/// `YYYY-MM-DD HH:MM:SS[.fff]` as chrono's `NaiveDateTime::parse_from_str(text,
/// "%Y-%m-%d %H:%M:%S%.f")` reads it, for what `fixed_form` leaves: any Unicode whitespace
/// before each number, and none or any between date and time; one or two digits for each
/// field but the year, which is one to four digits, or any number after a `+` or `-`,
/// within chrono's years -262143 to 262142; second 60; a fraction of at least one digit.
fn date_time(text: &str) -> Option<i64> {
    let mut cursor = Cursor { text, at: 0 };
    cursor.skip_whitespace();
    let year = match cursor.peek() {
        Some(b'-') => {
            cursor.at += 1;
            cursor.number(usize::MAX)?.checked_neg()?
        }
        Some(b'+') => {
            cursor.at += 1;
            cursor.number(usize::MAX)?
        }
        _ => cursor.number(4)?,
    };
    if !(-262_143..=262_142).contains(&year) {
        return None;
    }
    cursor.literal(b'-')?;
    let month = cursor.field(1..=12)?;
    cursor.literal(b'-')?;
    let day = cursor.field(1..=31)?;
    let hour = cursor.field(0..=23)?;
    cursor.literal(b':')?;
    let minute = cursor.field(0..=59)?;
    cursor.literal(b':')?;
    let second = cursor.field(0..=60)?;
    let milli = if cursor.peek() == Some(b'.') {
        let (milli, end) = fraction(text.as_bytes(), cursor.at + 1)?;
        cursor.at = end;
        milli
    } else {
        0
    };
    if cursor.at != text.len() {
        return None;
    }
    let days = days_from_civil(year, month, day)?;
    to_epoch_ms(days, hour, minute, second, milli, 0)
}

/// A position in a text, always at a character boundary.
struct Cursor<'a> {
    text: &'a str,
    at: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    /// Skips what `str::trim_start` skips (Unicode whitespace, vertical tab included).
    fn skip_whitespace(&mut self) {
        // Printable ASCII, the usual next byte, is never whitespace: no need to decode.
        if self.peek().is_none_or(|byte| byte.is_ascii_graphic()) {
            return;
        }
        let rest = self.text.get(self.at..).unwrap_or_default();
        self.at = self.text.len() - rest.trim_start().len();
    }

    fn literal(&mut self, byte: u8) -> Option<()> {
        if self.peek() == Some(byte) {
            self.at += 1;
            Some(())
        } else {
            None
        }
    }

    /// One to `max_digits` digits (more are left for what follows), as an i64.
    fn number(&mut self, max_digits: usize) -> Option<i64> {
        let digits = self.text.as_bytes().get(self.at..)?;
        let count = digits
            .iter()
            .take(max_digits)
            .take_while(|b| b.is_ascii_digit())
            .count();
        if count == 0 {
            return None;
        }
        let mut value: i64 = 0;
        for &byte in &digits[..count] {
            value = value.checked_mul(10)?.checked_add(i64::from(byte - b'0'))?;
        }
        self.at += count;
        Some(value)
    }

    /// A one- or two-digit field after optional whitespace, within `range`.
    fn field(&mut self, range: std::ops::RangeInclusive<u32>) -> Option<u32> {
        self.skip_whitespace();
        let value = u32::try_from(self.number(2)?).ok()?;
        range.contains(&value).then_some(value)
    }
}

fn two_digits(bytes: &[u8], at: usize) -> Option<u32> {
    match bytes.get(at..at.checked_add(2)?)? {
        [tens @ b'0'..=b'9', ones @ b'0'..=b'9'] => {
            Some(u32::from(tens - b'0') * 10 + u32::from(ones - b'0'))
        }
        _ => None,
    }
}

fn expect(bytes: &[u8], at: usize, byte: u8) -> Option<()> {
    (bytes.get(at) == Some(&byte)).then_some(())
}

/// A fraction of a second starting at `start`: at least one digit, all of them consumed,
/// truncated to milliseconds as chrono's `timestamp_millis` truncates nanoseconds.
/// Returns the milliseconds and where the digits end.
fn fraction(bytes: &[u8], start: usize) -> Option<(u32, usize)> {
    let digits = bytes.get(start..)?;
    let count = digits.iter().take_while(|b| b.is_ascii_digit()).count();
    if count == 0 {
        return None;
    }
    let mut milli = 0;
    for place in 0..3 {
        let digit = digits
            .get(place)
            .filter(|_| place < count)
            .map_or(0, |b| b - b'0');
        milli = milli * 10 + u32::from(digit);
    }
    Some((milli, start + count))
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar, or `None` if the
/// day does not exist. Howard Hinnant's `days_from_civil`
/// (<https://howardhinnant.github.io/date_algorithms.html#days_from_civil>).
fn days_from_civil(year: i64, month: u32, day: u32) -> Option<i64> {
    const MONTH_DAYS: [u32; 12] = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let leap_day = month == 2 && year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = MONTH_DAYS.get(month.checked_sub(1)? as usize)? + u32::from(leap_day);
    if !(1..=month_days).contains(&day) {
        return None;
    }
    // Years start in March, so that a leap day is the last day of its year.
    let year = year - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let day_of_year = i64::from((153 * ((month + 9) % 12) + 2) / 5 + day - 1);
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era.checked_mul(146_097)?
        .checked_add(day_of_era)?
        .checked_sub(719_468)
}

/// Epoch milliseconds of a local time `offset` seconds east of UTC. Second 60 counts as
/// a whole second more, as chrono's leap second (59 and 1,000 ms) does; the time of day
/// is never negative, so times before 1970 floor like `timestamp_millis`.
fn to_epoch_ms(
    days: i64,
    hour: u32,
    minute: u32,
    second: u32,
    milli: u32,
    offset: i64,
) -> Option<i64> {
    let seconds = i64::from(hour * 3600 + minute * 60 + second);
    days.checked_mul(86_400)?
        .checked_add(seconds)?
        .checked_sub(offset)?
        .checked_mul(1000)?
        .checked_add(i64::from(milli))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The chrono-based reader this module replaced, kept as the oracle.
    fn by_chrono(text: &str) -> Result<i64, String> {
        fn any(text: &str) -> Result<i64, String> {
            if text.starts_with(|c: char| c.is_ascii_digit() || c == '-') {
                match text.parse::<i64>() {
                    Ok(ms) => return Ok(ms),
                    Err(e) if *e.kind() != std::num::IntErrorKind::InvalidDigit => {
                        return Err(format!("{} does not fit in 64 bits", quoted(text)));
                    }
                    Err(_) => {}
                }
            }
            if let Ok(time) = chrono::DateTime::parse_from_rfc3339(text) {
                return Ok(time.timestamp_millis());
            }
            if let Ok(time) = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f") {
                return Ok(time.and_utc().timestamp_millis());
            }
            Err(format!(
                "{} is not a timestamp (expected epoch milliseconds, RFC 3339, or YYYY-MM-DD HH:MM:SS[.fff])",
                quoted(text)
            ))
        }
        let ms = any(text)?;
        if ORDER_TIME_MS.contains(&ms) {
            Ok(ms)
        } else {
            Err(format!(
                "{} is outside the years 0000 to 9999",
                quoted(text)
            ))
        }
    }

    fn same_as_chrono(text: &str) {
        assert_eq!(parse_timestamp(text), by_chrono(text), "{text:?}");
    }

    #[test]
    fn three_forms_within_the_years_0000_to_9999() {
        let rfc = parse_timestamp("2026-11-03T10:15:30Z").unwrap();
        assert_eq!(rfc, 1_793_700_930_000);
        assert_eq!(parse_timestamp("1793700930000"), Ok(rfc));
        assert_eq!(parse_timestamp("2026-11-03 10:15:30"), Ok(rfc));
        assert_eq!(parse_timestamp("2026-11-03 10:15:30.250"), Ok(rfc + 250));
        assert_eq!(parse_timestamp("2026-11-03T11:15:30+01:00"), Ok(rfc));
        assert_eq!(
            parse_timestamp("99999999999999999999"),
            Err("'99999999999999999999' does not fit in 64 bits".to_string())
        );
        assert_eq!(
            parse_timestamp("yesterday"),
            Err("'yesterday' is not a timestamp (expected epoch milliseconds, RFC 3339, or YYYY-MM-DD HH:MM:SS[.fff])".to_string())
        );
        assert_eq!(
            parse_timestamp("0000-01-01T00:00:00Z"),
            Ok(*ORDER_TIME_MS.start())
        );
        assert_eq!(
            parse_timestamp("9999-12-31 23:59:59.999"),
            Ok(*ORDER_TIME_MS.end())
        );
        assert_eq!(parse_timestamp("253402300799999"), Ok(*ORDER_TIME_MS.end()));
        assert_eq!(
            parse_timestamp("253402300800000"),
            Err("'253402300800000' is outside the years 0000 to 9999".to_string())
        );
        for text in [
            "2026-11-03",
            "-62167219200001",
            "9223372036854775807",
            "9999-12-31T23:59:59-01:00",
            "0000-01-01T00:00:00+01:00",
        ] {
            assert!(parse_timestamp(text).is_err(), "{text}");
            same_as_chrono(text);
        }
    }

    /// What chrono accepts beyond the plain forms, and what it refuses.
    #[test]
    fn chrono_quirks() {
        // Every case is checked against chrono too.
        let at = |text: &str| {
            same_as_chrono(text);
            parse_timestamp(text)
        };
        let rfc = 1_793_700_930_000;
        // RFC 3339.
        assert_eq!(at("2026-11-03t10:15:30z"), Ok(rfc));
        assert_eq!(at("2026-11-03 10:15:30Z"), Ok(rfc));
        assert_eq!(at("2026-11-03T10:15:30.123456789123+00:00"), Ok(rfc + 123));
        assert_eq!(at("2026-11-03T09:15:30\u{2212}01:00"), Ok(rfc));
        assert_eq!(at("2026-11-03T10:15:60Z"), Ok(rfc + 30_000));
        assert_eq!(at("2026-11-03T10:15:60.5Z"), Ok(rfc + 30_500));
        assert_eq!(at("2026-11-04T10:14:30+23:59"), Ok(rfc));
        for refused in [
            "2026-11-03T10:15:30+24:00",
            "2026-11-03T10:15:30+01:60",
            "2026-11-03T10:15:30+0100",
            "2026-11-03T10:15:30+01",
            "2026-11-03T10:15:30",
            "2026-11-03T10:15:30.Z",
            "2026-11-03T10:15:61Z",
            "2026-11-03T24:00:00Z",
            "2026-02-29T10:15:30Z",
            "2026-11-03T10:15:30Z ",
            "+2026-11-03T10:15:30Z",
        ] {
            assert!(at(refused).is_err(), "{refused}");
        }
        // The space form: whitespace before any number, short fields, signed years.
        assert_eq!(at("2026-11-0310:15:30"), Ok(rfc));
        assert_eq!(at(" 2026- 11-\t3 \u{3000}10:\u{b}15: 30"), Ok(rfc));
        assert_eq!(at("+0000002026-11-03 10:15:30.9999"), Ok(rfc + 999));
        assert_eq!(at("2026-11-03 10:15:60"), Ok(rfc + 30_000));
        assert_eq!(at("0-1-1 0:0:0"), Ok(*ORDER_TIME_MS.start()));
        assert_eq!(at("-0-1-1 0:0:0"), Ok(*ORDER_TIME_MS.start()));
        assert_eq!(at("2024-02-29 00:00:00"), Ok(1_709_164_800_000));
        assert_eq!(
            at("-1-12-31 23:59:59.999"),
            Err("'-1-12-31 23:59:59.999' is outside the years 0000 to 9999".to_string())
        );
        for refused in [
            "2026-11-03 10:15:30 ",
            "2026-11-03 10:15:30.",
            "2026-11-03 10:15",
            "2026 -11-03 10:15:30",
            "02026-11-03 10:15:30",
            "2026-011-03 10:15:30",
            "1900-02-29 00:00:00",
            "2026-11-03 10:15:30 +00:00",
            "+262143-01-01 00:00:00",
        ] {
            assert!(at(refused).is_err(), "{refused}");
        }
        // Negative times floor to the millisecond, as `timestamp_millis` does.
        assert_eq!(at("1969-12-31 23:59:59.9999"), Ok(-1));
        assert_eq!(at("1969-12-31T23:59:59.0001Z"), Ok(-1000));
        // An overflowing run of digits is an overflow, whatever follows it.
        assert_eq!(
            at("99999999999999999999-01-01 00:00:00"),
            Err("'99999999999999999999-01-01 00:00:00' does not fit in 64 bits".to_string())
        );
        assert_eq!(
            at("-9223372036854775808").unwrap_err(),
            "'-9223372036854775808' is outside the years 0000 to 9999"
        );
        same_as_chrono("-");
        same_as_chrono("");
    }

    /// The proleptic Gregorian calendar from year -262143 to 262142, day by day, against
    /// chrono's.
    #[test]
    fn days_from_civil_is_chronos_calendar() {
        let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
        let mut date = chrono::NaiveDate::from_ymd_opt(-2001, 1, 1).unwrap();
        let last = chrono::NaiveDate::from_ymd_opt(2401, 12, 31).unwrap();
        while date <= last {
            use chrono::Datelike;
            let days = days_from_civil(i64::from(date.year()), date.month(), date.day());
            assert_eq!(days, Some((date - epoch).num_days()), "{date}");
            date = date.succ_opt().unwrap();
        }
        for (year, month, day) in [(-262_143, 1, 1), (262_142, 12, 31)] {
            let date = chrono::NaiveDate::from_ymd_opt(year, month, day).unwrap();
            let days = days_from_civil(i64::from(year), month, day);
            assert_eq!(days, Some((date - epoch).num_days()));
        }
        assert_eq!(days_from_civil(2026, 0, 1), None);
        assert_eq!(days_from_civil(2026, 4, 31), None);
        assert_eq!(days_from_civil(2000, 2, 29), Some(11_016));
        assert_eq!(days_from_civil(2100, 2, 29), None);
    }

    fn cases(default: u32) -> ProptestConfig {
        let cases = std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default);
        ProptestConfig {
            cases,
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    fn pick(choices: &'static [&'static str]) -> impl Strategy<Value = String> {
        prop::sample::select(choices).prop_map(String::from)
    }

    /// A two-digit field, most often in `0..=max`, sometimes just past it or odd.
    fn field(max: u32) -> impl Strategy<Value = String> {
        prop_oneof![
            6 => (0..=max).prop_map(|v| format!("{v:02}")),
            1 => (0..=max + 2).prop_map(|v| v.to_string()),
            1 => "[0-9]{1,3}",
            1 => pick(&[" 1", "\t07", "\u{a0}9", "\u{b}1", "-1", "+1", "", "a"]),
        ]
    }

    fn year() -> impl Strategy<Value = String> {
        prop_oneof![
            6 => (0..=9999u32).prop_map(|y| format!("{y:04}")),
            2 => pick(&["0000", "9999", "1969", "1970", "2000", "1900", "2024", "2100", "0400"]),
            1 => "[+-]?[0-9]{1,8}",
            1 => pick(&["+262142", "+262143", "-262143", "-262144", "-0", "+2026", "-2026",
                "99999999999999999999", "-9223372036854775809", " 2026", "\u{3000}2026"]),
        ]
    }

    fn separator(usual: &'static str) -> impl Strategy<Value = String> {
        prop_oneof![
            8 => Just(usual.to_string()),
            1 => pick(&["-", ":", ".", " ", "T", "t", "", "  ", "\t", "\u{3000}", "\u{b}", "é", "--"]),
        ]
    }

    fn fraction() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => Just(String::new()),
            3 => "\\.[0-9]{1,12}",
            1 => pick(&[".", ". 5", ".x", ",5", ".5 "]),
        ]
    }

    fn offset() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => Just(String::new()),
            3 => pick(&["Z", "z", "UTC", "+00:00", "-00:00", "Z ", " Z", "ZZ"]),
            4 => ("[+\\-\u{2212}]", 0..=26u32, 0..=61u32)
                .prop_map(|(sign, h, m)| format!("{sign}{h:02}:{m:02}")),
            1 => "[+\\-\u{2212}]?[0-9:]{0,6}",
        ]
    }

    /// A timestamp shape: RFC 3339 or the space form, each field near its range.
    fn shaped() -> impl Strategy<Value = String> {
        let date = (year(), separator("-"), field(13), separator("-"), field(32));
        let time = (
            pick(&["T", " ", "t", "", "  ", "\t", "\u{3000}", "x"]),
            field(24),
            separator(":"),
            field(60),
            separator(":"),
            field(61),
        );
        (date, time, fraction(), offset()).prop_map(
            |((y, s1, mo, s2, d), (t, h, s3, mi, s4, s), f, o)| {
                format!("{y}{s1}{mo}{s2}{d}{t}{h}{s3}{mi}{s4}{s}{f}{o}")
            },
        )
    }

    /// Fields in range (but for days past a month's end) in one of the two forms.
    fn well_formed() -> impl Strategy<Value = String> {
        let date = (0..=9999u32, 1..=12u32, 1..=31u32);
        let time = (0..=23u32, 0..=59u32, 0..=60u32, fraction());
        let rfc3339 = prop_oneof![
            Just("Z".to_string()),
            ("[+\\-\u{2212}]", 0..=23u32, 0..=59u32)
                .prop_map(|(sign, h, m)| format!("{sign}{h:02}:{m:02}")),
        ];
        let form = prop_oneof![
            rfc3339.prop_map(|offset| ("T", offset)),
            Just((" ", String::new())),
        ];
        (date, time, form).prop_map(|((y, mo, d), (h, mi, s, f), (t, o))| {
            format!("{y:04}-{mo:02}-{d:02}{t}{h:02}:{mi:02}:{s:02}{f}{o}")
        })
    }

    /// Leap days and month ends of leap and common years.
    fn month_end() -> impl Strategy<Value = String> {
        (
            pick(&[
                "2000", "1900", "2024", "2023", "2100", "0000", "0400", "9999", "+10000", "-4",
            ]),
            1..=12u32,
            27..=32u32,
            pick(&["T", " "]),
            pick(&["Z", "", "+01:00", ".5"]),
        )
            .prop_map(|(y, m, d, t, tail)| format!("{y}-{m:02}-{d:02}{t}23:59:59{tail}"))
    }

    fn epoch() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<i64>().prop_map(|v| v.to_string()),
            (ORDER_TIME_MS.start() - 10..=ORDER_TIME_MS.end() + 10).prop_map(|v| v.to_string()),
            "-?[0-9]{15,22}[0-9a-z: -]?",
            pick(&["-", "--1", "-+1", "+1", "1e3", "1.0", "0x10", "-0", "00"]),
        ]
    }

    /// Replaces, inserts or removes characters, for near misses of every kind.
    fn mutated(base: impl Strategy<Value = String>) -> impl Strategy<Value = String> {
        let edit = (
            any::<prop::sample::Index>(),
            0..3u8,
            prop::sample::select(
                &[
                    '0', '5', '9', '-', ':', '.', ' ', 'T', 'Z', '+', '\u{2212}', '\u{a0}',
                    '\u{b}', 'é',
                ][..],
            ),
        );
        (base, prop::collection::vec(edit, 1..3)).prop_map(|(text, edits)| {
            let mut chars: Vec<char> = text.chars().collect();
            for (index, kind, c) in edits {
                let at = index.index(chars.len() + 1);
                match kind {
                    0 if at < chars.len() => chars[at] = c,
                    1 => chars.insert(at, c),
                    _ if at < chars.len() => {
                        chars.remove(at);
                    }
                    _ => chars.push(c),
                }
            }
            chars.into_iter().collect()
        })
    }

    fn near_timestamps() -> impl Strategy<Value = String> {
        prop_oneof![
            6 => shaped(),
            4 => well_formed(),
            2 => month_end(),
            2 => epoch(),
            4 => mutated(prop_oneof![shaped(), well_formed(), month_end(), epoch()]),
            1 => "\\PC{0,30}",
            1 => "[0-9 :.TZtz+\\-]{0,30}",
        ]
    }

    proptest! {
        #![proptest_config(cases(3000))]

        /// The same result as the chrono reader, value or error message, for texts
        /// mostly near a timestamp. `PROPTEST_CASES=20000` tries more.
        #[test]
        fn reads_what_chrono_read(text in near_timestamps()) {
            prop_assert_eq!(parse_timestamp(&text), by_chrono(&text), "{:?}", text);
        }

        /// The fast path's time, where it has one, is the full reader's.
        #[test]
        fn plain_timestamps_read_as_parse_timestamp_reads(text in near_timestamps()) {
            if let Some(ms) = plain_timestamp(text.as_bytes()) {
                prop_assert_eq!(Ok(ms), parse_timestamp(&text), "{:?}", text);
            }
        }
    }

    #[test]
    fn the_usual_forms_are_plain() {
        for text in [
            "1793664014007",
            "2026-11-03T10:15:30Z",
            "2026-11-03 10:15:30.25",
            "2026-11-03T10:15:30+01:00",
        ] {
            assert_eq!(
                plain_timestamp(text.as_bytes()).map(Ok),
                Some(parse_timestamp(text)),
                "{text}"
            );
        }
    }
}
