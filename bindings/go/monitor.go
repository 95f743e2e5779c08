package wtd

/*
#include <stdint.h>
#include <stdlib.h>
#include "wtdatagram.h"
enum wtd_result wtd_go_monitor_watch(const wtd_monitor *monitor, uintptr_t handle);
*/
import "C"

import (
	"runtime/cgo"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// MonitorConfig holds monitor options; zero fields keep the defaults (a sample
// every 5 s, 100 samples and 50 alerts kept, alerts at a send queue over 90% full,
// a send success rate under 0.8, and an average send time whose mean over the last
// 5 of 10 samples exceeds 1.25x the first 5's).
type MonitorConfig struct {
	Interval time.Duration // between periodic samples (>= 1 ms)
	// Samples and Alerts kept (the oldest are dropped first); both or neither.
	Samples, Alerts int
	// Thresholds, used when any of them is set: HighQueueFill (0..1),
	// MinSuccessRate (0..1), TrendWindow samples (>= 2), TrendFactor (>= 0).
	HighQueueFill, MinSuccessRate float64
	TrendWindow                   int
	TrendFactor                   float64
	// AlertBuffer is the capacity of the channel returned by Monitor.AlertChan
	// (default 64); alerts beyond it are counted in Monitor.DroppedAlerts.
	AlertBuffer int
}

// AlertKind says which rule raised an alert.
type AlertKind int

// Alert kinds (wtd_alert_kind).
const (
	AlertHighQueueSize      AlertKind = C.WTD_ALERT_HIGH_QUEUE_SIZE
	AlertLowSuccessRate     AlertKind = C.WTD_ALERT_LOW_SUCCESS_RATE
	AlertIncreasingSendTime AlertKind = C.WTD_ALERT_INCREASING_SEND_TIME
)

func (k AlertKind) String() string {
	switch k {
	case AlertHighQueueSize:
		return "high queue size"
	case AlertLowSuccessRate:
		return "low success rate"
	case AlertIncreasingSendTime:
		return "increasing send time"
	}
	return "unknown"
}

// Alert is one alert of a monitor.
type Alert struct {
	Kind      AlertKind
	Timestamp time.Time
	// Value: the queue fill (0..1), the success rate, or the send time ratio.
	Value   float64
	Message string
}

// MonitorSample is one sample of a stream.
type MonitorSample struct {
	Timestamp                        time.Time
	QueueSize, QueueLimit            int
	SendSuccessRate                  float64
	AvgSendTime                      time.Duration
	DatagramsSent, DatagramsReceived uint64
	SendAttempts                     uint64 // sent + failed + dropped
}

// Monitor samples a Stream (periodically after Start, or with SampleNow) and raises
// alerts. Alerts are kept in a ring (Alerts) and also delivered live on AlertChan:
// the library calls back into Go only inside the Runtime's event goroutine (pull
// mode), never on a library thread. Stream.Close closes its monitors.
type Monitor struct {
	st     *Stream
	rt     *Runtime
	h      *C.wtd_monitor
	handle cgo.Handle
	alerts chan Alert
	drops  atomic.Uint64
	mu     sync.RWMutex
	free   bool
	once   sync.Once

	samplesCap, alertsCap int
}

func unixTime(secs C.double) time.Time {
	f := float64(secs)
	s := int64(f)
	return time.Unix(s, int64((f-float64(s))*1e9))
}

func alertFromC(a *C.wtd_monitor_alert) Alert {
	return Alert{
		Kind:      AlertKind(a.kind),
		Timestamp: unixTime(a.timestamp),
		Value:     float64(a.value),
		Message:   C.GoString(&a.message[0]),
	}
}

func sampleFromC(s *C.wtd_monitor_sample) MonitorSample {
	return MonitorSample{
		Timestamp:       unixTime(s.timestamp),
		QueueSize:       int(s.queue_size),
		QueueLimit:      int(s.queue_limit),
		SendSuccessRate: float64(s.send_success_rate),
		AvgSendTime:     secs(s.avg_send_time),
		DatagramsSent:   uint64(s.datagrams_sent), DatagramsReceived: uint64(s.datagrams_received),
		SendAttempts: uint64(s.send_attempts),
	}
}

func (cfg *MonitorConfig) build() (*C.wtd_monitor_config, error) {
	var c *C.wtd_monitor_config
	if err := call(func() C.enum_wtd_result { return C.wtd_monitor_config_new(&c) }); err != nil {
		return nil, err
	}
	var steps []func() C.enum_wtd_result
	if cfg.Interval != 0 {
		ms := cfg.Interval / time.Millisecond
		if ms < 1 || ms > 1<<32-1 {
			C.wtd_monitor_config_free(c)
			return nil, &Error{Code: CodeInvalidArgument, Msg: "monitor interval must be within 1 ms..2^32 ms"}
		}
		steps = append(steps, func() C.enum_wtd_result { return C.wtd_monitor_config_set_interval(c, C.uint32_t(ms)) })
	}
	if cfg.Samples != 0 || cfg.Alerts != 0 {
		if cfg.Samples < 0 || cfg.Alerts < 0 {
			C.wtd_monitor_config_free(c)
			return nil, &Error{Code: CodeInvalidArgument, Msg: "monitor capacities must be at least 1"}
		}
		steps = append(steps, func() C.enum_wtd_result {
			return C.wtd_monitor_config_set_capacities(c, C.size_t(cfg.Samples), C.size_t(cfg.Alerts))
		})
	}
	if cfg.HighQueueFill != 0 || cfg.MinSuccessRate != 0 || cfg.TrendWindow != 0 || cfg.TrendFactor != 0 {
		if cfg.TrendWindow < 0 {
			C.wtd_monitor_config_free(c)
			return nil, &Error{Code: CodeInvalidArgument, Msg: "trend window must be at least 2"}
		}
		steps = append(steps, func() C.enum_wtd_result {
			return C.wtd_monitor_config_set_thresholds(c, C.double(cfg.HighQueueFill), C.double(cfg.MinSuccessRate),
				C.size_t(cfg.TrendWindow), C.double(cfg.TrendFactor))
		})
	}
	for _, s := range steps {
		if err := call(s); err != nil {
			C.wtd_monitor_config_free(c)
			return nil, err
		}
	}
	return c, nil
}

// NewMonitor creates a monitor of st (cfg nil means defaults). It samples nothing
// until Start or SampleNow.
func NewMonitor(st *Stream, cfg *MonitorConfig) (*Monitor, error) {
	if st == nil {
		return nil, &Error{Code: CodeInvalidArgument, Msg: "stream is nil"}
	}
	if cfg == nil {
		cfg = &MonitorConfig{}
	}
	cc, err := cfg.build()
	if err != nil {
		return nil, err
	}
	defer C.wtd_monitor_config_free(cc)
	buf := cfg.AlertBuffer
	if buf <= 0 {
		buf = 64
	}
	m := &Monitor{st: st, rt: st.s.rt, alerts: make(chan Alert, buf), samplesCap: 100, alertsCap: 50}
	if cfg.Samples > 0 {
		m.samplesCap, m.alertsCap = cfg.Samples, cfg.Alerts
	}
	err = st.use(func(sh *C.wtd_stream) error {
		if err := call(func() C.enum_wtd_result { return C.wtd_monitor_new(sh, cc, &m.h) }); err != nil {
			return err
		}
		m.handle = cgo.NewHandle(m)
		if err := call(func() C.enum_wtd_result { return C.wtd_go_monitor_watch(m.h, C.uintptr_t(m.handle)) }); err != nil {
			C.wtd_monitor_free(m.h)
			m.handle.Delete()
			return err
		}
		st.mmu.Lock()
		if st.monitors == nil {
			st.monitors = map[*Monitor]struct{}{}
		}
		st.monitors[m] = struct{}{}
		st.mmu.Unlock()
		return nil
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// deliver runs in the event goroutine (see callbacks.go); never blocks.
func (m *Monitor) deliver(a Alert) {
	select {
	case m.alerts <- a:
	default:
		m.drops.Add(1)
	}
}

func (m *Monitor) use(f func(h *C.wtd_monitor) error) error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.free {
		return closedErr("monitor")
	}
	return f(m.h)
}

// Start samples every interval on the library's runtime (the first sample one
// interval from now). No-op if running; ErrClosed if the stream is closed.
func (m *Monitor) Start() error {
	return m.use(func(h *C.wtd_monitor) error {
		return call(func() C.enum_wtd_result { return C.wtd_monitor_start(h) })
	})
}

// Stop stops periodic sampling (samples and alerts stay).
func (m *Monitor) Stop() error {
	return m.use(func(h *C.wtd_monitor) error {
		return call(func() C.enum_wtd_result { return C.wtd_monitor_stop(h) })
	})
}

// IsMonitoring reports whether periodic sampling runs (it stops by itself when
// the stream closes).
func (m *Monitor) IsMonitoring() bool {
	on := false
	m.use(func(h *C.wtd_monitor) error { on = bool(C.wtd_monitor_is_monitoring(h)); return nil })
	return on
}

// SampleNow takes one sample now and evaluates the alert rules on it (its alerts
// are in Alerts when this returns, and on their way to AlertChan).
func (m *Monitor) SampleNow() (MonitorSample, error) {
	var s C.wtd_monitor_sample
	err := m.use(func(h *C.wtd_monitor) error {
		return call(func() C.enum_wtd_result { return C.wtd_monitor_sample_now(h, &s) })
	})
	if err != nil {
		return MonitorSample{}, err
	}
	return sampleFromC(&s), nil
}

// Samples returns the kept samples, oldest first.
func (m *Monitor) Samples() ([]MonitorSample, error) {
	var out []MonitorSample
	err := m.use(func(h *C.wtd_monitor) error {
		buf := (*C.wtd_monitor_sample)(C.calloc(C.size_t(m.samplesCap), C.sizeof_wtd_monitor_sample))
		defer C.free(unsafe.Pointer(buf))
		var n C.size_t
		if err := call(func() C.enum_wtd_result {
			return C.wtd_monitor_get_samples(h, buf, C.size_t(m.samplesCap), &n)
		}); err != nil {
			return err
		}
		for _, s := range unsafe.Slice(buf, int(n)) {
			out = append(out, sampleFromC(&s))
		}
		return nil
	})
	return out, err
}

// Alerts returns the kept alerts, oldest first.
func (m *Monitor) Alerts() ([]Alert, error) {
	var out []Alert
	err := m.use(func(h *C.wtd_monitor) error {
		buf := (*C.wtd_monitor_alert)(C.calloc(C.size_t(m.alertsCap), C.sizeof_wtd_monitor_alert))
		defer C.free(unsafe.Pointer(buf))
		var n C.size_t
		if err := call(func() C.enum_wtd_result {
			return C.wtd_monitor_get_alerts(h, buf, C.size_t(m.alertsCap), &n)
		}); err != nil {
			return err
		}
		for _, a := range unsafe.Slice(buf, int(n)) {
			out = append(out, alertFromC(&a))
		}
		return nil
	})
	return out, err
}

// AlertChan delivers every alert raised from now on (closed by Close). Alerts that
// find the channel full are dropped and counted in DroppedAlerts; the ring of
// Alerts keeps them anyway.
func (m *Monitor) AlertChan() <-chan Alert { return m.alerts }

// DroppedAlerts is the number of alerts AlertChan dropped because it was full.
func (m *Monitor) DroppedAlerts() uint64 { return m.drops.Load() }

// Close stops the monitor and releases it; AlertChan is closed. Safe to call twice.
func (m *Monitor) Close() error {
	m.once.Do(func() {
		// Alert callbacks run in the event goroutine under rt.mu: freeing under it
		// means none is running, and the library skips the ones still queued.
		m.rt.mu.Lock()
		m.mu.Lock()
		m.free = true
		C.wtd_monitor_free(m.h)
		m.mu.Unlock()
		m.rt.mu.Unlock()
		m.handle.Delete()
		close(m.alerts)
		m.st.mmu.Lock()
		delete(m.st.monitors, m)
		m.st.mmu.Unlock()
	})
	return nil
}
