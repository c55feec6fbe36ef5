//! A TCP relay in front of a real server that can fall silent: while silent it forwards
//! nothing either way and lets new connections hang, as a network that drops packets, or a
//! server that hangs, looks to a client (nothing is refused, nothing is reset).

use std::net::SocketAddr;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream, tcp::OwnedReadHalf, tcp::OwnedWriteHalf},
    sync::watch,
    task::JoinHandle,
};

/// A relay to one server; dropping it closes every connection through it.
pub struct Relay {
    pub addr: SocketAddr,
    silent: watch::Sender<bool>,
    accepting: JoinHandle<()>,
}

impl Relay {
    /// Relays from a free loopback port to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (silent, heard) = watch::channel(false);
        let accepting = tokio::spawn(async move {
            let mut pairs = tokio::task::JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                pairs.spawn(relay(client, upstream, heard.clone()));
            }
        });
        Self {
            addr,
            silent,
            accepting,
        }
    }

    /// From now on nothing passes, until [`Relay::heal`].
    pub fn silence(&self) {
        self.silent.send_replace(true);
    }

    /// Traffic flows again, held bytes first.
    pub fn heal(&self) {
        self.silent.send_replace(false);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        // The accept loop owns the connections' tasks: aborting it drops them all.
        self.accepting.abort();
    }
}

async fn relay(client: TcpStream, upstream: SocketAddr, silent: watch::Receiver<bool>) {
    // A connection opened while silent is accepted by the kernel and then hears nothing.
    if heard_through(&mut silent.clone()).await.is_err() {
        return;
    }
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::join!(
        pump(client_read, server_write, silent.clone()),
        pump(server_read, client_write, silent),
    );
}

/// Copies `from` to `to`, holding what it read while the relay is silent.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut silent: watch::Receiver<bool>) {
    let mut buffer = vec![0; 16 * 1024];
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if heard_through(&mut silent).await.is_err() || to.write_all(&buffer[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// Waits until the relay is not silent; an error when the relay is gone.
async fn heard_through(silent: &mut watch::Receiver<bool>) -> Result<(), watch::error::RecvError> {
    silent.wait_for(|silent| !silent).await.map(|_| ())
}
