//! The HTTP server loop: every accepted connection is served as HTTP/1.1 by hyper, with the
//! router shared by reference and the peer's address in each request's extensions.
//!
//! `axum::serve` serves each connection with hyper-util's protocol-sniffing builder (HTTP/1.1 or
//! HTTP/2 prior knowledge), whose per-connection state holds both protocols' machinery and a
//! copy of the builder; a live subscriber keeps its connection's state for as long as it
//! listens, so serving HTTP/1.1 alone makes each one smaller (docs/BENCHMARKS.md, "What an idle
//! live subscriber costs"). HTTP/2 reaches questlog through a proxy that terminates TLS.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

/// Serves `router` on `listener` until `shutdown` fires, then lets every open connection finish
/// its answers (an event stream ends when the shutdown fires) and returns.
pub async fn serve(listener: TcpListener, router: Router, shutdown: CancellationToken) {
    // No timer: an idle keep-alive connection stays open until its client closes it, as under
    // `axum::serve` (with one, hyper would close it after 30 s without a request head, racing a
    // client that reuses it then).
    let http = hyper::server::conn::http1::Builder::new();
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, say: accepting again at once would spin.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            },
        };
        // Small writes (an event, an answer) go out at once.
        let _ = stream.set_nodelay(true);
        let service = router
            .clone()
            .map_request(move |request: hyper::Request<Incoming>| with_peer(request, peer));
        let connection =
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::trace!(%error, "a connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// The request as the router takes it, with the peer's address for the extractors and limits
/// that ask for `ConnectInfo`.
fn with_peer(request: hyper::Request<Incoming>, peer: SocketAddr) -> axum::extract::Request {
    let mut request = request.map(axum::body::Body::new);
    request.extensions_mut().insert(ConnectInfo(peer));
    request
}
