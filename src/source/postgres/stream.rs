//! The logical replication stream (pgoutput), read once, by the leader: the slot and its
//! exported snapshot, then whole committed transactions in commit order.
//!
//! The connection is `pgwire-replication`'s, which hands over pgoutput's messages as
//! bytes (and its Begin and Commit parsed); the rows are decoded here.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pgwire_replication::{Lsn, ReplicationClient, ReplicationConfig, ReplicationEvent, TlsConfig};
use tokio::runtime::Runtime;

use super::rows::Shape;
use crate::input::Op;
use crate::model::Table;
use crate::pg::{Database, CONNECT_TIMEOUT};
use crate::source::Control;

/// Once a transaction has committed, the stream is drained for at most this long (or
/// `MAX_CHANGES`) to put more transactions into the same epoch.
const GATHER: Duration = Duration::from_millis(2);
const MAX_CHANGES: usize = 200_000;
/// How long one wait for the stream lasts before the stop flag is looked at again.
const POLL: Duration = Duration::from_millis(50);

/// A change as the stream gave it: a row, parsed only when its epoch is read (so a bad
/// row follows `--bad-rows`), or a table emptied.
#[derive(Debug, Clone)]
pub enum RowChange {
    Row {
        shape: Arc<Shape>,
        op: Op,
        values: Vec<Option<String>>,
    },
    Truncate(Table),
}

/// A committed transaction: its changes in order, and where its commit ends.
#[derive(Debug, Clone)]
pub struct Transaction {
    pub end_lsn: u64,
    /// When it committed, by the server's clock.
    pub committed_at: std::time::SystemTime,
    /// When its commit reached the job.
    pub received_at: std::time::SystemTime,
    pub changes: Vec<RowChange>,
}

/// After a lost connection, a named slot is reconnected this many times, waiting twice
/// as long each time from `FIRST_BACKOFF` (0.5 + 1 + 2 + 4 + 8 s).
const RECONNECTS: u32 = 5;
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

/// The replication session of the leader.
pub struct Stream {
    runtime: Runtime,
    client: ReplicationClient,
    config: ReplicationConfig,
    /// A temporary slot goes with its connection: nothing to resume after a loss.
    temporary: bool,
    /// The commit position last acknowledged: what a resumed stream may send again.
    acknowledged: u64,
    /// Epochs given but not yet held by every durable output: (epoch, commit end).
    unacknowledged: VecDeque<(u64, u64)>,
    at: String,
    /// The two tables by relation id, as the stream last described them.
    relations: HashMap<u32, Arc<Shape>>,
    /// The tables' schema and name, codes first.
    idents: [(String, String); 2],
    shapes: [Shape; 2],
    open: Option<Transaction>,
    started: bool,
}

/// What a new slot gives: the snapshot to copy, and where the stream takes over.
pub struct Slot {
    pub snapshot: String,
    pub consistent_lsn: u64,
}

impl Stream {
    /// Connects for replication and makes the slot (`temporary`: it goes with the
    /// connection), exporting its snapshot. A named slot that exists is dropped first,
    /// so that a restarted job starts from a fresh snapshot.
    pub fn open(
        database: &Database,
        slot: &str,
        temporary: bool,
        publication: &str,
        shapes: [Shape; 2],
        idents: [(String, String); 2],
    ) -> Result<(Stream, Slot), String> {
        // On the leader's own thread: the connection's task runs while the leader waits
        // for the stream, so the bytes it reads reach the leader without a hand-over
        // between threads for each message (with a thread of its own, those hand-overs,
        // on cores the server and its writers keep busy, held the stream to ~1,500
        // transactions/s while the server's own pg_recvlogical kept up with 2,100+).
        // Between two waits the connection is not served; the server buffers what it
        // sends meanwhile, and an epoch takes far less than wal_sender_timeout.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the replication client: {e}"))?;
        let config = ReplicationConfig::new(
            database.host.clone(),
            database.user.clone(),
            database.password.clone().unwrap_or_default(),
            database.dbname.clone(),
            slot,
            publication,
        )
        .with_port(database.port)
        .with_tls(TlsConfig::disabled())
        .with_application_name("discounting")
        .with_options("-c TimeZone=UTC -c DateStyle=ISO")
        .with_status_interval(Duration::from_secs(1))
        .with_buffer_size(1 << 14);
        let at = database.describe();
        let gated = config.clone();
        let (client, row) = runtime.block_on(async {
            tokio::time::timeout(CONNECT_TIMEOUT, async {
                let mut client = ReplicationClient::connect_gated(gated).await?;
                if !temporary {
                    // A slot left by an earlier run; none is fine.
                    let dropped = client
                        .simple_query(&format!("DROP_REPLICATION_SLOT {slot}"))
                        .await;
                    if let Err(e) = dropped {
                        if !e.to_string().contains("does not exist") {
                            return Err(e);
                        }
                    }
                }
                let kind = if temporary { "TEMPORARY " } else { "" };
                let rows = client
                    .simple_query(&format!(
                        "CREATE_REPLICATION_SLOT {slot} {kind}LOGICAL pgoutput EXPORT_SNAPSHOT"
                    ))
                    .await?;
                Ok((client, rows))
            })
            .await
            .map_err(|_| format!("{at} did not answer within {}s", CONNECT_TIMEOUT.as_secs()))?
            .map_err(|e: pgwire_replication::PgWireError| {
                format!("cannot open the replication stream of {at}: {e}")
            })
        })?;
        let text = |i: usize| -> Result<String, String> {
            row.first()
                .and_then(|r| r.get(i).cloned().flatten())
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .ok_or_else(|| "CREATE_REPLICATION_SLOT returned no slot".to_string())
        };
        let consistent = Lsn::parse(&text(1)?).map_err(|e| format!("slot position: {e}"))?;
        let slot = Slot {
            snapshot: text(2)?,
            consistent_lsn: consistent.as_u64(),
        };
        Ok((
            Stream {
                runtime,
                client,
                config,
                temporary,
                acknowledged: slot.consistent_lsn,
                unacknowledged: VecDeque::new(),
                at,
                relations: HashMap::new(),
                idents,
                shapes,
                open: None,
                started: false,
            },
            slot,
        ))
    }

    /// The next whole transactions: waits for a first commit, then takes what else has
    /// committed within `GATHER`. Empty when `stop` is set first.
    pub fn next_transactions(&mut self, control: &Control) -> Result<Vec<Transaction>, String> {
        self.start()?;
        let mut ready: Vec<Transaction> = Vec::new();
        let mut changes = 0;
        let mut gather_until: Option<Instant> = None;
        loop {
            let wait = match gather_until {
                Some(until) => until.saturating_duration_since(Instant::now()),
                None => POLL,
            };
            if gather_until.is_some() && (wait.is_zero() || changes >= MAX_CHANGES) {
                return Ok(ready);
            }
            if gather_until.is_none() && control.stopping() {
                return Ok(ready);
            }
            self.acknowledge_durable(control.durable());
            let client = &mut self.client;
            let event = self
                .runtime
                .block_on(async { tokio::time::timeout(wait, client.recv()).await });
            let event = match event {
                Err(_elapsed) => continue,
                Ok(Ok(Some(event))) => event,
                Ok(Ok(None)) => {
                    self.resume("the server ended the stream".to_string())?;
                    (ready, changes, gather_until) = (Vec::new(), 0, None);
                    continue;
                }
                Ok(Err(e)) => {
                    self.resume(e.to_string())?;
                    (ready, changes, gather_until) = (Vec::new(), 0, None);
                    continue;
                }
            };
            match event {
                ReplicationEvent::Begin {
                    commit_time_micros, ..
                } => {
                    self.open = Some(Transaction {
                        end_lsn: 0,
                        committed_at: unix_time(commit_time_micros),
                        received_at: std::time::UNIX_EPOCH,
                        changes: Vec::new(),
                    });
                }
                ReplicationEvent::XLogData {
                    data, wal_start, ..
                } => {
                    self.decode(&data, wal_start)?;
                }
                ReplicationEvent::Commit { end_lsn, .. } => {
                    let Some(mut transaction) = self.open.take() else {
                        return Err("the stream sent a commit without a begin".to_string());
                    };
                    transaction.end_lsn = end_lsn.as_u64();
                    transaction.received_at = std::time::SystemTime::now();
                    // Sent again by a resumed stream: applied already.
                    if transaction.end_lsn <= self.acknowledged {
                        continue;
                    }
                    if transaction.changes.is_empty() {
                        // Nothing of ours: acknowledged at once unless an epoch waits.
                        if ready.is_empty() && self.unacknowledged.is_empty() {
                            self.acknowledge(transaction.end_lsn);
                        }
                        continue;
                    }
                    changes += transaction.changes.len();
                    ready.push(transaction);
                    gather_until.get_or_insert_with(|| Instant::now() + GATHER);
                }
                _ => {}
            }
        }
    }

    /// Remembers that epoch `epoch` ends at commit position `end_lsn`.
    pub fn given(&mut self, epoch: u64, end_lsn: u64) {
        self.unacknowledged.push_back((epoch, end_lsn));
    }

    /// Tells the server that every epoch below `durable` is applied and written.
    fn acknowledge_durable(&mut self, durable: u64) {
        let mut last = None;
        while let Some(&(epoch, end_lsn)) = self.unacknowledged.front() {
            if epoch >= durable {
                break;
            }
            last = Some(end_lsn);
            self.unacknowledged.pop_front();
        }
        if let Some(lsn) = last {
            self.acknowledge(lsn);
        }
    }

    /// Tells the server that everything up to `lsn` is applied and written.
    fn acknowledge(&mut self, lsn: u64) {
        self.acknowledged = self.acknowledged.max(lsn);
        self.client.update_applied_lsn(Lsn::from_u64(lsn));
    }

    /// After the connection was lost (`why`): a named slot is reconnected, with backoff,
    /// and streams again from its last acknowledged position; what was received of
    /// unacknowledged transactions is dropped and comes again. A temporary slot went
    /// with the connection, so that is an error at once.
    fn resume(&mut self, why: String) -> Result<(), String> {
        self.open = None;
        if self.temporary {
            return Err(format!(
                "lost the replication stream of {} ({why}); its temporary slot went with the connection: restart the job (with --slot NAME a lost connection is resumed)",
                self.at
            ));
        }
        let mut wait = FIRST_BACKOFF;
        let mut last = why.clone();
        for _ in 0..RECONNECTS {
            std::thread::sleep(wait);
            wait *= 2;
            let config = self.config.clone();
            let reconnected = self.runtime.block_on(async {
                tokio::time::timeout(CONNECT_TIMEOUT, async {
                    let mut client = ReplicationClient::connect(config).await?;
                    client.wait_started().await?;
                    Ok::<_, pgwire_replication::PgWireError>(client)
                })
                .await
            });
            match reconnected {
                Ok(Ok(client)) => {
                    self.client = client;
                    self.client
                        .update_applied_lsn(Lsn::from_u64(self.acknowledged));
                    return Ok(());
                }
                Ok(Err(e)) => last = e.to_string(),
                Err(_) => last = format!("no answer within {}s", CONNECT_TIMEOUT.as_secs()),
            }
        }
        Err(format!(
            "lost the replication stream of {} ({why}) and could not resume it in {RECONNECTS} tries over 15 s: {last}",
            self.at
        ))
    }

    fn start(&mut self) -> Result<(), String> {
        if self.started {
            return Ok(());
        }
        self.started = true;
        self.runtime
            .block_on(async {
                self.client.start().await?;
                tokio::time::timeout(CONNECT_TIMEOUT, self.client.wait_started())
                    .await
                    .unwrap_or_else(|_| {
                        Err(pgwire_replication::PgWireError::Internal(
                            "the server did not start the stream in time".into(),
                        ))
                    })
            })
            .map_err(|e| format!("cannot start the replication stream: {e}"))
    }

    /// One pgoutput message (protocol 1) of an open transaction.
    fn decode(&mut self, data: &[u8], wal_start: Lsn) -> Result<(), String> {
        let mut message = Message { rest: data };
        let bad = |what: &str| format!("a malformed pgoutput message at {wal_start} ({what})");
        let tag = message.u8().ok_or_else(|| bad("empty"))?;
        match tag {
            b'R' => {
                let relid = message.u32().ok_or_else(|| bad("relation"))?;
                let namespace = message.string().ok_or_else(|| bad("relation"))?;
                let name = message.string().ok_or_else(|| bad("relation"))?;
                let _identity = message.u8();
                let count = message.u16().ok_or_else(|| bad("relation"))?;
                let mut names = Vec::with_capacity(count as usize);
                for _ in 0..count {
                    let _flags = message.u8();
                    names.push(message.string().ok_or_else(|| bad("relation column"))?);
                    message.u32();
                    message.u32();
                }
                let Some(index) = self
                    .idents
                    .iter()
                    .position(|(n, r)| *n == namespace && *r == name)
                else {
                    return Ok(());
                };
                let known = &self.shapes[index];
                // A column added while the job runs is ignored, as in files; one the job
                // needs that is dropped or renamed ends the run.
                let shape = Shape::new(known.table, &known.name, &names).map_err(|e| {
                    format!(
                        "the schema of {} changed while the job ran (at {wal_start}): {e}",
                        known.name
                    )
                })?;
                self.relations.insert(relid, Arc::new(shape));
            }
            b'I' | b'U' | b'D' => {
                let relid = message.u32().ok_or_else(|| bad("row"))?;
                let Some(shape) = self.relations.get(&relid).cloned() else {
                    return Ok(());
                };
                let Some(open) = self.open.as_mut() else {
                    return Err(bad("a row outside a transaction"));
                };
                let mut kind = message.u8().ok_or_else(|| bad("row"))?;
                let mut old = None;
                if matches!(kind, b'K' | b'O') {
                    old = Some(tuple(&mut message, &shape).map_err(|e| bad(&e))?);
                    if tag == b'U' {
                        kind = message.u8().ok_or_else(|| bad("row"))?;
                    }
                }
                let new = match (tag, kind) {
                    (b'D', _) => None,
                    (_, b'N') => Some(tuple(&mut message, &shape).map_err(|e| bad(&e))?),
                    _ => return Err(bad("row")),
                };
                let key = shape.columns.iter().position(|c| *c == Some(shape.key()));
                // An UPDATE that changes the key deletes the old key.
                if let (Some(old), Some(new), Some(key)) = (&old, &new, key) {
                    if old.get(key) != new.get(key) {
                        open.changes.push(RowChange::Row {
                            shape: Arc::clone(&shape),
                            op: Op::Delete,
                            values: old.clone(),
                        });
                    }
                }
                match new {
                    Some(values) => open.changes.push(RowChange::Row {
                        shape,
                        op: Op::Upsert,
                        values,
                    }),
                    None => open.changes.push(RowChange::Row {
                        shape,
                        op: Op::Delete,
                        values: old.ok_or_else(|| bad("a delete without a key"))?,
                    }),
                }
            }
            b'T' => {
                let count = message.u32().ok_or_else(|| bad("truncate"))?;
                let _options = message.u8();
                for _ in 0..count {
                    let relid = message.u32().ok_or_else(|| bad("truncate"))?;
                    if let Some(shape) = self.relations.get(&relid) {
                        let Some(open) = self.open.as_mut() else {
                            return Err(bad("a truncate outside a transaction"));
                        };
                        open.changes.push(RowChange::Truncate(shape.table));
                    }
                }
            }
            // Types, origins, logical messages: nothing to apply.
            _ => {}
        }
        Ok(())
    }
}

/// A server time (microseconds since 2000-01-01) as a system time.
fn unix_time(postgres_micros: i64) -> std::time::SystemTime {
    const POSTGRES_EPOCH_UNIX_MICROS: i64 = 946_684_800_000_000;
    let micros = postgres_micros
        .saturating_add(POSTGRES_EPOCH_UNIX_MICROS)
        .max(0) as u64;
    std::time::UNIX_EPOCH + Duration::from_micros(micros)
}

/// pgoutput's TupleData: each column NULL, unchanged (a TOASTed value not sent), or text.
fn tuple(message: &mut Message<'_>, shape: &Shape) -> Result<Vec<Option<String>>, String> {
    let count = message.u16().ok_or("tuple")?;
    let mut values = Vec::with_capacity(count as usize);
    for column in 0..count as usize {
        match message.u8().ok_or("tuple column")? {
            b'n' => values.push(None),
            b'u' => {
                return Err(format!(
                    "column {} of {} was not sent (an unchanged TOASTed value): run ALTER TABLE ... REPLICA IDENTITY FULL",
                    shape.names.get(column).map(String::as_str).unwrap_or("?"),
                    shape.name
                ))
            }
            b't' => {
                let length = message.u32().ok_or("tuple value")? as usize;
                let bytes = message.bytes(length).ok_or("tuple value")?;
                values.push(Some(String::from_utf8_lossy(bytes).into_owned()));
            }
            other => return Err(format!("tuple column kind {other}")),
        }
    }
    Ok(values)
}

/// A reader over one message's bytes; `None` when it is too short.
struct Message<'a> {
    rest: &'a [u8],
}

impl<'a> Message<'a> {
    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.rest.len() < n {
            return None;
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.bytes(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.bytes(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Option<u32> {
        self.bytes(4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn string(&mut self) -> Option<String> {
        let end = self.rest.iter().position(|&b| b == 0)?;
        let text = String::from_utf8_lossy(&self.rest[..end]).into_owned();
        self.rest = &self.rest[end + 1..];
        Some(text)
    }
}
