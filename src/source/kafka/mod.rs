//! Kafka topics as a source of epochs (`--kafka BROKERS`): the recipe's `orders` and
//! `discount_codes` topics, read as the tables they are.
//!
//! The leader (worker 0) consumes every partition of both topics from the earliest
//! offset, assigning them itself (no group rebalancing). Epoch 0 is everything up to the
//! ends the partitions had when the job reached them, so the first result is the topics'
//! current table; every later epoch is the messages that have arrived since, up to
//! `MAX_MESSAGES`, closed as soon as no more are waiting. An epoch records each
//! partition's offset range, and every worker receives that descriptor before it is
//! applied; the changes are exchanged by key in the dataflow. Upserts and deletes are
//! idempotent by key, so a restart, which re-reads the topics from the start, comes to
//! the same tables. Offsets are committed to the consumer group (for monitoring lag)
//! only once every durable output holds the epoch.

pub mod messages;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use super::{Control, EpochInfo, EpochSource};
use crate::input::{BadRows, InputError, Reject, Share, ShareReport};
use crate::kafka::{client_config, partitions, unreachable, Context};
use crate::model::{Change, Position, Table};
use messages::{decode, place, ValueFormat};

/// The brokers, topics and value format a job reads.
#[derive(Debug, Clone)]
pub struct KafkaSpec {
    pub brokers: String,
    pub codes_topic: String,
    pub orders_topic: String,
    pub format: ValueFormat,
    /// The consumer group offsets are committed to.
    pub group: String,
    /// How long the brokers may stay silent before the run fails.
    pub patience: Duration,
}

/// An epoch of the topics, as every worker receives it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KafkaEpoch {
    /// Epoch 0: every partition up to its end when the job started.
    pub snapshot: bool,
    /// The offsets the epoch holds, by partition.
    pub ranges: Vec<OffsetRange>,
    pub messages: u64,
    /// Where the topics stand once it is applied: every partition's next offset read.
    pub position: String,
}

/// Offsets `first..=last` of one partition of one of the two topics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffsetRange {
    /// 0: the codes topic, 1: the orders topic.
    pub topic: u8,
    pub partition: i32,
    pub first: i64,
    pub last: i64,
}

/// At most this many messages make one epoch after the first.
const MAX_MESSAGES: usize = 200_000;
/// How long one wait for messages lasts before the stop flag is looked at again.
const POLL: Duration = Duration::from_millis(50);
/// After this long without a message the brokers are asked whether they are there.
const PROBE_AFTER: Duration = Duration::from_secs(1);

/// A partition's next offset, by `(topic, partition)` (topic 0: codes, 1: orders).
type Offsets = BTreeMap<(u8, i32), i64>;

/// The leader's consumers, one per topic (a partition's end is told by partition number
/// alone), and where they stand.
struct Leader {
    consumers: [BaseConsumer<Context>; 2],
    /// Each topic's partitions.
    partitions: [Vec<i32>; 2],
    /// Set when either consumer's queue has something, so one wait serves both.
    ready: Arc<(Mutex<bool>, Condvar)>,
    /// The next offset of every partition read so far.
    next: Offsets,
    /// When the brokers last answered.
    last_contact: Instant,
}

impl Leader {
    /// The next message or event of either topic, waiting at most `wait` for one.
    fn poll(&self, wait: Duration) -> Option<(u8, KafkaResult<BorrowedMessage<'_>>)> {
        let until = Instant::now() + wait;
        let (flag, signal) = &*self.ready;
        loop {
            if let Ok(mut ready) = flag.lock() {
                *ready = false;
            }
            for topic in 0..2u8 {
                if let Some(polled) = self.consumers[topic as usize].poll(Duration::ZERO) {
                    return Some((topic, polled));
                }
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            // Woken by either queue's callback; a wake-up that came between the polls
            // above and this wait has set the flag, so it is not lost.
            if let Ok(ready) = flag.lock() {
                let _ = signal.wait_timeout_while(ready, left, |ready| !*ready);
            }
        }
    }
}

pub struct KafkaSource {
    spec: KafkaSpec,
    /// The leader's consumer, once opened.
    consumer: Option<Leader>,
    /// The leader's decoded messages of the epoch being read.
    pending: Vec<Result<Change, Reject>>,
    /// The earliest message time of the epoch being read.
    produced_at: Option<SystemTime>,
    /// Epochs given so far (the snapshot is epoch 0).
    given: u64,
    /// Each given epoch's next offsets, until every durable output holds it.
    uncommitted: VecDeque<(u64, TopicPartitionList)>,
    /// Whether reading failed (the brokers went away, say).
    failed: bool,
}

impl Drop for KafkaSource {
    fn drop(&mut self) {
        // Closing a consumer waits for the brokers (its pending commit, its fetches);
        // after a failure they may be gone, and the run must end with its error, not
        // hang: the process is ending, so the consumers are left to it.
        if self.failed {
            if let Some(leader) = self.consumer.take() {
                std::mem::forget(leader);
            }
        }
    }
}

impl KafkaSource {
    pub fn new(spec: &KafkaSpec) -> KafkaSource {
        KafkaSource {
            spec: spec.clone(),
            consumer: None,
            pending: Vec::new(),
            produced_at: None,
            given: 0,
            uncommitted: VecDeque::new(),
            failed: false,
        }
    }

    fn topic_name(&self, topic: u8) -> &str {
        if topic == 0 {
            &self.spec.codes_topic
        } else {
            &self.spec.orders_topic
        }
    }

    /// Connects one consumer per topic, each assigned every partition of its topic from
    /// the start.
    fn open(&self) -> Result<Leader, String> {
        let spec = &self.spec;
        let ready = Arc::new((Mutex::new(false), Condvar::new()));
        let mut consumers = Vec::new();
        let mut partitions_of = Vec::new();
        for topic in 0..2u8 {
            let name = self.topic_name(topic);
            let mut consumer: BaseConsumer<Context> = client_config(&spec.brokers)
                .set("group.id", &spec.group)
                .set("enable.auto.commit", "false")
                .set("enable.auto.offset.store", "false")
                .set("auto.offset.reset", "earliest")
                // The snapshot ends when every partition has reached its end.
                .set("enable.partition.eof", "true")
                // A fetch waits at most this long for new messages: the idle latency.
                .set("fetch.wait.max.ms", "10")
                .create_with_context(Context::default())
                .map_err(|e| format!("Kafka at {}: {e}", spec.brokers))?;
            let ids = partitions(&consumer, &spec.brokers, name, spec.patience)?;
            let mut assignment = TopicPartitionList::new();
            for &partition in &ids {
                assignment
                    .add_partition_offset(name, partition, Offset::Beginning)
                    .map_err(|e| format!("Kafka: {e}"))?;
            }
            consumer.assign(&assignment).map_err(|e| {
                format!(
                    "Kafka at {}: cannot assign the partitions of {name}: {e}",
                    spec.brokers
                )
            })?;
            let wake = Arc::clone(&ready);
            consumer.set_nonempty_callback(move || {
                let (flag, signal) = &*wake;
                if let Ok(mut ready) = flag.lock() {
                    *ready = true;
                }
                signal.notify_one();
            });
            consumers.push(consumer);
            partitions_of.push(ids);
        }
        let (Ok(consumers), Ok(partitions)) = (consumers.try_into(), partitions_of.try_into())
        else {
            return Err("Kafka: one consumer per topic".into());
        };
        Ok(Leader {
            consumers,
            partitions,
            ready,
            next: BTreeMap::new(),
            last_contact: Instant::now(),
        })
    }

    /// The leader reads one epoch's messages: for the snapshot (`at_end` given) until
    /// every partition has reached its end, else what has arrived, waiting for the first
    /// message as long as needed (never past a stop). `None`: stopped with nothing read.
    fn read_epoch(
        &mut self,
        control: &Control,
        mut at_end: Option<[BTreeSet<i32>; 2]>,
    ) -> Result<Option<KafkaEpoch>, String> {
        let (spec, names) = (
            &self.spec,
            [
                self.spec.codes_topic.clone(),
                self.spec.orders_topic.clone(),
            ],
        );
        let Some(leader) = self.consumer.as_mut() else {
            return Err("the Kafka source is not open".into());
        };
        self.pending.clear();
        self.produced_at = None;
        let mut ranges: BTreeMap<(u8, i32), (i64, i64)> = BTreeMap::new();
        loop {
            let snapshot_done = at_end.as_ref().is_some_and(|at_end| {
                (0..2).all(|t| at_end[t].len() >= leader.partitions[t].len())
            });
            if snapshot_done || (at_end.is_none() && self.pending.len() >= MAX_MESSAGES) {
                break;
            }
            if control.stopping() && (at_end.is_some() || self.pending.is_empty()) {
                return Ok(None);
            }
            // Waiting for the first message (or the snapshot's next): bounded waits;
            // afterwards, only what is already here.
            let waiting = at_end.is_some() || self.pending.is_empty();
            let timeout = if waiting { POLL } else { Duration::ZERO };
            let (topic, message) = match leader.poll(timeout) {
                None if waiting => {
                    probe(leader, spec, &names)?;
                    continue;
                }
                None => break,
                Some((topic, Err(KafkaError::PartitionEOF(partition)))) => {
                    leader.last_contact = Instant::now();
                    if let Some(at_end) = at_end.as_mut() {
                        at_end[topic as usize].insert(partition);
                    }
                    continue;
                }
                Some((_, Err(error))) if is_fatal(&error) => {
                    return Err(format!("Kafka at {}: {error}", spec.brokers));
                }
                Some((topic, Err(error))) => {
                    let context = leader.consumers[topic as usize].context();
                    if let Ok(mut last) = context.last_error.lock() {
                        *last = Some(error.to_string());
                    }
                    probe(leader, spec, &names)?;
                    continue;
                }
                // Decoded at once, so that nothing borrows the consumer afterwards.
                Some((topic, Ok(message))) => {
                    let table = if topic == 0 {
                        Table::DiscountCodes
                    } else {
                        Table::Orders
                    };
                    let (partition, offset) = (message.partition(), message.offset());
                    let at = place(&names[topic as usize], partition, offset);
                    let decoded = decode(table, spec.format, message.key(), message.payload(), &at);
                    let millis = message.timestamp().to_millis();
                    (topic, (partition, offset, decoded, millis))
                }
            };
            let (partition, offset, decoded, millis) = message;
            leader.last_contact = Instant::now();
            self.pending.push(decoded);
            if let Some(millis) = millis {
                let time = UNIX_EPOCH + Duration::from_millis(millis.max(0) as u64);
                self.produced_at = Some(self.produced_at.map_or(time, |t| t.min(time)));
            }
            let range = ranges.entry((topic, partition)).or_insert((offset, offset));
            range.1 = offset;
            leader.next.insert((topic, partition), offset + 1);
        }
        Ok(Some(KafkaEpoch {
            snapshot: self.given == 0,
            ranges: ranges
                .into_iter()
                .map(|((topic, partition), (first, last))| OffsetRange {
                    topic,
                    partition,
                    first,
                    last,
                })
                .collect(),
            messages: self.pending.len() as u64,
            position: leader
                .next
                .iter()
                .map(|(&(topic, partition), next)| {
                    format!("{}/{partition}@{next}", names[topic as usize])
                })
                .collect::<Vec<_>>()
                .join(","),
        }))
    }

    /// The next epoch: the snapshot first (opening the consumers), then what arrives.
    fn read_next_epoch(&mut self, control: &Control) -> Result<Option<KafkaEpoch>, String> {
        let at_end = if self.consumer.is_none() {
            self.consumer = Some(self.open()?);
            Some(Default::default())
        } else {
            self.commit_durable(control);
            None
        };
        let Some(epoch) = self.read_epoch(control, at_end)? else {
            return Ok(None);
        };
        self.uncommitted
            .push_back((self.given, self.next_offsets()));
        self.given += 1;
        Ok(Some(epoch))
    }

    /// Commits to the group the offsets of the last epoch every durable output holds.
    fn commit_durable(&mut self, control: &Control) {
        let durable = control.durable();
        let mut newest = None;
        while self
            .uncommitted
            .front()
            .is_some_and(|(epoch, _)| *epoch < durable)
        {
            newest = self.uncommitted.pop_front();
        }
        if let (Some((_, offsets)), Some(leader)) = (newest, &self.consumer) {
            // Monitoring only (a restart reads from the start): a failed commit is
            // retried with the next epoch's offsets.
            let _ = leader.consumers[0].commit(&offsets, CommitMode::Async);
        }
    }

    fn next_offsets(&self) -> TopicPartitionList {
        let mut offsets = TopicPartitionList::new();
        if let Some(leader) = &self.consumer {
            for (&(topic, partition), &next) in &leader.next {
                let _ = offsets.add_partition_offset(
                    self.topic_name(topic),
                    partition,
                    Offset::Offset(next),
                );
            }
        }
        offsets
    }
}

/// Whether a consumer's error ends the run: the client says so, or a topic went away or
/// may not be read (broker trouble is waited out, up to the patience).
fn is_fatal(error: &KafkaError) -> bool {
    match error {
        KafkaError::MessageConsumptionFatal(_) => true,
        KafkaError::MessageConsumption(code) => matches!(
            code,
            RDKafkaErrorCode::UnknownTopicOrPartition
                | RDKafkaErrorCode::UnknownTopic
                | RDKafkaErrorCode::UnknownPartition
                | RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::GroupAuthorizationFailed
        ),
        _ => false,
    }
}

/// After a quiet spell, asks the brokers for a partition's ends: an answer is contact;
/// no contact for the spec's patience fails the run.
fn probe(leader: &mut Leader, spec: &KafkaSpec, names: &[String; 2]) -> Result<(), String> {
    if leader.last_contact.elapsed() < PROBE_AFTER {
        return Ok(());
    }
    let first = leader.partitions[0][0];
    match leader.consumers[0].fetch_watermarks(&names[0], first, PROBE_AFTER) {
        Ok(_) => {
            leader.last_contact = Instant::now();
            Ok(())
        }
        Err(error) if leader.last_contact.elapsed() >= spec.patience => Err(unreachable(
            &spec.brokers,
            leader.last_contact.elapsed(),
            &error.to_string(),
            leader.consumers[0].context(),
        )),
        Err(_) => Ok(()),
    }
}

impl EpochSource for KafkaSource {
    type Epoch = KafkaEpoch;
    type Summary = ();

    fn next_epoch(&mut self, control: &Control) -> Result<Option<KafkaEpoch>, String> {
        let next = self.read_next_epoch(control);
        self.failed |= next.is_err();
        next
    }

    fn read_share(
        &mut self,
        _epoch: &KafkaEpoch,
        share: Share,
        _summaries: Option<&[Option<()>]>,
        bad_rows: BadRows,
        sink: &mut dyn FnMut(Position, Change),
    ) -> Result<Vec<ShareReport>, (usize, InputError)> {
        let mut report = ShareReport::default();
        // The leader alone holds the messages; the dataflow exchanges them by key.
        if share.index == 0 {
            for (position, decoded) in self.pending.drain(..).enumerate() {
                if let Some(change) = report.accept(decoded, bad_rows).map_err(|e| (0, e))? {
                    sink(position as Position + 1, change);
                }
            }
        }
        Ok(vec![report])
    }

    fn read_by_leader_alone(&self, epoch: &KafkaEpoch) -> bool {
        !epoch.snapshot
    }

    fn send_while_reading(&self, epoch: &KafkaEpoch) -> bool {
        epoch.snapshot
    }

    fn info(&self, epoch: &KafkaEpoch) -> EpochInfo {
        EpochInfo {
            inputs: if epoch.snapshot {
                vec![
                    format!("topic {}", self.spec.codes_topic),
                    format!("topic {}", self.spec.orders_topic),
                ]
            } else {
                vec![format!("{} messages", epoch.messages)]
            },
            position: Some(epoch.position.clone()),
            transactions: 0,
            committed_at: self.produced_at,
            stream_delay: None,
        }
    }
}
