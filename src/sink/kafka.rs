//! `--sink-kafka TOPIC`: the result as ksqlDB's `DISCOUNT_ANALYSIS` table writes its
//! topic. Each message is keyed by the percentage (its exact decimal text) with the row
//! as JSON (upper-case names, exact numbers) or, when a percentage's row goes away, a
//! tombstone; headers carry the epoch and source position. An epoch's messages are
//! acknowledged by the brokers (`acks=all`) before the sink says it holds the epoch, so
//! no source acknowledges upstream what the topic does not hold.
//!
//! At start the topic is read to its end: a key it holds that the first result lacks
//! (left by an earlier run) gets a tombstone, so a compacted topic keeps no stale row.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

use super::Sink;
use crate::kafka::{client_config, create_topic, partitions, Context};
use crate::output::json_row;
use crate::result::ResultRow;
use crate::run::EpochOutput;

/// How long the brokers have to acknowledge an epoch's messages.
const FLUSH: Duration = Duration::from_secs(30);

pub struct KafkaSink {
    producer: BaseProducer<Context>,
    brokers: String,
    topic: String,
    /// Keys the topic held at start, until the first epoch has been written.
    left_by_earlier_runs: Option<BTreeSet<String>>,
}

impl KafkaSink {
    pub fn connect(brokers: &str, topic: &str, patience: Duration) -> anyhow::Result<KafkaSink> {
        let fail = |e: String| anyhow!("--sink-kafka {topic}: {e}");
        let producer: BaseProducer<Context> = client_config(brokers)
            .set("acks", "all")
            .set("linger.ms", "1")
            .set("message.timeout.ms", FLUSH.as_millis().to_string())
            .create_with_context(Context::default())
            .map_err(|e| fail(format!("Kafka at {brokers}: {e}")))?;
        let held = held_keys(brokers, topic, patience).map_err(fail)?;
        Ok(KafkaSink {
            producer,
            brokers: brokers.to_string(),
            topic: topic.to_string(),
            left_by_earlier_runs: Some(held),
        })
    }

    fn send(&self, key: &str, value: Option<&str>, headers: &OwnedHeaders) -> anyhow::Result<()> {
        let mut record = BaseRecord::<str, str>::to(&self.topic)
            .key(key)
            .headers(headers.clone());
        if let Some(value) = value {
            record = record.payload(value);
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                // The client's queue is full: let it deliver, then try again.
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), again)) => {
                    record = again;
                    self.producer.poll(Duration::from_millis(10));
                }
                Err((error, _)) => bail!("Kafka at {}: {error}", self.brokers),
            }
        }
    }
}

/// The percentages a result topic holds (its last message per key is not a tombstone),
/// read from every partition's start to its end as of now.
fn held_keys(brokers: &str, topic: &str, patience: Duration) -> Result<BTreeSet<String>, String> {
    let consumer: BaseConsumer<Context> = client_config(brokers)
        .set("group.id", "discounting-sink")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create_with_context(Context::default())
        .map_err(|e| format!("Kafka at {brokers}: {e}"))?;
    let ids = match partitions(&consumer, brokers, topic, patience) {
        Ok(ids) => ids,
        // A topic that is not there yet holds nothing: it is made, as ksqlDB makes a
        // table's topic (one partition: the result has a few dozen rows).
        Err(e) if e.ends_with(&format!("no topic {topic}")) || e.contains("UnknownTopic") => {
            create_topic(brokers, topic, 1, patience)?;
            return Ok(BTreeSet::new());
        }
        Err(e) => return Err(e),
    };
    let mut assignment = TopicPartitionList::new();
    for &partition in &ids {
        let _ = assignment.add_partition_offset(topic, partition, Offset::Beginning);
    }
    // Read until every partition has reached its end (as the broker's fetch says, not
    // a high watermark asked for beforehand, which some brokers give wrong).
    let mut ends: BTreeSet<i32> = ids.into_iter().collect();
    let mut held = BTreeSet::new();
    consumer
        .assign(&assignment)
        .map_err(|e| format!("Kafka at {brokers}: {e}"))?;
    let deadline = std::time::Instant::now() + patience;
    while !ends.is_empty() {
        if std::time::Instant::now() > deadline {
            return Err(format!(
                "Kafka at {brokers}: could not read the topic's {} partitions to their end within {} s",
                ends.len(),
                patience.as_secs()
            ));
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                if let Some(key) = message.key() {
                    let key = String::from_utf8_lossy(key).into_owned();
                    if message.payload().is_some() {
                        held.insert(key);
                    } else {
                        held.remove(&key);
                    }
                }
            }
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                ends.remove(&partition);
            }
            Some(Err(e)) => return Err(format!("Kafka at {brokers}: {e}")),
            None => {}
        }
    }
    Ok(held)
}

impl Sink for KafkaSink {
    fn name(&self) -> String {
        format!("--sink-kafka {}", self.topic)
    }

    fn epochs(&mut self, epochs: &[Arc<EpochOutput>]) -> anyhow::Result<()> {
        for epoch in epochs {
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: "discounting.epoch",
                    value: Some(&epoch.epoch.to_string()),
                })
                .insert(Header {
                    key: "discounting.position",
                    value: epoch.position.as_deref(),
                });
            let now: BTreeSet<String> = epoch.table.iter().map(ResultRow::percentage).collect();
            if let Some(held) = self.left_by_earlier_runs.take() {
                for stale in held.difference(&now) {
                    self.send(stale, None, &headers)?;
                }
                for row in &epoch.table {
                    self.send(&row.percentage(), Some(&json_row(row)), &headers)?;
                }
                continue;
            }
            // A percentage's last change in the epoch is its new row, or its removal.
            for change in &epoch.changes {
                let key = change.row.percentage();
                match change.diff {
                    1 => self.send(&key, Some(&json_row(&change.row)), &headers)?,
                    _ if !now.contains(&key) => self.send(&key, None, &headers)?,
                    _ => {}
                }
            }
        }
        self.producer.flush(FLUSH).map_err(|e| {
            anyhow!(
                "Kafka at {}: the epoch's messages were not acknowledged within {} s: {e}",
                self.brokers,
                FLUSH.as_secs()
            )
        })?;
        if let Some(failed) = self
            .producer
            .context()
            .failed_delivery
            .lock()
            .ok()
            .and_then(|f| f.clone())
        {
            bail!(
                "Kafka at {}: a message was not delivered: {failed}",
                self.brokers
            );
        }
        Ok(())
    }
}
