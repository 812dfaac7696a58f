//! A loopback TCP proxy that a test can kill: an endpoint (an RPC node) dying under a client.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test support: a failing bind ends the test

use std::net::SocketAddr;

use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A TCP proxy on loopback forwarding to `target`, connections included; send on the returned
/// channel (or drop it) to kill it.
pub async fn proxy(target: SocketAddr) -> (SocketAddr, watch::Sender<bool>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding a loopback port");
    let addr = listener.local_addr().unwrap();
    let (kill, killed) = watch::channel(false);
    tokio::spawn(async move {
        let mut stop = killed.clone();
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = stop.changed() => return,
            };
            let Ok((mut inbound, _)) = accepted else {
                return;
            };
            let mut stop = killed.clone();
            tokio::spawn(async move {
                if let Ok(mut outbound) = TcpStream::connect(target).await {
                    tokio::select! {
                        _ = copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = stop.changed() => {}
                    }
                }
            });
        }
    });
    (addr, kill)
}
