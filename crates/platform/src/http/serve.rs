//! Serving connections: hyper's HTTP/1.1 with the bounds that keep slow or idle clients from
//! holding an instance — a time limit on a request's headers (which is also how long a
//! kept-alive connection may sit idle), and a cap on open connections — and a shutdown that
//! first tells clients to stop reusing their connections, then drains them.
//!
//! Written out rather than `axum::serve`, which sets no timer (a client that sends half a
//! request's headers holds its connection for good) and has no cap.

use std::{
    convert::Infallible,
    future::Future,
    net::SocketAddr,
    pin::{Pin, pin},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use axum::{
    Router,
    body::Body,
    extract::ConnectInfo,
    http::{HeaderValue, Request, header},
    response::Response,
};
use hyper::{body::Incoming, server::conn::http1};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{net::TcpListener, sync::Semaphore};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tower::Service;

use crate::config::HttpConfig;

/// Set once the instance is stopping: the responses to requests that arrive from then on
/// ask clients to close their connections (`Connection: close`), so a balancer stops
/// reusing them before they close.
#[derive(Clone, Debug, Default)]
pub struct Draining(Arc<AtomicBool>);

impl Draining {
    pub fn start(&self) {
        self.0.store(true, Ordering::Relaxed);
        metrics::gauge!("keel_draining").set(1.0);
    }

    pub fn is_on(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// How a server treats its connections.
#[derive(Debug, Clone)]
pub struct Serving {
    pub config: HttpConfig,
    /// Whether requests carry the peer's address (`ConnectInfo`), for rate limiting.
    pub peer_addresses: bool,
    pub draining: Draining,
}

/// Serves `router` on `listener` until `shutdown` completes; then stops accepting, lets each
/// connection finish the request it is on, and returns once all have closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    serving: Serving,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(serving.config.max_connections.max(1)));
    let stop = CancellationToken::new();
    let connections = TaskTracker::new();
    let mut shutdown = pin!(shutdown);
    let spawn = |stream: tokio::net::TcpStream, peer, permit| {
        let _ = stream.set_nodelay(true);
        let connection = serve_connection(
            stream,
            peer,
            router.clone(),
            Bounds {
                peer_addresses: serving.peer_addresses,
                draining: serving.draining.clone(),
                header_timeout: serving.config.header_timeout,
            },
            stop.clone(),
        );
        connections.spawn(async move {
            let _permit = permit;
            connection.await;
        });
    };
    loop {
        // At the cap, new connections wait in the listen backlog until one closes.
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors or similar: wait rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        spawn(stream, peer, Some(permit));
    }
    // Connections the kernel completed but nobody accepted yet may carry a request already:
    // closing the listener would reset them, and a balancer cannot retry a POST it sent.
    // They are served (and closed after one response) instead. Accepted by the system call
    // itself, until it would block: the reactor may not have seen them yet.
    if let Ok(listener) = listener.into_std() {
        while let Ok((stream, peer)) = listener.accept() {
            // An accepted socket does not inherit the listener's non-blocking mode.
            let stream = stream
                .set_nonblocking(true)
                .and_then(|()| tokio::net::TcpStream::from_std(stream));
            if let Ok(stream) = stream {
                spawn(stream, peer, None);
            }
        }
    }
    stop.cancel();
    connections.close();
    connections.wait().await;
    Ok(())
}

/// What one connection needs of [`Serving`].
struct Bounds {
    peer_addresses: bool,
    draining: Draining,
    header_timeout: Duration,
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    router: Router,
    bounds: Bounds,
    stop: CancellationToken,
) {
    let Bounds {
        peer_addresses,
        draining,
        header_timeout,
    } = bounds;
    let asked = Arc::new(AtomicBool::new(false));
    let asking = asked.clone();
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        asking.store(true, Ordering::Relaxed);
        let mut request = request.map(Body::new);
        if peer_addresses {
            request.extensions_mut().insert(ConnectInfo(peer));
        }
        let response = router.clone().call(request);
        // Read as the request arrives: no clone of the flag per request.
        let close = draining.is_on();
        async move {
            let mut response: Response = match response.await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            if close {
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Ok::<_, Infallible>(response)
        }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let _open = Open::count();
    let mut connection = pin!(builder.serve_connection(TokioIo::new(stream), service));
    let mut stopping = pin!(stop.cancelled());
    let mut stopped = false;
    // Set when the server stops while the connection has not sent its first request yet.
    let mut first_request_grace: Option<Pin<Box<tokio::time::Sleep>>> = None;
    loop {
        tokio::select! {
            served = connection.as_mut() => {
                if let Err(e) = served {
                    if e.is_timeout() {
                        metrics::counter!("keel_http_connections_timed_out_total").increment(1);
                    } else {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                }
                return;
            }
            () = &mut stopping, if !stopped => {
                stopped = true;
                if asked.load(Ordering::Relaxed) {
                    // Idle between requests (or busy with one): closed once idle. A balancer
                    // has let idle connections go before the shutdown delay ends.
                    connection.as_mut().graceful_shutdown();
                } else {
                    // Just opened: its first request is almost surely on the way, and closing
                    // under it would fail a POST no one may retry. The response to it closes
                    // the connection (`Connection: close`); a silent one goes after the grace.
                    first_request_grace = Some(Box::pin(tokio::time::sleep(FIRST_REQUEST_GRACE)));
                }
            }
            () = async { first_request_grace.as_mut().expect("armed").await }, if first_request_grace.is_some() => {
                first_request_grace = None;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

/// How long a stopping server waits for the first request of a connection it has just
/// accepted.
const FIRST_REQUEST_GRACE: Duration = Duration::from_secs(1);

/// Counts a connection open in `keel_http_connections` for as long as it lives.
struct Open;

impl Open {
    fn count() -> Self {
        metrics::gauge!("keel_http_connections").increment(1.0);
        Self
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        metrics::gauge!("keel_http_connections").decrement(1.0);
    }
}
