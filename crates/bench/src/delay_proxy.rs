//! `keel bench delay-proxy`: a TCP proxy that holds every chunk it forwards for a fixed time
//! in each direction — a network round trip added between two of the fleet lab's hosts,
//! where the kernel has no `netem` to delay packets.
//!
//! Each direction of each connection is a reader thread stamping what it reads with the time
//! it is due, and a writer thread sleeping until then. OS threads, not tokio tasks: tokio's
//! timer ticks in whole milliseconds, and the delays here are fractions of one. Order and
//! bytes are kept; only time is added.

use std::{
    io::{self, Read, Write},
    net::{Shutdown, SocketAddr, TcpListener, TcpStream},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

#[derive(Debug, Clone, clap::Args)]
pub struct DelayProxyArgs {
    /// Where clients connect.
    #[arg(long)]
    pub listen: SocketAddr,
    /// Where every connection is forwarded (`host:port`; a name is resolved once per
    /// connection).
    #[arg(long)]
    pub upstream: String,
    /// Added to each direction: half the round trip to add (250us for a 0.5 ms round trip).
    #[arg(long, value_parser = platform::config::parse_duration)]
    pub delay: Duration,
}

/// Accepts connections until the process ends, each forwarded with the delay.
pub fn serve(args: &DelayProxyArgs) -> io::Result<()> {
    let listener = TcpListener::bind(args.listen)?;
    serve_on(listener, args.upstream.clone(), args.delay)
}

/// [`serve`] on a listener already bound (tests bind port 0).
pub fn serve_on(listener: TcpListener, upstream: String, delay: Duration) -> io::Result<()> {
    for client in listener.incoming() {
        let client = client?;
        let upstream = upstream.clone();
        thread::spawn(move || {
            if let Err(e) = connect(client, &upstream, delay) {
                tracing::warn!(error = %e, upstream, "delay proxy: connection failed");
            }
        });
    }
    Ok(())
}

fn connect(client: TcpStream, upstream: &str, delay: Duration) -> io::Result<()> {
    let server = TcpStream::connect(upstream)?;
    for stream in [&client, &server] {
        stream.set_nodelay(true)?;
    }
    let (client_read, server_read) = (client.try_clone()?, server.try_clone()?);
    thread::spawn(move || forward(client_read, server, delay));
    forward(server_read, client, delay);
    Ok(())
}

/// Copies `from` to `to`, each chunk written `delay` after it was read; when `from` ends,
/// `to`'s writing half is shut once everything read before has gone out.
fn forward(mut from: TcpStream, mut to: TcpStream, delay: Duration) {
    let (chunks, due) = mpsc::channel::<(Instant, Vec<u8>)>();
    let writer = thread::spawn(move || {
        for (at, chunk) in due {
            if let Some(wait) = at.checked_duration_since(Instant::now()) {
                thread::sleep(wait);
            }
            if to.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
    let mut buffer = vec![0; 64 * 1024];
    while let Ok(n) = from.read(&mut buffer) {
        if n == 0
            || chunks
                .send((Instant::now() + delay, buffer[..n].to_vec()))
                .is_err()
        {
            break;
        }
    }
    drop(chunks);
    let _ = writer.join();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server behind the proxy: what goes through comes back whole, and a round trip
    /// takes at least twice the delay.
    #[test]
    fn bytes_come_back_whole_a_round_trip_later() {
        let echo = TcpListener::bind("127.0.0.1:0").unwrap();
        let echo_addr = echo.local_addr().unwrap();
        thread::spawn(move || {
            for stream in echo.incoming() {
                let mut stream = stream.unwrap();
                thread::spawn(move || {
                    let mut copy = stream.try_clone().unwrap();
                    io::copy(&mut stream, &mut copy).unwrap();
                });
            }
        });
        let proxy = TcpListener::bind("127.0.0.1:0").unwrap();
        let proxy_addr = proxy.local_addr().unwrap();
        let delay = Duration::from_millis(5);
        thread::spawn(move || serve_on(proxy, echo_addr.to_string(), delay));

        let mut client = TcpStream::connect(proxy_addr).unwrap();
        let message: Vec<u8> = (0..200_000u32).map(|n| (n % 251) as u8).collect();
        let started = Instant::now();
        let mut writer = client.try_clone().unwrap();
        let sent = message.clone();
        thread::spawn(move || writer.write_all(&sent).unwrap());
        let mut back = vec![0; message.len()];
        client.read_exact(&mut back).unwrap();
        assert!(started.elapsed() >= 2 * delay, "{:?}", started.elapsed());
        assert_eq!(back, message);
    }
}
