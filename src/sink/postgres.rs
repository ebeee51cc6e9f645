//! `--sink-postgres URL`: the result kept in a table of a PostgreSQL database.
//!
//! Each epoch is one transaction (epochs that waited for the sink together share one,
//! which writes the last one's result): the table is made equal to the epoch's result (rows of
//! percentages that went away deleted, changed rows upserted, every row stamped with the
//! epoch and source position) together with the job's row in `discounting_progress`. So
//! a reader always sees one whole epoch. The progress row fences a restarted job: an
//! epoch it holds already (by source position where the source has one, else by epoch
//! number) is not written again, and the first epoch a run writes makes the whole table
//! equal to the result, so no stale or duplicate row survives a restart.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::Arc;

use anyhow::{anyhow, bail};
use postgres::Client;

use super::Sink;
use crate::pg::{error_text, quote_ident, Database};
use crate::result::{ResultRow, COLUMNS};
use crate::run::EpochOutput;

/// The table of the progress rows, one per result table.
pub const PROGRESS_TABLE: &str = "discounting_progress";

pub struct PostgresSink {
    client: Client,
    database: String,
    /// The result table, as given and quoted.
    table: String,
    quoted: String,
    /// What this run wrote last to the progress row (none yet: the first write makes
    /// the table whole).
    written: Option<Stamp>,
}

/// The epoch and source position every row and the progress row are stamped with.
#[derive(Debug, Clone)]
struct Stamp {
    epoch: u64,
    position: Option<String>,
}

impl Stamp {
    fn position_sql(&self) -> String {
        self.position.as_deref().map_or("NULL".to_string(), literal)
    }
}

/// `text` as an SQL string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

impl PostgresSink {
    /// Connects and makes the result and progress tables if they are missing.
    pub fn connect(url: &str, table: &str) -> anyhow::Result<PostgresSink> {
        let database = Database::from_url(url).map_err(|e| anyhow!("--sink-postgres: {e}"))?;
        // The name goes into the DO block of each epoch, quoted by these dollars.
        if table.contains("$discounting$") {
            bail!("--result-table {table}: a name holding $discounting$ is not supported");
        }
        let mut client = database
            .connect()
            .map_err(|e| anyhow!("--sink-postgres: {e}"))?;
        let quoted = quoted_name(table);
        let numeric = |name: &str| format!("{name} numeric NOT NULL");
        let create = format!(
            "CREATE TABLE IF NOT EXISTS {quoted} (percentage numeric PRIMARY KEY, {}, {}, {}, {}, \
             order_count bigint NOT NULL, epoch bigint NOT NULL, source_position text);
             CREATE TABLE IF NOT EXISTS {PROGRESS_TABLE} (result_table text PRIMARY KEY, \
             epoch bigint NOT NULL, source_position text, written_at timestamptz NOT NULL);",
            numeric("avg_item_ct"),
            numeric("avg_order_subtotal"),
            numeric("avg_order_total"),
            numeric("avg_discount_total"),
        );
        client.batch_execute(&create).map_err(|e| {
            anyhow!(
                "--sink-postgres: cannot make the table {table} in {}: {}",
                database.describe(),
                error_text(&e)
            )
        })?;
        // Progress tables made by earlier builds kept the position as pg_lsn, which a
        // Kafka position is not: such a column becomes text (its LSNs read the same).
        let upgrade = format!(
            "DO $$ BEGIN IF (SELECT data_type FROM information_schema.columns \
             WHERE table_name = '{PROGRESS_TABLE}' AND column_name = 'source_position' \
             AND table_schema = ANY (current_schemas(false)) LIMIT 1) = 'pg_lsn' THEN \
             ALTER TABLE {PROGRESS_TABLE} ALTER COLUMN source_position TYPE text; END IF; END $$;"
        );
        client.batch_execute(&upgrade).map_err(|e| {
            anyhow!(
                "--sink-postgres: cannot make {PROGRESS_TABLE}.source_position text in {}: {}",
                database.describe(),
                error_text(&e)
            )
        })?;
        Ok(PostgresSink {
            client,
            database: database.describe(),
            table: table.to_string(),
            quoted,
            written: None,
        })
    }

    /// Makes the table the result after the last of `epochs` (epochs that waited
    /// together; their changes say which percentages went away) in one transaction.
    ///
    /// The first epoch a run writes takes two round trips: the progress row is read
    /// and locked (an epoch it holds already is not written again), then the whole
    /// table is made the result. Every later one is a single round trip: a DO block
    /// that moves the progress row on from what this run wrote last, or fails if
    /// someone else moved it, and writes the rows that changed. (On a machine whose
    /// cores the source's writers keep busy, each round trip waits for the server to
    /// be scheduled.)
    fn write(&mut self, epochs: &[Arc<EpochOutput>]) -> Result<(), postgres::Error> {
        let Some(epoch) = epochs.last() else {
            return Ok(());
        };
        let stamp = Stamp {
            epoch: epoch.epoch,
            position: epoch.position.clone(),
        };
        let Some(last) = self.written.clone() else {
            return self.first_write(epoch, stamp);
        };
        let now: BTreeSet<String> = epoch.table.iter().map(ResultRow::percentage).collect();
        let removed: Vec<String> = epochs
            .iter()
            .flat_map(|epoch| &epoch.changes)
            .map(|c| c.row.percentage())
            .filter(|p| !now.contains(p))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let table_literal = literal(&self.table);
        let mut body = format!(
            "UPDATE {PROGRESS_TABLE} SET epoch = {}, source_position = {}, written_at = now() \
             WHERE result_table = {table_literal} AND epoch = {} \
             AND source_position IS NOT DISTINCT FROM {}; \
             IF NOT FOUND THEN RAISE EXCEPTION '%', {}; END IF; ",
            stamp.epoch,
            stamp.position_sql(),
            last.epoch,
            last.position_sql(),
            literal(&format!(
                "the progress row of {} no longer holds epoch {}, which this job wrote: \
                 another job writes the same table",
                self.table, last.epoch
            )),
        );
        if !removed.is_empty() {
            let _ = write!(
                body,
                "DELETE FROM {} WHERE percentage = ANY ('{{{}}}'::numeric[]); ",
                self.quoted,
                removed.join(",")
            );
        }
        self.upsert_rows(&mut body, &epoch.table, &stamp);
        let sql = format!("DO $discounting$ BEGIN {body} END $discounting$");
        self.client.batch_execute(&sql)?;
        self.written = Some(stamp);
        Ok(())
    }

    /// The first epoch of this run: read and lock the progress row; unless it holds
    /// this epoch already, whatever the table held becomes the result.
    fn first_write(&mut self, epoch: &EpochOutput, stamp: Stamp) -> Result<(), postgres::Error> {
        let table_literal = literal(&self.table);
        let locked = self.client.simple_query(&format!(
            "BEGIN; SELECT epoch, source_position::text FROM {PROGRESS_TABLE} \
             WHERE result_table = {table_literal} FOR UPDATE"
        ));
        let progress = match locked {
            Ok(messages) => messages.into_iter().find_map(|message| match message {
                postgres::SimpleQueryMessage::Row(row) => Some((
                    row.get(0).and_then(|e| e.parse::<i64>().ok()),
                    row.get(1).map(str::to_string),
                )),
                _ => None,
            }),
            Err(e) => return Err(self.rolled_back(e)),
        };
        if let Some((Some(written_epoch), written_position)) = &progress {
            if holds_already(
                *written_epoch,
                written_position.as_deref(),
                epoch.epoch,
                epoch.position.as_deref(),
            ) {
                return self
                    .client
                    .batch_execute("COMMIT")
                    .map_err(|e| self.rolled_back(e));
            }
        }
        let keep: Vec<String> = epoch.table.iter().map(ResultRow::percentage).collect();
        let mut sql = format!(
            "DELETE FROM {} WHERE percentage <> ALL ('{{{}}}'::numeric[]); ",
            self.quoted,
            keep.join(",")
        );
        self.upsert_rows(&mut sql, &epoch.table, &stamp);
        let _ = write!(
            sql,
            "INSERT INTO {PROGRESS_TABLE} VALUES ({table_literal}, {}, {}, now()) \
             ON CONFLICT (result_table) DO UPDATE SET epoch = EXCLUDED.epoch, \
             source_position = EXCLUDED.source_position, written_at = EXCLUDED.written_at; \
             COMMIT;",
            stamp.epoch,
            stamp.position_sql(),
        );
        self.client
            .batch_execute(&sql)
            .map_err(|e| self.rolled_back(e))?;
        self.written = Some(stamp);
        Ok(())
    }

    /// Appends the statement that writes `rows`, each stamped, over the rows held.
    fn upsert_rows(&self, sql: &mut String, rows: &[ResultRow], stamp: &Stamp) {
        if rows.is_empty() {
            return;
        }
        let _ = write!(
            sql,
            "INSERT INTO {} ({}, epoch, source_position) VALUES ",
            self.quoted,
            COLUMNS.join(", ")
        );
        for (i, row) in rows.iter().enumerate() {
            let _ = write!(
                sql,
                "{}({}, {}, {})",
                if i == 0 { "" } else { ", " },
                row.values().join(", "),
                stamp.epoch,
                stamp.position_sql()
            );
        }
        let updates: Vec<String> = COLUMNS[1..]
            .iter()
            .chain(["epoch", "source_position"].iter())
            .map(|c| format!("{c} = EXCLUDED.{c}"))
            .collect();
        let _ = write!(
            sql,
            " ON CONFLICT (percentage) DO UPDATE SET {}; ",
            updates.join(", ")
        );
    }

    /// `error` ended the transaction's work: rolled back (if the connection still
    /// works) so that nothing of the epoch is held, and returned.
    fn rolled_back(&mut self, error: postgres::Error) -> postgres::Error {
        let _ = self.client.batch_execute("ROLLBACK");
        error
    }
}

/// Whether the progress row says the table holds epoch `epoch` at `position` already:
/// the same or a later LSN of a database's stream (a snapshot is a new slot's start, so
/// always written), or with no positions (files) the same or a later epoch. Other
/// positions (Kafka offsets) do not order the epochs of two runs: every epoch is written.
fn holds_already(
    written_epoch: i64,
    written_position: Option<&str>,
    epoch: u64,
    position: Option<&str>,
) -> bool {
    match (written_position, position) {
        (Some(written), Some(this)) => match (lsn(written), lsn(this)) {
            (Some(written), Some(this)) => written >= this && epoch > 0,
            _ => false,
        },
        (None, None) => written_epoch >= epoch as i64,
        _ => false,
    }
}

/// An LSN (`0/16B3F28`) as a number.
fn lsn(text: &str) -> Option<u64> {
    let (high, low) = text.split_once('/')?;
    Some((u64::from_str_radix(high, 16).ok()? << 32) | u64::from_str_radix(low, 16).ok()?)
}

/// A table name, optionally schema-qualified, as quoted SQL.
fn quoted_name(name: &str) -> String {
    name.split('.')
        .map(quote_ident)
        .collect::<Vec<_>>()
        .join(".")
}

/// Only digits, a sign and a point reach the SQL text: the printed figures are ours.
fn check_figures(rows: &[ResultRow]) -> anyhow::Result<()> {
    for row in rows {
        for value in &row.values() {
            if value.is_empty()
                || !value
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-')
            {
                bail!("a figure that is not a number: {value:?}");
            }
        }
    }
    Ok(())
}

impl Sink for PostgresSink {
    fn name(&self) -> String {
        format!("--sink-postgres {} (table {})", self.database, self.table)
    }

    fn epoch(&mut self, epoch: &EpochOutput) -> anyhow::Result<()> {
        self.epochs(&[Arc::new(epoch.clone())])
    }

    fn epochs(&mut self, epochs: &[Arc<EpochOutput>]) -> anyhow::Result<()> {
        let Some(last) = epochs.last() else {
            return Ok(());
        };
        check_figures(&last.table)?;
        self.write(epochs)
            .map_err(|e| anyhow!("cannot write epoch {}: {}", last.epoch, error_text(&e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_compare_as_numbers() {
        assert!(lsn("0/16B3F28") < lsn("1/0"));
        assert_eq!(lsn("0/A"), Some(10));
        assert_eq!(lsn("nope"), None);
    }

    #[test]
    fn only_lsns_and_epochs_of_files_fence() {
        assert!(holds_already(3, Some("0/20"), 2, Some("0/10")));
        assert!(!holds_already(3, Some("0/10"), 2, Some("0/20")));
        assert!(!holds_already(3, Some("0/20"), 0, Some("0/10")));
        assert!(holds_already(3, None, 3, None));
        assert!(!holds_already(3, None, 4, None));
        let kafka = Some("orders/0@7,discount_codes/0@3");
        assert!(!holds_already(9, kafka, 1, kafka));
        assert!(!holds_already(9, None, 1, kafka));
    }

    #[test]
    fn names_are_quoted_part_by_part() {
        assert_eq!(
            quoted_name("shop.discount_analysis"),
            "\"shop\".\"discount_analysis\""
        );
    }
}
