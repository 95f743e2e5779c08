package wtd

/*
#include <stdlib.h>
#include "wtdatagram.h"
*/
import "C"

import (
	"context"
	"fmt"
	"sync"
	"unsafe"
)

// Server is a listening WebTransport server. Session requests are taken with Accept.
type Server struct {
	rt       *Runtime
	h        *C.wtd_server
	requests chan *SessionRequest
	direct   bool // datagram events off (TransportConfig.DirectReceive)

	mu     sync.RWMutex // held for reading by calls using h; for writing by Close
	freed  bool
	closed chan struct{}
	once   sync.Once
}

// Listen starts a server on rt (cfg nil means defaults: 127.0.0.1:0, self-signed).
func Listen(rt *Runtime, cfg *ServerConfig) (*Server, error) {
	if cfg == nil {
		cfg = &ServerConfig{}
	}
	cc, err := cfg.build()
	if err != nil {
		return nil, err
	}
	defer C.wtd_server_config_free(cc)
	backlog := cfg.RequestBacklog
	if backlog <= 0 {
		backlog = 256
	}
	s := &Server{rt: rt, requests: make(chan *SessionRequest, backlog), closed: make(chan struct{})}
	s.direct = cfg.Transport != nil && cfg.Transport.DirectReceive
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.isClosed() {
		return nil, closedErr("runtime")
	}
	// Under rt.mu, so the server is registered before its first event is dispatched.
	if err := call(func() C.enum_wtd_result { return C.wtd_server_new(rt.h, cc, &s.h) }); err != nil {
		return nil, err
	}
	rt.servers[s.h] = s
	return s, nil
}

// Port is the bound UDP port (0 once closed).
func (s *Server) Port() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.freed {
		return 0
	}
	return int(C.wtd_server_port(s.h))
}

// Addr is the bound address, e.g. "127.0.0.1:4433".
func (s *Server) Addr() (string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.freed {
		return "", closedErr("server")
	}
	buf := (*C.char)(C.calloc(64, 1))
	defer C.free(unsafe.Pointer(buf))
	if err := call(func() C.enum_wtd_result { return C.wtd_server_local_addr(s.h, buf, 64) }); err != nil {
		return "", err
	}
	return C.GoString(buf), nil
}

// URL is "https://<Addr><path>".
func (s *Server) URL(path string) (string, error) {
	a, err := s.Addr()
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("https://%s%s", a, path), nil
}

// CertHash is the SHA-256 of the server certificate (for ClientConfig.CertHashes
// or a browser's serverCertificateHashes).
func (s *Server) CertHash() ([32]byte, error) {
	var h [32]byte
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.freed {
		return h, closedErr("server")
	}
	p, n := bytesPtr(h[:])
	err := call(func() C.enum_wtd_result { return C.wtd_server_cert_hash(s.h, p, n) })
	return h, err
}

// ServerStats is what a server holds now and what it refused (wtd_server_stats).
type ServerStats struct {
	Connections                   uint64 // held now, handshakes included
	Sessions                      uint64 // held now: open, being answered or closing
	PendingRequests               uint64 // received, not yet answered
	ConnectionsAccepted           uint64
	ConnectionsRefused            uint64 // MaxConnections were held
	HandshakesFailed              uint64
	RequestsReceived              uint64
	RequestsRefusedServerFull     uint64 // 503: MaxSessions were held
	RequestsRefusedConnectionFull uint64 // 429: the connection's MaxSessions
	RequestsRefusedBacklog        uint64 // 503: RequestBacklog requests waited
	RequestsTooLarge              uint64 // 431: headers beyond the field limits
	RequestsTimedOut              uint64 // reset: no headers within RequestTimeout
}

// Stats reads the server's counts and counters.
func (s *Server) Stats() (ServerStats, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.freed {
		return ServerStats{}, closedErr("server")
	}
	var st C.wtd_server_stats
	st.size = C.size_t(unsafe.Sizeof(st))
	if err := call(func() C.enum_wtd_result { return C.wtd_server_get_stats(s.h, &st) }); err != nil {
		return ServerStats{}, err
	}
	return ServerStats{
		Connections:                   uint64(st.connections),
		Sessions:                      uint64(st.sessions),
		PendingRequests:               uint64(st.pending_requests),
		ConnectionsAccepted:           uint64(st.connections_accepted),
		ConnectionsRefused:            uint64(st.connections_refused),
		HandshakesFailed:              uint64(st.handshakes_failed),
		RequestsReceived:              uint64(st.requests_received),
		RequestsRefusedServerFull:     uint64(st.requests_refused_server_full),
		RequestsRefusedConnectionFull: uint64(st.requests_refused_connection_full),
		RequestsRefusedBacklog:        uint64(st.requests_refused_backlog),
		RequestsTooLarge:              uint64(st.requests_too_large),
		RequestsTimedOut:              uint64(st.requests_timed_out),
	}, nil
}

// Accept waits for the next session request. The caller must answer it with Accept
// or Reject (or Close, which refuses it with 503).
func (s *Server) Accept(ctx context.Context) (*SessionRequest, error) {
	// Take what is queued first, so requests that arrived before Close are not lost.
	select {
	case r := <-s.requests:
		return r, nil
	default:
	}
	select {
	case r := <-s.requests:
		return r, nil
	case <-s.closed:
		return nil, closedErr("server")
	case <-ctx.Done():
		return nil, ctxErr(ctx)
	}
}

// AcceptSession waits for the next session request and accepts it.
func (s *Server) AcceptSession(ctx context.Context) (*Session, error) {
	r, err := s.Accept(ctx)
	if err != nil {
		return nil, err
	}
	return r.Accept()
}

// Close stops the server and closes its connections (their sessions see
// CloseConnectionLost); unanswered requests are refused. Safe to call twice.
func (s *Server) Close() error {
	s.once.Do(func() {
		close(s.closed)
		s.mu.Lock()
		s.freed = true
		s.mu.Unlock()
		s.rt.mu.Lock()
		delete(s.rt.servers, s.h)
		C.wtd_server_free(s.h)
		s.rt.mu.Unlock()
		for {
			select {
			case r := <-s.requests:
				r.Close()
				continue
			default:
			}
			break
		}
	})
	return nil
}

// SessionRequest is a client's request to open a session. Answer it exactly once
// with Accept, Reject or Close. Getters return "" once it is answered.
type SessionRequest struct {
	rt     *Runtime
	direct bool
	mu     sync.Mutex
	h      *C.wtd_session_request
	done   bool
}

func (r *SessionRequest) str(f func(*C.wtd_session_request) *C.char) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done {
		return ""
	}
	return C.GoString(f(r.h))
}

// Path is the requested path with query, e.g. "/chat?room=1".
func (r *SessionRequest) Path() string {
	return r.str(func(h *C.wtd_session_request) *C.char { return C.wtd_session_request_path(h) })
}

// Authority is the :authority (host:port) the client asked for.
func (r *SessionRequest) Authority() string {
	return r.str(func(h *C.wtd_session_request) *C.char { return C.wtd_session_request_authority(h) })
}

// Origin is the origin header ("" if none).
func (r *SessionRequest) Origin() string {
	return r.str(func(h *C.wtd_session_request) *C.char { return C.wtd_session_request_origin(h) })
}

// Protocol is the :protocol, "webtransport" or "webtransport-h3".
func (r *SessionRequest) Protocol() string {
	return r.str(func(h *C.wtd_session_request) *C.char { return C.wtd_session_request_protocol(h) })
}

// Header is the value of the first header named name (case-insensitive), "" if none.
func (r *SessionRequest) Header(name string) string {
	cn := C.CString(name)
	defer C.free(unsafe.Pointer(cn))
	return r.str(func(h *C.wtd_session_request) *C.char { return C.wtd_session_request_header(h, cn) })
}

// Headers are the regular (non-pseudo) request headers, in order.
func (r *SessionRequest) Headers() [][2]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done {
		return nil
	}
	n := int(C.wtd_session_request_header_count(r.h))
	out := make([][2]string, 0, n)
	for i := 0; i < n; i++ {
		var name, value *C.char
		if C.wtd_session_request_header_at(r.h, C.size_t(i), &name, &value) != C.WTD_OK {
			break
		}
		out = append(out, [2]string{C.GoString(name), C.GoString(value)})
	}
	return out
}

// Accept answers 200 and returns the new session.
func (r *SessionRequest) Accept() (*Session, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done {
		return nil, &Error{Code: CodeInvalidState, Msg: "session request already answered"}
	}
	r.done = true
	var h *C.wtd_session
	if err := call(func() C.enum_wtd_result { return C.wtd_session_request_accept(r.h, &h) }); err != nil {
		return nil, err
	}
	return newSession(r.rt, h, r.direct)
}

// Reject answers with an HTTP status (100..=599, not 2xx; e.g. 403, 404, 429).
func (r *SessionRequest) Reject(status int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done {
		return &Error{Code: CodeInvalidState, Msg: "session request already answered"}
	}
	err := call(func() C.enum_wtd_result { return C.wtd_session_request_reject(r.h, C.uint16_t(status)) })
	if err == nil || !isCode(err, CodeInvalidArgument) {
		r.done = true
	}
	return err
}

// Close refuses the request with 503 if it was not answered. Safe to call twice.
func (r *SessionRequest) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.done {
		r.done = true
		C.wtd_session_request_free(r.h)
	}
	return nil
}

func isCode(err error, c Code) bool {
	e, ok := err.(*Error)
	return ok && e.Code == c
}
