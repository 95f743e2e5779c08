package wtd

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// echoBoth sends n datagrams of size bytes from a to b, checking each arrives.
func echoBoth(t *testing.T, ctx context.Context, a, b *Session, n, size int) {
	t.Helper()
	msg := make([]byte, size)
	for i := 0; i < n; i++ {
		msg[0] = byte(i)
		if err := a.SendWait(ctx, msg); err != nil {
			t.Fatal(err)
		}
		got, err := b.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != size || got[0] != byte(i) {
			t.Fatalf("datagram %d: %d bytes", i, len(got))
		}
	}
}

func TestConnectionStatsAfterAnExchange(t *testing.T) {
	p := newPair(t, "/stats")
	ctx := recvCtx(t)
	echoBoth(t, ctx, p.client, p.server, 60, 900)
	echoBoth(t, ctx, p.server, p.client, 40, 900)
	for side, s := range map[string]*Session{"client": p.client, "server": p.server} {
		st, err := s.ConnectionStats()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %+v", side, st)
		// MinRTT can be 0 on loopback (see ConnectionStats.MinRTT).
		if st.RTT <= 0 || st.MinRTT < 0 || st.MinRTT > 4*st.RTT || st.CongestionWindow == 0 {
			t.Fatalf("%s: %+v", side, st)
		}
		if st.PacketsSent < 40 || st.PacketsReceived < 40 || st.PathMTU < 1200 {
			t.Fatalf("%s: %+v", side, st)
		}
		if st.RTTVariance != -1 || st.BytesInFlight != -1 || st.PacingRate != -1 {
			t.Fatalf("%s: quinn 0.11 exposes neither RTT variance nor bytes in flight: %+v", side, st)
		}
		if st.Controller != CongestionCubic || st.Controller.String() != "cubic" {
			t.Fatalf("%s: %v", side, st.Controller)
		}
	}
	cs, _ := p.client.ConnectionStats()
	ss, _ := p.server.ConnectionStats()
	if cs.DatagramsSent != 60 || ss.DatagramsReceived != 60 || ss.DatagramsSent != 40 || cs.DatagramsReceived != 40 {
		t.Fatalf("datagram counts: client %+v server %+v", cs, ss)
	}
}

func tunedPair(t *testing.T, tr TransportConfig) (*Session, *Session) {
	t.Helper()
	rt, err := NewRuntime(nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	str := tr
	srv, err := Listen(rt, &ServerConfig{Transport: &str})
	if err != nil {
		t.Fatal(err)
	}
	hash, _ := srv.CertHash()
	ctr := tr
	cli, err := NewClient(rt, &ClientConfig{CertHashes: [][32]byte{hash}, Transport: &ctr})
	if err != nil {
		t.Fatal(err)
	}
	url, _ := srv.URL("/tuned")
	ctx := recvCtx(t)
	var server *Session
	var acceptErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		req, err := srv.Accept(ctx)
		if err != nil {
			acceptErr = err
			return
		}
		server, acceptErr = req.Accept()
	}()
	client, err := cli.Dial(ctx, url, nil)
	wg.Wait()
	if err != nil || acceptErr != nil {
		t.Fatal(err, acceptErr)
	}
	return client, server
}

func TestTuningShowsInConnectionStats(t *testing.T) {
	c, s := tunedPair(t, TransportConfig{
		CongestionController: CongestionNewReno,
		DisableMTUDiscovery:  true,
		InitialMTU:           1400,
		InitialRTT:           50 * time.Millisecond,
	})
	echoBoth(t, recvCtx(t), c, s, 20, 1300) // too large for a 1200-byte path
	st, err := c.ConnectionStats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Controller != CongestionNewReno || st.PathMTU != 1400 {
		t.Fatalf("%+v", st)
	}
	c, s = tunedPair(t, TransportConfig{CongestionController: CongestionBBR})
	echoBoth(t, recvCtx(t), c, s, 10, 100)
	if st, _ := c.ConnectionStats(); st.Controller != CongestionBBR || st.PacingRate < 0 {
		t.Fatalf("%+v", st)
	}

	rt, err := NewRuntime(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	for _, bad := range []TransportConfig{
		{InitialMTU: 1199}, {InitialMTU: 65528}, {InitialRTT: -time.Millisecond},
		{InitialRTT: 61 * time.Second}, {CongestionController: 7},
	} {
		bad := bad
		_, err := NewClient(rt, &ClientConfig{Transport: &bad})
		if !errors.Is(err, ErrInvalidArgument) {
			t.Fatalf("%+v: %v", bad, err)
		}
	}
}

// recordingHandler is a slog.Handler that keeps the records it is given.
type recordingHandler struct {
	level   slog.Level
	mu      sync.Mutex
	records []slog.Record
	added   chan struct{}
}

func (h *recordingHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }
func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.records = append(h.records, r.Clone())
	h.mu.Unlock()
	select {
	case h.added <- struct{}{}:
	default:
	}
	return nil
}
func (h *recordingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordingHandler) WithGroup(string) slog.Handler      { return h }

// wait returns the first record whose message contains needle.
func (h *recordingHandler) wait(t *testing.T, needle string) slog.Record {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		h.mu.Lock()
		for _, r := range h.records {
			if strings.Contains(r.Message, needle) {
				h.mu.Unlock()
				return r
			}
		}
		h.mu.Unlock()
		select {
		case <-h.added:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("no log record with %q", needle)
		}
	}
}

func TestLogHandlerGetsTheLibrarysRecords(t *testing.T) {
	h := &recordingHandler{level: slog.LevelInfo, added: make(chan struct{}, 1)}
	if err := SetLogHandler(h); err != nil {
		t.Fatal(err)
	}
	defer SetLogHandler(nil)

	rt, err := NewRuntime(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	srv, err := Listen(rt, &ServerConfig{MaxSessions: 1})
	if err != nil {
		t.Fatal(err)
	}
	url, _ := srv.URL("/logged")
	ctx := recvCtx(t)

	// A failed handshake: a client that pins another certificate.
	bad, err := NewClient(rt, &ClientConfig{CertHashes: [][32]byte{{1, 2, 3}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bad.Dial(ctx, url, nil); !errors.Is(err, ErrTLS) {
		t.Fatalf("dial with a wrong hash: %v", err)
	}
	r := h.wait(t, "handshake failed: the peer aborted")
	if r.Level != slog.LevelInfo || !strings.Contains(r.Message, "remote=127.0.0.1:") ||
		!strings.Contains(r.Message, "TLS alert") {
		t.Fatalf("%v %q", r.Level, r.Message)
	}
	var target string
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "target" {
			target = a.Value.String()
		}
		return true
	})
	if !strings.HasPrefix(target, "wtdatagram::transport::") {
		t.Fatalf("target %q", target)
	}
	if time.Since(r.Time) > time.Minute || r.Time.After(time.Now()) {
		t.Fatalf("record time %v", r.Time)
	}

	// A refused request: the server holds one session at most.
	hash, _ := srv.CertHash()
	cli, err := NewClient(rt, &ClientConfig{CertHashes: [][32]byte{hash}})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		if req, err := srv.Accept(ctx); err == nil {
			req.Accept()
		}
	}()
	first, err := cli.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	if _, err := cli.Dial(ctx, url, nil); !errors.Is(err, ErrRejected) {
		t.Fatalf("second session: %v", err)
	}
	h.wait(t, "request answered 503")

	// Only INFO and above reached the handler.
	h.mu.Lock()
	for _, r := range h.records {
		if r.Level < slog.LevelInfo {
			t.Errorf("record below the handler's level: %v %q", r.Level, r.Message)
		}
	}
	h.mu.Unlock()
}

func TestQlogDirGetsATracePerConnection(t *testing.T) {
	dir := t.TempDir()
	c, s := tunedPair(t, TransportConfig{QlogDir: dir})
	echoBoth(t, recvCtx(t), c, s, 5, 100)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
		text, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil || !strings.Contains(string(text), "qlog_version") || !strings.Contains(string(text), "packet_sent") {
			t.Fatalf("%s: %v %.200q", e.Name(), err, text)
		}
	}
	if len(names) != 2 || !strings.HasPrefix(names[0], "client-") || !strings.HasPrefix(names[1], "server-") {
		t.Fatalf("one trace per connection and side: %v", names)
	}
	rt, err := NewRuntime(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	if _, err := NewClient(rt, &ClientConfig{Transport: &TransportConfig{QlogDir: filepath.Join(dir, "missing")}}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("missing directory: %v", err)
	}
}
