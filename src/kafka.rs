//! What the Kafka source (`source::kafka`) and sink (`sink::kafka`) share: the client
//! settings, a context that keeps the client's last error for messages, and the
//! partitions of a topic.
//!
//! The client is rdkafka over a librdkafka built with the crate (static, zlib only), so
//! nothing is needed on the machine; librdkafka is the client most Kafka tools use.

use std::sync::Mutex;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{DeliveryResult, ProducerContext};

/// Settings every client of the job starts from.
pub fn client_config(brokers: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("client.id", "discounting")
        // Reconnects stay frequent, so a broker that is back is found within a second.
        .set("reconnect.backoff.max.ms", "1000")
        .set("socket.timeout.ms", "10000")
        .set_log_level(RDKafkaLogLevel::Emerg);
    config
}

/// Keeps the client's last error (librdkafka reports broker trouble there, not as a
/// failed call) and, for a producer, the first failed delivery.
#[derive(Default)]
pub struct Context {
    pub last_error: Mutex<Option<String>>,
    pub failed_delivery: Mutex<Option<String>>,
}

impl Context {
    /// The last error the client reported, for a message that says why.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }
}

impl ClientContext for Context {
    fn error(&self, error: KafkaError, reason: &str) {
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(if reason.is_empty() {
                error.to_string()
            } else {
                reason.to_string()
            });
        }
    }

    // librdkafka's own log lines would interleave with the job's output; its errors
    // reach `error` above.
    fn log(&self, _level: RDKafkaLogLevel, _fac: &str, _log_message: &str) {}
}

impl ConsumerContext for Context {}

impl ProducerContext for Context {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _opaque: ()) {
        if let Err((error, _)) = result {
            if let Ok(mut failed) = self.failed_delivery.lock() {
                failed.get_or_insert_with(|| error.to_string());
            }
        }
    }
}

/// The partitions of `topic`, from the broker's metadata, or why there are none.
pub fn partitions(
    consumer: &BaseConsumer<Context>,
    brokers: &str,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<i32>, String> {
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .map_err(|e| unreachable(brokers, timeout, &e.to_string(), consumer.context()))?;
    let Some(found) = metadata.topics().iter().find(|t| t.name() == topic) else {
        return Err(format!("Kafka at {brokers}: no topic {topic}"));
    };
    if let Some(error) = found.error() {
        if error == rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART {
            return Err(format!("Kafka at {brokers}: no topic {topic}"));
        }
        return Err(format!("Kafka at {brokers}: topic {topic}: {error:?}"));
    }
    let mut partitions: Vec<i32> = found.partitions().iter().map(|p| p.id()).collect();
    if partitions.is_empty() {
        return Err(format!(
            "Kafka at {brokers}: topic {topic} has no partitions"
        ));
    }
    partitions.sort_unstable();
    Ok(partitions)
}

/// Makes `topic` with `partitions` partitions unless it is there already.
pub fn create_topic(
    brokers: &str,
    topic: &str,
    partitions: i32,
    wait: Duration,
) -> Result<(), String> {
    let admin: AdminClient<Context> = client_config(brokers)
        .create_with_context(Context::default())
        .map_err(|e| format!("Kafka at {brokers}: {e}"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|e| format!("cannot start a runtime for Kafka's admin client: {e}"))?;
    let new = [NewTopic::new(topic, partitions, TopicReplication::Fixed(1))];
    let options = AdminOptions::new().operation_timeout(Some(wait));
    let results = runtime
        .block_on(async { tokio::time::timeout(wait, admin.create_topics(&new, &options)).await })
        .map_err(|_| unreachable(brokers, wait, "no answer", admin.inner().context()))?
        .map_err(|e| format!("Kafka at {brokers}: cannot make the topic {topic}: {e}"))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => {
                return Err(format!(
                    "Kafka at {brokers}: cannot make the topic {topic}: {code}"
                ))
            }
        }
    }
    Ok(())
}

/// One line for a broker that did not answer.
pub fn unreachable(brokers: &str, waited: Duration, error: &str, context: &Context) -> String {
    let cause = context.last_error().unwrap_or_else(|| error.to_string());
    format!(
        "Kafka at {brokers}: no answer within {} s ({cause})",
        waited.as_secs_f64()
    )
}
