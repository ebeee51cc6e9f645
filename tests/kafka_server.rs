//! A throwaway Kafka-protocol broker for one test: tansu (a Kafka-compatible broker in
//! Rust, installed by `.ci/run`) with in-memory storage on a free port of 127.0.0.1,
//! killed when dropped. Topics are made and messages written with rdkafka, the job's own
//! client.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

pub struct KafkaServer {
    pub port: u16,
    child: Option<Child>,
}

/// The tansu binary: `$DISCOUNTING_TANSU`, else `tansu` on the PATH or in ~/.cargo/bin.
fn tansu() -> PathBuf {
    if let Some(path) = std::env::var_os("DISCOUNTING_TANSU") {
        return PathBuf::from(path);
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain(std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin")))
        .map(|dir| dir.join("tansu"))
        .find(|p| p.is_file());
    on_path.expect(
        "tansu must be installed (.ci/run installs it: cargo install tansu --features dynostore)",
    )
}

impl KafkaServer {
    pub fn start() -> KafkaServer {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(tansu())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start tansu");
        let server = KafkaServer {
            port,
            child: Some(child),
        };
        let until = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < until, "tansu did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", self.brokers());
        config
    }

    /// Makes topics of `partitions` partitions.
    pub fn create_topics(&self, names: &[&str], partitions: i32) {
        let admin: AdminClient<DefaultClientContext> = self.config().create().unwrap();
        let topics: Vec<NewTopic<'_>> = names
            .iter()
            .map(|n| NewTopic::new(n, partitions, TopicReplication::Fixed(1)))
            .collect();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let results = runtime
            .block_on(admin.create_topics(&topics, &AdminOptions::new()))
            .unwrap();
        for result in results {
            result.unwrap();
        }
    }

    pub fn producer(&self) -> BaseProducer {
        self.producer_with(&[])
    }

    /// A producer with settings of its own (`linger.ms` for bigger batches, say).
    pub fn producer_with(&self, settings: &[(&str, &str)]) -> BaseProducer {
        let mut config = self.config();
        config.set("linger.ms", "0");
        for (key, value) in settings {
            config.set(*key, *value);
        }
        config
            .set("acks", "all")
            // One request at a time: a partition's offsets follow the order of sends.
            .set("max.in.flight.requests.per.connection", "1")
            .create()
            .unwrap()
    }

    /// Writes messages (topic, partition, key, value; `None` is a tombstone) in order,
    /// and waits until the broker holds them.
    pub fn produce(&self, producer: &BaseProducer, messages: &[Sent]) {
        for sent in messages {
            let mut record = BaseRecord::<str, str>::to(&sent.topic)
                .partition(sent.partition)
                .key(&sent.key);
            if let Some(value) = &sent.value {
                record = record.payload(value);
            }
            producer.send(record).map_err(|(e, _)| e).unwrap();
        }
        producer.flush(Duration::from_secs(30)).unwrap();
    }

    /// Every message of `topic` (all partitions), as (key, value), in offset order per
    /// partition.
    pub fn read_topic(&self, topic: &str) -> Vec<(String, Option<String>)> {
        let consumer: BaseConsumer = self
            .config()
            .set("group.id", "test-reader")
            .set("enable.partition.eof", "true")
            .create()
            .unwrap();
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .unwrap();
        let mut assignment = TopicPartitionList::new();
        // Read until every partition has reached its end (tansu's high watermarks are
        // not the log's end, so they are not counted on).
        let mut remaining = metadata.topics()[0].partitions().len();
        for partition in metadata.topics()[0].partitions() {
            assignment
                .add_partition_offset(topic, partition.id(), Offset::Beginning)
                .unwrap();
        }
        consumer.assign(&assignment).unwrap();
        let mut messages = Vec::new();
        let until = Instant::now() + Duration::from_secs(30);
        while remaining > 0 {
            assert!(Instant::now() < until, "could not read {topic} back");
            if let Some(message) = consumer.poll(Duration::from_millis(100)) {
                let message = match message {
                    Err(rdkafka::error::KafkaError::PartitionEOF(_)) => {
                        remaining -= 1;
                        continue;
                    }
                    other => other.unwrap(),
                };
                let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
                messages.push((
                    message.key().map(text).unwrap_or_default(),
                    message.payload().map(text),
                ));
            }
        }
        messages
    }

    /// Stops the broker at once (its in-memory topics go with it).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for KafkaServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One message to write.
#[derive(Debug, Clone)]
pub struct Sent {
    pub topic: String,
    pub partition: i32,
    pub key: String,
    pub value: Option<String>,
}
