//! The one test crate (one link on 2 cores): every module runs the real binary or the
//! library on small files it writes itself.

// The benchmark's baseline, compiled here too so that its answers are checked.
// (Its timing fields are read by the benchmark only.)
#[allow(dead_code)]
#[path = "../benches/baseline.rs"]
mod baseline;
// The baseline against the reference and the dataflow on generated data.
mod baseline_answers;
// Arguments out of range: usage errors, never a panic.
mod bounds;
// Files that change while they are read.
mod changing;
// Output of the built binary on fixtures: tables, changelogs, formats, what-if.
mod cli;
// A timely cluster of two processes on 127.0.0.1.
mod cluster;
// Follow mode: files dropped into a directory while the binary runs, then SIGINT.
mod follow;
// Property tests over arbitrary input (proptest).
mod fuzz;
// Bad files and rows: the error each gets, and that nothing of a bad epoch is written.
mod errors;
// The Kafka source and sink against a real Kafka-protocol broker (tansu).
mod kafka;
// A throwaway Kafka-protocol broker for the tests that need one.
mod kafka_server;
// Outputs never destroy anything: inputs, devices, FIFOs, symlinks, modes.
mod outputs;
// Random epochs against a from-scratch recomputation, at 1, 2 and 4 workers.
mod oracle;
// A throwaway PostgreSQL server for the tests that need one.
mod pg_server;
// The PostgreSQL source against a real server.
mod postgres;
// The PostgreSQL sink against a real server.
mod postgres_sink;
// The HTTP API and the dashboard (in headless Chromium) through the library's Server.
mod serve;
// A full or closed stdout, a full stderr, a reader that goes away.
mod streams;
mod util;
