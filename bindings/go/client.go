package wtd

/*
#include <stdlib.h>
#include "wtdatagram.h"
*/
import "C"

import (
	"context"
	"sync"
	"unsafe"
)

// Client is a client endpoint (one UDP socket, any number of connections).
type Client struct {
	rt     *Runtime
	direct bool // datagram events off (TransportConfig.DirectReceive)
	h      *C.wtd_client
	mu     sync.RWMutex
	free   bool
	once   sync.Once
}

// NewClient creates a client on rt (cfg nil means defaults).
func NewClient(rt *Runtime, cfg *ClientConfig) (*Client, error) {
	if cfg == nil {
		cfg = &ClientConfig{}
	}
	cc, err := cfg.build()
	if err != nil {
		return nil, err
	}
	defer C.wtd_client_config_free(cc)
	c := &Client{rt: rt, direct: cfg.Transport != nil && cfg.Transport.DirectReceive}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.isClosed() {
		return nil, closedErr("runtime")
	}
	if err := call(func() C.enum_wtd_result { return C.wtd_client_new(rt.h, cc, &c.h) }); err != nil {
		return nil, err
	}
	rt.clients[c] = struct{}{}
	return c, nil
}

type headerArray struct {
	ptr   *C.wtd_header
	count C.size_t
	strs  []*C.char
}

func newHeaderArray(headers map[string]string) *headerArray {
	ha := &headerArray{}
	if len(headers) == 0 {
		return ha
	}
	n := len(headers)
	ha.ptr = (*C.wtd_header)(C.calloc(C.size_t(n), C.sizeof_wtd_header))
	arr := unsafe.Slice(ha.ptr, n)
	i := 0
	for k, v := range headers {
		arr[i].name, arr[i].value = C.CString(k), C.CString(v)
		ha.strs = append(ha.strs, arr[i].name, arr[i].value)
		i++
	}
	ha.count = C.size_t(n)
	return ha
}

func (ha *headerArray) free() {
	for _, s := range ha.strs {
		C.free(unsafe.Pointer(s))
	}
	if ha.ptr != nil {
		C.free(unsafe.Pointer(ha.ptr))
	}
}

// background runs a blocking C call that returns a session. If ctx is done first,
// the call is abandoned: it finishes in the background and its session is freed.
func (rt *Runtime) background(ctx context.Context, direct bool, f func(ms C.int32_t, out **C.wtd_session) error) (*Session, error) {
	type result struct {
		h   *C.wtd_session
		err error
	}
	ch := make(chan result, 1)
	var abandoned sync.Mutex
	gone := false
	ms := timeoutMs(ctx)
	rt.ops.Add(1)
	go func() {
		defer rt.ops.Done()
		var h *C.wtd_session
		err := f(ms, &h)
		abandoned.Lock()
		defer abandoned.Unlock()
		if gone {
			if err == nil {
				rt.freeSession(h)
			}
			return
		}
		ch <- result{h, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			if isCode(r.err, CodeTimeout) && ms >= 0 {
				return nil, &Error{Code: CodeTimeout, Msg: r.err.(*Error).Msg, err: context.DeadlineExceeded}
			}
			return nil, r.err
		}
		return newSession(rt, r.h, direct)
	case <-ctx.Done():
		abandoned.Lock()
		defer abandoned.Unlock()
		select {
		case r := <-ch: // finished meanwhile
			if r.err == nil {
				rt.freeSession(r.h)
			}
		default:
			gone = true
		}
		return nil, ctxErr(ctx)
	}
}

// Dial connects to the server of url ("https://host:port/path") on a new
// connection and opens a session at url (the connection closes with the session).
// headers are sent besides the configured ones. ErrRejected if the server refused.
func (c *Client) Dial(ctx context.Context, url string, headers map[string]string) (*Session, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	c.mu.RLock()
	if c.free {
		c.mu.RUnlock()
		return nil, closedErr("client")
	}
	// The read lock is held by the background call, so Close waits for it (after
	// wtd_client_close made it fail quickly).
	cu := C.CString(url)
	ha := newHeaderArray(headers)
	return c.rt.background(ctx, c.direct, func(ms C.int32_t, out **C.wtd_session) error {
		defer c.mu.RUnlock()
		defer C.free(unsafe.Pointer(cu))
		defer ha.free()
		return call(func() C.enum_wtd_result {
			return C.wtd_client_open_session(c.h, cu, ha.ptr, ha.count, ms, out)
		})
	})
}

// Connect opens an HTTP/3 connection to the server of url; open sessions on it with
// Connection.OpenSession.
func (c *Client) Connect(ctx context.Context, url string) (*Connection, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.free {
		return nil, closedErr("client")
	}
	cu := C.CString(url)
	defer C.free(unsafe.Pointer(cu))
	conn := &Connection{c: c}
	err := call(func() C.enum_wtd_result { return C.wtd_client_connect(c.h, cu, timeoutMs(ctx), &conn.h) })
	if err != nil {
		if isCode(err, CodeTimeout) {
			return nil, &Error{Code: CodeTimeout, Msg: err.(*Error).Msg, err: context.DeadlineExceeded}
		}
		return nil, err
	}
	return conn, nil
}

// Close closes every connection of the client at once and releases it. Sessions
// opened through it see CloseConnectionLost. Safe to call twice.
func (c *Client) Close() error {
	c.once.Do(func() {
		C.wtd_client_close(c.h)
		c.mu.Lock()
		c.freeLocked()
	})
	return nil
}

// release frees the client gracefully (Runtime.Close): its connections close once
// their sessions are freed, after their close capsules were sent. A dial still in
// flight is made to fail first.
func (c *Client) release() {
	c.once.Do(func() {
		if !c.mu.TryLock() {
			C.wtd_client_close(c.h)
			c.mu.Lock()
		}
		c.freeLocked()
	})
}

func (c *Client) freeLocked() {
	c.free = true
	C.wtd_client_free(c.h)
	c.mu.Unlock()
	c.rt.mu.Lock()
	delete(c.rt.clients, c)
	c.rt.mu.Unlock()
}

// Connection is an HTTP/3 connection; open several sessions on it.
type Connection struct {
	c    *Client
	h    *C.wtd_connection
	mu   sync.RWMutex
	free bool
	once sync.Once
}

// Dialect is the dialect the server announced.
func (cn *Connection) Dialect() Dialect {
	cn.mu.RLock()
	defer cn.mu.RUnlock()
	if cn.free {
		return DialectDraft02
	}
	return Dialect(C.wtd_connection_dialect(cn.h))
}

// OpenSession opens a session; target is a path ("/chat") or a full URL. A draft-15
// server that declares no flow control takes one session at a time per connection
// (draft-ietf-webtrans-http3-15 §5.1): a second one fails at once with ErrInvalidState.
func (cn *Connection) OpenSession(ctx context.Context, target string, headers map[string]string) (*Session, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	cn.mu.RLock()
	if cn.free {
		cn.mu.RUnlock()
		return nil, closedErr("connection")
	}
	ct := C.CString(target)
	ha := newHeaderArray(headers)
	return cn.c.rt.background(ctx, cn.c.direct, func(ms C.int32_t, out **C.wtd_session) error {
		defer cn.mu.RUnlock()
		defer C.free(unsafe.Pointer(ct))
		defer ha.free()
		return call(func() C.enum_wtd_result {
			return C.wtd_connection_open_session(cn.h, ct, ha.ptr, ha.count, ms, out)
		})
	})
}

// Close closes the connection and its sessions with H3_NO_ERROR and releases the
// handle. Safe to call twice.
func (cn *Connection) Close() error {
	cn.once.Do(func() {
		C.wtd_connection_close(cn.h, 0x100, empty, 0)
		cn.mu.Lock()
		cn.free = true
		C.wtd_connection_free(cn.h)
		cn.mu.Unlock()
	})
	return nil
}
