//! What a bad file or a bad row is reported as.

use serde::{Deserialize, Serialize};
use std::fmt::{self, Write};

/// A bad file or row: `FILE:LINE: column C: reason`, each part present when known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputError {
    pub file: String,
    pub line: Option<u64>,
    pub column: Option<String>,
    pub reason: String,
}

impl InputError {
    /// An error about the file as a whole (it cannot be opened, its header is wrong, ...).
    pub fn file(file: &str, reason: impl Into<String>) -> InputError {
        InputError {
            file: file.to_string(),
            line: None,
            column: None,
            reason: reason.into(),
        }
    }

    /// An error about one line of the file.
    pub fn at(file: &str, line: u64, column: Option<&str>, reason: impl Into<String>) -> Self {
        InputError {
            file: file.to_string(),
            line: Some(line),
            column: column.map(str::to_string),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for InputError {
    /// One line whatever the file's name or text: cells in reasons are `quoted` already,
    /// and any control character left (in a name) is escaped here.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_escaped(f, &self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(column) = &self.column {
            f.write_str(": column ")?;
            write_escaped(f, column)?;
        }
        f.write_str(": ")?;
        write_escaped(f, &self.reason)
    }
}

/// The most of a cell's text a message shows, in bytes (escaped).
pub const SHOWN_BYTES: usize = 200;

/// A cell's text as a message shows it: in single quotes, control characters escaped
/// (`\n`, `\r`, `\t`, `\x1b`, ...) so that the message stays one line and sends no
/// escape sequence to a terminal, and cut to `SHOWN_BYTES` with the whole length said:
/// `'aaaa'… (1048576 bytes)`. The rejects file keeps the whole row.
pub fn quoted(text: &str) -> String {
    let mut shown = String::with_capacity(text.len().min(SHOWN_BYTES) + 2);
    shown.push('\'');
    let mut cut = false;
    for c in text.chars() {
        let before = shown.len();
        let _ = write_char_escaped(&mut shown, c);
        if shown.len() - 1 > SHOWN_BYTES {
            shown.truncate(before);
            cut = true;
            break;
        }
    }
    shown.push('\'');
    if cut {
        let _ = write!(shown, "… ({} bytes)", text.len());
    }
    shown
}

/// Writes `text` with its control characters escaped.
fn write_escaped(out: &mut impl Write, text: &str) -> fmt::Result {
    if !text.chars().any(needs_escape) {
        return out.write_str(text);
    }
    text.chars().try_for_each(|c| write_char_escaped(out, c))
}

fn write_char_escaped(out: &mut impl Write, c: char) -> fmt::Result {
    match c {
        '\n' => out.write_str("\\n"),
        '\r' => out.write_str("\\r"),
        '\t' => out.write_str("\\t"),
        c if needs_escape(c) && (c as u32) < 0x80 => write!(out, "\\x{:02x}", c as u32),
        c if needs_escape(c) => write!(out, "\\u{{{:x}}}", c as u32),
        c => out.write_char(c),
    }
}

/// Control characters, and the bidirectional overrides that reorder what a terminal shows.
fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

impl std::error::Error for InputError {}

/// A row left out under `--bad-rows skip`: where it was, why, and its text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reject {
    pub error: InputError,
    pub row: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_cells_are_escaped_and_cut() {
        assert_eq!(quoted("abc"), "'abc'");
        assert_eq!(quoted("a\nb\r\tc\u{1b}[31m"), "'a\\nb\\r\\tc\\x1b[31m'");
        assert_eq!(quoted("\u{85}\u{202e}"), "'\\u{85}\\u{202e}'");
        let long = "é".repeat(1000);
        let shown = quoted(&long);
        assert!(shown.ends_with("'… (2000 bytes)"), "{shown}");
        assert_eq!(shown.len(), 2 + SHOWN_BYTES + "… (2000 bytes)".len());
        // Exactly at the limit: whole, no length.
        assert_eq!(quoted(&"x".repeat(SHOWN_BYTES)).len(), SHOWN_BYTES + 2);
    }

    #[test]
    fn a_file_name_with_a_newline_stays_on_one_line() {
        let error = InputError::at("a\nb.csv", 3, Some("id"), "bad");
        assert_eq!(error.to_string(), "a\\nb.csv:3: column id: bad");
    }
}
