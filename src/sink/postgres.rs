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
    /// Whether this run has written an epoch yet (the first makes the table whole).
    synced: bool,
}

impl PostgresSink {
    /// Connects and makes the result and progress tables if they are missing.
    pub fn connect(url: &str, table: &str) -> anyhow::Result<PostgresSink> {
        let database = Database::from_url(url).map_err(|e| anyhow!("--sink-postgres: {e}"))?;
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
            synced: false,
        })
    }

    /// Makes the table the result after the last of `epochs` (epochs that waited
    /// together; their changes say which percentages went away) in one transaction of
    /// two round trips: the progress row is read and locked, then the table and the
    /// progress row are written and committed in one batch. (Each round trip waits for
    /// the server to be scheduled, on a machine whose cores the source's writers keep
    /// busy; a statement prepared and run apart costs two.)
    fn write(&mut self, epochs: &[Arc<EpochOutput>]) -> Result<(), postgres::Error> {
        let Some(epoch) = epochs.last() else {
            return Ok(());
        };
        let table_literal = self.table.replace('\'', "''");
        let locked = self.client.simple_query(&format!(
            "BEGIN; SELECT epoch, source_position::text FROM {PROGRESS_TABLE} \
             WHERE result_table = '{table_literal}' FOR UPDATE"
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
        let mut sql = String::new();
        let stamp = |sql: &mut String| {
            let _ = write!(
                sql,
                "{}, {}",
                epoch.epoch,
                epoch
                    .position
                    .as_deref()
                    .map_or("NULL".to_string(), |p| format!(
                        "'{}'",
                        p.replace('\'', "''")
                    ))
            );
        };
        let removed: BTreeSet<String> = if self.synced {
            let now: BTreeSet<String> = epoch.table.iter().map(ResultRow::percentage).collect();
            epochs
                .iter()
                .flat_map(|epoch| &epoch.changes)
                .map(|c| c.row.percentage())
                .filter(|p| !now.contains(p))
                .collect()
        } else {
            BTreeSet::new()
        };
        if !self.synced {
            // The first epoch of this run: whatever the table held, it becomes the result.
            let keep: Vec<String> = epoch.table.iter().map(ResultRow::percentage).collect();
            let _ = write!(
                sql,
                "DELETE FROM {} WHERE percentage <> ALL ('{{{}}}'::numeric[]);",
                self.quoted,
                keep.join(",")
            );
        } else if !removed.is_empty() {
            let gone: Vec<String> = removed.into_iter().collect();
            let _ = write!(
                sql,
                "DELETE FROM {} WHERE percentage = ANY ('{{{}}}'::numeric[]);",
                self.quoted,
                gone.join(",")
            );
        }
        if !epoch.table.is_empty() {
            let _ = write!(
                sql,
                "INSERT INTO {} ({}, epoch, source_position) VALUES ",
                self.quoted,
                COLUMNS.join(", ")
            );
            for (i, row) in epoch.table.iter().enumerate() {
                sql.push_str(if i == 0 { "(" } else { ", (" });
                sql.push_str(&row.values().join(", "));
                sql.push_str(", ");
                stamp(&mut sql);
                sql.push(')');
            }
            let updates: Vec<String> = COLUMNS[1..]
                .iter()
                .chain(["epoch", "source_position"].iter())
                .map(|c| format!("{c} = EXCLUDED.{c}"))
                .collect();
            let _ = write!(
                sql,
                " ON CONFLICT (percentage) DO UPDATE SET {};",
                updates.join(", ")
            );
        }
        let _ = write!(
            sql,
            "INSERT INTO {PROGRESS_TABLE} VALUES ('{table_literal}', "
        );
        stamp(&mut sql);
        sql.push_str(
            ", now()) ON CONFLICT (result_table) DO UPDATE SET epoch = EXCLUDED.epoch, \
             source_position = EXCLUDED.source_position, written_at = EXCLUDED.written_at; \
             COMMIT;",
        );
        self.client
            .batch_execute(&sql)
            .map_err(|e| self.rolled_back(e))?;
        self.synced = true;
        Ok(())
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
