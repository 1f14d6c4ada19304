//! The event endpoint: `POST /` with Flux's event JSON, from Eddy's controllers and Flux's. The
//! body is bounded in size and in read time; a malformed body gets 400 with the reason; an
//! accepted event is queued for the dispatcher and answered 202 at once; a full queue is 503 so
//! that the sender retries later.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use crate::dispatch::Received;
use crate::event::{Event, MAX_EVENT_BODY};
use crate::metrics::NotifyMetrics;

/// How long a sender may take to deliver its body.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone)]
struct Endpoint {
    queue: mpsc::Sender<Received>,
    metrics: NotifyMetrics,
}

/// Connections served at once per listener; more wait in the kernel's accept queue.
pub const MAX_CONNECTIONS: usize = 1024;
/// How long a client may take to send a request's headers, the first or the next on a kept
/// connection (a slow or idle client must not hold a connection forever).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest a connection is kept; then it is closed once the request in flight is answered,
/// so a client that stops reading its answers holds a slot for this long at most.
pub const MAX_CONNECTION_AGE: Duration = Duration::from_secs(120);
/// How long a connection being closed (at its age limit, or at `stop`) may take to finish.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Most bytes hyper buffers per connection (headers included: larger ones are refused).
const MAX_BUFFER: usize = 64 * 1024;

/// Binds `addr` for `what` (named in the error).
pub async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|err| anyhow::anyhow!("cannot listen for the {what} on {addr}: {err}"))
}

/// Serves `app` on `listener` until `stop` fires: the one way notify-controller's listeners
/// run. HTTP/1.1 with keep-alive, headers within [`HEADER_READ_TIMEOUT`], at most
/// [`MAX_CONNECTIONS`] at once, each for [`MAX_CONNECTION_AGE`] at most; bodies are bounded by
/// the handlers ([`read_body`]).
pub async fn listen(listener: TcpListener, what: &str, app: Router, stop: CancellationToken) -> anyhow::Result<()> {
    tracing::info!(address = %listener.local_addr()?, "{what} listening");
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let connections = tokio_util::task::TaskTracker::new();
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot?,
            () = stop.cancelled() => break,
        };
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(err) => {
                    // Out of file descriptors, say: wait rather than spin.
                    tracing::warn!(error = %err, "{what}: cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = stop.cancelled() => break,
        };
        // Small answers go out at once, not after the client's delayed ACK (Nagle).
        let _ = tcp.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let stop = stop.clone();
        connections.spawn(async move {
            let _slot = slot;
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .max_buf_size(MAX_BUFFER)
                .serve_connection(hyper_util::rt::TokioIo::new(tcp), service);
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                ended = connection.as_mut() => {
                    if let Err(err) = ended {
                        tracing::debug!(error = %err, "connection ended with an error");
                    }
                    return;
                }
                () = tokio::time::sleep(MAX_CONNECTION_AGE) => {}
                () = stop.cancelled() => {}
            }
            // Answer the request in flight, then close; a client that does not take its answer
            // within the bound is cut off when the connection is dropped.
            connection.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(DRAIN_TIMEOUT, connection).await;
        });
    }
    drop(listener);
    connections.close();
    // Every connection finishes or is dropped within DRAIN_TIMEOUT of `stop`.
    connections.wait().await;
    Ok(())
}

/// The endpoint's routes.
pub fn router(queue: mpsc::Sender<Received>, metrics: NotifyMetrics) -> Router {
    Router::new()
        .route("/", axum::routing::post(receive))
        .with_state(Endpoint { queue, metrics })
}

async fn receive(State(endpoint): State<Endpoint>, request: Request) -> Response {
    let body = match read_body(request.into_body(), MAX_EVENT_BODY).await {
        Ok(body) => body,
        Err(refusal) => {
            endpoint.metrics.received("invalid");
            return refusal;
        }
    };
    let event = match Event::from_json(&body) {
        Ok(event) => event,
        Err(invalid) => {
            endpoint.metrics.received("invalid");
            return (StatusCode::BAD_REQUEST, format!("{invalid}\n")).into_response();
        }
    };
    let received = Received {
        event,
        at: Instant::now(),
    };
    match endpoint.queue.try_send(received) {
        Ok(()) => {
            endpoint.metrics.received("accepted");
            StatusCode::ACCEPTED.into_response()
        }
        Err(_) => {
            endpoint.metrics.received("queue_full");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [("Retry-After", "1")],
                "the event queue is full; retry later\n",
            )
                .into_response()
        }
    }
}

/// Reads a body of at most `limit` bytes within [`BODY_READ_TIMEOUT`]: 413 when larger, 408
/// when slower.
pub async fn read_body(body: Body, limit: usize) -> Result<axum::body::Bytes, Response> {
    match tokio::time::timeout(BODY_READ_TIMEOUT, axum::body::to_bytes(body, limit)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(err)) => {
            // axum wraps http-body-util's LengthLimitError, whose text is all it exposes.
            let too_large = format!("{err} {:?}", std::error::Error::source(&err)).contains("length limit");
            if too_large {
                Err((
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("the body is larger than {limit} bytes\n"),
                )
                    .into_response())
            } else {
                Err((StatusCode::BAD_REQUEST, "the body could not be read\n").into_response())
            }
        }
        Err(_) => Err((
            StatusCode::REQUEST_TIMEOUT,
            format!("the body did not arrive within {}s\n", BODY_READ_TIMEOUT.as_secs()),
        )
            .into_response()),
    }
}
