package wtd

/*
#include <stdlib.h>
#include <string.h>
#include "wtdatagram.h"

// Release the events ring[from..to) of a ring of mask+1 events (indexes taken modulo
// the size), in one call into C.
static void wtd_go_release_range(wtd_event *ring, size_t mask, size_t from, size_t to) {
	for (size_t i = from; i != to; i++)
		wtd_event_release(&ring[i & mask]);
}
*/
import "C"

import (
	"sync"
	"sync/atomic"
	"unsafe"
)

// The smallest ring a session allocates, and the largest it keeps once drained
// (a burst's larger ring is given back).
const (
	ringMin  = 64
	ringKeep = 1024
)

// releaseBatch is how many received datagrams a session keeps before it releases
// them to the library in one call (it always does when its queue runs empty).
const releaseBatch = 64

// recvQueue holds a session's DATAGRAM events from the moment the event goroutine
// takes them from the library until Receive has copied them out and released them.
//
// The events live in C memory (a ring of wtd_event; the ABI lets an event be copied
// before its one release), their payloads stay in the library: nothing is copied
// until Receive copies a payload into the []byte it returns. An event counts against
// the session's receive queue bounds in the library (TransportConfig.RecvQueue and
// RecvQueueBytes) until it is released, so the library's bounds are this queue's
// bounds too: a consumer that does not keep up loses datagrams in the library
// (SessionStats.RecvDropped), exactly as with DirectReceive or the C ABI, and the
// memory held here never exceeds those bounds.
//
// Positions are absolute counters: released < taken <= queued, the ring holds
// [released, queued) and index i lives at ring[i & (size-1)].
type recvQueue struct {
	mu       sync.Mutex
	ring     *C.wtd_event // C memory; nil until the first datagram, or after close
	size     uint64       // a power of two (0 when ring is nil)
	released uint64       // events before this one were released
	taken    uint64       // events before this one were received (copied out)
	queued   uint64       // events before this one were delivered
	closed   bool         // released for good: deliveries are refused
	// early holds copies of datagrams that came before the session was registered
	// (Runtime orphans); they are received before the ring's.
	early [][]byte
	// notify holds a token while datagrams may be waiting: Receive waits on it.
	notify chan struct{}
	// waiting counts the Receive calls waiting on notify.
	waiting atomic.Int32
}

func newRecvQueue() *recvQueue {
	return &recvQueue{notify: make(chan struct{}, 1)}
}

func (q *recvQueue) at(i uint64) *C.wtd_event {
	return (*C.wtd_event)(unsafe.Add(unsafe.Pointer(q.ring), uintptr(i&(q.size-1))*C.sizeof_wtd_event))
}

// grow makes room for one more event (called with q.mu held).
func (q *recvQueue) grow() {
	used := q.queued - q.released
	if q.ring != nil && used < q.size {
		return
	}
	size := q.size * 2
	if size < ringMin {
		size = ringMin
	}
	ring := (*C.wtd_event)(C.malloc(C.size_t(size) * C.sizeof_wtd_event))
	if ring == nil {
		panic("wtd: out of C memory for a session's receive queue")
	}
	for i := q.released; i != q.queued; i++ {
		dst := (*C.wtd_event)(unsafe.Add(unsafe.Pointer(ring), uintptr(i&(size-1))*C.sizeof_wtd_event))
		*dst = *q.at(i)
	}
	if q.ring != nil {
		C.free(unsafe.Pointer(q.ring))
	}
	q.ring, q.size = ring, size
}

// push takes over the DATAGRAM events evs (each is zeroed in evs, so releasing it
// there is a no-op) and wakes a Receive; it tells whether one was waiting. Called
// by the event goroutine.
func (q *recvQueue) push(evs []C.wtd_event) bool {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return false // left in evs: released with the batch
	}
	for i := range evs {
		q.grow()
		*q.at(q.queued) = evs[i]
		q.queued++
		evs[i] = C.wtd_event{}
	}
	q.mu.Unlock()
	q.wake()
	return q.waiting.Load() > 0
}

// pushCopy queues a datagram that is already a copy (registration of a session
// whose first datagrams came before it). Called with rt.mu held, before any event of
// the ring.
func (q *recvQueue) pushCopy(b []byte) {
	q.mu.Lock()
	if !q.closed {
		q.early = append(q.early, b)
	}
	q.mu.Unlock()
	q.wake()
}

func (q *recvQueue) wake() {
	select {
	case q.notify <- struct{}{}:
	default:
	}
}

// pop copies out the next datagram into a new slice: ok false when none is queued.
func (q *recvQueue) pop() (b []byte, ok bool) {
	b, _, ok = q.take(nil, false)
	return b, ok
}

// popInto copies the next datagram into buf and returns its size: ok false when none
// is queued; n > len(buf) when it does not fit (then it stays queued).
func (q *recvQueue) popInto(buf []byte) (n int, ok bool) {
	_, n, ok = q.take(buf, true)
	return n, ok
}

// take copies out the next datagram: into dst (b = dst[:n]) when into is set, where
// one larger than dst is left queued (b nil, n its size), else into a new slice. ok
// false when none is queued. The events taken are released in batches, and always
// when the queue runs empty, so an idle consumer holds none of the library's queue
// budget.
func (q *recvQueue) take(dst []byte, into bool) (b []byte, n int, ok bool) {
	q.mu.Lock()
	var src []byte
	early := len(q.early) > 0
	switch {
	case early:
		src = q.early[0]
	case q.taken != q.queued:
		ev := q.at(q.taken)
		src = unsafe.Slice((*byte)(unsafe.Pointer(ev.data)), int(ev.len))
	default:
		q.mu.Unlock()
		return nil, 0, false
	}
	n = len(src)
	switch {
	case into && n > len(dst):
		q.mu.Unlock()
		return nil, n, true
	case into:
		b = dst[:copy(dst, src)]
	case early:
		b = src // already a copy of its own
	default:
		b = make([]byte, len(src)) // with the copy: one allocation, not zeroed first
		copy(b, src)
	}
	if early {
		q.early[0] = nil
		q.early = q.early[1:]
		if len(q.early) == 0 {
			q.early = nil
		}
	} else {
		q.taken++
	}
	more := len(q.early) > 0 || q.taken != q.queued
	if !early && (!more || q.taken-q.released >= releaseBatch) {
		q.releaseTaken()
	}
	q.mu.Unlock()
	if more {
		q.wake() // another Receive may be waiting
	}
	return b, n, true
}

// releaseTaken releases the events already received (q.mu held) and gives a large
// ring back once it is empty.
func (q *recvQueue) releaseTaken() {
	if q.taken == q.released {
		return
	}
	C.wtd_go_release_range(q.ring, C.size_t(q.size-1), C.size_t(q.released), C.size_t(q.taken))
	q.released = q.taken
	if q.released == q.queued && q.size > ringKeep {
		C.free(unsafe.Pointer(q.ring))
		q.ring, q.size = nil, 0
	}
}

// pending is the number of datagrams queued and not yet received.
func (q *recvQueue) pending() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.early) + int(q.queued-q.taken)
}

// ringSize is the ring's capacity in events (0 when none is allocated).
func (q *recvQueue) ringSize() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return int(q.size)
}

// close releases every event still held and frees the ring; later deliveries are
// refused (their events stay with the caller, which releases them).
func (q *recvQueue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	q.closed = true
	q.early = nil
	if q.ring != nil {
		C.wtd_go_release_range(q.ring, C.size_t(q.size-1), C.size_t(q.released), C.size_t(q.queued))
		C.free(unsafe.Pointer(q.ring))
	}
	q.ring, q.size = nil, 0
	q.released, q.taken = q.queued, q.queued
}
