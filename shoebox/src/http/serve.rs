//! Serving a router the way production does: `TCP_NODELAY` on every connection, the peer's
//! address for the handlers, and a bounded drain on shutdown. Optional for a host with its own
//! server; the reference app and the tests use it.

use std::time::Duration;

use axum::Router;

/// Send each answer as soon as it is written. With Nagle's algorithm on (the socket default),
/// a small last segment waits for the client's delayed ACK, up to 40 ms on Linux: that was
/// most of signing's p99 and of a streamed private variant's extra time.
pub fn without_nagle(listener: tokio::net::TcpListener) -> axum::serve::TapIo<tokio::net::TcpListener, NoDelay> {
    use axum::serve::ListenerExt as _;
    fn no_delay(tcp: &mut tokio::net::TcpStream) {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
    }
    listener.tap_io(no_delay as NoDelay)
}

/// What [`without_nagle`] does to each accepted connection.
pub type NoDelay = fn(&mut tokio::net::TcpStream);

/// Serve `router` on `listener` until `shutdown` resolves, then let requests in flight finish
/// for at most `drain` (new connections are refused meanwhile). Handlers can read the peer's
/// address (`ConnectInfo<SocketAddr>`).
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    drain: Duration,
) -> std::io::Result<()> {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
    let server = axum::serve(without_nagle(listener), service).with_graceful_shutdown(async move {
        shutdown.await;
        let _ = tx.send(());
    });
    tokio::select! {
        r = server.into_future() => r,
        () = async {
            // Only start the drain clock once shutdown has begun.
            if rx.await.is_ok() {
                tokio::time::sleep(drain).await;
            } else {
                std::future::pending::<()>().await;
            }
        } => {
            tracing::warn!(seconds = drain.as_secs(), "requests still running after the drain period; stopping anyway");
            Ok(())
        }
    }
}
