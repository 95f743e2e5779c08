package wtd

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestMonitorAlerts(t *testing.T) {
	p := newPair(t, "/mon")
	st, err := NewStream(p.client, &StreamConfig{SendQueue: 10, ReceiveQueue: 10})
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewMonitor(st, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A quiet stream: one sample, no alert.
	s, err := m.SampleNow()
	if err != nil {
		t.Fatal(err)
	}
	if s.QueueLimit != 10 || s.QueueSize != 0 || s.SendSuccessRate != 1 || s.SendAttempts != 0 ||
		s.Timestamp.Before(time.Now().Add(-time.Minute)) {
		t.Fatalf("sample %+v", s)
	}
	if a, _ := m.Alerts(); len(a) != 0 {
		t.Fatalf("alerts on a quiet stream: %+v", a)
	}
	// An oversize send is a failed attempt: the success rate drops to 0.
	if err := st.Send(make([]byte, 65536), PriorityLow, 0); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversize: %v", err)
	}
	s, err = m.SampleNow()
	if err != nil {
		t.Fatal(err)
	}
	if s.SendSuccessRate != 0 || s.SendAttempts != 1 {
		t.Fatalf("sample %+v", s)
	}
	alerts, err := m.Alerts()
	if err != nil || len(alerts) != 1 {
		t.Fatalf("alerts %+v %v", alerts, err)
	}
	a := alerts[0]
	if a.Kind != AlertLowSuccessRate || a.Value != 0 || !a.Timestamp.Equal(s.Timestamp) ||
		!strings.Contains(a.Message, "success rate") {
		t.Fatalf("alert %+v (sample at %v)", a, s.Timestamp)
	}
	// The same alert arrives live, through the runtime's event goroutine.
	ctx := recvCtx(t)
	select {
	case live := <-m.AlertChan():
		if live != a {
			t.Fatalf("live alert %+v, want %+v", live, a)
		}
	case <-ctx.Done():
		t.Fatal("no live alert")
	}
	if samples, _ := m.Samples(); len(samples) != 2 || !samples[1].Timestamp.Equal(s.Timestamp) {
		t.Fatalf("samples %+v", samples)
	}

	// Periodic sampling: every sample raises the alert again (the rate stays 0).
	if m.IsMonitoring() {
		t.Fatal("monitoring before Start")
	}
	m2, err := NewMonitor(st, &MonitorConfig{Interval: 10 * time.Millisecond, Samples: 5, Alerts: 3})
	if err != nil {
		t.Fatal(err)
	}
	if err := m2.Start(); err != nil {
		t.Fatal(err)
	}
	if !m2.IsMonitoring() {
		t.Fatal("not monitoring after Start")
	}
	for k := 0; k < 6; k++ {
		select {
		case a := <-m2.AlertChan():
			if a.Kind != AlertLowSuccessRate {
				t.Fatalf("alert %+v", a)
			}
		case <-ctx.Done():
			t.Fatalf("only %d periodic alerts", k)
		}
	}
	if err := m2.Stop(); err != nil {
		t.Fatal(err)
	}
	if m2.IsMonitoring() {
		t.Fatal("monitoring after Stop")
	}
	samples, _ := m2.Samples()
	alerts, _ = m2.Alerts()
	if len(samples) != 5 || len(alerts) != 3 { // the rings are bounded
		t.Fatalf("%d samples, %d alerts", len(samples), len(alerts))
	}

	// Stream.Close closes its monitors: AlertChan is closed, calls are ErrClosed.
	st.Close()
	for range m.AlertChan() {
	}
	for range m2.AlertChan() {
	}
	if _, err := m.SampleNow(); !errors.Is(err, ErrClosed) {
		t.Fatalf("sample after stream close: %v", err)
	}
	if err := m2.Start(); !errors.Is(err, ErrClosed) {
		t.Fatalf("start after close: %v", err)
	}
	for i := 0; i < 2; i++ {
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := NewMonitor(st, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("monitor of a closed stream: %v", err)
	}
}

func TestMonitorConfigErrors(t *testing.T) {
	p := newPair(t, "/monerr")
	st, err := NewStream(p.server, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, cfg := range []MonitorConfig{
		{Interval: time.Microsecond},
		{Samples: 5},                          // alerts 0
		{HighQueueFill: 1.5, TrendWindow: 10}, // fill > 1
		{HighQueueFill: 0.9, MinSuccessRate: 0.8, TrendWindow: 1, TrendFactor: 1},
		{HighQueueFill: 0.9, MinSuccessRate: 0.8, TrendWindow: 10, TrendFactor: -1},
	} {
		if _, err := NewMonitor(st, &cfg); !errors.Is(err, ErrInvalidArgument) {
			t.Fatalf("%+v: %v", cfg, err)
		}
	}
	if _, err := NewMonitor(nil, nil); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("nil stream: %v", err)
	}
	// A monitor the application forgets is released with its session by
	// Runtime.Close (through Session.Close and Stream.Close).
	m, err := NewMonitor(st, &MonitorConfig{Interval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	// Running: it has taken samples by itself (no SampleNow here) when the runtime closes.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		if s, err := m.Samples(); err != nil || len(s) > 0 {
			if err != nil {
				t.Fatal(err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the started monitor never took a sample")
		}
	}
	if err := p.rt.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := m.SampleNow(); !errors.Is(err, ErrClosed) {
		t.Fatalf("after runtime close: %v", err)
	}
}
