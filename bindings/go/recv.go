package wtd

/*
#include "wtdatagram.h"
*/
import "C"

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// The batches Receive takes from the library: at most rxCount datagrams and rxBytes
// bytes per call into C.
const (
	rxCount = 64
	rxBytes = 32 << 10
)

// recvSpin is how long a Receive that finds the queue empty keeps looking before it
// parks, when the session's previous wait was shorter than that: the policy of
// wtd_session_recv (250 us). A goroutine that parks is woken tens of microseconds
// after the datagram came (an event, then the scheduler), which would add to every
// round trip; an idle session stops spinning and costs no CPU.
const recvSpin = 250 * time.Microsecond

// yieldEvery: a spinning Receive or SendWait gives its thread's CPU away
// (sched_yield) every this many looks, not at each: a yield is a context switch
// whenever another thread is runnable, and on 2 cores a yield at every look made
// the echo round trip 1.1-1.7x slower (bench: 86-151 us against 82-93 us) without
// moving more datagrams; a thread the kernel wakes preempts a spinner anyway.
const yieldEvery = 8

// spinPause is the pause before a spin's next look: the P goes to other goroutines,
// and every yieldEvery looks the thread's CPU to other threads (osYield).
func spinPause(looks int) {
	runtime.Gosched()
	if looks%yieldEvery == 0 {
		osYield()
	}
}

// rxBatch is one batch of datagrams taken from the library's queue, handed out in
// order (next is the first not handed out yet).
type rxBatch struct {
	b    *Batch
	n    C.size_t // written by C: how many were taken
	next int
	// slab holds the datagrams from offset base of b on, copied out for Receive (see
	// own); nil until a Receive needs it.
	slab []byte
	base int
}

var rxPool = sync.Pool{New: func() any { return &rxBatch{b: NewBatch(rxCount, rxBytes)} }}

// recvState is how a session's receives wait (datagram events are off: datagrams wait
// in the library's per-session queue, bounded by TransportConfig.RecvQueue and
// RecvQueueBytes).
//
// A Receive takes what is queued in one call into C, up to rxCount datagrams, and
// hands them out one by one to the following calls; so busy receiving costs one call
// into C per batch, and nothing but the batch being handed out is held outside the
// library's bounded queue. Finding the queue empty it looks again in C for recvSpin
// (when waits have been short), then asks for one DATAGRAMS_READY event
// (wtd_session_notify_readable) and parks the goroutine until the event goroutine
// delivers it: no OS thread is held while it waits.
type recvState struct {
	mu    sync.Mutex
	batch *rxBatch // datagrams taken and not handed out yet (nil: none)
	spin  bool     // the last wait was short: the next one spins first
	// waiting counts the receives parked on ready (under mu).
	waiting int
	// parks counts the times a receive parked (for tests).
	parks atomic.Uint64
	// ready holds a token once a DATAGRAMS_READY event came (or a receive that left
	// datagrams behind passes the news on).
	ready chan struct{}
}

func newRecvState() *recvState {
	return &recvState{spin: true, ready: make(chan struct{}, 1)}
}

func (r *recvState) wake() {
	select {
	case r.ready <- struct{}{}:
	default:
	}
}

// errEmpty: nothing queued (internal).
var errEmpty = &Error{Code: CodeTimeout, Msg: "no datagram queued"}

// fill takes a batch from the library (r.mu held, r.batch nil) without waiting:
// errEmpty when none is queued.
func (s *Session) fill(r *recvState) error {
	rb := rxPool.Get().(*rxBatch)
	b := rb.b
	b.Reset()
	look := func() error {
		s.mu.RLock()
		defer s.mu.RUnlock()
		if s.freed {
			return closedErr("session")
		}
		return recvLook(s.h, b, &rb.n)
	}
	err := look()
	if isCode(err, CodeBufferTooSmall) {
		// One datagram larger than a batch: a batch of its own, not pooled.
		need := int(b.lens[0])
		rxPool.Put(rb)
		rb = &rxBatch{b: NewBatch(1, need)}
		b = rb.b
		err = look()
	}
	if err != nil {
		if len(b.lens) == rxCount {
			rxPool.Put(rb)
		}
		if isCode(err, CodeTimeout) {
			return errEmpty
		}
		return err
	}
	b.received(int(rb.n))
	rb.next, rb.slab = 0, nil
	r.batch = rb
	return nil
}

// take hands at most max datagrams of the batch to f in order (r.mu held, r.batch
// set) while f accepts them, and tells whether it accepted any. The batch goes back
// to the pool once handed out.
func (r *recvState) take(max int, f func(d []byte) bool) bool {
	rb := r.batch
	k := rb.next
	for rb.next < rb.b.Len() && rb.next-k < max && f(rb.b.At(rb.next)) {
		rb.next++
	}
	took := rb.next > k
	if rb.next == rb.b.Len() {
		r.batch, rb.slab = nil, nil
		if len(rb.b.lens) == rxCount {
			rxPool.Put(rb) // no longer ours from here on
		}
	}
	return took
}

// own hands out the next datagram of the batch (r.mu held, r.batch set) as a slice
// of its own, for Receive: the first time, the rest of the batch is copied into one
// allocation that its datagrams share (each capped at its own length), so a batch
// costs one allocation rather than one per datagram.
func (r *recvState) own() []byte {
	rb := r.batch
	b := rb.b
	if rb.slab == nil {
		rb.base = b.offs[rb.next]
		rb.slab = make([]byte, b.Bytes()-rb.base)
		copy(rb.slab, b.buf[rb.base:b.Bytes()])
	}
	lo, hi := b.offs[rb.next]-rb.base, b.offs[rb.next+1]-rb.base
	d := rb.slab[lo:hi:hi]
	r.take(1, func([]byte) bool { return true })
	return d
}

// receive calls take (r.mu held, r.batch set: it hands datagrams out with take or
// own) once a datagram is queued, waiting for one until ctx is done;
// what is queued is taken without waiting, even when ctx is done. After the session
// closed, what was queued before is still received, then the close is the error.
func (s *Session) receive(ctx context.Context, take func(r *recvState) bool) (taken bool, err error) {
	r := s.recv
	var start time.Time // when this call found the queue empty first
	r.mu.Lock()
	for {
		if r.batch == nil {
			err = s.fill(r)
			if err == errEmpty && start.IsZero() {
				start = time.Now()
				if r.spin && ctx.Err() == nil {
					// Look again for recvSpin: short calls into C, so the scheduler
					// never hands this P over, yielding the P between looks and the
					// thread every yieldEvery looks.
					for looks := 1; err == errEmpty && time.Since(start) < recvSpin; looks++ {
						spinPause(looks)
						err = s.fill(r)
					}
				}
			}
		}
		if r.batch != nil {
			if !start.IsZero() {
				r.spin = time.Since(start) < recvSpin
			}
			taken = take(r)
			if r.waiting > 0 {
				s.passOn(r)
			}
			r.mu.Unlock()
			return taken, nil
		}
		if err != errEmpty {
			r.mu.Unlock()
			return false, err
		}
		if err = ctxErr(ctx); err != nil {
			r.spin = false
			r.mu.Unlock()
			return false, err
		}
		// Park until a DATAGRAMS_READY event (asked for now: at once if a datagram
		// came since the last look), the close or ctx.
		err = s.use(func(h *C.wtd_session) error {
			return call(func() C.enum_wtd_result { return C.wtd_session_notify_readable(h) })
		})
		if err != nil {
			r.mu.Unlock()
			return false, err
		}
		r.waiting++
		r.parks.Add(1)
		r.mu.Unlock()
		select {
		case <-r.ready:
		case <-s.done:
			// Every datagram that came before the close is queued in the library:
			// the next look takes them, then reports the close.
		case <-ctx.Done():
		}
		r.mu.Lock()
		r.waiting--
		if ctx.Err() != nil && r.batch == nil {
			// Queued datagrams are still taken without waiting.
			if err = s.fill(r); err == errEmpty {
				r.spin = false
				r.mu.Unlock()
				return false, ctxErr(ctx)
			}
		}
	}
}

// passOn makes sure another parked receive learns of datagrams left behind (r.mu
// held): at once for those in the batch, by a DATAGRAMS_READY event for those that
// may wait in the library.
func (s *Session) passOn(r *recvState) {
	if r.batch != nil {
		r.wake()
		return
	}
	_ = s.use(func(h *C.wtd_session) error {
		return call(func() C.enum_wtd_result { return C.wtd_session_notify_readable(h) })
	})
}

// held is the number of datagrams taken from the library and not handed out yet.
func (r *recvState) held() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.batch == nil {
		return 0
	}
	return r.batch.b.Len() - r.batch.next
}

// close gives the batch back (the session is freed: nothing more is received).
func (r *recvState) close() {
	r.mu.Lock()
	r.batch = nil
	r.mu.Unlock()
}
