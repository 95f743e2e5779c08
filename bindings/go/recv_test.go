package wtd

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// Session.Receive on the default path: batches taken from the library's per-session
// queue, the DATAGRAMS_READY event a parked Receive waits for, and the queue's bounds
// (issue 14).

type recvPair struct {
	rt      *Runtime
	clients []*Session
	servers []*Session
}

// newRecvPair opens one session per path from one client (transport tc, may be nil)
// to one server, on one runtime.
func newRecvPair(t *testing.T, tc *TransportConfig, paths ...string) *recvPair {
	t.Helper()
	rt, srv, cli := newLoopback(t, tc)
	p := &recvPair{rt: rt}
	for _, path := range paths {
		url, err := srv.URL(path)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		accepted := make(chan *Session, 1)
		go func() {
			s, err := srv.AcceptSession(ctx)
			if err != nil {
				t.Error("accept:", err)
			}
			accepted <- s
		}()
		c, err := cli.Dial(ctx, url, nil)
		s := <-accepted
		cancel()
		if err != nil || s == nil {
			t.Fatal("dial:", err)
		}
		p.clients = append(p.clients, c)
		p.servers = append(p.servers, s)
	}
	return p
}

// numbered is a datagram of size bytes (at least 8) carrying i.
func numbered(i, size int) []byte {
	b := make([]byte, size)
	binary.BigEndian.PutUint64(b, uint64(i))
	return b
}

func sendNumbered(t *testing.T, s *Session, from, n, size int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := from; i < from+n; i++ {
		if err := s.SendWait(ctx, numbered(i, size)); err != nil {
			t.Fatal("send:", err)
		}
	}
}

// sendPaced sends n datagrams like sendNumbered in bursts of 500, each once the
// previous one arrived at to (received or dropped by the library, counted from base):
// a loaded machine never overflows the UDP socket, so whatever is lost is lost by the
// receiving side's queues.
func sendPaced(t *testing.T, from, to *Session, base uint64, n, size int) {
	t.Helper()
	for k := 0; k < n; k += 500 {
		m := min(500, n-k)
		sendNumbered(t, from, k, m, size)
		waitArrived(t, to, base+uint64(k+m))
	}
}

// waitArrived waits (bounded) until s has received or dropped want datagrams in all.
func waitArrived(t *testing.T, s *Session, want uint64) SessionStats {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := s.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if st.DatagramsReceived+st.RecvDropped >= want || time.Now().After(deadline) {
			if st.DatagramsReceived+st.RecvDropped != want {
				t.Fatalf("arrived %d+%d dropped, want %d", st.DatagramsReceived, st.RecvDropped, want)
			}
			return st
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// checkHeld checks how many datagrams of s the binding holds outside of the library's
// queue (taken in a batch, not handed out yet).
func checkHeld(t *testing.T, s *Session, want int) {
	t.Helper()
	if q := s.recv.held(); q != want {
		t.Fatalf("the binding holds %d datagrams, want %d", q, want)
	}
}

// drain receives until nothing is queued (a Receive with an already canceled context
// still returns what is queued) and returns the numbers received.
func drain(t *testing.T, s *Session) []int {
	t.Helper()
	done, cancel := context.WithCancel(context.Background())
	cancel()
	var got []int
	for {
		b, err := s.Receive(done)
		if errors.Is(err, context.Canceled) {
			return got
		}
		if err != nil {
			t.Fatal("receive:", err)
		}
		got = append(got, int(binary.BigEndian.Uint64(b)))
	}
}

func checkSequence(t *testing.T, what string, got []int, from, n int) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("%s: %d datagrams, want %d", what, len(got), n)
	}
	for k, v := range got {
		if v != from+k {
			t.Fatalf("%s: datagram %d is %d, want %d", what, k, v, from+k)
		}
	}
}

// Datagrams of two sessions sent interleaved while nobody receives: each session's
// Receive returns all of its own, in order (more than the 1024 the binding's old
// per-session channel held, far fewer than the library's bound of 65536).
func TestReceiveOrderPerSession(t *testing.T) {
	const n = 3000
	p := newRecvPair(t, nil, "/a", "/b")
	for i := 0; i < n; i++ {
		sendNumbered(t, p.servers[0], i, 1, 16)
		sendNumbered(t, p.servers[1], i, 1, 16)
		if i%500 == 499 { // pace: see sendPaced
			waitArrived(t, p.clients[0], uint64(i+1))
			waitArrived(t, p.clients[1], uint64(i+1))
		}
	}
	for k, c := range p.clients {
		st := waitArrived(t, c, n)
		if st.RecvDropped != 0 {
			t.Fatalf("session %d: %d dropped", k, st.RecvDropped)
		}
	}
	var wg sync.WaitGroup
	got := make([][]int, 2)
	for k, c := range p.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			for len(got[k]) < n {
				b, err := c.Receive(ctx)
				if err != nil {
					t.Errorf("session %d: after %d: %v", k, len(got[k]), err)
					return
				}
				got[k] = append(got[k], int(binary.BigEndian.Uint64(b)))
			}
		}()
	}
	wg.Wait()
	for k := range got {
		checkSequence(t, fmt.Sprintf("session %d", k), got[k], 0, n)
		st, _ := p.clients[k].Stats()
		if st.GoRecvDropped != 0 || st.RecvDropped != 0 {
			t.Fatalf("session %d: dropped %d / %d", k, st.RecvDropped, st.GoRecvDropped)
		}
	}
	checkHeld(t, p.clients[0], 0)
}

// A consumer that keeps up while the sender sends bursts as fast as backpressure
// allows loses nothing and sees the order sent.
func TestReceiveKeepsUp(t *testing.T) {
	const n = 20000
	p := newRecvPair(t, nil, "/fast")
	got := make([]int, 0, n)
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for len(got) < n {
			b, err := p.clients[0].Receive(ctx)
			if err != nil {
				done <- fmt.Errorf("after %d: %w", len(got), err)
				return
			}
			got = append(got, int(binary.BigEndian.Uint64(b)))
		}
		done <- nil
	}()
	sendPaced(t, p.servers[0], p.clients[0], 0, n, 64)
	if err := <-done; err != nil {
		st, _ := p.clients[0].Stats()
		t.Fatalf("%v (stats %+v)", err, st)
	}
	checkSequence(t, "received", got, 0, n)
}

// A consumer that does not keep up: the session's queue holds at most RecvQueue
// datagrams (and RecvQueueBytes) in all, the library drops and counts the rest, and
// once drained the queue takes datagrams again.
func TestReceiveBoundedWhenBehind(t *testing.T) {
	t.Run("count", func(t *testing.T) {
		p := newRecvPair(t, &TransportConfig{RecvQueue: 64}, "/bounded")
		c := p.clients[0]
		sendNumbered(t, p.servers[0], 0, 500, 32)
		st := waitArrived(t, c, 500)
		if st.DatagramsReceived != 64 || st.RecvDropped != 436 || st.GoRecvDropped != 0 {
			t.Fatalf("stats %+v, want 64 received and 436 dropped", st)
		}
		// They wait in the library's queue: the binding holds none until a Receive
		// takes a batch, and then hands that batch out.
		checkHeld(t, c, 0)
		if b, err := c.Receive(recvCtx(t)); err != nil || binary.BigEndian.Uint64(b) != 0 {
			t.Fatalf("first: %v %v", b, err)
		}
		checkHeld(t, c, 63)
		checkSequence(t, "kept", drain(t, c), 1, 63)
		checkHeld(t, c, 0)
		// Drained (and released): room for more.
		sendNumbered(t, p.servers[0], 1000, 10, 32)
		st = waitArrived(t, c, 510)
		if st.DatagramsReceived != 74 {
			t.Fatalf("after draining: %+v", st)
		}
		checkSequence(t, "after draining", drain(t, c), 1000, 10)
	})
	t.Run("bytes", func(t *testing.T) {
		p := newRecvPair(t, &TransportConfig{RecvQueueBytes: 1000}, "/bytes")
		c := p.clients[0]
		sendNumbered(t, p.servers[0], 0, 50, 100)
		st := waitArrived(t, c, 50)
		if st.DatagramsReceived != 10 || st.RecvDropped != 40 {
			t.Fatalf("stats %+v, want 10 received and 40 dropped", st)
		}
		checkSequence(t, "kept", drain(t, c), 0, 10)
	})
}

// Receive takes what is queued before it waits, even with a done context, and
// several goroutines receiving from one session share its datagrams, each once.
func TestReceiveDrainsAndShares(t *testing.T) {
	const n = 4000
	p := newRecvPair(t, nil, "/shared")
	c := p.clients[0]
	sendNumbered(t, p.servers[0], 0, 100, 16)
	waitArrived(t, c, 100)
	checkSequence(t, "queued", drain(t, c), 0, 100)

	var mu sync.Mutex
	seen := make([]int, n)
	total := 0
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				b, err := c.Receive(ctx)
				if err != nil {
					return // canceled once all arrived
				}
				i := int(binary.BigEndian.Uint64(b))
				mu.Lock()
				seen[i-100]++
				total++
				if total == n {
					cancel()
				}
				mu.Unlock()
			}
		}()
	}
	for k := 0; k < n; k += 500 {
		sendNumbered(t, p.servers[0], 100+k, 500, 16)
		waitArrived(t, c, uint64(100+k+500))
	}
	wg.Wait()
	for i, k := range seen {
		if k != 1 {
			t.Fatalf("datagram %d received %d times (total %d)", i+100, k, total)
		}
	}
}

// Close releases the events the session still holds; Receive then reports
// ErrClosed, and a datagram queued before a remote close is still returned first.
func TestReceiveAndClose(t *testing.T) {
	p := newRecvPair(t, &TransportConfig{RecvQueue: 64}, "/close", "/remote")
	c := p.clients[0]
	sendNumbered(t, p.servers[0], 0, 64, 16)
	waitArrived(t, c, 64)
	if _, err := c.Receive(recvCtx(t)); err != nil {
		t.Fatal(err)
	}
	checkHeld(t, c, 63)
	c.Close()
	checkHeld(t, c, 0)
	if _, err := c.Receive(recvCtx(t)); !errors.Is(err, ErrClosed) {
		t.Fatalf("receive after Close: %v", err)
	}

	r := p.clients[1]
	sendNumbered(t, p.servers[1], 7, 1, 16)
	waitArrived(t, r, 1)
	p.servers[1].CloseWithError(9, "bye")
	if _, err := r.Wait(recvCtx(t)); err != nil {
		t.Fatal(err)
	}
	b, err := r.Receive(recvCtx(t))
	if err != nil || binary.BigEndian.Uint64(b) != 7 {
		t.Fatalf("queued before the close: %v %v", b, err)
	}
	if _, err := r.Receive(recvCtx(t)); !errors.Is(err, ErrClosed) {
		t.Fatalf("after the close: %v", err)
	}
}

// ReceiveInto reuses the caller's buffer, with and without datagram events; a datagram
// that does not fit stays queued and the size it needs is returned.
func TestSessionReceiveInto(t *testing.T) {
	for _, direct := range []bool{false, true} {
		t.Run(fmt.Sprintf("direct=%v", direct), func(t *testing.T) {
			p := newRecvPair(t, &TransportConfig{DirectReceive: direct}, "/into")
			c, s := p.clients[0], p.servers[0]
			ctx := recvCtx(t)
			big := make([]byte, 1000)
			for i := range big {
				big[i] = byte(i)
			}
			for _, m := range [][]byte{[]byte("hello"), big, {}, []byte("x")} {
				if err := s.SendWait(ctx, m); err != nil {
					t.Fatal(err)
				}
			}
			buf := make([]byte, 8)
			if n, err := c.ReceiveInto(ctx, buf); err != nil || string(buf[:n]) != "hello" {
				t.Fatalf("first: %q %v", buf[:n], err)
			}
			if n, err := c.ReceiveInto(ctx, buf); !errors.Is(err, ErrBufferTooSmall) || n != 1000 {
				t.Fatalf("too small: %d %v", n, err)
			}
			if b, err := c.Receive(ctx); err != nil || string(b) != string(big) {
				t.Fatalf("the large one, still queued: %d bytes, %v", len(b), err)
			}
			if n, err := c.ReceiveInto(ctx, buf); err != nil || n != 0 {
				t.Fatalf("empty datagram: %d %v", n, err)
			}
			if n, err := c.ReceiveInto(ctx, buf); err != nil || string(buf[:n]) != "x" {
				t.Fatalf("last: %q %v", buf[:n], err)
			}
			done, cancel := context.WithCancel(context.Background())
			cancel()
			if _, err := c.ReceiveInto(done, buf); !errors.Is(err, context.Canceled) {
				t.Fatalf("nothing queued: %v", err)
			}
		})
	}
}

// A Receive that finds nothing parks its goroutine (no OS thread held) after its
// spin, and the DATAGRAMS_READY event it asked for wakes it: several times in a row,
// with the session's other receivers sharing the wake-ups.
func TestReceiveParksUntilReady(t *testing.T) {
	p := newRecvPair(t, nil, "/park")
	c, s := p.clients[0], p.servers[0]
	for round := 0; round < 3; round++ {
		before := c.recv.parks.Load()
		got := make(chan []byte, 2)
		for g := 0; g < 2; g++ {
			go func() {
				b, err := c.Receive(recvCtx(t))
				if err != nil {
					t.Error(err)
				}
				got <- b
			}()
		}
		// Both are parked (each parks at least once) before anything is sent.
		deadline := time.Now().Add(10 * time.Second)
		for c.recv.parks.Load() < before+2 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if c.recv.parks.Load() < before+2 {
			t.Fatalf("round %d: the receives did not park", round)
		}
		sendNumbered(t, s, 2*round, 2, 16)
		seen := map[int]bool{}
		for k := 0; k < 2; k++ {
			b := <-got
			if len(b) != 16 {
				t.Fatalf("round %d: %v", round, b)
			}
			seen[int(binary.BigEndian.Uint64(b))] = true
		}
		if !seen[2*round] || !seen[2*round+1] {
			t.Fatalf("round %d: got %v", round, seen)
		}
	}
}
