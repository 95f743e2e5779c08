//! The ceiling of the benchmarks (scripts/bench.sh): raw quinn 0.11 datagrams on
//! loopback, with the library's TLS (rustls + ring, the same self-signed ECDSA P-256
//! certificate, via `wtdatagram::transport::tls`) and the library's default transport
//! settings (4 MiB socket buffers, 1 MiB / 4 MiB datagram buffers, GSO on), client and
//! server in this one process on a 2-worker tokio runtime (the C ABI's default).
//!
//! `--case oneway`: backpressured sends (`send_datagram_wait`) for `--secs`, each payload
//! copied into a fresh `Bytes` (what the C ABI does with the caller's buffer); the
//! receiver counts. `--case rtt`: `--count` sequential pings echoed by the server.
//! Output: one JSON line per case on stdout (see bench/README.md for the fields).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use quinn::{IdleTimeout, VarInt};
use wtdatagram::transport::tls;
use wtdatagram::{TransportOptions, Verify};

mod common;
use common::{cpu_seconds, json_oneway, json_rtt, Args};

fn socket(opts: &TransportOptions) -> std::net::UdpSocket {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).expect("socket");
    // The library's endpoint.rs: SO_*BUFFORCE as root, else the plain options.
    for (force, size) in [
        (libc::SO_SNDBUFFORCE, opts.socket_send_buffer),
        (libc::SO_RCVBUFFORCE, opts.socket_recv_buffer),
    ] {
        let v = size as libc::c_int;
        // SAFETY: setsockopt with a pointer to a live c_int of the given size.
        unsafe {
            use std::os::fd::AsRawFd;
            libc::setsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                force,
                &v as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
    if s.send_buffer_size().unwrap_or(0) < opts.socket_send_buffer {
        let _ = s.set_send_buffer_size(opts.socket_send_buffer);
    }
    if s.recv_buffer_size().unwrap_or(0) < opts.socket_recv_buffer {
        let _ = s.set_recv_buffer_size(opts.socket_recv_buffer);
    }
    let addr: SocketAddr = "127.0.0.1:0".parse().expect("literal");
    s.bind(&addr.into()).expect("bind");
    s.set_nonblocking(true).expect("nonblocking");
    s.into()
}

fn transport(opts: &TransportOptions) -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.max_idle_timeout(Some(
        IdleTimeout::try_from(opts.idle_timeout).expect("idle"),
    ));
    t.keep_alive_interval(opts.keep_alive);
    t.datagram_send_buffer_size(opts.datagram_send_buffer);
    t.datagram_receive_buffer_size(Some(opts.datagram_recv_buffer));
    t.enable_segmentation_offload(opts.segmentation_offload);
    t.max_concurrent_bidi_streams(VarInt::from_u32(264));
    t.max_concurrent_uni_streams(VarInt::from_u32(16));
    Arc::new(t)
}

async fn pair() -> (
    quinn::Endpoint,
    quinn::Endpoint,
    quinn::Connection,
    quinn::Connection,
) {
    let opts = TransportOptions::default();
    let id = tls::self_signed(&["localhost".into()]).expect("certificate");
    let mut sc = quinn::ServerConfig::with_crypto(Arc::new(tls::server_crypto(&id).expect("tls")));
    sc.transport_config(transport(&opts));
    let rt = Arc::new(quinn::TokioRuntime);
    let server =
        quinn::Endpoint::new(Default::default(), Some(sc), socket(&opts), rt.clone()).expect("ep");
    let client = quinn::Endpoint::new(Default::default(), None, socket(&opts), rt).expect("ep");
    let mut cc = quinn::ClientConfig::new(Arc::new(
        tls::client_crypto(&Verify::Hashes(vec![id.sha256])).expect("tls"),
    ));
    cc.transport_config(transport(&opts));
    let addr = server.local_addr().expect("addr");
    let accept = {
        let server = server.clone();
        tokio::spawn(async move { server.accept().await.expect("incoming").await })
    };
    let c = client
        .connect_with(cc, addr, "localhost")
        .expect("connect")
        .await
        .expect("handshake");
    let s = accept.await.expect("join").expect("accept");
    (server, client, s, c)
}

async fn wait_max_size(c: &quinn::Connection, size: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while c.max_datagram_size().unwrap_or(0) < size && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        c.max_datagram_size().unwrap_or(0) >= size,
        "path MTU never allowed {size}-byte datagrams"
    );
}

/// Send for `secs` (at most `max` datagrams), count arrivals; returns (sent, received,
/// wall seconds from the first send to the last arrival, cpu seconds).
async fn oneway(
    tx: &quinn::Connection,
    rx: &quinn::Connection,
    size: usize,
    secs: f64,
    max: u64,
) -> (u64, u64, f64, f64) {
    let received = Arc::new(AtomicU64::new(0));
    let last = Arc::new(parking_lot::Mutex::new(Instant::now()));
    let reader = {
        let (rx, received, last) = (rx.clone(), received.clone(), last.clone());
        tokio::spawn(async move {
            while let Ok(d) = rx.read_datagram().await {
                std::hint::black_box(&d);
                received.fetch_add(1, Relaxed);
                *last.lock() = Instant::now();
            }
        })
    };
    let payload = vec![0x5au8; size];
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    let stop = t0 + Duration::from_secs_f64(secs);
    let mut sent = 0u64;
    while sent < max {
        tx.send_datagram_wait(Bytes::copy_from_slice(&payload))
            .await
            .expect("send");
        sent += 1;
        if sent.is_multiple_of(256) && Instant::now() >= stop {
            break;
        }
    }
    // Drain: until everything arrived, or nothing arrived for 300 ms (bounded: 5 s).
    let hard = Instant::now() + Duration::from_secs(5);
    loop {
        let before = received.load(Relaxed);
        if before >= sent || Instant::now() >= hard {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        if received.load(Relaxed) == before {
            break;
        }
    }
    let got = received.load(Relaxed);
    let wall = last.lock().duration_since(t0).as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    reader.abort();
    (sent, got, wall, cpu)
}

async fn rtt(c: &quinn::Connection, s: &quinn::Connection, size: usize, count: u64) -> Vec<f64> {
    let echo = {
        let s = s.clone();
        tokio::spawn(async move {
            while let Ok(d) = s.read_datagram().await {
                if s.send_datagram_wait(d).await.is_err() {
                    break;
                }
            }
        })
    };
    let mut payload = vec![0u8; size.max(8)];
    let mut samples = Vec::with_capacity(count as usize);
    let deadline = Instant::now() + Duration::from_secs(60);
    for i in 0..count {
        if Instant::now() >= deadline {
            break;
        }
        payload[..8].copy_from_slice(&i.to_be_bytes());
        let t = Instant::now();
        c.send_datagram_wait(Bytes::copy_from_slice(&payload[..size.max(8)]))
            .await
            .expect("send");
        loop {
            match tokio::time::timeout(Duration::from_secs(1), c.read_datagram()).await {
                Ok(Ok(d)) if d.len() >= 8 && d[..8] == i.to_be_bytes() => {
                    samples.push(t.elapsed().as_secs_f64());
                    break;
                }
                Ok(Ok(_)) => continue, // a late echo of an earlier ping
                _ => break,            // lost: no sample
            }
        }
    }
    echo.abort();
    samples
}

fn main() {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (server_ep, client_ep, s, c) = pair().await;
        wait_max_size(&c, args.size).await;
        match args.case.as_str() {
            "oneway" => {
                // Warm-up: congestion window and path MTU settle.
                oneway(&c, &s, args.size, 0.3, 20_000).await;
                let (sent, got, wall, cpu) = oneway(&c, &s, args.size, args.secs, args.max).await;
                println!("{}", json_oneway("quinn", args.size, sent, got, wall, cpu));
            }
            "rtt" => {
                rtt(&c, &s, args.size, 200).await;
                let samples = rtt(&c, &s, args.size, args.count).await;
                println!("{}", json_rtt("quinn", args.size, args.count, samples));
            }
            other => panic!("unknown case {other}"),
        }
        c.close(VarInt::from_u32(0), b"");
        s.close(VarInt::from_u32(0), b"");
        let _ = tokio::time::timeout(Duration::from_millis(200), client_ep.wait_idle()).await;
        drop(server_ep);
    });
}
