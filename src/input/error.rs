//! What a bad file or a bad row is reported as.

use serde::{Deserialize, Serialize};
use std::fmt;

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
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(column) = &self.column {
            write!(f, ": column {column}")?;
        }
        write!(f, ": {}", self.reason)
    }
}

impl std::error::Error for InputError {}

/// A row left out under `--bad-rows skip`: where it was, why, and its text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reject {
    pub error: InputError,
    pub row: String,
}
