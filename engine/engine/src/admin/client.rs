//! The admin API's client (hyper, HTTP/1.1, one request per connection), with the typed
//! bodies of [`super::api`]: what the supervisor, `fixctl`, the rollout, the runbooks
//! and the drills call.

use super::api::Readiness;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;

fn io_error(e: impl std::error::Error + Send + Sync + 'static) -> std::io::Error {
    std::io::Error::other(e)
}

/// Sends one request (with `Authorization: Bearer TOKEN` when given) and returns the
/// status code and body; errors when the engine does not answer within `limit`
/// (stopped, killed, or paused).
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    limit: Duration,
) -> std::io::Result<(u16, String)> {
    let exchange = async {
        let stream = TcpStream::connect(addr).await?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(io_error)?;
        let driver = tokio::spawn(connection);
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, addr.to_string())
            // One request per connection, and an explicit empty body (a proxy in front
            // of the admin port may refuse a POST without a length).
            .header(hyper::header::CONNECTION, "close")
            .header(hyper::header::CONTENT_LENGTH, "0");
        if let Some(t) = token {
            req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = req.body(Empty::<Bytes>::new()).map_err(io_error)?;
        let response = sender.send_request(req).await.map_err(io_error)?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(io_error)?
            .to_bytes();
        driver.abort();
        Ok::<_, std::io::Error>((status, String::from_utf8_lossy(&body).into_owned()))
    };
    tokio::time::timeout(limit, exchange)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer"))?
}

/// `GET /readyz`, or `None` when the engine does not answer within `limit` (or answers
/// something that is not a readiness document).
pub async fn readiness(addr: SocketAddr, limit: Duration) -> Option<Readiness> {
    let (_, body) = request(addr, "GET", "/readyz", None, limit).await.ok()?;
    serde_json::from_str(&body).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_silent_server_is_a_timeout_and_a_closed_port_an_error() {
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = silent.local_addr().expect("addr");
        let e = request(addr, "GET", "/readyz", None, Duration::from_millis(100))
            .await
            .expect_err("no answer");
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
        drop(silent);
        assert!(readiness(addr, Duration::from_millis(500)).await.is_none());
    }
}
