//! `discounting`: per-discount order analytics, kept exact while orders and codes change.
//!
//! Where to start: `run::run_job` runs a `run::Job` (base snapshots plus update files)
//! on timely workers and returns the changelog and the final table. The layers, one
//! concern each:
//!
//! - `decimal`: exact fixed-point parsing and half-up rounding; no floats anywhere.
//! - `model`: the two keyed tables' rows and the changes to them.
//! - `input`: CSV and JSON Lines files into changes, each worker reading its own share.
//! - `upsert`: the keyed-table operator (last change in file order wins), over
//!   `keyed_table` (a sorted run plus recent changes).
//! - `dataflow`: the query, maintained by differential dataflow.
//! - `cluster`: connecting the processes of a timely cluster, with a bounded wait.
//! - `control`: all-gather between workers, to agree on each epoch before applying it.
//! - `result`: sums into printed rows, and the changelog of those rows.
//! - `run`: the epoch loop; `reference`: the same answers with plain hash maps.
//! - `generate`: deterministic data at scale, for benchmarks and trials.
//! - `report`: the self-contained HTML report; `serve`: the HTTP API and live dashboard.
//! - `output`, `cli`, `app`: formats, arguments, and carrying out a command line.

pub mod app;
pub mod cli;
pub mod cluster;
pub mod control;
pub mod dataflow;
pub mod decimal;
pub mod generate;
pub mod input;
pub mod kafka;
pub mod keyed_table;
pub mod memory;
pub mod model;
pub mod output;
pub mod output_file;
pub mod percentages;
pub mod pg;
pub mod reference;
pub mod report;
pub mod result;
pub mod run;
pub mod serve;
pub mod sink;
pub mod source;
pub mod streams;
pub mod upsert;
