//! [`MetricsServer`]: `GET /metrics` over a minimal HTTP/1.1 responder on tokio.
//!
//! One request per connection: `GET /metrics` gets the [`Exporter`]'s text, any other
//! well-formed request 404, a malformed one 400; then the connection closes. A client
//! that sends nothing for [`READ_TIMEOUT`] is dropped.

mod exporter;
pub mod http;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub use exporter::{CONTENT_TYPE, Exporter};
use http::{MAX_REQUEST_BYTES, Parsed, parse_request, response};

/// How long a connection may take to send its request head.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// The running endpoint; dropping it stops accepting.
#[derive(Debug)]
pub struct MetricsServer {
    local_addr: SocketAddr,
    accept: tokio::task::JoinHandle<()>,
}

impl MetricsServer {
    /// Binds `addr` and serves `exporter` on `runtime`.
    pub fn start(
        addr: SocketAddr,
        exporter: Exporter,
        runtime: &tokio::runtime::Handle,
    ) -> std::io::Result<MetricsServer> {
        let std_listener = std::net::TcpListener::bind(addr)
            .map_err(|e| std::io::Error::new(e.kind(), format!("bind metrics {addr}: {e}")))?;
        std_listener.set_nonblocking(true)?;
        let local_addr = std_listener.local_addr()?;
        let listener = {
            let _guard = runtime.enter();
            TcpListener::from_std(std_listener)?
        };
        let exporter = Arc::new(exporter);
        let accept = runtime.spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        tokio::spawn(serve(stream, Arc::clone(&exporter)));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "metrics: accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        });
        Ok(MetricsServer { local_addr, accept })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn serve(mut stream: TcpStream, exporter: Arc<Exporter>) {
    let reply = match tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream)).await {
        Ok(Some(Parsed::Complete(req))) if req.method == "GET" && req.path == "/metrics" => {
            match exporter.render() {
                Ok(text) => response("200 OK", CONTENT_TYPE, text.as_bytes()),
                Err(_) => response(
                    "500 Internal Server Error",
                    "text/plain",
                    b"cannot encode metrics\n",
                ),
            }
        }
        Ok(Some(Parsed::Complete(_))) => response("404 Not Found", "text/plain", b"not found\n"),
        Ok(Some(Parsed::Malformed(why))) => response(
            "400 Bad Request",
            "text/plain",
            format!("{why}\n").as_bytes(),
        ),
        // Closed, failed or timed out before a whole head: nothing to answer.
        Ok(Some(Parsed::Incomplete) | None) | Err(_) => return,
    };
    if let Err(e) = stream.write_all(&reply).await {
        tracing::debug!(error = %e, "metrics: write failed");
    }
    let _ = stream.shutdown().await;
}

/// Reads until the head parses (complete or malformed), or `None` at EOF or an error.
async fn read_head(stream: &mut TcpStream) -> Option<Parsed> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return (!buf.is_empty()).then_some(Parsed::Malformed("incomplete request head"));
        }
        buf.extend_from_slice(&chunk[..n]);
        match parse_request(&buf) {
            Parsed::Incomplete if buf.len() <= MAX_REQUEST_BYTES + 4 => {}
            Parsed::Incomplete => return Some(Parsed::Malformed("request head too large")),
            done => return Some(done),
        }
    }
}
