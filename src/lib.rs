//! `discounting`: per-discount order analytics, kept exact under upserts and deletes.

pub mod decimal;
pub mod input;
pub mod model;
