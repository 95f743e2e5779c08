package wtd

/*
#include "wtdatagram.h"
*/
import "C"

import (
	"sync"
	"time"
)

// Broadcaster sends one datagram to a set of sessions and streams without waiting
// for any of them (a slow or full peer just does not accept it). Members leave the
// set by themselves when they close. Runtime.Close closes it.
type Broadcaster struct {
	rt   *Runtime
	h    *C.wtd_broadcaster
	mu   sync.RWMutex
	free bool
	once sync.Once
}

// NewBroadcaster creates an empty broadcaster on rt.
func NewBroadcaster(rt *Runtime) (*Broadcaster, error) {
	if rt == nil {
		return nil, &Error{Code: CodeInvalidArgument, Msg: "runtime is nil"}
	}
	b := &Broadcaster{rt: rt}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.isClosed() {
		return nil, closedErr("runtime")
	}
	if err := call(func() C.enum_wtd_result { return C.wtd_broadcaster_new(rt.h, &b.h) }); err != nil {
		return nil, err
	}
	rt.closers[b] = struct{}{}
	return b, nil
}

func (b *Broadcaster) use(f func(h *C.wtd_broadcaster) error) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.free {
		return closedErr("broadcaster")
	}
	return f(b.h)
}

// AddSession adds a session: broadcasts reach it as raw datagrams, without waiting
// (a full connection send buffer means "not accepted"); priority and time-to-live do
// not apply. Adding a member twice is a no-op. ErrClosed for a closed session,
// ErrInvalidState after Shutdown.
func (b *Broadcaster) AddSession(s *Session) error {
	if s == nil {
		return &Error{Code: CodeInvalidArgument, Msg: "session is nil"}
	}
	return b.use(func(h *C.wtd_broadcaster) error {
		return s.use(func(sh *C.wtd_session) error {
			return call(func() C.enum_wtd_result { return C.wtd_broadcaster_add_session(h, sh) })
		})
	})
}

// RemoveSession removes a session; ErrNotFound if it is not a member.
func (b *Broadcaster) RemoveSession(s *Session) error {
	if s == nil {
		return &Error{Code: CodeInvalidArgument, Msg: "session is nil"}
	}
	return b.use(func(h *C.wtd_broadcaster) error {
		return s.use(func(sh *C.wtd_session) error {
			return call(func() C.enum_wtd_result { return C.wtd_broadcaster_remove_session(h, sh) })
		})
	})
}

// AddStream adds a datagram stream: broadcasts are queued on it with the
// broadcast's priority and time-to-live (a full queue means "not accepted").
func (b *Broadcaster) AddStream(st *Stream) error {
	if st == nil {
		return &Error{Code: CodeInvalidArgument, Msg: "stream is nil"}
	}
	return b.use(func(h *C.wtd_broadcaster) error {
		return st.use(func(sh *C.wtd_stream) error {
			return call(func() C.enum_wtd_result { return C.wtd_broadcaster_add_stream(h, sh) })
		})
	})
}

// RemoveStream removes a stream; ErrNotFound if it is not a member.
func (b *Broadcaster) RemoveStream(st *Stream) error {
	if st == nil {
		return &Error{Code: CodeInvalidArgument, Msg: "stream is nil"}
	}
	return b.use(func(h *C.wtd_broadcaster) error {
		return st.use(func(sh *C.wtd_stream) error {
			return call(func() C.enum_wtd_result { return C.wtd_broadcaster_remove_stream(h, sh) })
		})
	})
}

// SessionCount is the number of sessions in the set.
func (b *Broadcaster) SessionCount() int {
	n := 0
	b.use(func(h *C.wtd_broadcaster) error { n = int(C.wtd_broadcaster_session_count(h)); return nil })
	return n
}

// StreamCount is the number of streams in the set (closed ones leave at the next
// broadcast).
func (b *Broadcaster) StreamCount() int {
	n := 0
	b.use(func(h *C.wtd_broadcaster) error { n = int(C.wtd_broadcaster_stream_count(h)); return nil })
	return n
}

// Broadcast sends data (copied once, shared by all) to every member without
// waiting and returns how many accepted it. prio and ttl apply to streams only.
// After Shutdown it reaches nobody (0, nil).
func (b *Broadcaster) Broadcast(data []byte, prio Priority, ttl time.Duration) (int, error) {
	var n C.size_t
	err := b.use(func(h *C.wtd_broadcaster) error {
		p, l := bytesPtr(data)
		return call(func() C.enum_wtd_result {
			return C.wtd_broadcaster_broadcast(h, p, l, C.uint8_t(prio), ttlMs(ttl), &n)
		})
	})
	return int(n), err
}

// Shutdown empties the set and refuses new members (ErrInvalidState) from now on.
func (b *Broadcaster) Shutdown() error {
	return b.use(func(h *C.wtd_broadcaster) error {
		return call(func() C.enum_wtd_result { return C.wtd_broadcaster_shutdown(h) })
	})
}

// Close shuts the broadcaster down and releases it (the members stay open). Safe
// to call twice.
func (b *Broadcaster) Close() error {
	b.once.Do(func() {
		b.mu.Lock()
		b.free = true
		C.wtd_broadcaster_free(b.h)
		b.mu.Unlock()
		b.rt.mu.Lock()
		delete(b.rt.closers, b)
		b.rt.mu.Unlock()
	})
	return nil
}
