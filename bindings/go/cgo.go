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
#cgo CFLAGS: -I${SRCDIR}/../../include
#cgo LDFLAGS: -L${SRCDIR}/../../target/debug -lwtdatagram -Wl,-rpath,${SRCDIR}/../../target/debug
#include <stdlib.h>
#include <poll.h>
#include "wtdatagram.h"

int wtd_go_poll(int fd, int ms) {
	struct pollfd p;
	p.fd = fd;
	p.events = POLLIN;
	p.revents = 0;
	return poll(&p, 1, ms);
}
*/
import "C"

import (
	"runtime"
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

// Version is the C library's version, e.g. "0.1.0".
func Version() string { return C.GoString(C.wtd_version()) }
