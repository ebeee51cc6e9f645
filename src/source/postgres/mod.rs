//! A PostgreSQL database as a source of epochs (`--postgres URL`).
//!
//! Epoch 0 is a snapshot of both tables that fits the replication stream exactly: the
//! leader makes a replication slot that exports its snapshot, and every worker copies its
//! share of the tables' pages inside that snapshot, on its own connection. Every later
//! epoch is one or more whole committed transactions from the stream (pgoutput), read
//! once by the leader, whose changes the dataflow then exchanges by key. A position is
//! acknowledged to the server only once its epoch is complete and every output holds it,
//! so the slot keeps what a restarted job would need and its lag shows in
//! `pg_replication_slots`.

mod checks;
mod rows;
mod snapshot;
mod stream;

use pgwire_replication::Lsn;
use serde::{Deserialize, Serialize};

use super::{Control, EpochInfo, EpochSource};
use crate::input::{BadRows, InputError, Share, ShareReport};
use crate::model::{Change, Position, Table};
use crate::pg::Database;
use checks::Tables;
use rows::Shape;
use stream::{RowChange, Stream, Transaction};

/// The database, tables and publication a job reads.
#[derive(Debug, Clone)]
pub struct PostgresSpec {
    pub url: String,
    pub codes_table: String,
    pub orders_table: String,
    pub publication: String,
    /// A named slot that outlives the job; `None`: a temporary slot.
    pub slot: Option<String>,
}

/// An epoch of the database, as every worker receives it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum PgEpoch {
    /// Both tables as of the slot's exported snapshot; each worker copies its pages.
    Snapshot {
        snapshot: String,
        lsn: u64,
        /// Each table's quoted name and column names, codes first.
        tables: [(String, Vec<String>); 2],
        /// Each table's pages when the snapshot was taken, counted once for all shares.
        blocks: [u64; 2],
    },
    /// Whole transactions from the stream, held by the leader.
    Changes {
        end_lsn: u64,
        transactions: u64,
        changes: u64,
    },
}

pub struct PostgresSource {
    spec: PostgresSpec,
    /// The leader's replication session, once opened.
    stream: Option<Stream>,
    /// The leader's transactions of the epoch being read.
    pending: Vec<Transaction>,
    /// Epochs given so far (the snapshot is epoch 0).
    given: u64,
}

impl PostgresSource {
    pub fn new(spec: &PostgresSpec) -> PostgresSource {
        PostgresSource {
            spec: spec.clone(),
            stream: None,
            pending: Vec::new(),
            given: 0,
        }
    }

    /// Checks the database, makes the slot and describes the snapshot.
    fn open(&mut self) -> Result<PgEpoch, String> {
        let database = Database::from_url(&self.spec.url)?;
        let mut client = database.connect()?;
        let tables = checks::check(
            &mut client,
            &self.spec.codes_table,
            &self.spec.orders_table,
            &self.spec.publication,
        )?;
        let (slot, temporary) = match &self.spec.slot {
            Some(name) => (name.clone(), false),
            None => (temporary_slot_name(), true),
        };
        let (stream, exported) = Stream::open(
            &database,
            &slot,
            temporary,
            &self.spec.publication,
            tables.shapes.clone(),
            tables.idents.clone(),
        )?;
        self.stream = Some(stream);
        let mut blocks = [0u64; 2];
        for (count, name) in blocks.iter_mut().zip(&tables.quoted) {
            let row = client
                .query_one(
                    &format!(
                        "SELECT (pg_relation_size('{}'::regclass) / current_setting('block_size')::int8)::int8",
                        name.replace('\'', "''")
                    ),
                    &[],
                )
                .map_err(|e| crate::pg::error_text(&e))?;
            *count = row.get::<_, i64>(0).max(0) as u64;
        }
        let described = |i: usize| (tables.quoted[i].clone(), tables.shapes[i].names.clone());
        Ok(PgEpoch::Snapshot {
            snapshot: exported.snapshot,
            lsn: exported.consistent_lsn,
            tables: [described(0), described(1)],
            blocks,
        })
    }

    /// The leader's transactions of a `Changes` epoch into changes, in commit order.
    fn read_transactions(
        &mut self,
        bad_rows: BadRows,
        sink: &mut dyn FnMut(Position, Change),
    ) -> Result<ShareReport, InputError> {
        let mut report = ShareReport::default();
        let mut position: Position = 0;
        for transaction in &self.pending {
            let at = format!("LSN {}", Lsn::from_u64(transaction.end_lsn));
            for change in &transaction.changes {
                let parsed = match change {
                    RowChange::Row { shape, op, values } => shape.change(*op, values, &at),
                    RowChange::Truncate(table) => Ok(Change::Truncate { table: *table }),
                };
                if let Some(change) = report.accept(parsed, bad_rows)? {
                    position += 1;
                    sink(position, change);
                }
            }
        }
        Ok(report)
    }
}

/// A slot name of this run: lower case, digits and `_`, as the server wants.
fn temporary_slot_name() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("discounting_{}_{nanos}", std::process::id())
}

impl EpochSource for PostgresSource {
    type Epoch = PgEpoch;
    type Summary = ();

    fn next_epoch(&mut self, control: &Control) -> Result<Option<PgEpoch>, String> {
        let Some(stream) = self.stream.as_mut() else {
            self.given = 1;
            return self.open().map(Some);
        };
        self.pending = stream.next_transactions(control)?;
        let Some(last) = self.pending.last() else {
            return Ok(None);
        };
        stream.given(self.given, last.end_lsn);
        self.given += 1;
        Ok(Some(PgEpoch::Changes {
            end_lsn: last.end_lsn,
            transactions: self.pending.len() as u64,
            changes: self.pending.iter().map(|t| t.changes.len() as u64).sum(),
        }))
    }

    fn read_share(
        &mut self,
        epoch: &PgEpoch,
        share: Share,
        _summaries: Option<&[Option<()>]>,
        bad_rows: BadRows,
        sink: &mut dyn FnMut(Position, Change),
    ) -> Result<Vec<ShareReport>, (usize, InputError)> {
        match epoch {
            PgEpoch::Snapshot {
                snapshot,
                tables,
                blocks,
                ..
            } => {
                let fail = |reason: String| (0, InputError::file("snapshot", reason));
                let database = Database::from_url(&self.spec.url).map_err(fail)?;
                let shape = |table: Table, i: usize| {
                    Shape::new(table, &self.spec_name(table), &tables[i].1)
                };
                let tables = Tables {
                    shapes: [
                        shape(Table::DiscountCodes, 0).map_err(fail)?,
                        shape(Table::Orders, 1).map_err(fail)?,
                    ],
                    quoted: [tables[0].0.clone(), tables[1].0.clone()],
                    idents: Default::default(),
                };
                snapshot::copy_share(&database, &tables, snapshot, *blocks, share, bad_rows, sink)
            }
            // The stream is read by the leader alone; the dataflow exchanges by key.
            PgEpoch::Changes { .. } if share.index == 0 => self
                .read_transactions(bad_rows, sink)
                .map(|report| vec![report])
                .map_err(|e| (0, e)),
            PgEpoch::Changes { .. } => Ok(vec![ShareReport::default()]),
        }
    }

    fn read_by_leader_alone(&self, epoch: &PgEpoch) -> bool {
        matches!(epoch, PgEpoch::Changes { .. })
    }

    fn send_while_reading(&self, epoch: &PgEpoch) -> bool {
        matches!(epoch, PgEpoch::Snapshot { .. })
    }

    fn info(&self, epoch: &PgEpoch) -> EpochInfo {
        match epoch {
            PgEpoch::Snapshot { lsn, .. } => EpochInfo {
                inputs: vec![
                    format!("snapshot of {}", self.spec.codes_table),
                    format!("snapshot of {}", self.spec.orders_table),
                ],
                position: Some(Lsn::from_u64(*lsn).to_string()),
                transactions: 0,
                committed_at: None,
                stream_delay: None,
            },
            PgEpoch::Changes {
                end_lsn,
                transactions,
                ..
            } => EpochInfo {
                inputs: vec!["replication stream".to_string()],
                position: Some(Lsn::from_u64(*end_lsn).to_string()),
                transactions: *transactions,
                committed_at: self.pending.iter().map(|t| t.committed_at).min(),
                stream_delay: self
                    .pending
                    .first()
                    .and_then(|t| t.received_at.duration_since(t.committed_at).ok()),
            },
        }
    }
}

impl PostgresSource {
    fn spec_name(&self, table: Table) -> String {
        match table {
            Table::DiscountCodes => self.spec.codes_table.clone(),
            Table::Orders => self.spec.orders_table.clone(),
        }
    }
}
