package wtd

/*
#include <stdint.h>
#include "wtdatagram.h"
enum wtd_result wtd_go_stream_send_packed(const wtd_stream *stream, const uint8_t *base,
                                          const size_t *lens, size_t count, uint8_t priority,
                                          int32_t ttl_ms, size_t *out_queued);
enum wtd_result wtd_go_session_send_packed(const wtd_session *session, const uint8_t *base,
                                           const size_t *lens, size_t count, int32_t timeout_ms,
                                           size_t *out_sent);
*/
import "C"

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Batch is a reusable set of datagrams packed back to back in one buffer. With
// Stream.SendBatch and Stream.ReceiveBatch a whole batch crosses into the library
// in one call, without per-datagram allocation: Reset it and reuse it.
type Batch struct {
	buf  []byte
	lens []C.size_t
	offs []int // offs[i] is where datagram i starts; offs[n] = bytes used
}

// NewBatch returns a batch of at most maxCount datagrams and maxBytes bytes in
// total (for receiving, maxBytes of at least one maximum datagram, e.g. 65536).
func NewBatch(maxCount, maxBytes int) *Batch {
	if maxCount < 1 {
		maxCount = 1
	}
	if maxBytes < 0 {
		maxBytes = 0
	}
	return &Batch{
		buf:  make([]byte, maxBytes),
		lens: make([]C.size_t, maxCount),
		offs: append(make([]int, 0, maxCount+1), 0),
	}
}

// Len is the number of datagrams in the batch.
func (b *Batch) Len() int { return len(b.offs) - 1 }

// Cap is the maximum number of datagrams.
func (b *Batch) Cap() int { return len(b.lens) }

// Bytes is the total size of the datagrams in the batch.
func (b *Batch) Bytes() int { return b.offs[len(b.offs)-1] }

// At returns datagram i; it aliases the batch's buffer (valid until Reset or the
// next receive into the batch).
func (b *Batch) At(i int) []byte {
	return b.buf[b.offs[i]:b.offs[i+1]:b.offs[i+1]]
}

// received records the sizes of n datagrams the library packed into b.buf (b.lens).
func (b *Batch) received(n int) {
	off := 0
	for i := 0; i < n; i++ {
		off += int(b.lens[i])
		b.offs = append(b.offs, off)
	}
}

// Reset empties the batch (keeping its buffers).
func (b *Batch) Reset() { b.offs = b.offs[:1] }

// Append copies p into the batch; false (and nothing added) when the batch is full
// by count or by bytes.
func (b *Batch) Append(p []byte) bool {
	n, used := b.Len(), b.Bytes()
	if n >= len(b.lens) || used+len(p) > len(b.buf) {
		return false
	}
	copy(b.buf[used:], p)
	b.lens[n] = C.size_t(len(p))
	b.offs = append(b.offs, used+len(p))
	return true
}

// SendBatch queues every datagram of b with one priority and time-to-live, in one
// call into the library, and returns how many were queued (the others failed as
// Send would, and are counted in the stream's stats). The batch is not modified.
func (st *Stream) SendBatch(b *Batch, prio Priority, ttl time.Duration) (int, error) {
	if b == nil {
		return 0, &Error{Code: CodeInvalidArgument, Msg: "batch is nil"}
	}
	var queued C.size_t
	n := b.Len()
	if n == 0 {
		return 0, nil
	}
	err := st.use(func(h *C.wtd_stream) error {
		p, _ := bytesPtr(b.buf[:b.Bytes()])
		return call(func() C.enum_wtd_result {
			return C.wtd_go_stream_send_packed(h, p, &b.lens[0], C.size_t(n), C.uint8_t(prio), ttlMs(ttl), &queued)
		})
	})
	return int(queued), err
}

var batchPool = sync.Pool{New: func() any { return NewBatch(64, 64*1500) }}

// SendMultiple queues msgs like SendBatch (copying them into a pooled batch) and
// returns how many were queued.
func (st *Stream) SendMultiple(msgs [][]byte, prio Priority, ttl time.Duration) (int, error) {
	return sendChunks(msgs, func(b *Batch) (int, error) { return st.SendBatch(b, prio, ttl) })
}

// sendChunks copies msgs into a pooled batch, chunk by chunk, and hands each chunk
// to send; a datagram larger than the pooled buffer goes in a batch of its own. It
// returns how many were sent, stopping at the first error.
func sendChunks(msgs [][]byte, send func(*Batch) (int, error)) (int, error) {
	b := batchPool.Get().(*Batch)
	defer batchPool.Put(b)
	total := 0
	for len(msgs) > 0 {
		b.Reset()
		k := 0
		for k < len(msgs) && b.Append(msgs[k]) {
			k++
		}
		chunk := b
		if k == 0 { // larger than the pooled buffer: on its own
			chunk = NewBatch(1, len(msgs[0]))
			chunk.Append(msgs[0])
			k = 1
		}
		n, err := send(chunk)
		total += n
		if err != nil {
			return total, err
		}
		msgs = msgs[k:]
	}
	return total, nil
}

// ReceiveBatch replaces b's content with the datagrams waiting on the stream, up to
// b's capacity: it waits (until ctx is done) for the first, then takes what is
// queued, all in one call per wait slice. It returns b.Len(). A datagram larger
// than b's buffer is ErrBufferTooSmall (it stays queued).
func (st *Stream) ReceiveBatch(ctx context.Context, b *Batch) (int, error) {
	if b == nil {
		return 0, &Error{Code: CodeInvalidArgument, Msg: "batch is nil"}
	}
	b.Reset()
	var count C.size_t
	err := waitLoop(ctx, func(ms C.int32_t) error {
		return st.use(func(h *C.wtd_stream) error {
			p, c := bytesPtr(b.buf)
			return call(func() C.enum_wtd_result {
				return C.wtd_stream_receive_multiple(h, p, c, &b.lens[0], C.size_t(len(b.lens)), &count, ms)
			})
		})
	})
	if err != nil {
		return 0, err
	}
	b.received(int(count))
	return int(count), nil
}

// ReceiveInto receives the next datagram into buf (no allocation) and returns its
// size, waiting until ctx is done. If it does not fit it stays queued and
// ErrBufferTooSmall is returned with the size it needs.
func (st *Stream) ReceiveInto(ctx context.Context, buf []byte) (int, error) {
	var n C.size_t
	err := waitLoop(ctx, func(ms C.int32_t) error {
		return st.use(func(h *C.wtd_stream) error {
			p, c := bytesPtr(buf)
			return call(func() C.enum_wtd_result { return C.wtd_stream_receive(h, p, c, &n, ms) })
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

// SendBatch sends every datagram of b in order, waiting for room in the send buffer
// (backpressure) until ctx is done, with one call into the library per 256
// datagrams. It returns how many were sent: all of them, or the first k and the
// error that stopped the next one (ErrTooLarge, ErrClosed, a context error).
func (s *Session) SendBatch(ctx context.Context, b *Batch) (int, error) {
	if b == nil {
		return 0, &Error{Code: CodeInvalidArgument, Msg: "batch is nil"}
	}
	n, k := b.Len(), 0
	for k < n {
		var sent C.size_t
		err := waitLoop(ctx, func(ms C.int32_t) error {
			return s.use(func(h *C.wtd_session) error {
				p, _ := bytesPtr(b.buf[b.offs[k]:b.offs[n]])
				return call(func() C.enum_wtd_result {
					return C.wtd_go_session_send_packed(h, p, &b.lens[k], C.size_t(n-k), ms, &sent)
				})
			})
		})
		if err != nil {
			return k, err
		}
		k += int(sent)
	}
	return k, nil
}

// SendMultiple is SendBatch for msgs (copied into a pooled batch).
func (s *Session) SendMultiple(ctx context.Context, msgs [][]byte) (int, error) {
	return sendChunks(msgs, func(b *Batch) (int, error) { return s.SendBatch(ctx, b) })
}

// ReceiveBatch replaces b's content with the datagrams waiting on the session, up
// to b's capacity: it waits (until ctx is done) for the first, then takes what is
// queued, waiting like Receive (or, with TransportConfig.DirectReceive, in one C
// call). A datagram larger than b's buffer is ErrBufferTooSmall (it stays queued);
// once the session closed and its queue is empty, ErrClosed.
func (s *Session) ReceiveBatch(ctx context.Context, b *Batch) (int, error) {
	if b == nil {
		return 0, &Error{Code: CodeInvalidArgument, Msg: "batch is nil"}
	}
	b.Reset()
	if !s.direct {
		need := 0
		taken, err := s.receive(ctx, func(r *recvState) bool {
			return r.take(b.Cap(), func(d []byte) bool {
				if b.Append(d) {
					return true
				}
				if b.Len() == 0 {
					need = len(d)
				}
				return false
			})
		})
		if err == nil && !taken {
			return 0, &Error{Code: CodeBufferTooSmall,
				Msg: fmt.Sprintf("datagram of %d bytes does not fit in the batch", need)}
		}
		return b.Len(), err
	}
	var count C.size_t
	err := waitLoop(ctx, func(ms C.int32_t) error {
		return s.use(func(h *C.wtd_session) error {
			p, c := bytesPtr(b.buf)
			return call(func() C.enum_wtd_result {
				return C.wtd_session_recv_multiple(h, p, c, &b.lens[0], C.size_t(len(b.lens)), &count, ms)
			})
		})
	})
	if err != nil {
		return 0, err
	}
	b.received(int(count))
	return int(count), nil
}
