//! A UDP relay on 127.0.0.1 between one client and a server, each direction of which can
//! be switched off (its packets are then dropped, and counted). The client connects to
//! [`Relay::addr`] instead of the server.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use tokio::net::UdpSocket;

pub struct Relay {
    /// Where the client connects.
    pub addr: SocketAddr,
    /// Forward client -> server packets (true) or drop them.
    pub to_server: Arc<AtomicBool>,
    /// Forward server -> client packets (true) or drop them.
    pub to_client: Arc<AtomicBool>,
    /// Packets forwarded / dropped, both directions.
    pub forwarded: Arc<AtomicU64>,
    pub dropped: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    /// Starts relaying to `server`, both directions on.
    pub async fn start(server: SocketAddr) -> Relay {
        let front = UdpSocket::bind("127.0.0.1:0").await.expect("bind relay");
        let back = UdpSocket::bind("127.0.0.1:0").await.expect("bind relay");
        back.connect(server).await.expect("connect relay");
        let addr = front.local_addr().expect("relay address");
        let to_server = Arc::new(AtomicBool::new(true));
        let to_client = Arc::new(AtomicBool::new(true));
        let forwarded = Arc::new(AtomicU64::new(0));
        let dropped = Arc::new(AtomicU64::new(0));
        let (ts, tc, fw, dr) = (
            to_server.clone(),
            to_client.clone(),
            forwarded.clone(),
            dropped.clone(),
        );
        let task = tokio::spawn(async move {
            let mut peer: Option<SocketAddr> = None;
            let mut a = vec![0u8; 65536];
            let mut b = vec![0u8; 65536];
            loop {
                tokio::select! {
                    r = front.recv_from(&mut a) => {
                        let Ok((n, from)) = r else { return };
                        peer = Some(from);
                        if ts.load(Ordering::Acquire) {
                            let _ = back.send(&a[..n]).await;
                            fw.fetch_add(1, Ordering::Relaxed);
                        } else {
                            dr.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    r = back.recv(&mut b) => {
                        let Ok(n) = r else { return };
                        match (tc.load(Ordering::Acquire), peer) {
                            (true, Some(p)) => {
                                let _ = front.send_to(&b[..n], p).await;
                                fw.fetch_add(1, Ordering::Relaxed);
                            }
                            _ => {
                                dr.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                }
            }
        });
        Relay {
            addr,
            to_server,
            to_client,
            forwarded,
            dropped,
            task,
        }
    }

    /// Drop everything from now on, both ways: to each end the other went silent.
    pub fn go_silent(&self) {
        self.to_server.store(false, Ordering::Release);
        self.to_client.store(false, Ordering::Release);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}
