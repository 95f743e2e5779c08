//! The stream monitor (`wtdatagram::datagram::monitor`) on real loopback streams.
//!
//! Conditions are built deterministically and checked with `sample_now` (which samples
//! and evaluates at once). Queue-fill tests run on a current-thread runtime: what the
//! test queues without an `.await` in between is still in the queue when it samples,
//! because the stream's sender task cannot run meanwhile. The send-time trend rule is
//! unit-tested as a pure function in the library (`datagram::monitor::tests`).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use wtdatagram::datagram::monitor::{
    evaluate, send_time_trend, AlertKind, DatagramMonitor, MonitorConfig, Sample,
};
use wtdatagram::datagram::{DatagramStream, StreamConfig};
use wtdatagram::{Client, ClientConfig, Error, Server, Session, TransportOptions, Verify};

async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + LIMIT;
    while !cond() {
        assert!(Instant::now() < deadline, "safety limit: never saw {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

struct Setup {
    stream: DatagramStream,
    _ss: Session,
    _cs: Session,
    _client: Client,
    _server: Server,
}

/// A client-side stream (send queue of `queue`) whose client has a 1200-byte quinn
/// datagram send buffer.
async fn setup(queue: usize) -> Setup {
    let server = server();
    let client = Client::new(ClientConfig {
        verify: Verify::Hashes(vec![server.cert_sha256()]),
        transport: TransportOptions {
            datagram_send_buffer: 1200,
            ..Default::default()
        },
        ..Default::default()
    })
    .unwrap();
    let (ss, cs) = within(pair(&server, &client, &url(&server, "/monitor"))).await;
    let stream = DatagramStream::new(
        &cs,
        StreamConfig {
            send_queue: queue,
            ..Default::default()
        },
    )
    .unwrap();
    Setup {
        stream,
        _ss: ss,
        _cs: cs,
        _client: client,
        _server: server,
    }
}

#[tokio::test(flavor = "current_thread")]
async fn defaults_and_a_quiet_stream() {
    let s = setup(100).await;
    let c = MonitorConfig::default();
    assert_eq!(c.interval, Duration::from_secs(5));
    assert_eq!((c.sample_capacity, c.alert_capacity), (100, 50));
    assert_eq!((c.high_queue_fill, c.min_success_rate), (0.9, 0.8));
    assert_eq!((c.trend_window, c.trend_factor), (10, 1.25));
    let m = DatagramMonitor::new(&s.stream, c).unwrap();
    assert!(!m.is_monitoring());
    let smp = m.sample_now();
    assert_eq!(smp.queue_size, 0);
    assert_eq!(smp.queue_limit, 100);
    assert_eq!(smp.send_success_rate, 1.0);
    assert_eq!(smp.datagrams_sent, 0);
    assert_eq!(m.get_samples(None), vec![smp]);
    assert!(m.get_alerts().is_empty());
    assert!(matches!(
        DatagramMonitor::new(
            &s.stream,
            MonitorConfig {
                interval: Duration::ZERO,
                ..Default::default()
            }
        ),
        Err(Error::InvalidArgument(_))
    ));
}

#[tokio::test(flavor = "current_thread")]
async fn nearly_full_send_queue_alerts() {
    let s = setup(10).await;
    let m = DatagramMonitor::new(&s.stream, MonitorConfig::default()).unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    m.on_alert(Box::new(move |a| {
        assert_eq!(a.kind, AlertKind::HighQueueSize);
        seen.fetch_add(1, Ordering::SeqCst);
    }));
    // 9 of 10 is exactly 90%: not above the threshold.
    for i in 0..9 {
        s.stream.send(format!("d{i}").as_bytes(), 0, None).unwrap();
    }
    let smp = m.sample_now();
    assert_eq!((smp.queue_size, smp.queue_limit), (9, 10));
    assert!(m.get_alerts().is_empty());
    // 10 of 10.
    s.stream.send(b"d9", 0, None).unwrap();
    let smp = m.sample_now();
    assert_eq!(smp.queue_size, 10);
    let alerts = m.get_alerts();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].kind, AlertKind::HighQueueSize);
    assert_eq!(alerts[0].value, 1.0);
    assert!(alerts[0].message.contains("10/10"), "{}", alerts[0].message);
    // The callback ran before sample_now returned.
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // The sender drains the queue once the test yields: no alert any more.
    eventually("the queue draining", || {
        s.stream.queue_stats().send_total == 0
    })
    .await;
    m.sample_now();
    assert_eq!(m.get_alerts().len(), 1);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "current_thread")]
async fn low_success_rate_alerts() {
    let s = setup(100).await;
    let m = DatagramMonitor::new(&s.stream, MonitorConfig::default()).unwrap();
    s.stream.send(b"ok", 0, None).unwrap();
    eventually("the first send", || s.stream.stats().datagrams_sent == 1).await;
    // No path allows this (max + 1 could race path MTU discovery raising the limit).
    let big = vec![0u8; 65_536];
    // 1 sent + 1 too large = 0.5; then 1 of 10.
    assert!(matches!(
        s.stream.send(&big, 0, None),
        Err(Error::TooLarge { .. })
    ));
    let smp = m.sample_now();
    assert_eq!(smp.send_success_rate, 0.5);
    assert_eq!(smp.send_attempts, 2);
    let a = m.get_alerts();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].kind, AlertKind::LowSuccessRate);
    assert_eq!(a[0].value, 0.5);
    for _ in 0..8 {
        let _ = s.stream.send(&big, 0, None);
    }
    m.sample_now();
    let a = m.get_alerts();
    assert_eq!(a.len(), 2);
    assert!((a[1].value - 0.1).abs() < 1e-9);
    // A configurable threshold: 0.05 is not met by 0.1.
    let lenient = DatagramMonitor::new(
        &s.stream,
        MonitorConfig {
            min_success_rate: 0.05,
            ..Default::default()
        },
    )
    .unwrap();
    lenient.sample_now();
    assert!(lenient.get_alerts().is_empty());
}

#[tokio::test(flavor = "current_thread")]
async fn rings_are_bounded_oldest_dropped() {
    let s = setup(100).await;
    let m = DatagramMonitor::new(&s.stream, MonitorConfig::default()).unwrap();
    // A persistent condition (nothing but failed sends): one alert per sample.
    let _ = s.stream.send(&vec![0u8; 70_000], 0, None);
    let mut taken = Vec::new();
    for _ in 0..150 {
        taken.push(m.sample_now());
    }
    let samples = m.get_samples(None);
    assert_eq!(samples.len(), 100);
    assert_eq!(samples, taken[50..].to_vec());
    assert_eq!(m.get_samples(Some(5)), taken[145..].to_vec());
    assert_eq!(m.get_samples(Some(0)), Vec::<Sample>::new());
    let alerts = m.get_alerts();
    assert_eq!(alerts.len(), 50);
    assert!(alerts.iter().all(|a| a.kind == AlertKind::LowSuccessRate));
    // The newest 50 samples' alerts, oldest first.
    let ts: Vec<_> = alerts.iter().map(|a| a.timestamp).collect();
    let want: Vec<_> = taken[100..].iter().map(|s| s.timestamp).collect();
    assert_eq!(ts, want);
    // Custom capacities.
    let small = DatagramMonitor::new(
        &s.stream,
        MonitorConfig {
            sample_capacity: 3,
            alert_capacity: 2,
            ..Default::default()
        },
    )
    .unwrap();
    for _ in 0..5 {
        small.sample_now();
    }
    assert_eq!(
        (small.get_samples(None).len(), small.get_alerts().len()),
        (3, 2)
    );
    m.clear();
    assert!(m.get_samples(None).is_empty() && m.get_alerts().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_stop_and_the_periodic_task() {
    let s = setup(100).await;
    let m = DatagramMonitor::new(
        &s.stream,
        MonitorConfig {
            interval: Duration::from_millis(10),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(!m.is_monitoring());
    m.start().unwrap();
    m.start().unwrap(); // no-op
    assert!(m.is_monitoring());
    eventually("3 periodic samples", || m.get_samples(None).len() >= 3).await;
    m.stop();
    assert!(!m.is_monitoring());
    // Nothing more comes once stopped (an in-flight tick may have finished just now).
    tokio::time::sleep(Duration::from_millis(20)).await;
    let n = m.get_samples(None).len();
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(m.get_samples(None).len(), n);
    m.stop(); // no-op

    // Restart; closing the stream ends the task by itself.
    m.start().unwrap();
    assert!(m.is_monitoring());
    s.stream.close();
    eventually("the task ending with the stream", || !m.is_monitoring()).await;
    assert!(matches!(m.start(), Err(Error::Closed(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn periodic_alerts_reach_the_callback() {
    let s = setup(100).await;
    let m = DatagramMonitor::new(
        &s.stream,
        MonitorConfig {
            interval: Duration::from_millis(10),
            ..Default::default()
        },
    )
    .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    m.on_alert(Box::new(move |a| {
        assert_eq!(a.kind, AlertKind::LowSuccessRate);
        seen.fetch_add(1, Ordering::SeqCst);
    }));
    let _ = s.stream.send(&vec![0u8; 70_000], 0, None);
    m.start().unwrap();
    eventually("periodic alerts", || calls.load(Ordering::SeqCst) >= 2).await;
    drop(m); // stops the task
}

#[test]
fn trend_rule_on_a_constructed_series() {
    let mk = |ms: u64| Sample {
        timestamp: std::time::SystemTime::now(),
        queue_size: 0,
        queue_limit: 100,
        send_success_rate: 1.0,
        avg_send_time: Duration::from_millis(ms),
        datagrams_sent: 1,
        datagrams_received: 0,
        send_attempts: 1,
    };
    let rising: std::collections::VecDeque<Sample> =
        [5, 5, 5, 5, 5, 8, 8, 8, 8, 8].into_iter().map(mk).collect();
    let r = send_time_trend(&rising, 10, 1.25).unwrap();
    assert!((r - 1.6).abs() < 1e-9);
    let cfg = MonitorConfig::default();
    let alerts = evaluate(&cfg, &rising, rising.back().unwrap());
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].kind, AlertKind::IncreasingSendTime);
    let flat: std::collections::VecDeque<Sample> = [5; 10].into_iter().map(mk).collect();
    assert!(evaluate(&cfg, &flat, flat.back().unwrap()).is_empty());
}
