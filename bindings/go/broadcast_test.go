package wtd

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// fanout is one server with n client sessions (one client endpoint, one
// connection each): server-side sessions in the order the clients dialed.
type fanout struct {
	rt      *Runtime
	srv     *Server
	clients []*Session
	servers []*Session
}

func newFanout(t *testing.T, n int) *fanout {
	t.Helper()
	rt, srv, cli := newLoopback(t, nil)
	f := &fanout{rt: rt, srv: srv}
	ctx := recvCtx(t)
	for i := 0; i < n; i++ {
		url, _ := srv.URL(fmt.Sprintf("/player/%d", i))
		var ss *Session
		var aerr error
		done := make(chan struct{})
		go func() { defer close(done); ss, aerr = srv.AcceptSession(ctx) }()
		cs, err := cli.Dial(ctx, url, nil)
		<-done
		if err != nil || aerr != nil {
			t.Fatalf("dial %v, accept %v", err, aerr)
		}
		f.clients = append(f.clients, cs)
		f.servers = append(f.servers, ss)
	}
	return f
}

func TestBroadcasterSessions(t *testing.T) {
	const players, rounds = 4, 25
	f := newFanout(t, players)
	b, err := NewBroadcaster(f.rt)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range f.servers {
		if err := b.AddSession(s); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.AddSession(f.servers[0]); err != nil { // again: no-op
		t.Fatal(err)
	}
	if n := b.SessionCount(); n != players {
		t.Fatalf("session count %d", n)
	}
	ctx := recvCtx(t)
	var wg sync.WaitGroup
	got := make([][]string, players)
	for i, c := range f.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < rounds; k++ {
				d, err := c.Receive(ctx)
				if err != nil {
					t.Errorf("client %d: %v", i, err)
					return
				}
				got[i] = append(got[i], string(d))
			}
		}()
	}
	for k := 0; k < rounds; k++ {
		n, err := b.Broadcast([]byte(fmt.Sprintf("state %d", k)), PriorityLow, 0)
		if err != nil || n != players {
			t.Fatalf("broadcast %d: accepted %d, %v", k, n, err)
		}
		time.Sleep(time.Millisecond) // pace: datagrams stay unreliable, even on loopback
	}
	wg.Wait()
	for i := range got {
		seen := map[string]bool{}
		for _, s := range got[i] {
			seen[s] = true
		}
		if len(seen) != rounds {
			t.Fatalf("client %d got %d distinct states: %q", i, len(seen), got[i])
		}
	}

	// Remove one; removing it again is ErrNotFound.
	if err := b.RemoveSession(f.servers[3]); err != nil {
		t.Fatal(err)
	}
	if err := b.RemoveSession(f.servers[3]); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second remove: %v", err)
	}
	if n, _ := b.Broadcast([]byte("three"), PriorityLow, 0); n != 3 {
		t.Fatalf("accepted %d after remove", n)
	}
	// A member that closes leaves by itself.
	f.clients[2].CloseWithError(0, "bye")
	if _, err := f.servers[2].Wait(ctx); err != nil {
		t.Fatal(err)
	}
	for b.SessionCount() != 2 {
		if ctx.Err() != nil {
			t.Fatalf("closed member still counted: %d", b.SessionCount())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n, _ := b.Broadcast([]byte("two"), PriorityLow, 0); n != 2 {
		t.Fatalf("accepted %d after close", n)
	}
	// Shutdown: empty, refuses members, reaches nobody.
	if err := b.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if err := b.AddSession(f.servers[0]); !errors.Is(err, ErrInvalidState) {
		t.Fatalf("add after shutdown: %v", err)
	}
	if n, err := b.Broadcast([]byte("nobody"), PriorityLow, 0); n != 0 || err != nil {
		t.Fatalf("broadcast after shutdown: %d %v", n, err)
	}
	for i := 0; i < 2; i++ {
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Broadcast([]byte("x"), PriorityLow, 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("broadcast after close: %v", err)
	}
}

func TestBroadcasterStreams(t *testing.T) {
	f := newFanout(t, 3)
	b, err := NewBroadcaster(f.rt)
	if err != nil {
		t.Fatal(err)
	}
	var sstreams, cstreams []*Stream
	for i := range f.servers {
		ss, err := NewStream(f.servers[i], nil)
		if err != nil {
			t.Fatal(err)
		}
		cs, err := NewStream(f.clients[i], nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.AddStream(ss); err != nil {
			t.Fatal(err)
		}
		sstreams, cstreams = append(sstreams, ss), append(cstreams, cs)
	}
	if b.StreamCount() != 3 || b.SessionCount() != 0 {
		t.Fatalf("counts %d %d", b.StreamCount(), b.SessionCount())
	}
	if _, err := b.Broadcast([]byte("x"), Priority(3), 0); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("bad priority: %v", err)
	}
	ctx := recvCtx(t)
	const rounds = 10
	for k := 0; k < rounds; k++ {
		if n, err := b.Broadcast([]byte(fmt.Sprintf("tick %d", k)), PriorityHighest, time.Second); err != nil || n != 3 {
			t.Fatalf("broadcast: %d %v", n, err)
		}
	}
	for i, cs := range cstreams {
		for k := 0; k < rounds; k++ {
			d, err := cs.Receive(ctx)
			if err != nil {
				t.Fatalf("client %d: %v", i, err)
			}
			if want := fmt.Sprintf("tick %d", k); string(d) != want { // one queue per stream: in order
				t.Fatalf("client %d got %q, want %q", i, d, want)
			}
		}
	}
	// A closed stream leaves at the next broadcast.
	sstreams[1].Close()
	if n, _ := b.Broadcast([]byte("after"), PriorityLow, 0); n != 2 {
		t.Fatalf("accepted %d", n)
	}
	if b.StreamCount() != 2 {
		t.Fatalf("stream count %d", b.StreamCount())
	}
	if err := b.RemoveStream(sstreams[0]); err != nil {
		t.Fatal(err)
	}
	if err := b.RemoveStream(sstreams[0]); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second remove: %v", err)
	}
	if err := b.AddStream(nil); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("nil stream: %v", err)
	}
	// Runtime.Close releases a broadcaster still open.
	if err := f.rt.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Broadcast([]byte("x"), PriorityLow, 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("broadcast after runtime close: %v", err)
	}
	if _, err := NewBroadcaster(f.rt); !errors.Is(err, ErrClosed) {
		t.Fatalf("new after runtime close: %v", err)
	}
}
