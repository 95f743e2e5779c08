// Package wtd is an idiomatic Go binding of libwtdatagram (WebTransport datagrams
// over HTTP/3 and QUIC) through its C ABI (include/wtdatagram.h).
//
// Events are consumed in pull mode: each Runtime owns one goroutine that calls
// wtd_runtime_next_event and dispatches session requests, datagrams and session
// closes to Go channels. No library thread ever calls into Go.
//
// Everything that waits takes a context.Context. When the context's deadline passes
// the error is an *Error with CodeTimeout that also wraps context.DeadlineExceeded,
// so both errors.Is(err, ErrTimeout) and errors.Is(err, context.DeadlineExceeded)
// hold. When the context is canceled, context.Canceled is returned as is.
package wtd

/*
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <stdint.h>
#include "wtdatagram.h"

int wtd_go_poll(int fd, int ms) {
	struct pollfd p;
	p.fd = fd;
	p.events = POLLIN;
	p.revents = 0;
	return poll(&p, 1, ms);
}

// Monitor alerts: the library calls the trampoline where events are delivered,
// which in pull mode is inside wtd_runtime_next_event on the Runtime's event
// goroutine (a Go thread), never on a library thread. The userdata is a
// runtime/cgo.Handle; the binding deletes it itself after wtd_monitor_free (so no
// userdata_free is needed).
extern void wtdGoAlert(wtd_monitor_alert *alert, uintptr_t handle);

static void wtd_go_alert_trampoline(const wtd_monitor_alert *alert, void *userdata) {
	wtdGoAlert((wtd_monitor_alert *)alert, (uintptr_t)userdata);
}

enum wtd_result wtd_go_monitor_watch(const wtd_monitor *monitor, uintptr_t handle) {
	return wtd_monitor_set_alert_callback(monitor, wtd_go_alert_trampoline, (void *)handle, NULL);
}

// Batch send of datagrams packed back to back in one buffer (`lens[i]` bytes each):
// the wtd_buffer array is built here, in C memory, so Go passes only pointer-free
// memory (no pinning, no per-datagram crossing).
enum wtd_result wtd_go_stream_send_packed(const wtd_stream *stream, const uint8_t *base,
                                          const size_t *lens, size_t count, uint8_t priority,
                                          int32_t ttl_ms, size_t *out_queued) {
	wtd_buffer items[64];
	size_t queued = 0, off = 0;
	*out_queued = 0;
	while (count > 0) {
		size_t n = count < 64 ? count : 64, q = 0;
		for (size_t i = 0; i < n; i++) {
			items[i].data = base + off;
			items[i].len = lens[i];
			off += lens[i];
		}
		enum wtd_result r = wtd_stream_send_multiple(stream, items, n, priority, ttl_ms, &q);
		if (r != WTD_OK)
			return r;
		queued += q;
		*out_queued = queued;
		lens += n;
		count -= n;
	}
	return WTD_OK;
}

// The same for a session (wtd_session_send_multiple waits up to timeout_ms in all):
// at most 256 datagrams per call, the caller goes on with the rest.
enum wtd_result wtd_go_session_send_packed(const wtd_session *session, const uint8_t *base,
                                           const size_t *lens, size_t count, int32_t timeout_ms,
                                           size_t *out_sent) {
	wtd_buffer items[256];
	size_t off = 0;
	if (count > 256)
		count = 256;
	for (size_t i = 0; i < count; i++) {
		items[i].data = base + off;
		items[i].len = lens[i];
		off += lens[i];
	}
	return wtd_session_send_multiple(session, items, count, timeout_ms, out_sent);
}

// The hot paths' calls (send, receive) return their error message with their result,
// copied in the same call into C (wtd_last_error is per thread), so the goroutine need
// not lock its OS thread around them.
typedef struct {
	enum wtd_result r;
	char *msg; // malloc'ed copy of wtd_last_error() when r != WTD_OK (the caller frees it)
} wtd_go_res;

static wtd_go_res wtd_go_res_of(enum wtd_result r) {
	wtd_go_res res = {r, NULL};
	if (r != WTD_OK) {
		const char *m = wtd_last_error();
		size_t n = strlen(m);
		res.msg = malloc(n + 1);
		if (res.msg != NULL)
			memcpy(res.msg, m, n + 1);
	}
	return res;
}

// SendWait's wait, once its spin is over (see Session.SendWait).
static wtd_go_res wtd_go_send_wait(const wtd_session *s, const uint8_t *p, size_t n,
                                   int32_t timeout_ms) {
	return wtd_go_res_of(wtd_session_send_wait(s, p, n, timeout_ms));
}

// A look of SendWait's spin: queue the datagram if the send buffer has room
// (wtd_session_send_wait with a timeout of 0, which is not counted as a would-block
// send); WTD_ERR_WOULD_BLOCK if it is full.
static wtd_go_res wtd_go_send_look(const wtd_session *s, const uint8_t *p, size_t n) {
	enum wtd_result r = wtd_session_send_wait(s, p, n, 0);
	if (r == WTD_ERR_TIMEOUT)
		return (wtd_go_res){WTD_ERR_WOULD_BLOCK, NULL};
	return wtd_go_res_of(r);
}

// Session.Send: wtd_session_send with its message.
static wtd_go_res wtd_go_send(const wtd_session *s, const uint8_t *p, size_t n) {
	return wtd_go_res_of(wtd_session_send(s, p, n));
}

// Receive's call: take up to `max` queued datagrams of `s` without waiting
// (wtd_session_recv_multiple with a timeout of 0) into buf/lens.
static wtd_go_res wtd_go_recv_look(const wtd_session *s, uint8_t *buf, size_t cap, size_t *lens,
                                   size_t max, size_t *n) {
	enum wtd_result r = wtd_session_recv_multiple(s, buf, cap, lens, max, n, 0);
	if (r != WTD_ERR_TIMEOUT)
		return wtd_go_res_of(r);
	return (wtd_go_res){r, NULL}; // an empty queue: no message to copy
}
*/
import "C"

import (
	"context"
	"runtime"
	"sync"
	"unsafe"
)

// empty is a 1-byte C buffer used as the data pointer of empty payloads.
var empty = (*C.uint8_t)(C.calloc(1, 1))

// bytesPtr returns a pointer to b's data for the duration of a C call (C does not
// retain it) or a valid non-NULL pointer for an empty slice.
func bytesPtr(b []byte) (*C.uint8_t, C.size_t) {
	if len(b) == 0 {
		return empty, 0
	}
	return (*C.uint8_t)(unsafe.Pointer(&b[0])), C.size_t(len(b))
}

// call runs f on a locked OS thread so that wtd_last_error (thread-local) belongs to
// f's C call, and converts its result into an error.
func call(f func() C.enum_wtd_result) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r := f()
	if r == C.WTD_OK {
		return nil
	}
	return &Error{Code: Code(r), Msg: C.GoString(C.wtd_last_error())}
}

// result converts a hot path's result (see wtd_go_res) into an error.
func result(res C.wtd_go_res) error {
	if res.r == C.WTD_OK {
		return nil
	}
	msg := "no datagram queued" // the one failure that comes without a message
	if res.msg != nil {
		msg = C.GoString(res.msg)
		C.free(unsafe.Pointer(res.msg))
	}
	return &Error{Code: Code(res.r), Msg: msg}
}

// sendWait is SendWait's wait in C, up to ms (see wtd_go_send_wait).
func sendWait(h *C.wtd_session, p *C.uint8_t, n C.size_t, ms C.int32_t) error {
	return result(C.wtd_go_send_wait(h, p, n, ms))
}

// sendLook is a look of SendWait's spin (see wtd_go_send_look); ErrWouldBlock while
// the send buffer is full.
func sendLook(h *C.wtd_session, p *C.uint8_t, n C.size_t) error {
	res := C.wtd_go_send_look(h, p, n)
	if res.r == C.WTD_ERR_WOULD_BLOCK {
		return errWouldBlock
	}
	return result(res)
}

var errWouldBlock = &Error{Code: CodeWouldBlock, Msg: "the send buffer is full"}

// send is Session.Send's call into C.
func send(h *C.wtd_session, p *C.uint8_t, n C.size_t) error {
	return result(C.wtd_go_send(h, p, n))
}

// recvLook is a receive's look into the library's queue (see wtd_go_recv_look): up to
// len(b.lens) datagrams into b's buffer, their count in *n.
func recvLook(h *C.wtd_session, b *Batch, n *C.size_t) error {
	return result(C.wtd_go_recv_look(h, (*C.uint8_t)(&b.buf[0]), C.size_t(len(b.buf)),
		&b.lens[0], C.size_t(len(b.lens)), n))
}

// Version is the C library's version, e.g. "0.1.0".
func Version() string { return C.GoString(C.wtd_version()) }

// scratch buffers for receives: a receive copies into one, then returns an
// exact-size copy (one allocation per message instead of a 2 KiB buffer).
var scratch = sync.Pool{New: func() any { b := make([]byte, 2048); return &b }}

// recvGrow calls f (a C receive into buf, *n = its size, waiting up to ms) in
// timeout slices bounded by ctx, growing the buffer when the message does not fit
// (WTD_ERR_BUFFER_TOO_SMALL leaves it queued and reports its size).
func recvGrow(ctx context.Context, f func(buf []byte, n *C.size_t, ms C.int32_t) error) ([]byte, error) {
	bp := scratch.Get().(*[]byte)
	defer scratch.Put(bp)
	buf := *bp
	var n C.size_t
	err := waitLoop(ctx, func(ms C.int32_t) error {
		for {
			err := f(buf, &n, ms)
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
	return append(make([]byte, 0, int(n)), buf[:n]...), nil
}
