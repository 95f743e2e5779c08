package wtd

/*
#include <stdlib.h>
#include "wtdatagram.h"
*/
import "C"

import (
	"context"
	"sync"
	"time"
	"unsafe"
)

// ClusterConfig configures a Cluster: its connection to a NATS bus (issue 16).
// Zero values mean the library's defaults.
type ClusterConfig struct {
	// URLs of NATS servers ("nats://host:port", "tls://host:port"); at least one.
	URLs []string
	// Name of the connection, shown by the server's monitoring.
	Name string
	// SubjectPrefix: subjects are "<prefix>.<channel>" (default "wtd.bcast").
	SubjectPrefix string
	// Credentials: at most one of User/Password, Token, NKeySeed, CredentialsFile.
	User, Password  string
	Token           string
	NKeySeed        string
	CredentialsFile string
	// TLS: required (tls:// URLs require it anyway), TLS before the server's INFO,
	// a PEM file of CAs to trust, a client certificate and key (PEM files).
	TLSRequired         bool
	TLSFirst            bool
	TLSRootCertificates string
	TLSClientCert       string
	TLSClientKey        string
	// ConnectTimeout bounds one attempt to one server (default 2 s).
	ConnectTimeout time.Duration
	// ReconnectDelayMax is the longest pause between reconnection attempts, which
	// back off from 0 and never stop (default 2 s).
	ReconnectDelayMax time.Duration
	// PingInterval: two unanswered pings end the connection (default 10 s).
	PingInterval time.Duration
	// NoWaitForConnection: NewCluster returns at once and connects in the background
	// (by default it fails unless a server answers now).
	NoWaitForConnection bool
	// PublishCapacity (default 2048) and ReceiveCapacity (default 65536 per channel).
	PublishCapacity int
	ReceiveCapacity int
}

// ClusterStats are the counters of a cluster's connection.
type ClusterStats struct {
	Connects, Reconnects, Disconnects uint64
	// MaxPayload is the server's max_payload (0 before the first connection).
	MaxPayload uint64
	Connected  bool
}

// ChannelStats are the counters of a ClusterBroadcaster (see the C header's
// wtd_cluster_broadcaster_stats for each field).
type ChannelStats struct {
	Broadcasts, Published, BusFailures              uint64
	Received, ReceivedInvalid, ReceivedGaps         uint64
	DeliveredLocal, DeliveredFromBus, Reconnects    uint64
	RTTSamples                                      uint64
	RTTLast, RTTAvg, RTTMin, RTTMax                 time.Duration
	LatencySamples                                  uint64
	LatencyLast, LatencyAvg, LatencyMin, LatencyMax time.Duration
	BusConnected, BusReady                          bool
}

// Cluster is a connection to a NATS bus that reconnects by itself. Join a
// Broadcaster to a channel with Join. Runtime.Close closes it.
type Cluster struct {
	rt   *Runtime
	h    *C.wtd_cluster
	mu   sync.RWMutex
	free bool
	once sync.Once
}

func (cc *ClusterConfig) build() (*C.wtd_cluster_config, error) {
	var c *C.wtd_cluster_config
	if err := call(func() C.enum_wtd_result { return C.wtd_cluster_config_new(&c) }); err != nil {
		return nil, err
	}
	str := func(s string, f func(p *C.char) C.enum_wtd_result) error {
		p := C.CString(s)
		defer C.free(unsafe.Pointer(p))
		return call(func() C.enum_wtd_result { return f(p) })
	}
	str2 := func(a, b string, f func(p, q *C.char) C.enum_wtd_result) error {
		p, q := C.CString(a), C.CString(b)
		defer C.free(unsafe.Pointer(p))
		defer C.free(unsafe.Pointer(q))
		return call(func() C.enum_wtd_result { return f(p, q) })
	}
	ms := func(d time.Duration) C.uint32_t {
		v := d / time.Millisecond
		if v < 0 || v > 1<<32-1 {
			v = 0 // out of range: the library refuses it
		}
		return C.uint32_t(v)
	}
	steps := []func() error{}
	add := func(f func() error) { steps = append(steps, f) }
	for _, u := range cc.URLs {
		u := u
		add(func() error {
			return str(u, func(p *C.char) C.enum_wtd_result { return C.wtd_cluster_config_add_url(c, p) })
		})
	}
	if cc.Name != "" {
		add(func() error {
			return str(cc.Name, func(p *C.char) C.enum_wtd_result { return C.wtd_cluster_config_set_name(c, p) })
		})
	}
	if cc.SubjectPrefix != "" {
		add(func() error {
			return str(cc.SubjectPrefix, func(p *C.char) C.enum_wtd_result { return C.wtd_cluster_config_set_subject_prefix(c, p) })
		})
	}
	if cc.User != "" || cc.Password != "" {
		add(func() error {
			return str2(cc.User, cc.Password, func(p, q *C.char) C.enum_wtd_result {
				return C.wtd_cluster_config_set_user_password(c, p, q)
			})
		})
	}
	if cc.Token != "" {
		add(func() error {
			return str(cc.Token, func(p *C.char) C.enum_wtd_result { return C.wtd_cluster_config_set_token(c, p) })
		})
	}
	if cc.NKeySeed != "" {
		add(func() error {
			return str(cc.NKeySeed, func(p *C.char) C.enum_wtd_result { return C.wtd_cluster_config_set_nkey_seed(c, p) })
		})
	}
	if cc.CredentialsFile != "" {
		add(func() error {
			return str(cc.CredentialsFile, func(p *C.char) C.enum_wtd_result {
				return C.wtd_cluster_config_set_credentials_file(c, p)
			})
		})
	}
	if cc.TLSRequired {
		add(func() error {
			return call(func() C.enum_wtd_result { return C.wtd_cluster_config_set_tls_required(c, true) })
		})
	}
	if cc.TLSFirst {
		add(func() error {
			return call(func() C.enum_wtd_result { return C.wtd_cluster_config_set_tls_first(c, true) })
		})
	}
	if cc.TLSRootCertificates != "" {
		add(func() error {
			return str(cc.TLSRootCertificates, func(p *C.char) C.enum_wtd_result {
				return C.wtd_cluster_config_set_tls_root_certificates(c, p)
			})
		})
	}
	if cc.TLSClientCert != "" || cc.TLSClientKey != "" {
		add(func() error {
			return str2(cc.TLSClientCert, cc.TLSClientKey, func(p, q *C.char) C.enum_wtd_result {
				return C.wtd_cluster_config_set_tls_client_certificate(c, p, q)
			})
		})
	}
	if cc.ConnectTimeout != 0 {
		add(func() error {
			return call(func() C.enum_wtd_result { return C.wtd_cluster_config_set_connect_timeout_ms(c, ms(cc.ConnectTimeout)) })
		})
	}
	if cc.ReconnectDelayMax != 0 {
		add(func() error {
			return call(func() C.enum_wtd_result {
				return C.wtd_cluster_config_set_reconnect_delay_max_ms(c, ms(cc.ReconnectDelayMax))
			})
		})
	}
	if cc.PingInterval != 0 {
		add(func() error {
			return call(func() C.enum_wtd_result { return C.wtd_cluster_config_set_ping_interval_ms(c, ms(cc.PingInterval)) })
		})
	}
	if cc.NoWaitForConnection {
		add(func() error {
			return call(func() C.enum_wtd_result { return C.wtd_cluster_config_set_wait_for_connection(c, false) })
		})
	}
	if cc.PublishCapacity != 0 {
		add(func() error {
			if cc.PublishCapacity < 0 {
				return &Error{Code: CodeInvalidArgument, Msg: "PublishCapacity is negative"}
			}
			return call(func() C.enum_wtd_result {
				return C.wtd_cluster_config_set_publish_capacity(c, C.size_t(cc.PublishCapacity))
			})
		})
	}
	if cc.ReceiveCapacity != 0 {
		add(func() error {
			if cc.ReceiveCapacity < 0 {
				return &Error{Code: CodeInvalidArgument, Msg: "ReceiveCapacity is negative"}
			}
			return call(func() C.enum_wtd_result {
				return C.wtd_cluster_config_set_receive_capacity(c, C.size_t(cc.ReceiveCapacity))
			})
		})
	}
	for _, f := range steps {
		if err := f(); err != nil {
			C.wtd_cluster_config_free(c)
			return nil, err
		}
	}
	return c, nil
}

// NewCluster connects to NATS. Unless cfg.NoWaitForConnection, it blocks until a
// server answered (at most ConnectTimeout per URL) and fails with ErrConnect if none
// did; ErrInvalidArgument for no or a bad URL or prefix.
func NewCluster(rt *Runtime, cfg *ClusterConfig) (*Cluster, error) {
	if rt == nil {
		return nil, &Error{Code: CodeInvalidArgument, Msg: "runtime is nil"}
	}
	if cfg == nil {
		cfg = &ClusterConfig{}
	}
	cc, err := cfg.build()
	if err != nil {
		return nil, err
	}
	defer C.wtd_cluster_config_free(cc)
	c := &Cluster{rt: rt}
	rt.mu.Lock()
	if rt.isClosed() {
		rt.mu.Unlock()
		return nil, closedErr("runtime")
	}
	rt.ops.Add(1) // Runtime.Close waits for this call before freeing the runtime
	rt.mu.Unlock()
	err = call(func() C.enum_wtd_result { return C.wtd_cluster_new(rt.h, cc, &c.h) })
	rt.ops.Done()
	if err != nil {
		return nil, err
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.isClosed() {
		C.wtd_cluster_free(c.h)
		return nil, closedErr("runtime")
	}
	rt.closers[c] = struct{}{}
	return c, nil
}

func (c *Cluster) use(f func(h *C.wtd_cluster) error) error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.free {
		return closedErr("cluster")
	}
	return f(c.h)
}

// IsConnected tells whether the connection to NATS is up now.
func (c *Cluster) IsConnected() bool {
	up := false
	c.use(func(h *C.wtd_cluster) error { up = bool(C.wtd_cluster_is_connected(h)); return nil })
	return up
}

// Stats reads the connection's counters.
func (c *Cluster) Stats() (ClusterStats, error) {
	var st C.wtd_cluster_stats
	err := c.use(func(h *C.wtd_cluster) error {
		return call(func() C.enum_wtd_result { return C.wtd_cluster_get_stats(h, &st, C.size_t(unsafe.Sizeof(st))) })
	})
	return ClusterStats{
		Connects: uint64(st.connects), Reconnects: uint64(st.reconnects),
		Disconnects: uint64(st.disconnects), MaxPayload: uint64(st.max_payload),
		Connected: bool(st.connected),
	}, err
}

// Join joins b to channel (dot-separated tokens of A-Z a-z 0-9 _ -): Broadcast on
// the result reaches b's members and those of every other node's broadcaster on the
// channel. b keeps its members (add and remove them on b as before).
func (c *Cluster) Join(channel string, b *Broadcaster) (*ClusterBroadcaster, error) {
	if b == nil {
		return nil, &Error{Code: CodeInvalidArgument, Msg: "broadcaster is nil"}
	}
	cb := &ClusterBroadcaster{rt: c.rt}
	ch := C.CString(channel)
	defer C.free(unsafe.Pointer(ch))
	err := c.use(func(h *C.wtd_cluster) error {
		return b.use(func(bh *C.wtd_broadcaster) error {
			return call(func() C.enum_wtd_result { return C.wtd_cluster_join(h, ch, bh, &cb.h) })
		})
	})
	if err != nil {
		return nil, err
	}
	c.rt.mu.Lock()
	defer c.rt.mu.Unlock()
	if c.rt.isClosed() {
		C.wtd_cluster_broadcaster_free(cb.h)
		return nil, closedErr("runtime")
	}
	c.rt.closers[cb] = struct{}{}
	return cb, nil
}

// Close releases the cluster handle (the connection closes once its joined
// broadcasters are closed too). Safe to call twice.
func (c *Cluster) Close() error {
	c.once.Do(func() {
		c.mu.Lock()
		c.free = true
		C.wtd_cluster_free(c.h)
		c.mu.Unlock()
		c.rt.mu.Lock()
		delete(c.rt.closers, c)
		c.rt.mu.Unlock()
	})
	return nil
}

// ClusterBroadcaster is a Broadcaster joined to a channel of a Cluster.
type ClusterBroadcaster struct {
	rt   *Runtime
	h    *C.wtd_cluster_broadcaster
	mu   sync.RWMutex
	free bool
	once sync.Once
}

func (cb *ClusterBroadcaster) use(f func(h *C.wtd_cluster_broadcaster) error) error {
	cb.mu.RLock()
	defer cb.mu.RUnlock()
	if cb.free {
		return closedErr("cluster broadcaster")
	}
	return f(cb.h)
}

// Broadcast delivers data to the local members at once and publishes it once on the
// channel for every other node's members; it returns how many local members accepted
// it. It never waits for the bus: when the bus is down or its queue is full the
// publish is counted in ChannelStats.BusFailures and the call still succeeds.
func (cb *ClusterBroadcaster) Broadcast(data []byte, prio Priority, ttl time.Duration) (int, error) {
	var n C.size_t
	err := cb.use(func(h *C.wtd_cluster_broadcaster) error {
		p, l := bytesPtr(data)
		return call(func() C.enum_wtd_result {
			return C.wtd_cluster_broadcaster_broadcast(h, p, l, C.uint8_t(prio), ttlMs(ttl), &n)
		})
	})
	return int(n), err
}

// Stats reads the channel's counters.
func (cb *ClusterBroadcaster) Stats() (ChannelStats, error) {
	var st C.wtd_cluster_broadcaster_stats
	err := cb.use(func(h *C.wtd_cluster_broadcaster) error {
		return call(func() C.enum_wtd_result {
			return C.wtd_cluster_broadcaster_get_stats(h, &st, C.size_t(unsafe.Sizeof(st)))
		})
	})
	us := func(v C.uint64_t) time.Duration { return time.Duration(v) * time.Microsecond }
	return ChannelStats{
		Broadcasts: uint64(st.broadcasts), Published: uint64(st.published),
		BusFailures: uint64(st.bus_failures), Received: uint64(st.received),
		ReceivedInvalid: uint64(st.received_invalid), ReceivedGaps: uint64(st.received_gaps),
		DeliveredLocal: uint64(st.delivered_local), DeliveredFromBus: uint64(st.delivered_from_bus),
		Reconnects: uint64(st.reconnects), RTTSamples: uint64(st.rtt_samples),
		RTTLast: us(st.rtt_last_us), RTTAvg: us(st.rtt_avg_us), RTTMin: us(st.rtt_min_us),
		RTTMax: us(st.rtt_max_us), LatencySamples: uint64(st.latency_samples),
		LatencyLast: us(st.latency_last_us), LatencyAvg: us(st.latency_avg_us),
		LatencyMin: us(st.latency_min_us), LatencyMax: us(st.latency_max_us), BusConnected: bool(st.bus_connected), BusReady: bool(st.bus_ready),
	}, err
}

// IsBusReady tells whether an own message came back since the connection was last
// made: the subscription is live on the server.
func (cb *ClusterBroadcaster) IsBusReady() bool {
	ok := false
	cb.use(func(h *C.wtd_cluster_broadcaster) error {
		ok = bool(C.wtd_cluster_broadcaster_is_bus_ready(h))
		return nil
	})
	return ok
}

// WaitBusReady waits until IsBusReady, bounded by ctx.
func (cb *ClusterBroadcaster) WaitBusReady(ctx context.Context) error {
	return waitLoop(ctx, func(ms C.int32_t) error {
		return cb.use(func(h *C.wtd_cluster_broadcaster) error {
			return call(func() C.enum_wtd_result { return C.wtd_cluster_broadcaster_wait_bus_ready(h, ms) })
		})
	})
}

// Origin is the random id this broadcaster puts in its bus messages.
func (cb *ClusterBroadcaster) Origin() uint64 {
	var o uint64
	cb.use(func(h *C.wtd_cluster_broadcaster) error { o = uint64(C.wtd_cluster_broadcaster_origin(h)); return nil })
	return o
}

// Close leaves the channel (the local Broadcaster and its members stay). Safe to
// call twice.
func (cb *ClusterBroadcaster) Close() error {
	cb.once.Do(func() {
		cb.mu.Lock()
		cb.free = true
		C.wtd_cluster_broadcaster_free(cb.h)
		cb.mu.Unlock()
		cb.rt.mu.Lock()
		delete(cb.rt.closers, cb)
		cb.rt.mu.Unlock()
	})
	return nil
}
