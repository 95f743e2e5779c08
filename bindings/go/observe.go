package wtd

/*
#include <stdint.h>
#include <stdlib.h>
#include "wtdatagram.h"
*/
import "C"

import (
	"time"
	"unsafe"
)

// CongestionController selects a connection's congestion controller
// (TransportConfig.CongestionController). The zero value is CUBIC, the default.
type CongestionController int

const (
	// CongestionCubic is CUBIC (RFC 9438), the default.
	CongestionCubic CongestionController = C.WTD_CONGESTION_CUBIC
	// CongestionNewReno is NewReno (RFC 9002 §7).
	CongestionNewReno CongestionController = C.WTD_CONGESTION_NEW_RENO
	// CongestionBBR is EXPERIMENTAL: quinn's 2021 port of BBR v1 from Google's quiche,
	// which quinn marks "use at your own risk". It predates the IETF BBR drafts (no
	// v2/v3 loss and ECN response), is unfair to CUBIC/NewReno flows and lossy on
	// shallow buffers, and handles application-limited traffic (most datagram
	// workloads) poorly. Only to experiment with, and measure.
	CongestionBBR CongestionController = C.WTD_CONGESTION_BBR
)

func (c CongestionController) String() string {
	switch c {
	case CongestionCubic:
		return "cubic"
	case CongestionNewReno:
		return "newreno"
	case CongestionBBR:
		return "bbr"
	}
	return "unknown"
}

// ConnectionStats are the transport statistics of a session's QUIC connection
// (shared by every session on it), from quinn. Figures quinn 0.11 does not expose
// read -1.
type ConnectionStats struct {
	RTT         time.Duration // smoothed round-trip time (the initial RTT until a sample)
	RTTVariance time.Duration // -1: not exposed by quinn 0.11
	MinRTT      time.Duration // smallest RTT sample (can be 0 on loopback)
	// CongestionWindow in bytes.
	CongestionWindow uint64
	BytesInFlight    int64 // -1: not exposed by quinn 0.11
	PacketsSent      uint64
	PacketsReceived  uint64 // UDP datagrams received
	PacketsLost      uint64
	BytesLost        uint64
	BytesSent        uint64 // UDP payload bytes
	BytesReceived    uint64
	CongestionEvents uint64
	PathMTU          int // current largest UDP payload (moves with MTU discovery)
	BlackHoles       uint64
	// DatagramsSent / DatagramsReceived count QUIC DATAGRAM frames on the connection.
	DatagramsSent, DatagramsReceived uint64
	// DatagramsDropped: received datagrams quinn dropped before the library read them.
	DatagramsDropped   uint64
	SlowStartThreshold int64 // bytes; -1 while the controller has none
	PacingRate         int64 // bits/s; -1 for controllers that set none (CUBIC, NewReno)
	Controller         CongestionController
}

func unknownOr(v C.uint64_t) int64 {
	if uint64(v) == ^uint64(0) {
		return -1
	}
	return int64(v)
}

func connectionStatsFromC(st *C.wtd_connection_stats) ConnectionStats {
	us := func(v C.uint64_t) time.Duration {
		if uint64(v) == ^uint64(0) {
			return -1
		}
		return time.Duration(v) * time.Microsecond
	}
	return ConnectionStats{
		RTT: us(st.rtt_us), RTTVariance: us(st.rtt_variance_us), MinRTT: us(st.min_rtt_us),
		CongestionWindow: uint64(st.congestion_window), BytesInFlight: unknownOr(st.bytes_in_flight),
		PacketsSent: uint64(st.packets_sent), PacketsReceived: uint64(st.packets_received),
		PacketsLost: uint64(st.packets_lost), BytesLost: uint64(st.bytes_lost),
		BytesSent: uint64(st.bytes_sent), BytesReceived: uint64(st.bytes_received),
		CongestionEvents: uint64(st.congestion_events), PathMTU: int(st.path_mtu),
		BlackHoles:    uint64(st.black_holes_detected),
		DatagramsSent: uint64(st.datagrams_sent), DatagramsReceived: uint64(st.datagrams_received),
		DatagramsDropped:   uint64(st.datagrams_dropped),
		SlowStartThreshold: unknownOr(st.slow_start_threshold),
		PacingRate:         unknownOr(st.pacing_rate),
		Controller:         CongestionController(st.congestion_controller),
	}
}

// ConnectionStats reads the transport statistics of the session's QUIC connection:
// RTT, congestion window, packets sent, received and lost, path MTU. It works after
// the session closed too (the connection's last figures).
func (s *Session) ConnectionStats() (ConnectionStats, error) {
	var st C.wtd_connection_stats
	st.size = C.size_t(unsafe.Sizeof(st))
	err := s.use(func(h *C.wtd_session) error {
		return call(func() C.enum_wtd_result { return C.wtd_session_connection_stats(h, &st) })
	})
	if err != nil {
		return ConnectionStats{}, err
	}
	return connectionStatsFromC(&st), nil
}

// tuningSteps are the C calls that apply t's tuning fields to c.
func (t *TransportConfig) tuningSteps(c *C.wtd_transport_config) []func() C.enum_wtd_result {
	var steps []func() C.enum_wtd_result
	if t.CongestionController != CongestionCubic {
		cc := C.enum_wtd_congestion_controller(t.CongestionController)
		steps = append(steps, func() C.enum_wtd_result {
			return C.wtd_transport_config_set_congestion_controller(c, cc)
		})
	}
	if t.InitialRTT != 0 {
		// Rounded up to whole milliseconds; out of range is refused by the library.
		ms := (t.InitialRTT + time.Millisecond - 1) / time.Millisecond
		switch {
		case t.InitialRTT < 0:
			ms = 0
		case ms > 1<<32-1:
			ms = 1<<32 - 1
		}
		steps = append(steps, func() C.enum_wtd_result {
			return C.wtd_transport_config_set_initial_rtt_ms(c, C.uint32_t(ms))
		})
	}
	if t.DisableMTUDiscovery {
		steps = append(steps, func() C.enum_wtd_result { return C.wtd_transport_config_set_mtu_discovery(c, false) })
	}
	if t.InitialMTU != 0 {
		mtu := t.InitialMTU
		if mtu < 0 || mtu > 1<<32-1 {
			mtu = 0 // refused by the library, with the range in the message
		}
		steps = append(steps, func() C.enum_wtd_result {
			return C.wtd_transport_config_set_initial_mtu(c, C.uint32_t(mtu))
		})
	}
	if t.QlogDir != "" {
		dir := t.QlogDir
		steps = append(steps, func() C.enum_wtd_result {
			cdir := C.CString(dir)
			defer C.free(unsafe.Pointer(cdir))
			return C.wtd_transport_config_set_qlog_dir(c, cdir)
		})
	}
	if t.KeyLog {
		steps = append(steps, func() C.enum_wtd_result { return C.wtd_transport_config_set_key_log(c, true) })
	}
	return steps
}

// Stats reads the connection's transport statistics (see ConnectionStats).
func (cn *Connection) Stats() (ConnectionStats, error) {
	cn.mu.RLock()
	defer cn.mu.RUnlock()
	if cn.free {
		return ConnectionStats{}, closedErr("connection")
	}
	var st C.wtd_connection_stats
	st.size = C.size_t(unsafe.Sizeof(st))
	if err := call(func() C.enum_wtd_result { return C.wtd_connection_get_stats(cn.h, &st) }); err != nil {
		return ConnectionStats{}, err
	}
	return connectionStatsFromC(&st), nil
}
