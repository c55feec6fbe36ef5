//! Clients that hold connections without finishing a request: slowloris, and idle
//! keep-alive connections. The header timeout closes them; everyone else is served as usual.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::helpers::*;

async fn app_with_header_timeout(timeout: Duration) -> TestApp {
    let mut config = test_config(create_database().await);
    config.http.header_timeout = timeout;
    spawn_app_with(config).await
}

/// Whether the server closed `stream` within `within` (a read returns end of file).
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 256];
    matches!(
        tokio::time::timeout(within, stream.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[tokio::test]
async fn half_sent_requests_are_closed_after_the_header_timeout_while_others_are_served() {
    let app = app_with_header_timeout(Duration::from_secs(1)).await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut slow = Vec::new();
    for _ in 0..300 {
        let mut stream = TcpStream::connect(&address).await.unwrap();
        stream
            .write_all(b"GET /products/1 HTTP/1.1\r\nHost: keel\r\nX-Slow: ")
            .await
            .unwrap();
        slow.push(stream);
    }
    let opened = Instant::now();
    // Served as usual meanwhile.
    for _ in 0..20 {
        let asked = Instant::now();
        assert_eq!(app.get("/livez", None).await.status(), StatusCode::OK);
        assert!(
            asked.elapsed() < Duration::from_millis(500),
            "{:?}",
            asked.elapsed()
        );
    }
    for stream in &mut slow {
        assert!(
            closed_within(stream, Duration::from_secs(5)).await,
            "a half-sent request still open after {:?}",
            opened.elapsed()
        );
    }
    assert!(
        opened.elapsed() >= Duration::from_millis(900),
        "closed before the timeout"
    );
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed_after_the_header_timeout() {
    let app = app_with_header_timeout(Duration::from_secs(1)).await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&address).await.unwrap();
    stream
        .write_all(b"GET /livez HTTP/1.1\r\nHost: keel\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    let idle = Instant::now();
    assert!(closed_within(&mut stream, Duration::from_secs(5)).await);
    assert!(
        idle.elapsed() >= Duration::from_millis(900),
        "{:?}",
        idle.elapsed()
    );
}

#[tokio::test]
async fn connections_past_the_cap_wait_for_one_to_close() {
    let mut config = test_config(create_database().await);
    config.http.header_timeout = Duration::from_secs(1);
    config.http.max_connections = 4;
    let app = spawn_app_with(config).await;
    let address = app.address.trim_start_matches("http://").to_owned();
    // Four connections that say nothing hold every slot until the timeout closes them.
    let mut holders = Vec::new();
    for _ in 0..4 {
        holders.push(TcpStream::connect(&address).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let asked = Instant::now();
    let response = reqwest::Client::new()
        .get(format!("{}/livez", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let waited = asked.elapsed();
    assert!(
        waited >= Duration::from_millis(700),
        "served past the cap: {waited:?}"
    );
    assert!(waited < Duration::from_secs(5), "{waited:?}");
}
