package wtd

/*
#include <stdlib.h>
#include "wtdatagram.h"
*/
import "C"

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"
)

// CloseKind tells how a session ended.
type CloseKind int

// Close kinds (wtd_close_kind).
const (
	CloseNone           CloseKind = C.WTD_CLOSE_NONE
	CloseLocal          CloseKind = C.WTD_CLOSE_LOCAL
	CloseRemote         CloseKind = C.WTD_CLOSE_REMOTE
	CloseReset          CloseKind = C.WTD_CLOSE_RESET
	CloseConnectionLost CloseKind = C.WTD_CLOSE_CONNECTION_LOST
	CloseTimedOut       CloseKind = C.WTD_CLOSE_TIMED_OUT
	CloseProtocolError  CloseKind = C.WTD_CLOSE_PROTOCOL_ERROR
)

func (k CloseKind) String() string {
	switch k {
	case CloseNone:
		return "none"
	case CloseLocal:
		return "local"
	case CloseRemote:
		return "remote"
	case CloseReset:
		return "reset"
	case CloseConnectionLost:
		return "connection lost"
	case CloseTimedOut:
		return "timed out"
	case CloseProtocolError:
		return "protocol error"
	}
	return "unknown"
}

// CloseInfo tells why a session ended.
type CloseInfo struct {
	Kind CloseKind
	// Code is the application code (Local/Remote) or the HTTP/3 / QUIC error code.
	Code   uint64
	Reason string
}

// Dialect is a session's WebTransport dialect.
type Dialect int

// Dialects (wtd_dialect).
const (
	DialectDraft02 Dialect = C.WTD_DIALECT_DRAFT02
	DialectDraft07 Dialect = C.WTD_DIALECT_DRAFT07
	DialectDraft15 Dialect = C.WTD_DIALECT_DRAFT15
)

// SessionStats are a session's counters.
type SessionStats struct {
	DatagramsSent, BytesSent         uint64
	DatagramsReceived, BytesReceived uint64
	RecvDropped                      uint64 // dropped by the library's full queue
	SendWouldBlock, SendTooLarge     uint64
	ConnectionUnknownSession         uint64
	// GoRecvDropped is always 0 now: received datagrams wait in the library's
	// bounded queue (TransportConfig.RecvQueue, RecvQueueBytes) until Receive takes
	// them, and what does not fit there is counted in RecvDropped.
	GoRecvDropped uint64
}

// ReceiveQueue was the capacity of a Go channel each Session used to buffer
// datagrams in, on top of the library's queue. Received datagrams now wait only in
// the library's bounded queue (TransportConfig.RecvQueue, default 65536, and
// RecvQueueBytes) until Receive takes them; the constant is kept for compatibility.
const ReceiveQueue = 1024

// Session is a WebTransport session. Receive datagrams with Receive (or attach a
// Stream, Reliability or Structured layer, which takes the datagrams over). Close
// releases it.
type Session struct {
	rt     *Runtime
	h      *C.wtd_session
	recv   *recvState // how receives wait (nil when direct)
	direct bool       // DirectReceive: receives wait in a C call

	mu    sync.RWMutex // read: calls using h; write: Close
	freed bool
	// owner is the layer that took over the session's datagrams (a Stream,
	// Reliability or Structured): a session has at most one. Close closes it first.
	owner io.Closer

	done      chan struct{}
	doneOnce  sync.Once
	info      CloseInfo // valid once done is closed
	closeOnce sync.Once
}

func newSession(rt *Runtime, h *C.wtd_session, direct bool) (*Session, error) {
	s := &Session{rt: rt, h: h, direct: direct, done: make(chan struct{})}
	if !direct {
		s.recv = newRecvState()
	}
	if !rt.registerSession(s) {
		rt.freeSession(h)
		return nil, closedErr("runtime")
	}
	return s, nil
}

// markClosed runs with rt.mu held, from the event goroutine (or from Close).

func (s *Session) markClosed(info CloseInfo) {
	s.doneOnce.Do(func() {
		s.info = info
		close(s.done)
	})
}

// use runs f with the handle while the session is not freed.
func (s *Session) use(f func(h *C.wtd_session) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.freed {
		return closedErr("session")
	}
	return f(s.h)
}

// ID is the session id (its CONNECT stream's QUIC stream id).
func (s *Session) ID() uint64 {
	var id uint64
	s.use(func(h *C.wtd_session) error { id = uint64(C.wtd_session_id(h)); return nil })
	return id
}

// Path is the request path (with query) that opened the session.
func (s *Session) Path() string {
	var p string
	s.use(func(h *C.wtd_session) error { p = C.GoString(C.wtd_session_path(h)); return nil })
	return p
}

// Dialect is the session's WebTransport dialect.
func (s *Session) Dialect() Dialect {
	var d Dialect
	s.use(func(h *C.wtd_session) error { d = Dialect(C.wtd_session_dialect(h)); return nil })
	return d
}

// Send sends a datagram without waiting. ErrWouldBlock when the connection's send
// buffer is full, ErrTooLarge beyond MaxDatagramSize, ErrClosed once closed.
func (s *Session) Send(b []byte) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.freed {
		return closedErr("session")
	}
	p, n := bytesPtr(b)
	return send(s.h, p, n)
}

// SendWait sends a datagram, waiting for room in the send buffer (backpressure)
// until ctx is done.
func (s *Session) SendWait(ctx context.Context, b []byte) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.freed {
		return closedErr("session")
	}
	p, n := bytesPtr(b)
	err := sendLook(s.h, p, n)
	if err != errWouldBlock {
		return err
	}
	// The send buffer is full: look again for sendSpin (yielding like a spinning
	// Receive), then wait in C.
	start := time.Now()
	for looks := 1; time.Since(start) < sendSpin; looks++ {
		spinPause(looks)
		if err = sendLook(s.h, p, n); err != errWouldBlock {
			return err
		}
	}
	return waitLoop(ctx, func(ms C.int32_t) error { return sendWait(s.h, p, n, ms) })
}

// sendSpin is how long SendWait keeps looking at a full send buffer before it waits
// in a C call. The buffer usually has room again within microseconds; a goroutine
// that blocks in C holds its thread, and the Go scheduler hands its P over to
// another thread when the call lasts (each look here is a short call into C that
// yields the CPU, so the runtime's threads and the library's get it).
const sendSpin = 50 * time.Microsecond

// Receive returns the next datagram. Datagrams that arrived before the session
// closed are still returned; then an ErrClosed error. What is queued already is
// returned without waiting, even when ctx is done. The slice is the caller's; the
// datagrams one batch took from the library (up to 64) share one allocation, each
// slice capped at its own length (an append never touches another).
func (s *Session) Receive(ctx context.Context) ([]byte, error) {
	if s.direct {
		return recvGrow(ctx, func(buf []byte, n *C.size_t, ms C.int32_t) error {
			return s.use(func(h *C.wtd_session) error {
				p, c := bytesPtr(buf)
				return call(func() C.enum_wtd_result { return C.wtd_session_recv(h, p, c, n, ms) })
			})
		})
	}
	var b []byte
	_, err := s.receive(ctx, func(r *recvState) bool {
		b = r.own()
		return true
	})
	return b, err
}

// ReceiveInto receives the next datagram into buf (no allocation) and returns its
// size, waiting until ctx is done, like Receive. If it does not fit it stays queued
// and ErrBufferTooSmall is returned with the size it needs.
func (s *Session) ReceiveInto(ctx context.Context, buf []byte) (int, error) {
	if s.direct {
		var n C.size_t
		err := waitLoop(ctx, func(ms C.int32_t) error {
			return s.use(func(h *C.wtd_session) error {
				p, c := bytesPtr(buf)
				return call(func() C.enum_wtd_result { return C.wtd_session_recv(h, p, c, &n, ms) })
			})
		})
		if err != nil {
			if isCode(err, CodeBufferTooSmall) {
				return int(n), err // n: the size needed
			}
			return 0, err
		}
		return int(n), nil
	}
	var n int
	taken, err := s.receive(ctx, func(r *recvState) bool {
		return r.take(1, func(d []byte) bool {
			n = len(d)
			return copy(buf, d) == n
		})
	})
	if err == nil && !taken {
		return n, &Error{Code: CodeBufferTooSmall,
			Msg: fmt.Sprintf("datagram of %d bytes does not fit in %d", n, len(buf))}
	}
	return n, err
}

// MaxDatagramSize is the largest payload Send accepts right now.
func (s *Session) MaxDatagramSize() (int, error) {
	var n C.size_t
	err := s.use(func(h *C.wtd_session) error {
		return call(func() C.enum_wtd_result { return C.wtd_session_max_datagram_size(h, &n) })
	})
	return int(n), err
}

// Stats reads the session's counters.
func (s *Session) Stats() (SessionStats, error) {
	var st C.wtd_session_stats
	err := s.use(func(h *C.wtd_session) error {
		return call(func() C.enum_wtd_result { return C.wtd_session_get_stats(h, &st) })
	})
	return SessionStats{
		DatagramsSent: uint64(st.datagrams_sent), BytesSent: uint64(st.bytes_sent),
		DatagramsReceived: uint64(st.datagrams_received), BytesReceived: uint64(st.bytes_received),
		RecvDropped: uint64(st.recv_dropped), SendWouldBlock: uint64(st.send_would_block),
		SendTooLarge: uint64(st.send_too_large), ConnectionUnknownSession: uint64(st.connection_unknown_session),
	}, err
}

// Done is closed when the session has closed (either side); see CloseInfo.
func (s *Session) Done() <-chan struct{} { return s.done }

// CloseInfo tells why the session ended (Kind CloseNone while open).
func (s *Session) CloseInfo() CloseInfo {
	select {
	case <-s.done:
		return s.info
	default:
		return CloseInfo{}
	}
}

// Wait waits until the session closes and returns why.
func (s *Session) Wait(ctx context.Context) (CloseInfo, error) {
	select {
	case <-s.done:
		return s.info, nil
	case <-ctx.Done():
		return CloseInfo{}, ctxErr(ctx)
	}
}

// CloseWithError closes the session with an application code and a UTF-8 reason
// (at most 1024 bytes are sent); the peer sees both. The handle stays valid (stats,
// CloseInfo) until Close. No-op if already closed.
func (s *Session) CloseWithError(code uint32, reason string) error {
	return s.use(func(h *C.wtd_session) error {
		p, n := bytesPtr([]byte(reason))
		return call(func() C.enum_wtd_result { return C.wtd_session_close(h, C.uint32_t(code), p, n) })
	})
}

// Close closes the session (code 0) if still open, frees the layer that owns its
// datagrams (Stream, Reliability or Structured), if any, and releases the handle.
// Safe to call twice.
func (s *Session) Close() error {
	s.closeOnce.Do(func() {
		s.mu.RLock()
		owner := s.owner
		s.mu.RUnlock()
		if owner != nil {
			owner.Close()
		}
		// Wake blocked calls (send_wait) before taking the write lock.
		s.use(func(h *C.wtd_session) error { C.wtd_session_close(h, 0, empty, 0); return nil })
		s.mu.Lock()
		s.freed = true
		s.mu.Unlock()
		s.rt.freeSession(s.h)
		if s.recv != nil {
			s.recv.close() // freed: nothing more is received
		}
		s.markClosed(CloseInfo{Kind: CloseLocal})
	})
	return nil
}

// takeOver creates the layer that owns the session's datagrams (create makes the C
// handle) and records it as the session's owner, under the session's write lock.
func (s *Session) takeOver(owner io.Closer, create func(h *C.wtd_session) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.freed {
		return closedErr("session")
	}
	if err := create(s.h); err != nil {
		return err
	}
	s.owner = owner
	return nil
}
