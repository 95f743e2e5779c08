package wtd

/*
#include <stdlib.h>
#include "wtdatagram.h"
*/
import "C"

import (
	"time"
	"unsafe"
)

// TransportConfig holds transport and session options shared by servers and
// clients. Zero fields keep the library's defaults.
type TransportConfig struct {
	IdleTimeout time.Duration // 1 ms ..= 600 s; default 30 s
	// KeepAlive interval; default 5 s. Set DisableKeepAlive to turn it off.
	KeepAlive        time.Duration
	DisableKeepAlive bool
	// DatagramSendBuffer / DatagramRecvBuffer are quinn's per-connection datagram
	// buffers in bytes (both must be set together).
	DatagramSendBuffer, DatagramRecvBuffer int
	// RecvQueue is the number of datagrams buffered per session before new ones are
	// dropped and counted (default 65536); RecvQueueBytes bounds their payload bytes
	// (default 16 MiB). A drained queue gives its memory back. The bounds cover every
	// datagram Receive has not taken yet (beyond them the binding holds only the batch
	// of at most 64 datagrams, 32 KiB, that Receive is handing out).
	RecvQueue      int
	RecvQueueBytes int
	// MaxSessions a peer may keep open on one connection (default 256).
	MaxSessions int
	// MaxFieldSectionSize bounds request and response headers, counted as RFC 9114
	// §4.2.2 does (name + value + 32 per field), and is announced to the peer
	// (256 ..= 1 MiB; default 16384). A server answers a larger request 431.
	MaxFieldSectionSize int
	// MaxHeaderFields bounds the number of header fields (default 128).
	MaxHeaderFields int
	// DirectReceive makes Session.Receive, ReceiveInto and ReceiveBatch wait for a
	// datagram in a C call (wtd_session_recv), holding an OS thread while they wait,
	// instead of parking the goroutine until the event goroutine reports the session
	// readable (the default). Either way received datagrams wait in the library's
	// per-session queue (RecvQueue, RecvQueueBytes) until they are received, and
	// datagrams that arrive before a Stream or layer takes the session over stay queued
	// for it.
	DirectReceive bool
	// CongestionController of each connection: CongestionCubic (the zero value and
	// default), CongestionNewReno, or CongestionBBR (experimental, see there). The one
	// in use shows in Session.ConnectionStats.
	CongestionController CongestionController
	// InitialRTT is the RTT assumed before the first sample (it sets the handshake's
	// first retransmission timeouts): 1 ms ..= 60 s, rounded up to whole milliseconds;
	// default 333 ms.
	InitialRTT time.Duration
	// DisableMTUDiscovery keeps the path MTU at InitialMTU (discovery is on by
	// default and raises it up to 1452 bytes).
	DisableMTUDiscovery bool
	// InitialMTU is the UDP payload size used from the start, 1200 ..= 65527 bytes;
	// default 1200. A path that cannot carry it loses packets until quinn falls back.
	InitialMTU int
	// KeyLog writes the TLS secrets of every connection to the file SSLKEYLOGFILE
	// names (NSS key log format, for Wireshark). Default off; debugging only.
	KeyLog bool
	// QlogDir, when set, is an existing directory that gets a qlog trace (JSON-SEQ,
	// .sqlog) of every connection; for debugging.
	QlogDir string
}

func (t *TransportConfig) build() (*C.wtd_transport_config, error) {
	var c *C.wtd_transport_config
	if err := call(func() C.enum_wtd_result { return C.wtd_transport_config_new(&c) }); err != nil {
		return nil, err
	}
	steps := []func() C.enum_wtd_result{}
	if t.IdleTimeout > 0 {
		steps = append(steps, func() C.enum_wtd_result {
			return C.wtd_transport_config_set_idle_timeout_ms(c, C.uint32_t(t.IdleTimeout/time.Millisecond))
		})
	}
	if t.KeepAlive > 0 || t.DisableKeepAlive {
		ms := C.uint32_t(t.KeepAlive / time.Millisecond)
		if t.DisableKeepAlive {
			ms = 0
		}
		steps = append(steps, func() C.enum_wtd_result { return C.wtd_transport_config_set_keep_alive_ms(c, ms) })
	}
	if t.DatagramSendBuffer > 0 || t.DatagramRecvBuffer > 0 {
		steps = append(steps, func() C.enum_wtd_result {
			return C.wtd_transport_config_set_datagram_buffers(c, C.size_t(t.DatagramSendBuffer), C.size_t(t.DatagramRecvBuffer))
		})
	}
	if t.RecvQueue > 0 {
		steps = append(steps, func() C.enum_wtd_result { return C.wtd_transport_config_set_recv_queue(c, C.size_t(t.RecvQueue)) })
	}
	if t.RecvQueueBytes > 0 {
		steps = append(steps, func() C.enum_wtd_result {
			return C.wtd_transport_config_set_recv_queue_bytes(c, C.size_t(t.RecvQueueBytes))
		})
	}
	// Received datagrams wait in each session's queue in the library, not in the event
	// queue: Session.Receive takes them in batches from there and, when it finds none,
	// waits for a DATAGRAMS_READY event (DirectReceive: in a C call instead).
	steps = append(steps, func() C.enum_wtd_result { return C.wtd_transport_config_set_datagram_events(c, false) })
	if t.MaxSessions > 0 {
		steps = append(steps, func() C.enum_wtd_result {
			return C.wtd_transport_config_set_max_sessions(c, C.uint64_t(t.MaxSessions))
		})
	}
	if t.MaxFieldSectionSize > 0 {
		steps = append(steps, func() C.enum_wtd_result {
			return C.wtd_transport_config_set_max_field_section_size(c, C.uint64_t(t.MaxFieldSectionSize))
		})
	}
	if t.MaxHeaderFields > 0 {
		steps = append(steps, func() C.enum_wtd_result {
			return C.wtd_transport_config_set_max_header_fields(c, C.size_t(t.MaxHeaderFields))
		})
	}
	steps = append(steps, t.tuningSteps(c)...)
	for _, s := range steps {
		if err := call(s); err != nil {
			C.wtd_transport_config_free(c)
			return nil, err
		}
	}
	return c, nil
}

// ServerConfig holds server options. The zero value listens on 127.0.0.1:0 with a
// self-signed certificate for localhost, 127.0.0.1 and ::1.
type ServerConfig struct {
	// Addr is the UDP address to listen on, e.g. "0.0.0.0:4433" (port 0: any).
	Addr string
	// CertPEM and KeyPEM, when both set, are the certificate chain and private key.
	CertPEM, KeyPEM []byte
	// SelfSignedNames, when set (and no PEM is given), generates a self-signed
	// certificate valid 13 days for these DNS names or IP literals.
	SelfSignedNames []string
	// RequestBacklog is the number of unanswered session requests before new ones
	// get 503 (library default 256); it also sizes Accept's channel.
	RequestBacklog int
	// MaxConnections the server holds at once, handshakes included (default
	// 10000); more are refused during the handshake.
	MaxConnections int
	// MaxSessions the server holds at once over all connections (default 10000);
	// more requests are answered 503.
	MaxSessions int
	// RequestTimeout is how long a request stream has to deliver its headers
	// (default 5 s); a late one is reset with H3_REQUEST_REJECTED.
	RequestTimeout time.Duration
	Transport      *TransportConfig
}

func cstrings(ss []string) (**C.char, func()) {
	if len(ss) == 0 {
		return nil, func() {}
	}
	arr := (*[1 << 20]*C.char)(C.calloc(C.size_t(len(ss)), C.size_t(unsafe.Sizeof((*C.char)(nil)))))[:len(ss):len(ss)]
	for i, s := range ss {
		arr[i] = C.CString(s)
	}
	return &arr[0], func() {
		for _, p := range arr {
			C.free(unsafe.Pointer(p))
		}
		C.free(unsafe.Pointer(&arr[0]))
	}
}

func (sc *ServerConfig) build() (*C.wtd_server_config, error) {
	var c *C.wtd_server_config
	if err := call(func() C.enum_wtd_result { return C.wtd_server_config_new(&c) }); err != nil {
		return nil, err
	}
	fail := func(err error) (*C.wtd_server_config, error) {
		C.wtd_server_config_free(c)
		return nil, err
	}
	if sc.Addr != "" {
		addr := C.CString(sc.Addr)
		defer C.free(unsafe.Pointer(addr))
		if err := call(func() C.enum_wtd_result { return C.wtd_server_config_set_bind(c, addr) }); err != nil {
			return fail(err)
		}
	}
	switch {
	case len(sc.CertPEM) > 0 || len(sc.KeyPEM) > 0:
		cp, cl := bytesPtr(sc.CertPEM)
		kp, kl := bytesPtr(sc.KeyPEM)
		if err := call(func() C.enum_wtd_result { return C.wtd_server_config_set_cert_pem(c, cp, cl, kp, kl) }); err != nil {
			return fail(err)
		}
	case len(sc.SelfSignedNames) > 0:
		names, free := cstrings(sc.SelfSignedNames)
		defer free()
		if err := call(func() C.enum_wtd_result {
			return C.wtd_server_config_set_self_signed(c, names, C.size_t(len(sc.SelfSignedNames)))
		}); err != nil {
			return fail(err)
		}
	}
	if sc.RequestBacklog > 0 {
		if err := call(func() C.enum_wtd_result {
			return C.wtd_server_config_set_request_backlog(c, C.size_t(sc.RequestBacklog))
		}); err != nil {
			return fail(err)
		}
	}
	limits := []func() C.enum_wtd_result{}
	if sc.MaxConnections > 0 {
		limits = append(limits, func() C.enum_wtd_result {
			return C.wtd_server_config_set_max_connections(c, C.size_t(sc.MaxConnections))
		})
	}
	if sc.MaxSessions > 0 {
		limits = append(limits, func() C.enum_wtd_result {
			return C.wtd_server_config_set_max_sessions(c, C.size_t(sc.MaxSessions))
		})
	}
	if sc.RequestTimeout > 0 {
		limits = append(limits, func() C.enum_wtd_result {
			return C.wtd_server_config_set_request_timeout_ms(c, C.uint32_t(sc.RequestTimeout/time.Millisecond))
		})
	}
	for _, l := range limits {
		if err := call(l); err != nil {
			return fail(err)
		}
	}
	if err := applyTransport(sc.Transport, func(tc *C.wtd_transport_config) C.enum_wtd_result {
		return C.wtd_server_config_set_transport(c, tc)
	}); err != nil {
		return fail(err)
	}
	return c, nil
}

// applyTransport builds t (nil: the defaults) and hands it to set, which copies it
// into a server or client config. There is always one: datagram events are off in
// every mode (see TransportConfig.build).
func applyTransport(t *TransportConfig, set func(tc *C.wtd_transport_config) C.enum_wtd_result) error {
	if t == nil {
		t = &TransportConfig{}
	}
	tc, err := t.build()
	if err != nil {
		return err
	}
	defer C.wtd_transport_config_free(tc)
	return call(func() C.enum_wtd_result { return set(tc) })
}

// ClientConfig holds client options. The zero value verifies servers against the
// system trust store.
type ClientConfig struct {
	Addr string // local UDP address to bind, e.g. "0.0.0.0:0"
	// CertHashes trusts server certificates whose DER SHA-256 is one of these
	// (like a browser's serverCertificateHashes).
	CertHashes [][32]byte
	// CAPEM trusts the CA certificates in this PEM instead of the system roots.
	CAPEM []byte
	// InsecureSkipVerify accepts any server certificate. FOR TESTS ONLY.
	InsecureSkipVerify bool
	// Headers are sent with every session request (names are lowercased).
	Headers   map[string]string
	Transport *TransportConfig
}

func (cc *ClientConfig) build() (*C.wtd_client_config, error) {
	var c *C.wtd_client_config
	if err := call(func() C.enum_wtd_result { return C.wtd_client_config_new(&c) }); err != nil {
		return nil, err
	}
	fail := func(err error) (*C.wtd_client_config, error) {
		C.wtd_client_config_free(c)
		return nil, err
	}
	if cc.Addr != "" {
		addr := C.CString(cc.Addr)
		defer C.free(unsafe.Pointer(addr))
		if err := call(func() C.enum_wtd_result { return C.wtd_client_config_set_bind(c, addr) }); err != nil {
			return fail(err)
		}
	}
	for _, h := range cc.CertHashes {
		h := h
		p, n := bytesPtr(h[:])
		if err := call(func() C.enum_wtd_result { return C.wtd_client_config_add_cert_hash(c, p, n) }); err != nil {
			return fail(err)
		}
	}
	if len(cc.CAPEM) > 0 {
		p, n := bytesPtr(cc.CAPEM)
		if err := call(func() C.enum_wtd_result { return C.wtd_client_config_add_ca_pem(c, p, n) }); err != nil {
			return fail(err)
		}
	}
	if cc.InsecureSkipVerify {
		if err := call(func() C.enum_wtd_result { return C.wtd_client_config_set_insecure(c, true) }); err != nil {
			return fail(err)
		}
	}
	for k, v := range cc.Headers {
		name, value := C.CString(k), C.CString(v)
		err := call(func() C.enum_wtd_result { return C.wtd_client_config_add_header(c, name, value) })
		C.free(unsafe.Pointer(name))
		C.free(unsafe.Pointer(value))
		if err != nil {
			return fail(err)
		}
	}
	if err := applyTransport(cc.Transport, func(tc *C.wtd_transport_config) C.enum_wtd_result {
		return C.wtd_client_config_set_transport(c, tc)
	}); err != nil {
		return fail(err)
	}
	return c, nil
}

// HashFromHex parses 64 hex digits (e.g. what `wtd serve` or a server's
// "cert-sha256" line prints) into a certificate hash for ClientConfig.CertHashes.
func HashFromHex(hex string) ([32]byte, error) {
	var h [32]byte
	ch := C.CString(hex)
	defer C.free(unsafe.Pointer(ch))
	p, n := bytesPtr(h[:])
	err := call(func() C.enum_wtd_result { return C.wtd_hash_from_hex(ch, p, n) })
	return h, err
}
