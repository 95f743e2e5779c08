package wtd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// lossyRelay is a UDP relay on 127.0.0.1 between one client and a server that
// drops lossPermille of the packets in each direction (seeded xorshift PRNG, one per
// direction), like tests/reliability.rs does for the Rust layer.
type lossyRelay struct {
	addr               *net.UDPAddr
	front, back        *net.UDPConn
	dropped, forwarded atomic.Uint64
	wg                 sync.WaitGroup
}

func newLossyRelay(t *testing.T, server string, lossPermille, seed uint64) *lossyRelay {
	t.Helper()
	saddr, err := net.ResolveUDPAddr("udp", server)
	if err != nil {
		t.Fatal(err)
	}
	front, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	back, err := net.DialUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}, saddr)
	if err != nil {
		t.Fatal(err)
	}
	r := &lossyRelay{addr: front.LocalAddr().(*net.UDPAddr), front: front, back: back}
	lose := func(state uint64) func() bool {
		state |= 1
		return func() bool {
			state ^= state << 13
			state ^= state >> 7
			state ^= state << 17
			return state%1000 < lossPermille
		}
	}
	var client atomic.Pointer[net.UDPAddr]
	r.wg.Add(2)
	go func() { // client -> server
		defer r.wg.Done()
		drop := lose(seed)
		buf := make([]byte, 65536)
		for {
			n, from, err := front.ReadFromUDP(buf)
			if err != nil {
				return
			}
			client.Store(from)
			if drop() {
				r.dropped.Add(1)
			} else if _, err := back.Write(buf[:n]); err == nil {
				r.forwarded.Add(1)
			}
		}
	}()
	go func() { // server -> client
		defer r.wg.Done()
		drop := lose(seed * 31)
		buf := make([]byte, 65536)
		for {
			n, err := back.Read(buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue // e.g. ICMP port unreachable before the client exists
			}
			c := client.Load()
			if c == nil {
				continue
			}
			if drop() {
				r.dropped.Add(1)
			} else if _, err := front.WriteToUDP(buf[:n], c); err == nil {
				r.forwarded.Add(1)
			}
		}
	}()
	t.Cleanup(r.Close)
	return r
}

func (r *lossyRelay) Close() {
	r.front.Close()
	r.back.Close()
	r.wg.Wait()
}

// relMsg is message i of tag, padded with dots to pad bytes.
func relMsg(tag string, i, pad int) []byte {
	m := fmt.Sprintf("%s-%d:", tag, i)
	if len(m) < pad {
		m += strings.Repeat(".", pad-len(m))
	}
	return []byte(m)
}

// exchange sends n messages from a to b and from b to a at the same time and
// checks that each side received each of the other's messages exactly once and got
// a Delivered report for each of its own.
func exchange(t *testing.T, ctx context.Context, a, b *Reliability, n, pad int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	send := func(r *Reliability, tag string) {
		defer wg.Done()
		ids := map[uint64]bool{}
		for i := 0; i < n; i++ {
			id, err := r.Send(ctx, relMsg(tag, i, pad))
			if err != nil {
				errs <- fmt.Errorf("%s send %d: %w", tag, i, err)
				return
			}
			ids[id] = true
		}
		for i := 0; i < n; i++ {
			rep, err := r.NextReport(ctx)
			if err != nil {
				errs <- fmt.Errorf("%s report %d: %w", tag, i, err)
				return
			}
			if rep.Outcome != Delivered || rep.Attempts < 1 || !ids[rep.ID] {
				errs <- fmt.Errorf("%s: unexpected report %+v", tag, rep)
				return
			}
			delete(ids, rep.ID)
		}
	}
	recv := func(r *Reliability, tag string) {
		defer wg.Done()
		seen := map[int]bool{}
		for k := 0; k < n; k++ {
			m, err := r.Receive(ctx)
			if err != nil {
				errs <- fmt.Errorf("%s receive %d: %w", tag, k, err)
				return
			}
			s := string(m)
			head, _, _ := strings.Cut(strings.TrimPrefix(s, tag+"-"), ":")
			i, err := strconv.Atoi(head)
			if err != nil || i < 0 || i >= n || s != string(relMsg(tag, i, pad)) {
				errs <- fmt.Errorf("%s: unexpected message %.40q", tag, s)
				return
			}
			if seen[i] {
				errs <- fmt.Errorf("%s: message %d delivered twice", tag, i)
				return
			}
			seen[i] = true
		}
	}
	wg.Add(4)
	go send(a, "a2b")
	go send(b, "b2a")
	go recv(b, "a2b")
	go recv(a, "b2a")
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
}

func TestReliabilityLoopback(t *testing.T) {
	p := newPair(t, "/rel")
	a, err := NewReliability(p.client, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewReliability(p.server, &ReliabilityConfig{Window: 16, AckTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const n = 200
	exchange(t, ctx, a, b, n, 100)
	for _, r := range []*Reliability{a, b} {
		s, err := r.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if s.MessagesSent != n || s.MessagesDelivered != n || s.MessagesReceived != n ||
			s.MessagesGivenUp != 0 || s.InFlight != 0 {
			t.Fatalf("stats %+v", s)
		}
	}
	// Nothing more arrives, and nothing is reported twice.
	short, cancel2 := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel2()
	if _, err := b.Receive(short); !errors.Is(err, ErrTimeout) {
		t.Fatalf("extra receive: %v", err)
	}
	if _, err := a.NextReport(short); !errors.Is(err, ErrTimeout) {
		t.Fatalf("extra report: %v", err)
	}
}

func TestReliabilityUnderLoss(t *testing.T) {
	rt, err := NewRuntime(nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	srv, err := Listen(rt, nil)
	if err != nil {
		t.Fatal(err)
	}
	saddr, _ := srv.Addr()
	relay := newLossyRelay(t, saddr, 200, 0x5eed1234abcd)
	hash, _ := srv.CertHash()
	cli, err := NewClient(rt, &ClientConfig{CertHashes: [][32]byte{hash}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	// The handshake and CONNECT cross the lossy relay too (QUIC retransmits them).
	var ss *Session
	var acceptErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		ss, acceptErr = srv.AcceptSession(ctx)
	}()
	cs, err := cli.Dial(ctx, fmt.Sprintf("https://127.0.0.1:%d/lossy", relay.addr.Port), nil)
	<-done
	if err != nil || acceptErr != nil {
		t.Fatalf("dial %v, accept %v", err, acceptErr)
	}
	cfg := &ReliabilityConfig{AckTimeout: 150 * time.Millisecond, MaxRetries: 60, Window: 32}
	a, err := NewReliability(cs, cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewReliability(ss, cfg)
	if err != nil {
		t.Fatal(err)
	}
	const n = 120
	exchange(t, ctx, a, b, n, 900)
	sa, _ := a.Stats()
	sb, _ := b.Stats()
	t.Logf("relay: %d dropped, %d forwarded; a %+v; b %+v", relay.dropped.Load(), relay.forwarded.Load(), sa, sb)
	if relay.dropped.Load() == 0 {
		t.Fatal("the relay dropped nothing")
	}
	for _, s := range []ReliabilityStats{sa, sb} {
		if s.MessagesSent != n || s.MessagesDelivered != n || s.MessagesReceived != n || s.MessagesGivenUp != 0 {
			t.Fatalf("stats %+v", s)
		}
	}
	if sa.Retransmissions+sb.Retransmissions == 0 {
		t.Fatal("20% loss but no retransmission")
	}
}

func TestReliabilityGivesUp(t *testing.T) {
	p := newPair(t, "/silent")
	// The server side has no layer: DATA frames arrive as plain datagrams and are
	// never acknowledged.
	r, err := NewReliability(p.client, &ReliabilityConfig{AckTimeout: 20 * time.Millisecond, MaxRetries: 2})
	if err != nil {
		t.Fatal(err)
	}
	ctx := recvCtx(t)
	id, err := r.Send(ctx, []byte("anyone?"))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := r.NextReport(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.ID != id || rep.Outcome != GaveUp || rep.Attempts != 3 {
		t.Fatalf("report %+v", rep)
	}
	// The peer saw pywebtransport's DATA frame: 0x04 "DATA" [u32 BE seq][payload].
	d, err := p.server.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := "\x04DATA\x00\x00\x00\x00anyone?"; string(d) != want {
		t.Fatalf("wire frame %q, want %q", d, want)
	}
	if s, _ := r.Stats(); s.MessagesGivenUp != 1 || s.Retransmissions != 2 {
		t.Fatalf("stats %+v", s)
	}
}

func TestReliabilityErrors(t *testing.T) {
	p := newPair(t, "/relerr")
	if _, err := NewReliability(p.client, &ReliabilityConfig{Window: -1}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("bad window: %v", err)
	}
	if _, err := NewReliability(p.client, &ReliabilityConfig{AckTimeout: time.Microsecond}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("bad ack timeout: %v", err)
	}
	if _, err := NewReliability(nil, nil); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("nil session: %v", err)
	}
	r, err := NewReliability(p.client, &ReliabilityConfig{Window: 1, AckTimeout: time.Second, MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	// One owner per session.
	if _, err := NewStream(p.client, nil); !errors.Is(err, ErrInvalidState) {
		t.Fatalf("second owner: %v", err)
	}
	if _, err := NewReliability(p.client, nil); !errors.Is(err, ErrInvalidState) {
		t.Fatalf("second layer: %v", err)
	}
	ctx := recvCtx(t)
	if _, err := r.Send(ctx, make([]byte, 65536)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("too large: %v", err)
	}
	// Window 1 and a silent peer: the second send waits for room until the deadline.
	if _, err := r.Send(ctx, []byte("one")); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	if _, err := r.Send(short, []byte("two")); !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("full window: %v", err)
	}
	canceled, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if _, err := r.Receive(canceled); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled: %v", err)
	}
	// Close wakes a blocked receive; afterwards everything is ErrClosed.
	errc := make(chan error, 1)
	go func() { _, err := r.Receive(context.Background()); errc <- err }()
	waitBlockedIn(t, "wtd_reliability_receive", errc) // entered the wait and still in it
	for i := 0; i < 2; i++ {
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("blocked receive: %v", err)
	}
	if _, err := r.Send(ctx, []byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("send after close: %v", err)
	}
	if _, err := r.Stats(); !errors.Is(err, ErrClosed) {
		t.Fatalf("stats after close: %v", err)
	}
	if !r.IsClosed() {
		t.Fatal("not closed")
	}
}
