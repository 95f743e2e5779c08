//! Watch a datagram stream over time (pywebtransport's `DatagramMonitor`): periodic
//! samples of its queue and statistics in a bounded ring, and alerts when the stream
//! looks unhealthy, in a second bounded ring and to an optional callback.
//!
//! Alert rules, evaluated after every sample:
//!
//! * [`AlertKind::HighQueueSize`]: the send queue holds more than
//!   `high_queue_fill` (default 0.9) of its limit.
//! * [`AlertKind::LowSuccessRate`]: at least one send was attempted and the stream's
//!   send success rate is below `min_success_rate` (default 0.8).
//! * [`AlertKind::IncreasingSendTime`]: over the last `trend_window` samples (default
//!   10), the mean average-send-time of the second half exceeds `trend_factor`
//!   (default 1.25) times that of the first half, and the first half's mean is above 0
//!   (a stream that has not sent anything yet has no trend).
//!
//! Every sample that meets a rule records one alert (no de-duplication: a condition that
//! persists alerts at every sample; the ring bounds them). [`DatagramMonitor::sample_now`]
//! samples and evaluates at once, so all of this is testable without the timer.

use std::collections::VecDeque;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;

use super::stream::DatagramStream;
use crate::transport::Error;

/// Monitoring options.
#[derive(Debug, Clone, PartialEq)]
pub struct MonitorConfig {
    /// Time between samples of the periodic task. Default 5 s.
    pub interval: Duration,
    /// Samples kept (oldest dropped first). Default 100.
    pub sample_capacity: usize,
    /// Alerts kept (oldest dropped first). Default 50.
    pub alert_capacity: usize,
    /// High-queue alert above this share of the send queue limit. Default 0.9.
    pub high_queue_fill: f64,
    /// Low-success alert below this send success rate. Default 0.8.
    pub min_success_rate: f64,
    /// Samples the send-time trend looks at (>= 2). Default 10.
    pub trend_window: usize,
    /// Trend alert when the later half's mean exceeds this factor times the earlier
    /// half's. Default 1.25.
    pub trend_factor: f64,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            interval: Duration::from_secs(5),
            sample_capacity: 100,
            alert_capacity: 50,
            high_queue_fill: 0.9,
            min_success_rate: 0.8,
            trend_window: 10,
            trend_factor: 1.25,
        }
    }
}

impl MonitorConfig {
    /// InvalidArgument unless every option is in range (see the fields).
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |m: &str| Err(Error::InvalidArgument(m.into()));
        if self.interval.is_zero() {
            return bad("monitoring interval must be > 0");
        }
        if self.sample_capacity == 0 || self.alert_capacity == 0 {
            return bad("sample and alert capacities must be >= 1");
        }
        if !(0.0..=1.0).contains(&self.high_queue_fill)
            || !(0.0..=1.0).contains(&self.min_success_rate)
        {
            return bad("high_queue_fill and min_success_rate must be within 0..=1");
        }
        if self.trend_window < 2 {
            return bad("trend_window must be >= 2");
        }
        if !self.trend_factor.is_finite() || self.trend_factor < 0.0 {
            return bad("trend_factor must be a finite number >= 0");
        }
        Ok(())
    }
}

/// One observation of the stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub timestamp: SystemTime,
    /// Datagrams waiting in the send queue.
    pub queue_size: usize,
    /// The send queue's limit.
    pub queue_limit: usize,
    pub send_success_rate: f64,
    /// Average queue-to-wire time so far.
    pub avg_send_time: Duration,
    pub datagrams_sent: u64,
    pub datagrams_received: u64,
    /// Send attempts so far (sent + failed + dropped).
    pub send_attempts: u64,
}

/// Which rule an alert comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertKind {
    HighQueueSize,
    LowSuccessRate,
    IncreasingSendTime,
}

/// A rule met by a sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub kind: AlertKind,
    pub message: String,
    pub timestamp: SystemTime,
    /// HighQueueSize: the queue fill (0..=1); LowSuccessRate: the rate; IncreasingSendTime:
    /// the ratio of the later half's mean send time to the earlier half's.
    pub value: f64,
}

/// Called with every alert as it is raised.
pub type AlertCallback = Box<dyn Fn(&Alert) + Send + Sync>;

/// The send-time trend rule over `samples` (oldest first): with at least `window`
/// samples, the ratio mean(second half) / mean(first half) of the last `window` samples'
/// average send times, when it exceeds `factor` and the first half's mean is above 0.
/// The halves are the first `window / 2` and the last `window - window / 2` samples.
pub fn send_time_trend<'a, I>(samples: I, window: usize, factor: f64) -> Option<f64>
where
    I: IntoIterator<Item = &'a Sample>,
    I::IntoIter: DoubleEndedIterator,
{
    if window < 2 {
        return None;
    }
    let mut last: Vec<f64> = samples
        .into_iter()
        .rev()
        .take(window)
        .map(|s| s.avg_send_time.as_secs_f64())
        .collect();
    if last.len() < window {
        return None;
    }
    last.reverse();
    let half = window / 2;
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let first = mean(&last[..half]);
    let second = mean(&last[half..]);
    (first > 0.0 && second > factor * first).then(|| second / first)
}

/// The alerts `sample` (the newest of `history`, oldest first) raises under `cfg`.
pub fn evaluate(cfg: &MonitorConfig, history: &VecDeque<Sample>, sample: &Sample) -> Vec<Alert> {
    let mut out = Vec::new();
    let at = sample.timestamp;
    if sample.queue_limit > 0 {
        let fill = sample.queue_size as f64 / sample.queue_limit as f64;
        if fill > cfg.high_queue_fill {
            out.push(Alert {
                kind: AlertKind::HighQueueSize,
                message: format!(
                    "send queue {}/{} ({:.0}% > {:.0}%)",
                    sample.queue_size,
                    sample.queue_limit,
                    fill * 100.0,
                    cfg.high_queue_fill * 100.0
                ),
                timestamp: at,
                value: fill,
            });
        }
    }
    if sample.send_attempts > 0 && sample.send_success_rate < cfg.min_success_rate {
        out.push(Alert {
            kind: AlertKind::LowSuccessRate,
            message: format!(
                "send success rate {:.1}% < {:.1}%",
                sample.send_success_rate * 100.0,
                cfg.min_success_rate * 100.0
            ),
            timestamp: at,
            value: sample.send_success_rate,
        });
    }
    if let Some(ratio) = send_time_trend(history, cfg.trend_window, cfg.trend_factor) {
        out.push(Alert {
            kind: AlertKind::IncreasingSendTime,
            message: format!(
                "average send time rising: {:.2}x over the last {} samples (threshold {:.2}x)",
                ratio, cfg.trend_window, cfg.trend_factor
            ),
            timestamp: at,
            value: ratio,
        });
    }
    out
}

struct Rings {
    samples: VecDeque<Sample>,
    alerts: VecDeque<Alert>,
    task: Option<tokio::task::JoinHandle<()>>,
}

struct Inner {
    stream: DatagramStream,
    cfg: MonitorConfig,
    rings: Mutex<Rings>,
    callback: Mutex<Option<Arc<AlertCallback>>>,
}

impl Inner {
    fn sample_now(&self) -> Sample {
        let s = self.stream.stats();
        let q = self.stream.queue_stats();
        let sample = Sample {
            timestamp: SystemTime::now(),
            queue_size: q.send_total,
            queue_limit: q.send_limit,
            send_success_rate: s.send_success_rate,
            avg_send_time: s.avg_send_time,
            datagrams_sent: s.datagrams_sent,
            datagrams_received: s.datagrams_received,
            send_attempts: s.send_attempts(),
        };
        let alerts = {
            let mut r = self.rings.lock();
            while r.samples.len() >= self.cfg.sample_capacity {
                r.samples.pop_front();
            }
            r.samples.push_back(sample.clone());
            let alerts = evaluate(&self.cfg, &r.samples, &sample);
            for a in &alerts {
                while r.alerts.len() >= self.cfg.alert_capacity {
                    r.alerts.pop_front();
                }
                r.alerts.push_back(a.clone());
            }
            alerts
        };
        if !alerts.is_empty() {
            // Called without our locks: the callback may call back into the monitor.
            let cb = self.callback.lock().clone();
            if let Some(cb) = cb {
                for a in &alerts {
                    cb(a);
                }
            }
        }
        sample
    }
}

/// Monitors one datagram stream. Cheap to clone (clones share everything); the periodic
/// task stops when the last clone is dropped, on [`stop`](Self::stop), or when the
/// stream closes. The monitor holds a clone of the stream.
#[derive(Clone)]
pub struct DatagramMonitor {
    // Dropped first: aborts the periodic task while `inner` is still alive.
    _guard: Arc<StopOnDrop>,
    inner: Arc<Inner>,
}

struct StopOnDrop(Weak<Inner>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if let Some(i) = self.0.upgrade() {
            if let Some(t) = i.rings.lock().task.take() {
                t.abort();
            }
        }
    }
}

impl std::fmt::Debug for DatagramMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatagramMonitor")
            .field("stream", &self.inner.stream)
            .field("monitoring", &self.is_monitoring())
            .finish()
    }
}

impl DatagramMonitor {
    /// A monitor of `stream` with `cfg` (InvalidArgument for bad options). It does not
    /// sample until [`start`](Self::start) or [`sample_now`](Self::sample_now).
    pub fn new(stream: &DatagramStream, cfg: MonitorConfig) -> Result<DatagramMonitor, Error> {
        cfg.validate()?;
        let inner = Arc::new(Inner {
            stream: stream.clone(),
            rings: Mutex::new(Rings {
                samples: VecDeque::with_capacity(cfg.sample_capacity.min(1024)),
                alerts: VecDeque::with_capacity(cfg.alert_capacity.min(1024)),
                task: None,
            }),
            cfg,
            callback: Mutex::new(None),
        });
        Ok(DatagramMonitor {
            _guard: Arc::new(StopOnDrop(Arc::downgrade(&inner))),
            inner,
        })
    }

    pub fn config(&self) -> &MonitorConfig {
        &self.inner.cfg
    }

    pub fn stream(&self) -> &DatagramStream {
        &self.inner.stream
    }

    /// Start sampling every `interval` (the first sample one interval from now) on the
    /// stream's runtime. No-op if already monitoring; Closed if the stream is closed.
    pub fn start(&self) -> Result<(), Error> {
        if self.inner.stream.is_closed() {
            return Err(Error::Closed(
                self.inner.stream.session().close_reason().unwrap_or(
                    crate::transport::CloseReason::Local {
                        code: 0,
                        reason: "datagram stream closed".into(),
                    },
                ),
            ));
        }
        let mut r = self.inner.rings.lock();
        if r.task.as_ref().is_some_and(|t| !t.is_finished()) {
            return Ok(());
        }
        let weak = Arc::downgrade(&self.inner);
        let interval = self.inner.cfg.interval;
        let rt = self.inner.stream.session().runtime_handle();
        r.task = Some(rt.spawn(async move {
            let start = tokio::time::Instant::now() + interval;
            let mut tick = tokio::time::interval_at(start, interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                if inner.stream.is_closed() {
                    return;
                }
                inner.sample_now();
            }
        }));
        Ok(())
    }

    /// Stop the periodic task (samples and alerts stay). No-op when not monitoring.
    pub fn stop(&self) {
        if let Some(t) = self.inner.rings.lock().task.take() {
            t.abort();
        }
    }

    /// Whether the periodic task is running.
    pub fn is_monitoring(&self) -> bool {
        self.inner
            .rings
            .lock()
            .task
            .as_ref()
            .is_some_and(|t| !t.is_finished())
    }

    /// Take one sample now and evaluate the alert rules on it (alerts are recorded and
    /// passed to the callback before this returns). Works whether monitoring or not.
    pub fn sample_now(&self) -> Sample {
        self.inner.sample_now()
    }

    /// The newest `limit` samples (all with None), oldest first.
    pub fn get_samples(&self, limit: Option<usize>) -> Vec<Sample> {
        let r = self.inner.rings.lock();
        let n = limit.unwrap_or(usize::MAX).min(r.samples.len());
        r.samples
            .iter()
            .skip(r.samples.len() - n)
            .cloned()
            .collect()
    }

    /// The recorded alerts, oldest first.
    pub fn get_alerts(&self) -> Vec<Alert> {
        self.inner.rings.lock().alerts.iter().cloned().collect()
    }

    /// Forget every sample and alert.
    pub fn clear(&self) {
        let mut r = self.inner.rings.lock();
        r.samples.clear();
        r.alerts.clear();
    }

    /// Call `callback` with every alert from now on (replaces a previous one; it runs on
    /// the thread that took the sample: a runtime worker for the periodic task).
    pub fn on_alert(&self, callback: AlertCallback) {
        *self.inner.callback.lock() = Some(Arc::new(callback));
    }

    /// Remove the alert callback.
    pub fn clear_alert_callback(&self) {
        self.inner.callback.lock().take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(ms: u64) -> Sample {
        Sample {
            timestamp: SystemTime::now(),
            queue_size: 0,
            queue_limit: 100,
            send_success_rate: 1.0,
            avg_send_time: Duration::from_millis(ms),
            datagrams_sent: 1,
            datagrams_received: 0,
            send_attempts: 1,
        }
    }

    fn series(ms: &[u64]) -> VecDeque<Sample> {
        ms.iter().map(|&m| sample(m)).collect()
    }

    #[test]
    fn trend_needs_a_full_window() {
        let s = series(&[1, 1, 1, 1, 5, 5, 5, 5, 5]);
        assert_eq!(send_time_trend(&s, 10, 1.25), None);
    }

    #[test]
    fn trend_rising() {
        let s = series(&[10, 10, 10, 10, 10, 20, 20, 20, 20, 20]);
        let r = send_time_trend(&s, 10, 1.25).expect("rising trend");
        assert!((r - 2.0).abs() < 1e-9, "{r}");
    }

    #[test]
    fn trend_boundary_is_strict() {
        let s = series(&[10, 10, 10, 10, 10, 12, 13, 12, 13, 12]);
        // mean second half = 12.4 -> 1.24x
        assert_eq!(send_time_trend(&s, 10, 1.25), None);
        let s = series(&[10, 10, 10, 10, 10, 13, 13, 13, 13, 13]);
        assert!(send_time_trend(&s, 10, 1.25).is_some());
    }

    #[test]
    fn trend_only_looks_at_the_last_window() {
        // Old slow samples followed by a flat window: no trend.
        let mut ms = vec![1u64; 5];
        ms.extend([50u64; 10]);
        assert_eq!(send_time_trend(&series(&ms), 10, 1.25), None);
        // A flat start then a rise inside the last 10.
        let mut ms = vec![50u64; 5];
        ms.extend([10, 10, 10, 10, 10, 30, 30, 30, 30, 30]);
        assert!(send_time_trend(&series(&ms), 10, 1.25).is_some());
    }

    #[test]
    fn trend_falling_or_zero_start() {
        let s = series(&[20, 20, 20, 20, 20, 10, 10, 10, 10, 10]);
        assert_eq!(send_time_trend(&s, 10, 1.25), None);
        let s = series(&[0, 0, 0, 0, 0, 10, 10, 10, 10, 10]);
        assert_eq!(send_time_trend(&s, 10, 1.25), None);
    }

    #[test]
    fn trend_odd_window() {
        // window 3: first half = 1 sample, second = 2.
        let s = series(&[10, 20, 20]);
        assert!(send_time_trend(&s, 3, 1.25).is_some());
        assert_eq!(send_time_trend(&s, 1, 1.25), None);
    }

    #[test]
    fn evaluate_rules() {
        let cfg = MonitorConfig::default();
        let mut s = sample(1);
        s.queue_size = 91;
        s.send_success_rate = 0.5;
        let h = series(&[1]);
        let kinds: Vec<_> = evaluate(&cfg, &h, &s).into_iter().map(|a| a.kind).collect();
        assert_eq!(
            kinds,
            vec![AlertKind::HighQueueSize, AlertKind::LowSuccessRate]
        );
        s.queue_size = 90; // exactly 90%: not above
        s.send_success_rate = 0.8; // exactly: not below
        assert!(evaluate(&cfg, &h, &s).is_empty());
        s.send_attempts = 0;
        s.send_success_rate = 0.0;
        assert!(evaluate(&cfg, &h, &s).is_empty());
    }

    #[test]
    fn config_checks() {
        assert!(MonitorConfig::default().validate().is_ok());
        for c in [
            MonitorConfig {
                interval: Duration::ZERO,
                ..Default::default()
            },
            MonitorConfig {
                sample_capacity: 0,
                ..Default::default()
            },
            MonitorConfig {
                alert_capacity: 0,
                ..Default::default()
            },
            MonitorConfig {
                high_queue_fill: 1.5,
                ..Default::default()
            },
            MonitorConfig {
                min_success_rate: -0.1,
                ..Default::default()
            },
            MonitorConfig {
                trend_window: 1,
                ..Default::default()
            },
            MonitorConfig {
                trend_factor: f64::NAN,
                ..Default::default()
            },
        ] {
            assert!(c.validate().is_err(), "{c:?}");
        }
    }
}
