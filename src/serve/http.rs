//! The routes, and the loop that accepts connections and can close a slow client's.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use futures_util::StreamExt as _;
use tokio::sync::{watch, Notify};

use super::json;
use super::state::{Item, Shared, Subscription};
use crate::decimal;
use crate::model::MAX_PERCENTAGE_MICROS;

/// The connection a request came on: a handler can close it.
#[derive(Clone)]
struct Connection {
    kill: Arc<Notify>,
}

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(dashboard))
        .route("/v1/discount_analysis", get(table))
        .route("/v1/changes", get(changes))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(shared)
}

/// Serves each connection until `stop` turns true. Each connection runs until it ends,
/// the server stops, or a handler closes it (a stream client that fell behind).
pub async fn accept_loop(
    listener: tokio::net::TcpListener,
    router: Router,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            _ = stop.changed() => return,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of file descriptors and the like: wait a little, keep serving.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let kill = Arc::new(Notify::new());
            let connection = Connection { kill: kill.clone() };
            let service = hyper::service::service_fn(move |mut request| {
                request.extensions_mut().insert(connection.clone());
                let mut router = router.clone();
                tower_service::Service::call(&mut router, request)
            });
            let serving = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(30))
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            // Leaving the select drops the connection, which closes its socket.
            tokio::select! {
                _ = serving => {}
                _ = kill.notified() => {}
                _ = stop.changed() => {}
            }
        });
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        json::error(message),
    )
        .into_response()
}

fn json_ok(body: String) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

async fn not_found(uri: axum::http::Uri) -> Response {
    error(
        StatusCode::NOT_FOUND,
        &format!("no such path {}", uri.path()),
    )
}

async fn method_not_allowed(method: axum::http::Method) -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        &format!("method {method} not allowed here; use GET"),
    )
}

async fn healthz() -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "ok\n",
    )
        .into_response()
}

async fn dashboard() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            // The page loads nothing but itself and its own event stream.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                 connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'",
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        super::DASHBOARD_HTML,
    )
        .into_response()
}

/// The one parameter of the table: `percentage`, as text and in micros.
fn parse_query(query: Option<&str>) -> Result<Option<(String, i64)>, String> {
    let mut wanted = None;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let (name, value) = (percent_decode(name)?, percent_decode(value)?);
        if name != "percentage" {
            return Err(format!(
                "unknown parameter {name:?}; the only parameter is percentage"
            ));
        }
        if wanted.is_some() {
            return Err("percentage given more than once".into());
        }
        let micros =
            decimal::parse_micros(&value).map_err(|e| format!("bad percentage {value:?}: {e}"))?;
        if !(0..=MAX_PERCENTAGE_MICROS).contains(&micros) {
            return Err(format!("bad percentage {value:?}: not between 0 and 100"));
        }
        wanted = Some((value, micros));
    }
    Ok(wanted)
}

fn percent_decode(text: &str) -> Result<String, String> {
    let bad = || format!("bad percent-encoding in {text:?}");
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or_else(bad)?;
                let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

async fn table(State(shared): State<Arc<Shared>>, RawQuery(query): RawQuery) -> Response {
    let wanted = match parse_query(query.as_deref()) {
        Ok(wanted) => wanted,
        Err(message) => return error(StatusCode::BAD_REQUEST, &message),
    };
    let Some(current) = shared.lock().current.clone() else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "no epoch completed yet");
    };
    match wanted {
        None => json_ok(current.json().to_owned()),
        Some((text, micros)) => match current.rows.iter().find(|r| r.percentage_micros == micros) {
            Some(row) => json_ok(current.document(std::slice::from_ref(row))),
            None => error(
                StatusCode::NOT_FOUND,
                &format!("no row for percentage {text}"),
            ),
        },
    }
}

fn event(item: &Item) -> Result<Event, Infallible> {
    Ok(match item {
        Item::Snapshot(s) => Event::default()
            .id(s.epoch.to_string())
            .event("snapshot")
            .data(s.json()),
        Item::Changes(c) => Event::default()
            .id(c.epoch.to_string())
            .event("changes")
            .data(c.json()),
    })
}

async fn changes(
    State(shared): State<Arc<Shared>>,
    connection: Option<Extension<Connection>>,
    headers: HeaderMap,
) -> Response {
    let last_event_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let kill = connection.map_or_else(|| Arc::new(Notify::new()), |c| c.0.kill.clone());
    let Some(Subscription {
        first,
        queue,
        guard,
    }) = shared.subscribe(last_event_id, kill)
    else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many clients of /v1/changes; try again later",
        );
    };
    let first = futures_util::stream::iter(first).map(|item| event(&item));
    let live = futures_util::stream::unfold((queue, guard), |(mut queue, guard)| async move {
        let item = queue.recv().await?;
        Some((event(&item), (queue, guard)))
    });
    let stream = Sse::new(first.chain(live)).keep_alive(KeepAlive::default());
    // `X-Accel-Buffering: no` tells nginx not to hold the stream back.
    ([("x-accel-buffering", "no")], stream).into_response()
}

fn seconds_of_millis(ms: u128) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let (current, epochs, clients, connected, dropped, job) = {
        let state = shared.lock();
        (
            state.current.clone(),
            state.epochs_completed,
            state.client_count(),
            state.clients_connected,
            state.clients_dropped,
            state.metrics.clone(),
        )
    };
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: &str| {
        let _ = write!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        );
    };
    metric(
        "discounting_epochs_completed_total",
        "counter",
        "Epochs completed and published by the job.",
        &epochs.to_string(),
    );
    if let Some(current) = &current {
        metric(
            "discounting_last_epoch",
            "gauge",
            "The last completed epoch.",
            &current.epoch.to_string(),
        );
        let at = current
            .completed_at
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        metric(
            "discounting_last_epoch_completed_timestamp_seconds",
            "gauge",
            "When the last epoch completed, in seconds since 1970.",
            &seconds_of_millis(at.as_millis()),
        );
    }
    metric(
        "discounting_result_rows",
        "gauge",
        "Rows of the result table (one per percentage).",
        &current.as_ref().map_or(0, |c| c.rows.len()).to_string(),
    );
    metric(
        "discounting_rows_applied_total",
        "counter",
        "Input rows applied by the job.",
        &job.rows_applied.to_string(),
    );
    if let Some(bytes) = job.lag_bytes {
        metric(
            "discounting_source_lag_bytes",
            "gauge",
            "How far the job is behind its source, in bytes.",
            &bytes.to_string(),
        );
    }
    if let Some(ms) = job.lag_ms {
        metric(
            "discounting_source_lag_seconds",
            "gauge",
            "How far the job is behind its source, in seconds.",
            &seconds_of_millis(u128::from(ms)),
        );
    }
    metric(
        "discounting_sse_clients",
        "gauge",
        "Clients connected to /v1/changes.",
        &clients.to_string(),
    );
    metric(
        "discounting_sse_clients_connected_total",
        "counter",
        "Clients that ever connected to /v1/changes.",
        &connected.to_string(),
    );
    metric(
        "discounting_sse_clients_dropped_total",
        "counter",
        "Clients of /v1/changes disconnected for falling behind.",
        &dropped.to_string(),
    );
    if let Some(bytes) = crate::memory::resident_bytes() {
        metric(
            "discounting_resident_memory_bytes",
            "gauge",
            "Resident memory of the job's process.",
            &bytes.to_string(),
        );
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_one_parameter() {
        assert_eq!(parse_query(None), Ok(None));
        assert_eq!(parse_query(Some("")), Ok(None));
        assert_eq!(
            parse_query(Some("percentage=15")),
            Ok(Some(("15".into(), 15_000_000)))
        );
        assert_eq!(
            parse_query(Some("percentage=%31%32.5")),
            Ok(Some(("12.5".into(), 12_500_000)))
        );
        assert!(parse_query(Some("percentage=abc")).is_err());
        assert!(parse_query(Some("percentage=101")).is_err());
        assert!(parse_query(Some("percentage=-1")).is_err());
        assert!(parse_query(Some("percentage=1&percentage=2")).is_err());
        assert!(parse_query(Some("pct=15")).is_err());
        assert!(parse_query(Some("percentage=%zz")).is_err());
    }
}
