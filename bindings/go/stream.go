package wtd

/*
#include <stdlib.h>
#include "wtdatagram.h"
*/
import "C"

import (
	"context"
	"encoding/json"
	"sync"
	"time"
	"unsafe"
)

// Priority of a datagram queued on a Stream.
type Priority uint8

// Priorities: Low (0), High (1), Highest (2).
const (
	PriorityLow     Priority = 0
	PriorityHigh    Priority = 1
	PriorityHighest Priority = 2
)

// Overflow is what a full receive queue drops.
type Overflow int

// Overflow policies.
const (
	DropNewest Overflow = C.WTD_OVERFLOW_DROP_NEWEST
	DropOldest Overflow = C.WTD_OVERFLOW_DROP_OLDEST
)

// StreamConfig holds datagram stream options; zero fields keep the defaults
// (queues of 100 datagrams each way, DropNewest).
type StreamConfig struct {
	SendQueue, ReceiveQueue int
	RecvOverflow            Overflow
}

// StreamStats are a stream's counters and timings (sizes cover both directions).
type StreamStats struct {
	DatagramsSent, BytesSent, DatagramsReceived, BytesReceived uint64
	SendFailures, SendDropsEvicted, SendDropsExpired           uint64
	SendDropsTooLarge, SendDropsQueueFull                      uint64
	ReceiveDrops, ReceiveErrors                                uint64
	MinDatagramSize, MaxDatagramSize                           uint64
	AvgDatagramSize                                            float64
	AvgSendTime, MaxSendTime, AvgReceiveTime, MaxReceiveTime   time.Duration
	SendSuccessRate, ReceiveSuccessRate                        float64
}

// Metadata is what a stream knows about a received datagram.
type Metadata struct {
	Sequence   uint64
	ReceivedAt time.Time
	Size       uint64
	Age        time.Duration
}

// Stream is a session's datagram duplex stream: a prioritized send queue with
// time-to-live, a receive queue, JSON and structured datagrams, statistics. It takes
// over the session's datagrams (Session.Receive gets nothing more).
type Stream struct {
	s    *Session
	h    *C.wtd_stream
	mu   sync.RWMutex
	free bool
	once sync.Once

	mmu      sync.Mutex // guards monitors
	monitors map[*Monitor]struct{}
}

// NewStream creates the datagram stream of s (cfg nil means defaults). A session
// has at most one stream (ErrInvalidState for a second); ErrClosed if the session is
// closed. Session.Close also closes it.
func NewStream(s *Session, cfg *StreamConfig) (*Stream, error) {
	if s == nil {
		return nil, &Error{Code: CodeInvalidArgument, Msg: "session is nil"}
	}
	var cc *C.wtd_stream_config
	if err := call(func() C.enum_wtd_result { return C.wtd_stream_config_new(&cc) }); err != nil {
		return nil, err
	}
	defer C.wtd_stream_config_free(cc)
	if cfg != nil {
		if cfg.SendQueue > 0 || cfg.ReceiveQueue > 0 {
			sq, rq := cfg.SendQueue, cfg.ReceiveQueue
			if sq <= 0 {
				sq = 100
			}
			if rq <= 0 {
				rq = 100
			}
			if err := call(func() C.enum_wtd_result { return C.wtd_stream_config_set_queues(cc, C.size_t(sq), C.size_t(rq)) }); err != nil {
				return nil, err
			}
		}
		if cfg.RecvOverflow != DropNewest && cfg.RecvOverflow != DropOldest {
			return nil, &Error{Code: CodeInvalidArgument, Msg: "unknown receive overflow policy"}
		}
		if err := call(func() C.enum_wtd_result {
			return C.wtd_stream_config_set_recv_overflow(cc, C.enum_wtd_overflow(cfg.RecvOverflow))
		}); err != nil {
			return nil, err
		}
	}
	st := &Stream{s: s}
	err := s.takeOver(st, func(h *C.wtd_session) error {
		return call(func() C.enum_wtd_result { return C.wtd_stream_new(h, cc, &st.h) })
	})
	if err != nil {
		return nil, err
	}
	return st, nil
}

func (st *Stream) use(f func(h *C.wtd_stream) error) error {
	st.mu.RLock()
	defer st.mu.RUnlock()
	if st.free {
		return closedErr("stream")
	}
	return f(st.h)
}

func ttlMs(ttl time.Duration) C.int32_t {
	if ttl <= 0 {
		return 0
	}
	if ms := ttl / time.Millisecond; ms < 1<<31 {
		if ms == 0 {
			return 1
		}
		return C.int32_t(ms)
	}
	return 1<<31 - 1
}

// Session is the stream's session.
func (st *Stream) Session() *Session { return st.s }

// Send queues a datagram with a priority and a time-to-live (0: none; an expired
// datagram never reaches the wire). ErrQueueFull when the queue is full with nothing
// of lower priority to evict, ErrTooLarge, ErrClosed.
func (st *Stream) Send(b []byte, prio Priority, ttl time.Duration) error {
	return st.use(func(h *C.wtd_stream) error {
		p, n := bytesPtr(b)
		return call(func() C.enum_wtd_result { return C.wtd_stream_send(h, p, n, C.uint8_t(prio), ttlMs(ttl)) })
	})
}

// SendWait is Send that waits for room in the send queue until ctx is done.
func (st *Stream) SendWait(ctx context.Context, b []byte, prio Priority, ttl time.Duration) error {
	return waitLoop(ctx, func(ms C.int32_t) error {
		return st.use(func(h *C.wtd_stream) error {
			p, n := bytesPtr(b)
			return call(func() C.enum_wtd_result {
				return C.wtd_stream_send_wait(h, p, n, C.uint8_t(prio), ttlMs(ttl), ms)
			})
		})
	})
}

// SendJSON sends v as pywebtransport's send_json does, Python's
// json.dumps(data, separators=(",", ":")): v is converted with encoding/json's
// field rules (FormatJSONCompact.Marshal: struct fields in declaration order, map
// keys sorted, floats spelled like Python, "1.0" and "1e-05", NaN as NaN) and
// the library sends it with non-ASCII escaped as \uXXXX.
func (st *Stream) SendJSON(v any, prio Priority, ttl time.Duration) error {
	b, err := FormatJSONCompact.Marshal(v)
	if err != nil {
		return err
	}
	return st.use(func(h *C.wtd_stream) error {
		p, n := bytesPtr(b)
		return call(func() C.enum_wtd_result {
			return C.wtd_stream_send_json(h, (*C.char)(unsafe.Pointer(p)), n, C.uint8_t(prio), ttlMs(ttl))
		})
	})
}

// SendStructured sends a structured datagram [u8 len][type][payload]
// (pywebtransport's layout); typ is 1..=255 bytes of UTF-8.
func (st *Stream) SendStructured(typ string, payload []byte, prio Priority, ttl time.Duration) error {
	ct := C.CString(typ)
	defer C.free(unsafe.Pointer(ct))
	return st.use(func(h *C.wtd_stream) error {
		p, n := bytesPtr(payload)
		return call(func() C.enum_wtd_result {
			return C.wtd_stream_send_structured(h, ct, p, n, C.uint8_t(prio), ttlMs(ttl))
		})
	})
}

// recvLoop calls f with a Go buffer until it fits (growing on ErrBufferTooSmall),
// in timeout slices bounded by ctx.
func (st *Stream) recvLoop(ctx context.Context, f func(h *C.wtd_stream, buf []byte, outLen *C.size_t, ms C.int32_t) error) ([]byte, error) {
	buf := make([]byte, 2048)
	var n C.size_t
	err := waitLoop(ctx, func(ms C.int32_t) error {
		for {
			err := st.use(func(h *C.wtd_stream) error { return f(h, buf, &n, ms) })
			if isCode(err, CodeBufferTooSmall) && int(n) > len(buf) {
				buf = make([]byte, int(n))
				continue
			}
			return err
		}
	})
	if err != nil {
		return nil, err
	}
	return buf[:n:n], nil
}

// Receive returns the next datagram, waiting until ctx is done.
func (st *Stream) Receive(ctx context.Context) ([]byte, error) {
	return st.recvLoop(ctx, func(h *C.wtd_stream, buf []byte, n *C.size_t, ms C.int32_t) error {
		p, c := bytesPtr(buf)
		return call(func() C.enum_wtd_result { return C.wtd_stream_receive(h, p, c, n, ms) })
	})
}

// TryReceive returns the next datagram without waiting: ErrWouldBlock if none is
// queued, ErrClosed if none is queued and the stream or its session is closed.
func (st *Stream) TryReceive() ([]byte, error) {
	buf := make([]byte, 2048)
	var n C.size_t
	for {
		err := st.use(func(h *C.wtd_stream) error {
			p, c := bytesPtr(buf)
			return call(func() C.enum_wtd_result { return C.wtd_stream_try_receive(h, p, c, &n) })
		})
		if isCode(err, CodeBufferTooSmall) && int(n) > len(buf) {
			buf = make([]byte, int(n))
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n:n], nil
	}
}

// ReceiveWithMetadata returns the next datagram and its metadata.
func (st *Stream) ReceiveWithMetadata(ctx context.Context) ([]byte, Metadata, error) {
	var md C.wtd_datagram_metadata
	b, err := st.recvLoop(ctx, func(h *C.wtd_stream, buf []byte, n *C.size_t, ms C.int32_t) error {
		p, c := bytesPtr(buf)
		return call(func() C.enum_wtd_result { return C.wtd_stream_receive_with_metadata(h, p, c, n, &md, ms) })
	})
	if err != nil {
		return nil, Metadata{}, err
	}
	return b, Metadata{
		Sequence:   uint64(md.sequence),
		ReceivedAt: time.Unix(0, int64(float64(md.received_at)*1e9)),
		Size:       uint64(md.size),
		Age:        time.Duration(float64(md.age) * float64(time.Second)),
	}, nil
}

// ReceiveJSONRaw returns the next datagram as JSON text, as received. A datagram
// that Python's json.loads would not read (NaN and Infinity are fine) is consumed
// and reported as ErrInvalidData; the stream keeps working.
func (st *Stream) ReceiveJSONRaw(ctx context.Context) (json.RawMessage, error) {
	b, err := st.recvLoop(ctx, func(h *C.wtd_stream, buf []byte, n *C.size_t, ms C.int32_t) error {
		p, c := bytesPtr(buf)
		return call(func() C.enum_wtd_result {
			return C.wtd_stream_receive_json(h, (*C.char)(unsafe.Pointer(p)), c, n, ms)
		})
	})
	return json.RawMessage(b), err
}

// ReceiveJSON receives the next JSON datagram and unmarshals it into v with
// encoding/json (which cannot read NaN or Infinity: such a datagram is consumed and
// the json error returned).
func (st *Stream) ReceiveJSON(ctx context.Context, v any) error {
	b, err := st.ReceiveJSONRaw(ctx)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// ReceiveStructured returns the next structured datagram's type and payload.
// A malformed one is consumed and reported as ErrInvalidData.
func (st *Stream) ReceiveStructured(ctx context.Context) (string, []byte, error) {
	tbuf := make([]byte, 256)
	var tlen C.size_t
	b, err := st.recvLoop(ctx, func(h *C.wtd_stream, buf []byte, n *C.size_t, ms C.int32_t) error {
		tp, tc := bytesPtr(tbuf)
		p, c := bytesPtr(buf)
		return call(func() C.enum_wtd_result {
			return C.wtd_stream_receive_structured(h, (*C.char)(unsafe.Pointer(tp)), tc, &tlen, p, c, n, ms)
		})
	})
	if err != nil {
		return "", nil, err
	}
	return string(tbuf[:tlen]), b, nil
}

// MaxDatagramSize is the largest payload Send accepts now.
func (st *Stream) MaxDatagramSize() (int, error) {
	var n C.size_t
	err := st.use(func(h *C.wtd_stream) error {
		return call(func() C.enum_wtd_result { return C.wtd_stream_max_datagram_size(h, &n) })
	})
	return int(n), err
}

func secs(f C.double) time.Duration { return time.Duration(float64(f) * float64(time.Second)) }

// Stats reads the stream's counters and timings.
func (st *Stream) Stats() (StreamStats, error) {
	var c C.wtd_stream_stats
	err := st.use(func(h *C.wtd_stream) error {
		return call(func() C.enum_wtd_result { return C.wtd_stream_get_stats(h, &c) })
	})
	return StreamStats{
		DatagramsSent: uint64(c.datagrams_sent), BytesSent: uint64(c.bytes_sent),
		DatagramsReceived: uint64(c.datagrams_received), BytesReceived: uint64(c.bytes_received),
		SendFailures: uint64(c.send_failures), SendDropsEvicted: uint64(c.send_drops_evicted),
		SendDropsExpired: uint64(c.send_drops_expired), SendDropsTooLarge: uint64(c.send_drops_too_large),
		SendDropsQueueFull: uint64(c.send_drops_queue_full), ReceiveDrops: uint64(c.receive_drops),
		ReceiveErrors: uint64(c.receive_errors), MinDatagramSize: uint64(c.min_datagram_size),
		MaxDatagramSize: uint64(c.max_datagram_size), AvgDatagramSize: float64(c.avg_datagram_size),
		AvgSendTime: secs(c.avg_send_time), MaxSendTime: secs(c.max_send_time),
		AvgReceiveTime: secs(c.avg_receive_time), MaxReceiveTime: secs(c.max_receive_time),
		SendSuccessRate: float64(c.send_success_rate), ReceiveSuccessRate: float64(c.receive_success_rate),
	}, err
}

// SendBufferSize is the number of datagrams waiting to be sent.
func (st *Stream) SendBufferSize() int {
	var n int
	st.use(func(h *C.wtd_stream) error { n = int(C.wtd_stream_send_buffer_size(h)); return nil })
	return n
}

// ReceiveBufferSize is the number of datagrams waiting to be received.
func (st *Stream) ReceiveBufferSize() int {
	var n int
	st.use(func(h *C.wtd_stream) error { n = int(C.wtd_stream_receive_buffer_size(h)); return nil })
	return n
}

// IsClosed reports whether the stream or its session is closed.
func (st *Stream) IsClosed() bool {
	closed := true
	st.use(func(h *C.wtd_stream) error { closed = bool(C.wtd_stream_is_closed(h)); return nil })
	return closed
}

// Close closes the stream (queued datagrams are discarded) and its monitors and
// releases it; the session stays open. Safe to call twice.
func (st *Stream) Close() error {
	st.once.Do(func() {
		st.use(func(h *C.wtd_stream) error { C.wtd_stream_close(h); return nil }) // wake waiters
		st.mu.Lock()
		st.free = true
		// Monitors point at the stream: release them first.
		st.mmu.Lock()
		monitors := st.monitors
		st.monitors = nil
		st.mmu.Unlock()
		for m := range monitors {
			m.Close()
		}
		C.wtd_stream_free(st.h)
		st.mu.Unlock()
	})
	return nil
}

// TrySend is Send that reports only whether the datagram was queued.
func (st *Stream) TrySend(b []byte, prio Priority, ttl time.Duration) bool {
	ok := false
	st.use(func(h *C.wtd_stream) error {
		p, n := bytesPtr(b)
		ok = bool(C.wtd_stream_try_send(h, p, n, C.uint8_t(prio), ttlMs(ttl)))
		return nil
	})
	return ok
}

// QueueStats are the lengths and limits of a stream's queues.
type QueueStats struct {
	Send                  [3]int // per priority 0, 1, 2
	SendTotal, SendLimit  int
	Receive, ReceiveLimit int
}

// QueueStats reads the queue lengths and limits.
func (st *Stream) QueueStats() (QueueStats, error) {
	var c C.wtd_queue_stats
	err := st.use(func(h *C.wtd_stream) error {
		return call(func() C.enum_wtd_result { return C.wtd_stream_get_queue_stats(h, &c) })
	})
	return QueueStats{
		Send:      [3]int{int(c.send[0]), int(c.send[1]), int(c.send[2])},
		SendTotal: int(c.send_total), SendLimit: int(c.send_limit),
		Receive: int(c.receive), ReceiveLimit: int(c.receive_limit),
	}, err
}

// text reads a JSON text output of the library, growing the buffer as needed.
func (st *Stream) text(f func(h *C.wtd_stream, buf *C.char, cap C.size_t, n *C.size_t) C.enum_wtd_result) (string, error) {
	size := 4096
	for {
		buf := make([]byte, size)
		var n C.size_t
		err := st.use(func(h *C.wtd_stream) error {
			p, c := bytesPtr(buf)
			return call(func() C.enum_wtd_result { return f(h, (*C.char)(unsafe.Pointer(p)), c, &n) })
		})
		if isCode(err, CodeBufferTooSmall) && int(n)+1 > size {
			size = int(n) + 1
			continue
		}
		if err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	}
}

// DebugState is a JSON object describing the stream's internals (config, queues,
// stats, diagnostics).
func (st *Stream) DebugState() (string, error) {
	return st.text(func(h *C.wtd_stream, buf *C.char, c C.size_t, n *C.size_t) C.enum_wtd_result {
		return C.wtd_stream_debug_state(h, buf, c, n)
	})
}

// Diagnose returns the stream's health findings (empty: healthy).
func (st *Stream) Diagnose() ([]string, error) {
	js, err := st.text(func(h *C.wtd_stream, buf *C.char, c C.size_t, n *C.size_t) C.enum_wtd_result {
		return C.wtd_stream_diagnose(h, buf, c, n, nil)
	})
	if err != nil {
		return nil, err
	}
	var findings []string
	if err := json.Unmarshal([]byte(js), &findings); err != nil {
		return nil, &Error{Code: CodeInvalidData, Msg: err.Error()}
	}
	return findings, nil
}

// StartHeartbeat sends a heartbeat datagram ("HEARTBEAT:<unix secs>") every
// interval (priority 0, time-to-live one interval), replacing a running one.
func (st *Stream) StartHeartbeat(interval time.Duration) error {
	ms := interval / time.Millisecond
	if ms < 1 || ms > 1<<32-1 {
		return &Error{Code: CodeInvalidArgument, Msg: "heartbeat interval must be within 1 ms..2^32 ms"}
	}
	return st.use(func(h *C.wtd_stream) error {
		return call(func() C.enum_wtd_result { return C.wtd_stream_start_heartbeat(h, C.uint32_t(ms)) })
	})
}

// StopHeartbeat stops the periodic heartbeat, if running.
func (st *Stream) StopHeartbeat() error {
	return st.use(func(h *C.wtd_stream) error {
		return call(func() C.enum_wtd_result { return C.wtd_stream_stop_heartbeat(h) })
	})
}

// IsHeartbeat reports whether b is a heartbeat datagram: it starts with
// "HEARTBEAT:", whatever follows (pywebtransport's data.startswith(b"HEARTBEAT:")).
func IsHeartbeat(b []byte) bool {
	p, n := bytesPtr(b)
	return bool(C.wtd_is_heartbeat(p, n))
}

// ThroughputResult is what Stream.ThroughputTest measured.
type ThroughputResult struct {
	Duration                                     time.Duration
	DatagramsSent, Errors                        uint64
	DatagramsPerSecond, BitsPerSecond, ErrorRate float64
}

// ThroughputTest sends size-byte datagrams through the stream for about d, with
// backpressure, and reports what reached the wire. It blocks for about d.
func (st *Stream) ThroughputTest(d time.Duration, size int) (ThroughputResult, error) {
	ms := d / time.Millisecond
	if ms < 0 || ms > 1<<32-1 || size < 0 {
		return ThroughputResult{}, &Error{Code: CodeInvalidArgument, Msg: "bad duration or size"}
	}
	var r C.wtd_throughput_result
	err := st.use(func(h *C.wtd_stream) error {
		return call(func() C.enum_wtd_result { return C.wtd_stream_throughput_test(h, C.uint32_t(ms), C.size_t(size), &r) })
	})
	return ThroughputResult{
		Duration: secs(r.duration), DatagramsSent: uint64(r.datagrams_sent), Errors: uint64(r.errors),
		DatagramsPerSecond: float64(r.datagrams_per_second), BitsPerSecond: float64(r.bits_per_second),
		ErrorRate: float64(r.error_rate),
	}, err
}
