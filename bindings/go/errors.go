package wtd

// #include "wtdatagram.h"
import "C"

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Code is a wtd_result value.
type Code int

// Result codes of the C ABI (values never change).
const (
	CodeOK              Code = C.WTD_OK
	CodeInvalidArgument Code = C.WTD_ERR_INVALID_ARGUMENT
	CodePanic           Code = C.WTD_ERR_PANIC
	CodeTimeout         Code = C.WTD_ERR_TIMEOUT
	CodeWouldBlock      Code = C.WTD_ERR_WOULD_BLOCK
	CodeClosed          Code = C.WTD_ERR_CLOSED
	CodeTooLarge        Code = C.WTD_ERR_TOO_LARGE
	CodeTLS             Code = C.WTD_ERR_TLS
	CodeIO              Code = C.WTD_ERR_IO
	CodeConnect         Code = C.WTD_ERR_CONNECT
	CodeRejected        Code = C.WTD_ERR_REJECTED
	CodeProtocol        Code = C.WTD_ERR_PROTOCOL
	CodeNotSupported    Code = C.WTD_ERR_NOT_SUPPORTED
	CodeWouldDeadlock   Code = C.WTD_ERR_WOULD_DEADLOCK
	CodeBufferTooSmall  Code = C.WTD_ERR_BUFFER_TOO_SMALL
	CodeInvalidState    Code = C.WTD_ERR_INVALID_STATE
	CodeNotFound        Code = C.WTD_ERR_NOT_FOUND
	CodeQueueFull       Code = C.WTD_ERR_QUEUE_FULL
	CodeInvalidData     Code = C.WTD_ERR_INVALID_DATA
)

// String is the C name of the code, e.g. "WTD_ERR_TIMEOUT".
func (c Code) String() string { return C.GoString(C.wtd_result_name(C.enum_wtd_result(c))) }

// Error is a failure reported by the library (or by the binding, with the same codes).
// errors.Is(err, ErrX) compares codes only, so it matches whatever the message.
type Error struct {
	Code Code
	Msg  string
	err  error // wrapped cause (e.g. context.DeadlineExceeded)
}

func (e *Error) Error() string {
	if e.Msg == "" {
		return "wtd: " + e.Code.String()
	}
	return fmt.Sprintf("wtd: %s: %s", e.Code, e.Msg)
}

// Is reports whether target is an *Error with the same Code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Unwrap returns the wrapped cause, if any (context.DeadlineExceeded for timeouts
// derived from a context deadline).
func (e *Error) Unwrap() error { return e.err }

// Sentinel errors, for errors.Is.
var (
	ErrInvalidArgument = &Error{Code: CodeInvalidArgument}
	ErrPanic           = &Error{Code: CodePanic}
	ErrTimeout         = &Error{Code: CodeTimeout}
	ErrWouldBlock      = &Error{Code: CodeWouldBlock}
	ErrClosed          = &Error{Code: CodeClosed}
	ErrTooLarge        = &Error{Code: CodeTooLarge}
	ErrTLS             = &Error{Code: CodeTLS}
	ErrIO              = &Error{Code: CodeIO}
	ErrConnect         = &Error{Code: CodeConnect}
	ErrRejected        = &Error{Code: CodeRejected}
	ErrProtocol        = &Error{Code: CodeProtocol}
	ErrNotSupported    = &Error{Code: CodeNotSupported}
	ErrWouldDeadlock   = &Error{Code: CodeWouldDeadlock}
	ErrBufferTooSmall  = &Error{Code: CodeBufferTooSmall}
	ErrInvalidState    = &Error{Code: CodeInvalidState}
	ErrNotFound        = &Error{Code: CodeNotFound}
	ErrQueueFull       = &Error{Code: CodeQueueFull}
	ErrInvalidData     = &Error{Code: CodeInvalidData}
)

func closedErr(what string) error { return &Error{Code: CodeClosed, Msg: what + " is closed"} }

// ctxErr converts a done context into the binding's error (nil while not done).
func ctxErr(ctx context.Context) error {
	switch err := ctx.Err(); {
	case err == nil:
		return nil
	case errors.Is(err, context.DeadlineExceeded):
		return &Error{Code: CodeTimeout, Msg: "context deadline exceeded", err: err}
	default:
		return err
	}
}

func deadlineErr() error {
	return &Error{Code: CodeTimeout, Msg: "context deadline exceeded", err: context.DeadlineExceeded}
}

// sliceWait is the longest single blocking C call made by context-aware waits, so
// that cancellation and Close are noticed quickly.
const sliceWait = 100 * time.Millisecond

// waitLoop calls f with timeouts of at most sliceWait ms until it returns something
// else than a timeout, the context is done, or its deadline passes.
func waitLoop(ctx context.Context, f func(ms C.int32_t) error) error {
	for {
		if err := ctxErr(ctx); err != nil {
			return err
		}
		ms, final := C.int32_t(sliceWait/time.Millisecond), false
		if dl, ok := ctx.Deadline(); ok {
			if rem := time.Until(dl); rem <= sliceWait {
				ms, final = C.int32_t(rem/time.Millisecond), true
				if ms < 0 {
					ms = 0
				}
			}
		}
		err := f(ms)
		if errors.Is(err, ErrTimeout) {
			if final {
				return deadlineErr()
			}
			continue
		}
		return err
	}
}

// timeoutMs is the C timeout for one blocking call bounded by ctx's deadline
// (-1 = forever when there is none).
func timeoutMs(ctx context.Context) C.int32_t {
	dl, ok := ctx.Deadline()
	if !ok {
		return -1
	}
	ms := time.Until(dl) / time.Millisecond
	if ms < 0 {
		return 0
	}
	if ms > 1<<31-1 {
		return -1
	}
	return C.int32_t(ms)
}
