//! The HTTP API and the dashboard (`discounting::serve`), driven through the library's
//! `Server` with real clients: raw HTTP/1.1 over a `TcpStream`, and headless Chromium.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant, SystemTime};

use discounting::result::{ChangeRow, ResultRow};
use discounting::serve::{Metrics, Options, Published, Server};
use serde_json::Value;

use crate::util::Workdir;

fn local() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A row from its printed figures (the figures here are written out, not computed).
fn row(values: [&str; 6]) -> ResultRow {
    use discounting::result::Figure;
    // Written with exactly `digits` decimals; past what micros in an i64 hold, too.
    let figure = |text: &str, digits: u32| {
        let fraction = text.split_once('.').map_or(0, |(_, f)| f.len() as u32);
        assert_eq!(fraction, digits, "{text}");
        Figure::new(text.replace('.', "").parse::<i128>().unwrap(), digits)
    };
    ResultRow {
        percentage_micros: discounting::decimal::parse_micros(values[0]).unwrap(),
        avg_item_ct: figure(values[1], 0),
        avg_order_subtotal: figure(values[2], 2),
        avg_order_total: figure(values[3], 2),
        avg_discount_total: figure(values[4], 2),
        order_count: values[5].parse().unwrap(),
    }
}

/// The recipe's table after its base snapshot.
fn base_table() -> Vec<ResultRow> {
    vec![
        row(["15", "4", "73.04", "62.08", "10.96", "5"]),
        row(["20", "5", "89.10", "71.28", "17.82", "3"]),
        row(["25", "9", "120.33", "90.25", "30.08", "3"]),
        row(["30", "8", "130.64", "91.45", "39.19", "1"]),
        row(["35", "6", "150.00", "97.50", "52.50", "1"]),
        row(["50", "7", "200.51", "100.26", "100.26", "2"]),
    ]
}

fn changes_of(epoch: u64, before: &[ResultRow], after: &[ResultRow]) -> Vec<ChangeRow> {
    discounting::result::diff_rows(epoch, before, after)
}

/// 2023-11-14T22:13:20.123Z.
fn at() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)
}

fn published(epoch: u64, before: &[ResultRow], table: Vec<ResultRow>) -> Published {
    Published {
        epoch,
        position: Some(format!("0/16B3F{epoch:02X}")),
        changes: changes_of(epoch, before, &table),
        table,
        completed_at: at(),
    }
}

/// Epoch 1 of the sample run: ALDNE15 was really 20%.
fn epoch_one_table() -> Vec<ResultRow> {
    let mut table = base_table();
    table[0] = row(["15", "4", "79.51", "67.58", "11.93", "4"]);
    table[1] = row(["20", "4", "78.61", "62.89", "15.72", "4"]);
    table
}

pub struct Reply {
    pub status: u16,
    headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        assert_eq!(self.header("content-type"), Some("application/json"));
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// Reads a response's status line and headers.
fn read_head(reader: &mut impl BufRead) -> (u16, Vec<(String, String)>) {
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {line:?}"));
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (name, value) = l.split_once(':').unwrap();
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    (status, headers)
}

/// The body of a `Transfer-Encoding: chunked` response, decoded as it arrives.
struct Chunked<R> {
    inner: R,
    left: usize,
    done: bool,
}

impl<R: BufRead> Read for Chunked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            let mut line = String::new();
            if self.inner.read_line(&mut line)? == 0 {
                return Ok(0);
            }
            let size = line.trim().split(';').next().unwrap_or("");
            self.left = usize::from_str_radix(size, 16).map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, format!("chunk {line:?}"))
            })?;
            if self.left == 0 {
                self.done = true;
                return Ok(0);
            }
        }
        let wanted = self.left.min(buf.len());
        let n = self.inner.read(&mut buf[..wanted])?;
        if n == 0 {
            return Ok(0);
        }
        self.left -= n;
        if self.left == 0 {
            let mut crlf = String::new();
            self.inner.read_line(&mut crlf)?;
        }
        Ok(n)
    }
}

fn request(addr: SocketAddr, method: &str, path: &str) -> Reply {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reader = BufReader::new(stream);
    let (status, headers) = read_head(&mut reader);
    let chunked = headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let mut body = String::new();
    if chunked {
        Chunked {
            inner: reader,
            left: 0,
            done: false,
        }
        .read_to_string(&mut body)
        .unwrap();
    } else {
        reader.read_to_string(&mut body).unwrap();
    }
    Reply {
        status,
        headers,
        body,
    }
}

pub fn get(addr: SocketAddr, path: &str) -> Reply {
    request(addr, "GET", path)
}

#[derive(Debug, PartialEq)]
struct SseEvent {
    id: Option<String>,
    event: Option<String>,
    data: String,
    /// The event's lines as they came.
    raw: String,
}

impl SseEvent {
    fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap()
    }
}

/// A client of `/v1/changes` reading the event-stream text.
struct SseClient {
    lines: BufReader<Chunked<BufReader<TcpStream>>>,
}

impl SseClient {
    /// Connects and waits for the response's head, by which time the server has
    /// registered the client.
    fn connect(addr: SocketAddr, last_event_id: Option<u64>) -> SseClient {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let last = last_event_id.map_or(String::new(), |id| format!("Last-Event-ID: {id}\r\n"));
        write!(
            stream,
            "GET /v1/changes HTTP/1.1\r\nHost: test\r\nAccept: text/event-stream\r\n{last}\r\n"
        )
        .unwrap();
        let mut reader = BufReader::new(stream);
        let (status, headers) = read_head(&mut reader);
        assert_eq!(status, 200);
        let header = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        assert_eq!(header("content-type").as_deref(), Some("text/event-stream"));
        assert_eq!(header("x-accel-buffering").as_deref(), Some("no"));
        assert_eq!(header("transfer-encoding").as_deref(), Some("chunked"));
        SseClient {
            lines: BufReader::new(Chunked {
                inner: reader,
                left: 0,
                done: false,
            }),
        }
    }

    /// The next event (keep-alive comments skipped).
    fn next(&mut self) -> SseEvent {
        let mut event = SseEvent {
            id: None,
            event: None,
            data: String::new(),
            raw: String::new(),
        };
        let mut fields = 0;
        loop {
            let mut line = String::new();
            let n = self.lines.read_line(&mut line).expect("an event in time");
            assert!(n > 0, "the stream ended");
            let line = line.trim_end_matches(['\r', '\n']);
            if line.is_empty() {
                if fields > 0 {
                    return event;
                }
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            event.raw.push_str(line);
            event.raw.push('\n');
            let (name, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value).to_string();
            fields += 1;
            match name {
                "id" => event.id = Some(value),
                "event" => event.event = Some(value),
                "data" => {
                    if !event.data.is_empty() {
                        event.data.push('\n');
                    }
                    event.data.push_str(&value);
                }
                _ => fields -= 1,
            }
        }
    }
}

/// `{"PERCENTAGE":15,...}` for each row, as the API must write them.
fn rows_json(rows: &[ResultRow]) -> String {
    let names = discounting::serve::json::KSQL_COLUMNS;
    let objects: Vec<String> = rows
        .iter()
        .map(|r| {
            let fields: Vec<String> = names
                .iter()
                .zip(r.values())
                .map(|(n, v)| format!("\"{n}\":{v}"))
                .collect();
            format!("{{{}}}", fields.join(","))
        })
        .collect();
    format!("[{}]", objects.join(","))
}

#[test]
fn serve_table_json_is_the_published_table_exactly() {
    let server = Server::start(local()).unwrap();
    let addr = server.local_addr();
    let mut table = base_table();
    // Figures past what a float holds, and a trailing zero, stay as written.
    table.push(row([
        "60",
        "3",
        "12345678901234567.10",
        "4938271560493826.84",
        "7407407340740740.26",
        "2",
    ]));
    table.push(row(["99.5", "1", "0.10", "0.00", "0.10", "1"]));
    server.publish(published(0, &[], table.clone()));
    let reply = get(addr, "/v1/discount_analysis");
    assert_eq!(reply.status, 200);
    let expected = format!(
        "{{\"epoch\":0,\"position\":\"0/16B3F00\",\"completed_at\":\"2023-11-14T22:13:20.123Z\",\"rows\":{}}}",
        rows_json(&table)
    );
    // With arbitrary precision, JSON numbers compare by their digits.
    assert_eq!(
        reply.json(),
        serde_json::from_str::<Value>(&expected).unwrap()
    );
    assert_eq!(reply.body, expected);
    assert!(reply.body.contains("\"AVG_ORDER_SUBTOTAL\":73.04,"));
    assert!(reply
        .body
        .contains("\"AVG_ORDER_SUBTOTAL\":12345678901234567.10,"));
    let rows = reply.json()["rows"].as_array().unwrap().clone();
    assert_eq!(rows[4]["AVG_ORDER_SUBTOTAL"].to_string(), "150.00");
    assert!(rows[0]["PERCENTAGE"].is_number());

    // The next epoch replaces the table whole.
    server.publish(published(1, &table, epoch_one_table()));
    let reply = get(addr, "/v1/discount_analysis").json();
    assert_eq!(reply["epoch"], 1);
    assert_eq!(
        reply["rows"],
        serde_json::from_str::<Value>(&rows_json(&epoch_one_table())).unwrap()
    );
    server.shutdown();
}

#[test]
fn serve_one_percentage_as_a_pull_query() {
    let server = Server::start(local()).unwrap();
    let addr = server.local_addr();
    server.publish(published(0, &[], base_table()));

    let one = get(addr, "/v1/discount_analysis?percentage=15");
    assert_eq!(one.status, 200);
    let expected = format!(
        "{{\"epoch\":0,\"position\":\"0/16B3F00\",\"completed_at\":\"2023-11-14T22:13:20.123Z\",\"rows\":{}}}",
        rows_json(&base_table()[..1])
    );
    assert_eq!(one.body, expected);
    // 15.0 is the same percentage.
    assert_eq!(
        get(addr, "/v1/discount_analysis?percentage=15.0").json()["rows"][0]["ORDER_COUNT"],
        5
    );

    let missing = get(addr, "/v1/discount_analysis?percentage=16");
    assert_eq!(missing.status, 404);
    assert_eq!(
        missing.json(),
        serde_json::json!({"error": "no row for percentage 16"})
    );

    for bad in [
        "?percentage=abc",
        "?percentage=",
        "?percentage=101",
        "?percentage=15&percentage=20",
        "?pct=15",
    ] {
        let reply = get(addr, &format!("/v1/discount_analysis{bad}"));
        assert_eq!(reply.status, 400, "{bad}");
        let message = reply.json()["error"].as_str().unwrap().to_string();
        assert!(!message.is_empty(), "{bad}");
    }
    server.shutdown();
}

#[test]
fn serve_errors_health_and_dashboard_before_the_first_epoch() {
    let server = Server::start(local()).unwrap();
    let addr = server.local_addr();
    let reply = get(addr, "/v1/discount_analysis");
    assert_eq!(reply.status, 503);
    assert_eq!(
        reply.json(),
        serde_json::json!({"error": "no epoch completed yet"})
    );
    // A bad parameter is a bad request whatever the state.
    assert_eq!(get(addr, "/v1/discount_analysis?percentage=x").status, 400);

    let unknown = get(addr, "/nope");
    assert_eq!(unknown.status, 404);
    assert_eq!(
        unknown.json(),
        serde_json::json!({"error": "no such path /nope"})
    );
    let post = request(addr, "POST", "/v1/discount_analysis");
    assert_eq!(post.status, 405);
    assert!(post.json()["error"].is_string());

    assert_eq!(request(addr, "HEAD", "/healthz").status, 200);
    let health = get(addr, "/healthz");
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));

    let page = get(addr, "/");
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(page
        .header("content-security-policy")
        .unwrap()
        .contains("default-src 'none'"));
    assert_eq!(page.body, discounting::serve::DASHBOARD_HTML);
    server.shutdown();
}

#[test]
fn serve_dashboard_is_self_contained() {
    let page = discounting::serve::DASHBOARD_HTML;
    assert!(page.contains("new EventSource(\"v1/changes\")"));
    assert!(page.contains("<meta name=\"viewport\""));
    assert!(page.contains("@media"));
    // Nothing fetched from elsewhere: no external scripts, styles, images or fonts.
    for outside in [
        "src=",
        "@import",
        "url(",
        "//cdn",
        "https://",
        "fetch(",
        "XMLHttpRequest",
    ] {
        assert!(
            !page.contains(outside),
            "the dashboard mentions {outside:?}"
        );
    }
    // The one URL is SVG's namespace, which is a name, not a fetch.
    let urls: Vec<&str> = page
        .match_indices("http://")
        .map(|(i, _)| &page[i..i + 26])
        .collect();
    assert!(
        urls.iter().all(|u| *u == "http://www.w3.org/2000/svg"),
        "{urls:?}"
    );
    assert!(page.contains("rel=\"icon\" href=\"data:,\""));
}

#[test]
fn serve_metrics_are_prometheus_text() {
    let server = Server::start(local()).unwrap();
    let addr = server.local_addr();
    let before = get(addr, "/metrics");
    assert_eq!(before.status, 200);
    assert!(before
        .header("content-type")
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    assert!(before
        .body
        .contains("\ndiscounting_epochs_completed_total 0\n"));
    assert!(!before.body.contains("discounting_last_epoch "));
    assert!(!before.body.contains("discounting_source_lag"));

    server.publish(published(0, &[], base_table()));
    server.publish(published(1, &base_table(), epoch_one_table()));
    server.set_metrics(Metrics {
        rows_applied: 31,
        lag_bytes: Some(4096),
        lag_ms: Some(1500),
    });
    let _client = SseClient::connect(addr, None);
    let body = get(addr, "/metrics").body;
    for line in [
        "discounting_epochs_completed_total 2",
        "discounting_last_epoch 1",
        "discounting_last_epoch_completed_timestamp_seconds 1700000000.123",
        "discounting_result_rows 6",
        "discounting_rows_applied_total 31",
        "discounting_source_lag_bytes 4096",
        "discounting_source_lag_seconds 1.500",
        "discounting_sse_clients 1",
        "discounting_sse_clients_connected_total 1",
        "discounting_sse_clients_dropped_total 0",
        "# TYPE discounting_epochs_completed_total counter",
        "# TYPE discounting_sse_clients gauge",
    ] {
        assert!(body.lines().any(|l| l == line), "no {line:?} in\n{body}");
    }
    let memory = body
        .lines()
        .find_map(|l| l.strip_prefix("discounting_resident_memory_bytes "))
        .unwrap();
    assert!(memory.parse::<u64>().unwrap() > 1_000_000);
    // Every sample line is `name value`, each with HELP and TYPE.
    for l in body.lines().filter(|l| !l.starts_with('#')) {
        let (name, value) = l.split_once(' ').unwrap();
        assert!(value.parse::<f64>().is_ok(), "{l}");
        assert!(body.contains(&format!("# TYPE {name} ")), "{l}");
    }
    server.shutdown();
}

#[test]
fn serve_sse_delivers_epochs_published_after_the_client_connected() {
    let server = Server::start(local()).unwrap();
    let addr = server.local_addr();
    // Connected before any epoch: the first one arrives as a snapshot.
    let mut early = SseClient::connect(addr, None);
    server.publish(published(0, &[], base_table()));
    let first = early.next();
    assert_eq!(first.event.as_deref(), Some("snapshot"));
    assert_eq!(first.id.as_deref(), Some("0"));
    assert_eq!(
        first.data,
        format!(
            "{{\"epoch\":0,\"position\":\"0/16B3F00\",\"completed_at\":\"2023-11-14T22:13:20.123Z\",\"rows\":{}}}",
            rows_json(&base_table())
        )
    );

    assert_eq!(
        first.raw,
        format!("id: 0\nevent: snapshot\ndata: {}\n", first.data)
    );
    // Connected after epoch 0: its snapshot first, then each epoch's changes.
    let mut late = SseClient::connect(addr, None);
    let snapshot = late.next();
    assert_eq!(snapshot, first);

    server.publish(published(1, &base_table(), epoch_one_table()));
    let expected = "{\"epoch\":1,\"position\":\"0/16B3F01\",\"completed_at\":\"2023-11-14T22:13:20.123Z\",\"changes\":[\
        {\"DIFF\":-1,\"PERCENTAGE\":15,\"AVG_ITEM_CT\":4,\"AVG_ORDER_SUBTOTAL\":73.04,\"AVG_ORDER_TOTAL\":62.08,\"AVG_DISCOUNT_TOTAL\":10.96,\"ORDER_COUNT\":5},\
        {\"DIFF\":1,\"PERCENTAGE\":15,\"AVG_ITEM_CT\":4,\"AVG_ORDER_SUBTOTAL\":79.51,\"AVG_ORDER_TOTAL\":67.58,\"AVG_DISCOUNT_TOTAL\":11.93,\"ORDER_COUNT\":4},\
        {\"DIFF\":-1,\"PERCENTAGE\":20,\"AVG_ITEM_CT\":5,\"AVG_ORDER_SUBTOTAL\":89.10,\"AVG_ORDER_TOTAL\":71.28,\"AVG_DISCOUNT_TOTAL\":17.82,\"ORDER_COUNT\":3},\
        {\"DIFF\":1,\"PERCENTAGE\":20,\"AVG_ITEM_CT\":4,\"AVG_ORDER_SUBTOTAL\":78.61,\"AVG_ORDER_TOTAL\":62.89,\"AVG_DISCOUNT_TOTAL\":15.72,\"ORDER_COUNT\":4}]}";
    for client in [&mut early, &mut late] {
        let event = client.next();
        assert_eq!(event.event.as_deref(), Some("changes"));
        assert_eq!(event.id.as_deref(), Some("1"));
        assert_eq!(event.data, expected);
    }
    // An epoch that changes nothing is still an event.
    server.publish(published(2, &epoch_one_table(), epoch_one_table()));
    let event = late.next();
    assert_eq!(event.id.as_deref(), Some("2"));
    assert_eq!(event.json()["changes"], serde_json::json!([]));
    server.shutdown();
}

#[test]
fn serve_sse_last_event_id_replays_missed_epochs_or_sends_a_snapshot() {
    let options = Options {
        history_epochs: 3,
        max_clients: 4,
        ..Options::default()
    };
    let server = Server::start_with(local(), options).unwrap();
    let addr = server.local_addr();
    // Epoch e's table: percentage 15's order count is e + 1.
    let table = |e: u64| {
        vec![row([
            "15",
            "4",
            "73.04",
            "62.08",
            "10.96",
            &(e + 1).to_string(),
        ])]
    };
    server.publish(published(0, &[], table(0)));
    for e in 1..=5 {
        server.publish(published(e, &table(e - 1), table(e)));
    }
    // History holds epochs 3, 4, 5: a client that saw 3 gets 4 and 5, then what follows.
    let mut back = SseClient::connect(addr, Some(3));
    for e in [4, 5] {
        let event = back.next();
        assert_eq!(event.event.as_deref(), Some("changes"));
        assert_eq!(event.id, Some(e.to_string()));
        let changes = event.json()["changes"].clone();
        assert_eq!(changes[0]["DIFF"], -1);
        assert_eq!(changes[0]["ORDER_COUNT"], e);
        assert_eq!(changes[1]["DIFF"], 1);
        assert_eq!(changes[1]["ORDER_COUNT"], e + 1);
    }
    // A client that saw the current epoch gets nothing until the next.
    let mut current = SseClient::connect(addr, Some(5));
    // One that saw an epoch no longer kept, or one never seen, gets a fresh snapshot.
    let mut evicted = SseClient::connect(addr, Some(1));
    let mut unknown = SseClient::connect(addr, Some(99));
    // Four clients is the most this server takes.
    let refused = get(addr, "/v1/changes");
    assert_eq!(refused.status, 503);
    assert!(refused.json()["error"]
        .as_str()
        .unwrap()
        .contains("too many clients"));
    for client in [&mut evicted, &mut unknown] {
        let event = client.next();
        assert_eq!(event.event.as_deref(), Some("snapshot"));
        assert_eq!(event.id.as_deref(), Some("5"));
        assert_eq!(event.json()["rows"][0]["ORDER_COUNT"], 6);
    }
    server.publish(published(6, &table(5), table(6)));
    for client in [&mut back, &mut current, &mut evicted, &mut unknown] {
        let event = client.next();
        assert_eq!(event.event.as_deref(), Some("changes"));
        assert_eq!(event.id.as_deref(), Some("6"));
    }
    server.shutdown();
}

fn metric(addr: SocketAddr, name: &str) -> u64 {
    let body = get(addr, "/metrics").body;
    body.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name}"))
        .parse()
        .unwrap()
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < timeout, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn serve_a_client_that_never_reads_does_not_stall_publishing_and_is_dropped() {
    let server = Server::start(local()).unwrap();
    let addr = server.local_addr();
    // Ten percentages, each changing every epoch: about 3 KB of events per epoch, 30 MB
    // in all, far more than the sockets' buffers hold.
    let table = |e: u64| -> Vec<ResultRow> {
        (0..10)
            .map(|p| {
                row([
                    &(p * 5).to_string(),
                    "4",
                    "73.04",
                    "62.08",
                    "10.96",
                    &(e + 1).to_string(),
                ])
            })
            .collect()
    };
    server.publish(published(0, &[], table(0)));
    let mut stalled = TcpStream::connect(addr).unwrap();
    write!(
        stalled,
        "GET /v1/changes HTTP/1.1\r\nHost: test\r\nAccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    wait_for("the client registered", Duration::from_secs(10), || {
        metric(addr, "discounting_sse_clients") == 1
    });

    let start = Instant::now();
    let mut before = table(0);
    for e in 1..=10_000 {
        let after = table(e);
        server.publish(published(e, &before, after.clone()));
        before = after;
    }
    let publishing = start.elapsed();
    assert!(
        publishing < Duration::from_secs(10),
        "10,000 publishes took {publishing:?}"
    );

    wait_for("the slow client dropped", Duration::from_secs(20), || {
        metric(addr, "discounting_sse_clients_dropped_total") == 1
            && metric(addr, "discounting_sse_clients") == 0
    });
    // Its connection is closed: reading drains what was buffered, then ends.
    stalled
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut sink = [0u8; 1 << 16];
    loop {
        match stalled.read(&mut sink) {
            Ok(0) => break,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the dropped client's connection stayed open: {e}"),
        }
    }
    // The server serves on: a new client gets the last epoch.
    let mut fresh = SseClient::connect(addr, None);
    let event = fresh.next();
    assert_eq!(event.id.as_deref(), Some("10000"));
    assert_eq!(metric(addr, "discounting_epochs_completed_total"), 10_001);
    server.shutdown();
}

#[test]
fn serve_binds_only_its_address_and_shuts_down_with_clients_connected() {
    let server = Server::start(local()).unwrap();
    let addr = server.local_addr();
    assert!(addr.ip().is_loopback());
    assert_ne!(addr.port(), 0);
    // The address taken: an error, not a panic.
    let error = Server::start(addr).err().expect("the port is taken");
    assert!(format!("{error:#}").contains(&format!("cannot listen on {addr}")));

    server.publish(published(0, &[], base_table()));
    let mut client = SseClient::connect(addr, None);
    client.next();
    let start = Instant::now();
    server.shutdown();
    assert!(start.elapsed() < Duration::from_secs(5));
    assert!(TcpStream::connect(addr).is_err(), "still listening");
}

// ---------------------------------------------------------------- headless Chromium

fn chromium() -> std::path::PathBuf {
    let path = std::env::var_os("CHROMIUM")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "/usr/bin/chromium".into());
    assert!(
        path.exists(),
        "the dashboard tests need headless Chromium at {}: install Debian's package \
         (apt-get install -y chromium) or set CHROMIUM to its path",
        path.display()
    );
    path
}

fn chromium_command(profile: &std::path::Path) -> std::process::Command {
    let mut command = std::process::Command::new(chromium());
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--no-first-run",
            "--no-default-browser-check",
            "--mute-audio",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    command
}

/// Kills the browser this test started when the test ends, however it ends.
struct Browser(std::process::Child);

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

type Socket = tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>;

/// A page in Chromium, driven over the DevTools protocol.
struct Page {
    socket: Socket,
    session: String,
    next_id: u64,
    _browser: Browser,
}

impl Page {
    fn open(profile: &std::path::Path, url: &str) -> Page {
        let browser = Browser(
            chromium_command(profile)
                .arg("--remote-debugging-address=127.0.0.1")
                .arg("--remote-debugging-port=0")
                .arg("about:blank")
                .spawn()
                .expect("chromium starts"),
        );
        // Chromium writes the port it picked and the browser's path to this file.
        let active = profile.join("DevToolsActivePort");
        let mut port_file = String::new();
        wait_for("Chromium's DevTools port", Duration::from_secs(60), || {
            port_file = std::fs::read_to_string(&active).unwrap_or_default();
            port_file.lines().count() >= 2
        });
        let mut lines = port_file.lines();
        let (port, path) = (lines.next().unwrap(), lines.next().unwrap());
        let (socket, _) = tungstenite::connect(format!("ws://127.0.0.1:{port}{path}"))
            .expect("connects to DevTools");
        if let tungstenite::stream::MaybeTlsStream::Plain(stream) = socket.get_ref() {
            stream
                .set_read_timeout(Some(Duration::from_secs(60)))
                .unwrap();
        }
        let mut page = Page {
            socket,
            session: String::new(),
            next_id: 0,
            _browser: browser,
        };
        let target = page.call("Target.createTarget", serde_json::json!({ "url": url }));
        let target = target["targetId"].as_str().unwrap().to_string();
        let attached = page.call(
            "Target.attachToTarget",
            serde_json::json!({ "targetId": target, "flatten": true }),
        );
        page.session = attached["sessionId"].as_str().unwrap().to_string();
        page
    }

    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = serde_json::json!({ "id": id, "method": method, "params": params });
        if !self.session.is_empty() {
            message["sessionId"] = Value::from(self.session.clone());
        }
        self.socket
            .send(tungstenite::Message::text(message.to_string()))
            .unwrap();
        loop {
            let reply = self.socket.read().expect("DevTools answers");
            let tungstenite::Message::Text(text) = reply else {
                continue;
            };
            let reply: Value = serde_json::from_str(text.as_str()).unwrap();
            if reply["id"] == id {
                assert!(reply.get("error").is_none(), "{method}: {reply}");
                return reply["result"].clone();
            }
        }
    }

    /// Evaluates a JavaScript expression in the page; its value as JSON.
    fn eval(&mut self, expression: &str) -> Value {
        let result = self.call(
            "Runtime.evaluate",
            serde_json::json!({ "expression": expression, "returnByValue": true }),
        );
        assert!(
            result.get("exceptionDetails").is_none(),
            "{expression}: {result}"
        );
        result["result"]["value"].clone()
    }

    /// Waits until `expression` is `wanted` (while the page loads it may not even be
    /// defined).
    fn wait_for_text(&mut self, expression: &str, wanted: &str) {
        let start = Instant::now();
        let guarded = format!(
            "(() => {{ try {{ return String({expression}); }} catch (e) {{ return null; }} }})()"
        );
        loop {
            let value = self.eval(&guarded);
            if value == wanted {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "{expression} is {value}, not {wanted:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

const TABLE_TEXT: &str = "Array.from(document.querySelectorAll('#rows tr'))\
    .map(tr => Array.from(tr.cells).map(td => td.textContent).join(' ')).join('\\n')";

#[test]
fn serve_dashboard_in_headless_chromium_updates_without_reload() {
    let work = Workdir::new("serve-dashboard");
    let server = Server::start(local()).unwrap();
    let url = format!("http://{}/", server.local_addr());
    server.publish(published(0, &[], base_table()));

    let mut page = Page::open(&work.path("profile"), &url);
    page.wait_for_text("document.getElementById('epoch').textContent", "0");
    page.wait_for_text("document.getElementById('conn').textContent", "live");
    assert_eq!(
        page.eval(TABLE_TEXT),
        "15 4 73.04 62.08 10.96 5\n20 5 89.10 71.28 17.82 3\n25 9 120.33 90.25 30.08 3\n\
         30 8 130.64 91.45 39.19 1\n35 6 150.00 97.50 52.50 1\n50 7 200.51 100.26 100.26 2"
    );
    assert_eq!(
        page.eval("document.getElementById('position').textContent"),
        "0/16B3F00"
    );
    // Three bars per percentage, and a y axis with ticks.
    assert_eq!(
        page.eval("document.querySelectorAll('#chart rect').length"),
        18
    );
    assert!(
        page.eval("document.querySelectorAll('#chart line.grid').length")
            .as_u64()
            .unwrap()
            >= 3
    );
    // Marks this page: a reload would lose it.
    page.eval("window.notReloaded = 'still here'");

    // The next epoch reaches the open page as an event.
    server.publish(published(1, &base_table(), epoch_one_table()));
    page.wait_for_text("document.getElementById('epoch').textContent", "1");
    assert_eq!(
        page.eval(TABLE_TEXT),
        "15 4 79.51 67.58 11.93 4\n20 4 78.61 62.89 15.72 4\n25 9 120.33 90.25 30.08 3\n\
         30 8 130.64 91.45 39.19 1\n35 6 150.00 97.50 52.50 1\n50 7 200.51 100.26 100.26 2"
    );
    assert_eq!(page.eval("window.notReloaded"), "still here");
    assert_eq!(
        page.eval("document.getElementById('position').textContent"),
        "0/16B3F01"
    );
    // The epoch completed long ago (2023): the freshness says so, in hours.
    let fresh = page.eval("document.getElementById('fresh').textContent");
    assert!(fresh.as_str().unwrap().ends_with(" min ago"), "{fresh}");
    // A percentage that goes away leaves the table and the chart.
    let mut two = epoch_one_table();
    two.remove(5);
    server.publish(published(2, &epoch_one_table(), two));
    page.wait_for_text("document.getElementById('epoch').textContent", "2");
    assert_eq!(page.eval("document.querySelectorAll('#rows tr').length"), 5);
    assert_eq!(
        page.eval("document.querySelectorAll('#chart rect').length"),
        15
    );
    assert_eq!(page.eval("window.notReloaded"), "still here");
    drop(page);
    server.shutdown();
}

#[test]
fn serve_dashboard_screenshot_at_phone_width() {
    let work = Workdir::new("serve-screenshot");
    let server = Server::start(local()).unwrap();
    let url = format!("http://{}/", server.local_addr());
    server.publish(published(0, &[], base_table()));
    let png = work.path("dashboard.png");
    let mut browser = Browser(
        chromium_command(&work.path("profile"))
            .arg(format!("--screenshot={}", png.display()))
            .arg("--window-size=412,900")
            .arg("--hide-scrollbars")
            .arg(&url)
            .spawn()
            .expect("chromium starts"),
    );
    let start = Instant::now();
    let status = loop {
        if let Some(status) = browser.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "chromium did not write the screenshot in time"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "chromium failed: {status}");
    let bytes = std::fs::read(&png).expect("the screenshot is written");
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(
        bytes.len() > 5_000,
        "a nearly empty PNG: {} bytes",
        bytes.len()
    );
    // 412 pixels wide: the PNG's IHDR width.
    assert_eq!(u32::from_be_bytes(bytes[16..20].try_into().unwrap()), 412);
    server.shutdown();
}
