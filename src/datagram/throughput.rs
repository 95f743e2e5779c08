//! `datagram_throughput_test`: push datagrams through a stream for a while and report
//! what reached the wire.

use std::time::{Duration, Instant};

use super::stream::{DatagramStream, StreamStats};
use crate::transport::Error;

/// Outcome of a throughput test (also reported as progress while it runs).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ThroughputResult {
    pub duration: Duration,
    /// Datagrams that reached the wire.
    pub datagrams_sent: u64,
    /// Datagrams that failed or were dropped (too large, expired, send failures).
    pub errors: u64,
    pub datagrams_per_second: f64,
    pub bits_per_second: f64,
    /// errors / (datagrams_sent + errors).
    pub error_rate: f64,
}

fn result(
    before: &StreamStats,
    now: &StreamStats,
    extra_errors: u64,
    elapsed: Duration,
    size: usize,
) -> ThroughputResult {
    let sent = now.datagrams_sent - before.datagrams_sent;
    let errors = extra_errors
        + (now.send_failures - before.send_failures)
        + (now.send_drops() - before.send_drops());
    let secs = elapsed.as_secs_f64().max(1e-9);
    ThroughputResult {
        duration: elapsed,
        datagrams_sent: sent,
        errors,
        datagrams_per_second: sent as f64 / secs,
        bits_per_second: (sent * size as u64 * 8) as f64 / secs,
        error_rate: if sent + errors == 0 {
            0.0
        } else {
            errors as f64 / (sent + errors) as f64
        },
    }
}

/// Send `datagram_size`-byte datagrams through `stream` for `duration`, waiting for
/// room in its queue (backpressure, so a full queue is not an error), then let the queue
/// drain (at most 2 s). `progress` is called about once a second with the figures so far.
pub async fn datagram_throughput_test(
    stream: &DatagramStream,
    duration: Duration,
    datagram_size: usize,
    mut progress: impl FnMut(&ThroughputResult),
) -> Result<ThroughputResult, Error> {
    let max = stream.max_datagram_size()?;
    if datagram_size == 0 || datagram_size > max {
        return Err(Error::InvalidArgument(format!(
            "datagram size must be 1..={max} bytes, got {datagram_size}"
        )));
    }
    let payload = vec![0x5au8; datagram_size];
    let before = stream.stats();
    let start = Instant::now();
    let mut next_report = start + Duration::from_secs(1);
    let mut errors = 0u64;
    while start.elapsed() < duration {
        match stream.send_wait(&payload, 0, None).await {
            Ok(()) => {}
            Err(Error::Closed(r)) => return Err(Error::Closed(r)),
            // Counted by the stream's stats (send_drops_too_large), read below.
            Err(Error::TooLarge { .. }) => {}
            Err(_) => errors += 1,
        }
        if Instant::now() >= next_report {
            next_report += Duration::from_secs(1);
            progress(&result(
                &before,
                &stream.stats(),
                errors,
                start.elapsed(),
                datagram_size,
            ));
        }
    }
    let drain_until = Instant::now() + Duration::from_secs(2);
    while stream.pending_sends() > 0 && Instant::now() < drain_until && !stream.is_closed() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let r = result(
        &before,
        &stream.stats(),
        errors,
        start.elapsed(),
        datagram_size,
    );
    progress(&r);
    Ok(r)
}
