package wtd

/*
#include "wtdatagram.h"
*/
import "C"

import (
	"context"
	"math"
	"sync"
	"time"
)

// ReliabilityConfig holds reliability layer options; zero fields keep the defaults
// (ACK timeout 2 s, 5 retries, window 256 messages, receive queue 1000, 4096
// sequences remembered for duplicate detection, first sequence 0).
type ReliabilityConfig struct {
	AckTimeout time.Duration // before a retransmission (>= 1 ms)
	// MaxRetries is the number of retransmissions before giving up; 0 keeps the
	// default (5), a negative value means none (every message is sent once).
	MaxRetries int
	// Window is the number of unacknowledged messages in flight (1..2^30); Send
	// waits for room beyond it.
	Window int
	// RecvQueue (messages waiting for Receive; when full, new messages are not
	// acknowledged and the peer retransmits them) and DedupMemory (sequences
	// remembered against duplicates; keep it at least the peer's window). Both or
	// neither.
	RecvQueue, DedupMemory int
	// InitialSequence is the wire sequence (and id) of the first message.
	InitialSequence uint32
}

// DeliveryOutcome tells how a reliably sent message ended.
type DeliveryOutcome int

// Outcomes (wtd_delivery_outcome).
const (
	Delivered DeliveryOutcome = C.WTD_DELIVERY_DELIVERED // the peer acknowledged it
	GaveUp    DeliveryOutcome = C.WTD_DELIVERY_GAVE_UP   // no ACK after MaxRetries retransmissions
)

func (o DeliveryOutcome) String() string {
	switch o {
	case Delivered:
		return "delivered"
	case GaveUp:
		return "gave up"
	}
	return "unknown"
}

// DeliveryReport is the end of one message sent with Reliability.Send.
type DeliveryReport struct {
	ID       uint64 // what Send returned
	Outcome  DeliveryOutcome
	Attempts int // transmissions made (1 = no retransmission)
}

// ReliabilityStats are a reliability layer's counters.
type ReliabilityStats struct {
	MessagesSent, MessagesDelivered, MessagesGivenUp uint64
	Retransmissions, AcksSent, AcksReceived          uint64
	DuplicatesReceived, MessagesReceived             uint64
	ReceiveDrops, InvalidReceived, ReportsDropped    uint64
	InFlight                                         uint64
}

// Reliability sends messages reliably over a session's datagrams: acknowledged,
// retransmitted, delivered at most once (wire-compatible with pywebtransport's
// DatagramReliabilityLayer: 0x04 "DATA" [u32 BE seq][payload], 0x03 "ACK" [seq]).
// Every message sent gets one DeliveryReport (NextReport). It takes over the
// session's datagrams; Session.Close closes it.
type Reliability struct {
	s    *Session
	h    *C.wtd_reliability
	mu   sync.RWMutex
	free bool
	once sync.Once
}

func (cfg *ReliabilityConfig) build() (*C.wtd_reliability_config, error) {
	var c *C.wtd_reliability_config
	if err := call(func() C.enum_wtd_result { return C.wtd_reliability_config_new(&c) }); err != nil {
		return nil, err
	}
	bad := func(msg string) (*C.wtd_reliability_config, error) {
		C.wtd_reliability_config_free(c)
		return nil, &Error{Code: CodeInvalidArgument, Msg: msg}
	}
	var steps []func() C.enum_wtd_result
	if cfg.AckTimeout != 0 {
		ms := cfg.AckTimeout / time.Millisecond
		if ms < 1 || ms > 1<<32-1 {
			return bad("ack timeout must be within 1 ms..2^32 ms")
		}
		steps = append(steps, func() C.enum_wtd_result { return C.wtd_reliability_config_set_ack_timeout(c, C.uint32_t(ms)) })
	}
	if cfg.MaxRetries != 0 {
		n := cfg.MaxRetries
		if n < 0 {
			n = 0
		}
		if uint64(n) > math.MaxUint32 {
			return bad("max retries out of range")
		}
		steps = append(steps, func() C.enum_wtd_result { return C.wtd_reliability_config_set_max_retries(c, C.uint32_t(n)) })
	}
	if cfg.Window != 0 {
		if cfg.Window < 0 {
			return bad("window must be within 1..2^30")
		}
		steps = append(steps, func() C.enum_wtd_result { return C.wtd_reliability_config_set_window(c, C.size_t(cfg.Window)) })
	}
	if cfg.RecvQueue != 0 || cfg.DedupMemory != 0 {
		if cfg.RecvQueue < 0 || cfg.DedupMemory < 0 {
			return bad("receive queue and dedup memory must be at least 1")
		}
		steps = append(steps, func() C.enum_wtd_result {
			return C.wtd_reliability_config_set_queues(c, C.size_t(cfg.RecvQueue), C.size_t(cfg.DedupMemory))
		})
	}
	if cfg.InitialSequence != 0 {
		steps = append(steps, func() C.enum_wtd_result {
			return C.wtd_reliability_config_set_initial_sequence(c, C.uint32_t(cfg.InitialSequence))
		})
	}
	for _, s := range steps {
		if err := call(s); err != nil {
			C.wtd_reliability_config_free(c)
			return nil, err
		}
	}
	return c, nil
}

// NewReliability creates the reliability layer of s (cfg nil means defaults).
// ErrInvalidState if another layer already owns the session's datagrams, ErrClosed if
// the session is closed. Datagrams that arrived before are taken over too, except
// those a Session.Receive already took (it takes them in batches).
func NewReliability(s *Session, cfg *ReliabilityConfig) (*Reliability, error) {
	if s == nil {
		return nil, &Error{Code: CodeInvalidArgument, Msg: "session is nil"}
	}
	if cfg == nil {
		cfg = &ReliabilityConfig{}
	}
	cc, err := cfg.build()
	if err != nil {
		return nil, err
	}
	defer C.wtd_reliability_config_free(cc)
	r := &Reliability{s: s}
	err = s.takeOver(r, func(h *C.wtd_session) error {
		return call(func() C.enum_wtd_result { return C.wtd_reliability_new(h, cc, &r.h) })
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Reliability) use(f func(h *C.wtd_reliability) error) error {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.free {
		return closedErr("reliability layer")
	}
	return f(r.h)
}

// Session is the layer's session.
func (r *Reliability) Session() *Session { return r.s }

// Send sends a message (copied) reliably, waiting for room in the window until ctx
// is done, and returns its id (its DeliveryReport carries it). ErrTooLarge if it
// does not fit in a datagram with the 9-byte header, ErrClosed. When ctx ends
// first nothing was sent.
func (r *Reliability) Send(ctx context.Context, msg []byte) (uint64, error) {
	var id C.uint64_t
	err := waitLoop(ctx, func(ms C.int32_t) error {
		return r.use(func(h *C.wtd_reliability) error {
			p, n := bytesPtr(msg)
			return call(func() C.enum_wtd_result { return C.wtd_reliability_send(h, p, n, ms, &id) })
		})
	})
	return uint64(id), err
}

// Receive returns the next message (each message is delivered once, in arrival
// order), waiting until ctx is done. ErrClosed once closed and drained.
func (r *Reliability) Receive(ctx context.Context) ([]byte, error) {
	return recvGrow(ctx, func(buf []byte, n *C.size_t, ms C.int32_t) error {
		return r.use(func(h *C.wtd_reliability) error {
			p, c := bytesPtr(buf)
			return call(func() C.enum_wtd_result { return C.wtd_reliability_receive(h, p, c, n, ms) })
		})
	})
}

// NextReport returns the next delivery report, waiting until ctx is done. Every
// message sent gets exactly one, Delivered or GaveUp (unless the layer is closed
// first). ErrClosed once closed and drained.
func (r *Reliability) NextReport(ctx context.Context) (DeliveryReport, error) {
	var rep C.wtd_delivery_report
	err := waitLoop(ctx, func(ms C.int32_t) error {
		return r.use(func(h *C.wtd_reliability) error {
			return call(func() C.enum_wtd_result { return C.wtd_reliability_next_report(h, &rep, ms) })
		})
	})
	if err != nil {
		return DeliveryReport{}, err
	}
	return DeliveryReport{ID: uint64(rep.id), Outcome: DeliveryOutcome(rep.outcome), Attempts: int(rep.attempts)}, nil
}

// Stats reads the layer's counters.
func (r *Reliability) Stats() (ReliabilityStats, error) {
	var c C.wtd_reliability_stats
	err := r.use(func(h *C.wtd_reliability) error {
		return call(func() C.enum_wtd_result { return C.wtd_reliability_get_stats(h, &c) })
	})
	return ReliabilityStats{
		MessagesSent: uint64(c.messages_sent), MessagesDelivered: uint64(c.messages_delivered),
		MessagesGivenUp: uint64(c.messages_given_up), Retransmissions: uint64(c.retransmissions),
		AcksSent: uint64(c.acks_sent), AcksReceived: uint64(c.acks_received),
		DuplicatesReceived: uint64(c.duplicates_received), MessagesReceived: uint64(c.messages_received),
		ReceiveDrops: uint64(c.receive_drops), InvalidReceived: uint64(c.invalid_received),
		ReportsDropped: uint64(c.reports_dropped), InFlight: uint64(c.in_flight),
	}, err
}

// IsClosed reports whether the layer or its session is closed.
func (r *Reliability) IsClosed() bool {
	closed := true
	r.use(func(h *C.wtd_reliability) error { closed = bool(C.wtd_reliability_is_closed(h)); return nil })
	return closed
}

// Shutdown stops the layer without releasing it: background work ends,
// unacknowledged messages get no report, waiting calls return ErrClosed; queued
// messages and reports can still be taken.
func (r *Reliability) Shutdown() error {
	return r.use(func(h *C.wtd_reliability) error {
		return call(func() C.enum_wtd_result { return C.wtd_reliability_close(h) })
	})
}

// Close stops the layer and releases it; the session stays open. Safe to call twice.
func (r *Reliability) Close() error {
	r.once.Do(func() {
		r.use(func(h *C.wtd_reliability) error { C.wtd_reliability_close(h); return nil }) // wake waiters
		r.mu.Lock()
		r.free = true
		C.wtd_reliability_free(r.h)
		r.mu.Unlock()
	})
	return nil
}
