package wtd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"
)

type pair struct {
	rt      *Runtime
	srv     *Server
	cli     *Client
	client  *Session // client side
	server  *Session // server side
	request string   // path the server saw
}

// newLoopback is a runtime with a server on loopback (fresh self-signed certificate)
// and a client that pins that certificate, using transport tc (nil: defaults); the
// runtime, and with it everything on it, is closed when the test ends.
func newLoopback(t testing.TB, tc *TransportConfig) (*Runtime, *Server, *Client) {
	t.Helper()
	rt, err := NewRuntime(nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	srv, err := Listen(rt, nil)
	if err != nil {
		t.Fatal(err)
	}
	hash, err := srv.CertHash()
	if err != nil {
		t.Fatal(err)
	}
	cli, err := NewClient(rt, &ClientConfig{CertHashes: [][32]byte{hash}, Transport: tc})
	if err != nil {
		t.Fatal(err)
	}
	return rt, srv, cli
}

func newPair(t testing.TB, path string) *pair {
	t.Helper()
	rt, srv, cli := newLoopback(t, nil)
	url, err := srv.URL(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p := &pair{rt: rt, srv: srv, cli: cli}
	var wg sync.WaitGroup
	var acceptErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		req, err := srv.Accept(ctx)
		if err != nil {
			acceptErr = err
			return
		}
		p.request = req.Path()
		p.server, acceptErr = req.Accept()
	}()
	p.client, err = cli.Dial(ctx, url, map[string]string{"x-test": "1"})
	wg.Wait()
	if err != nil {
		t.Fatal("dial:", err)
	}
	if acceptErr != nil {
		t.Fatal("accept:", acceptErr)
	}
	return p
}

func recvCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestLoopbackDatagrams(t *testing.T) {
	p := newPair(t, "/echo?x=1")
	if p.request != "/echo?x=1" {
		t.Fatalf("server saw path %q", p.request)
	}
	if got := p.server.Path(); got != "/echo?x=1" {
		t.Fatalf("session path %q", got)
	}
	max, err := p.client.MaxDatagramSize()
	if err != nil || max < 1000 {
		t.Fatalf("max datagram size %d, %v", max, err)
	}
	ctx := recvCtx(t)
	// client -> server, both send flavours
	for i := 0; i < 20; i++ {
		msg := []byte(fmt.Sprintf("c2s-%d", i))
		if i%2 == 0 {
			err = p.client.Send(msg)
		} else {
			err = p.client.SendWait(ctx, msg)
		}
		if err != nil {
			t.Fatal(err)
		}
		got, err := p.server.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, msg) {
			t.Fatalf("server got %q, want %q", got, msg)
		}
	}
	// server -> client, up to the sender's current maximum (path MTU discovery keeps
	// raising it for a while after the handshake, so read it just before sending).
	max, err = p.server.MaxDatagramSize()
	if err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte{0xAB}, max)
	for _, msg := range [][]byte{[]byte("s2c"), {}, big} {
		if err := p.server.SendWait(ctx, msg); err != nil {
			t.Fatal(err)
		}
		got, err := p.client.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, msg) {
			t.Fatalf("client got %d bytes, want %d", len(got), len(msg))
		}
	}
	// No path allows 65536 bytes (max+1 could become legal as the path MTU grows).
	if err := p.client.Send(make([]byte, 65536)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversize send: %v", err)
	}
	st, err := p.server.Stats()
	if err != nil || st.DatagramsReceived != 20 || st.DatagramsSent != 3 {
		t.Fatalf("server stats %+v, %v", st, err)
	}
	cst, _ := p.client.Stats()
	if cst.SendTooLarge != 1 {
		t.Fatalf("client stats %+v", cst)
	}

	// Close with code and reason: the peer sees both.
	if err := p.server.CloseWithError(42, "bye now"); err != nil {
		t.Fatal(err)
	}
	info, err := p.client.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Kind != CloseRemote || info.Code != 42 || info.Reason != "bye now" {
		t.Fatalf("client close info %+v", info)
	}
	if _, err := p.client.Receive(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("receive after close: %v", err)
	}
	if err := p.client.Send([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("send after close: %v", err)
	}
	if li, _ := p.server.Wait(ctx); li.Kind != CloseLocal || li.Code != 42 {
		t.Fatalf("server close info %+v", li)
	}
}

func TestContextTimeoutAndCancel(t *testing.T) {
	p := newPair(t, "/t")
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	_, err := p.client.Receive(ctx)
	if !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("receive: %v", err)
	}
	// It gave up because the deadline passed, not early. (How long after the deadline
	// it returns is speed, not behaviour: not asserted.)
	if ctx.Err() == nil {
		t.Fatal("receive timed out before its context's deadline")
	}
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeTimeout {
		t.Fatalf("not an *Error: %T", err)
	}

	st, err := NewStream(p.server, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 250*time.Millisecond)
	defer cancel2()
	if _, err := st.Receive(ctx2); !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("stream receive: %v", err)
	}

	ctx3, cancel3 := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel3)
	if _, err := p.srv.Accept(ctx3); !errors.Is(err, context.Canceled) {
		t.Fatalf("accept: %v", err)
	}
	ctx4, cancel4 := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel4)
	if _, err := st.Receive(ctx4); !errors.Is(err, context.Canceled) {
		t.Fatalf("stream receive cancel: %v", err)
	}
}

func TestRejectAndDialTimeout(t *testing.T) {
	rt, err := NewRuntime(&RuntimeConfig{WorkerThreads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	srv, err := Listen(rt, &ServerConfig{Addr: "127.0.0.1:0", SelfSignedNames: []string{"localhost", "127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	cli, err := NewClient(rt, &ClientConfig{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	url := fmt.Sprintf("https://localhost:%d/private", srv.Port())
	go func() {
		ctx := recvCtx(t)
		req, err := srv.Accept(ctx)
		if err != nil {
			return
		}
		if req.Header("x-token") == "secret" {
			req.Reject(403)
		} else {
			req.Close()
		}
	}()
	ctx := recvCtx(t)
	if _, err := cli.Dial(ctx, url, map[string]string{"x-token": "secret"}); !errors.Is(err, ErrRejected) {
		t.Fatalf("dial: %v", err)
	}
	// Nobody accepts: the dial times out with the context.
	ctx2, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := cli.Dial(ctx2, url, nil); !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrTimeout) {
		t.Fatalf("dial timeout: %v", err)
	}
	// Bad arguments.
	if _, err := Listen(rt, &ServerConfig{Addr: "not an address"}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("listen: %v", err)
	}
}

func TestCloseTwice(t *testing.T) {
	p := newPair(t, "/c")
	st, err := NewStream(p.client, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Send([]byte("x"), PriorityLow, 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("stream send after close: %v", err)
	}
	for i := 0; i < 2; i++ {
		if err := p.client.Close(); err != nil {
			t.Fatal(err)
		}
		if err := p.server.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.client.Send([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("send after close: %v", err)
	}
	if _, err := p.client.Receive(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("receive after close: %v", err)
	}
	for i := 0; i < 2; i++ {
		p.srv.Close()
		p.cli.Close()
		if err := p.rt.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.srv.Accept(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("accept after close: %v", err)
	}
	if _, err := Listen(p.rt, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("listen after close: %v", err)
	}
}

func TestRuntimeCloseClosesEverything(t *testing.T) {
	p := newPair(t, "/r")
	done := make(chan error, 1)
	go func() {
		_, err := p.server.Receive(context.Background())
		done <- err
	}()
	if err := p.rt.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("receive: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("receive did not return")
	}
}

func TestStreamRoundTrip(t *testing.T) {
	p := newPair(t, "/stream")
	cs, err := NewStream(p.client, &StreamConfig{SendQueue: 64, ReceiveQueue: 64})
	if err != nil {
		t.Fatal(err)
	}
	ss, err := NewStream(p.server, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewStream(p.server, nil); !errors.Is(err, ErrInvalidState) {
		t.Fatalf("second stream: %v", err)
	}
	ctx := recvCtx(t)

	// Raw datagrams with priority and ttl, both ways.
	if err := cs.Send([]byte("hello"), PriorityHighest, time.Second); err != nil {
		t.Fatal(err)
	}
	got, md, err := ss.ReceiveWithMetadata(ctx)
	if err != nil || string(got) != "hello" || md.Size != 5 || md.Sequence != 0 {
		t.Fatalf("got %q %+v %v", got, md, err)
	}
	if err := ss.SendWait(ctx, []byte("world"), PriorityLow, 0); err != nil {
		t.Fatal(err)
	}
	if got, err := cs.Receive(ctx); err != nil || string(got) != "world" {
		t.Fatalf("got %q %v", got, err)
	}
	// A datagram larger than the initial receive buffer.
	max, err := cs.MaxDatagramSize()
	if err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("z"), max)
	if err := cs.Send(big, PriorityHigh, 0); err != nil {
		t.Fatal(err)
	}
	if got, err := ss.Receive(ctx); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("big: %d bytes, %v", len(got), err)
	}
	if err := cs.Send(make([]byte, 65536), PriorityLow, 0); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("too large: %v", err)
	}
	if err := cs.Send([]byte("x"), Priority(7), 0); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("bad priority: %v", err)
	}

	// JSON.
	type msg struct {
		Op   string `json:"op"`
		N    int    `json:"n"`
		Text string `json:"text"`
	}
	if err := cs.SendJSON(msg{"move", 3, "héllo"}, PriorityHigh, 0); err != nil {
		t.Fatal(err)
	}
	var m msg
	if err := ss.ReceiveJSON(ctx, &m); err != nil || m != (msg{"move", 3, "héllo"}) {
		t.Fatalf("json %+v %v", m, err)
	}
	// The exact bytes of pywebtransport's send_json, Python's
	// json.dumps({"z": 1.0, "a": [1e-05, float("nan")], "t": "é"}, separators=(",", ":")).
	type pyMsg struct {
		Z float64   `json:"z"`
		A []float64 `json:"a"`
		T string    `json:"t"`
	}
	if err := cs.SendJSON(pyMsg{1, []float64{1e-05, math.NaN()}, "é"}, PriorityHigh, 0); err != nil {
		t.Fatal(err)
	}
	if raw, err := ss.ReceiveJSONRaw(ctx); err != nil || string(raw) != `{"z":1.0,"a":[1e-05,NaN],"t":"\u00e9"}` {
		t.Fatalf("json bytes %s %v", raw, err)
	}
	// Not JSON: consumed, ErrInvalidData, stream keeps working.
	if err := ss.Send([]byte("{nope"), PriorityLow, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.ReceiveJSONRaw(ctx); !errors.Is(err, ErrInvalidData) {
		t.Fatalf("invalid json: %v", err)
	}

	// Structured.
	if err := ss.SendStructured("chat", []byte("payload!"), PriorityLow, 0); err != nil {
		t.Fatal(err)
	}
	typ, payload, err := cs.ReceiveStructured(ctx)
	if err != nil || typ != "chat" || string(payload) != "payload!" {
		t.Fatalf("structured %q %q %v", typ, payload, err)
	}

	// Stats.
	cst, err := cs.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if cst.DatagramsSent != 4 || cst.DatagramsReceived != 3 || cst.ReceiveErrors != 1 || cst.SendDropsTooLarge != 1 {
		t.Fatalf("client stream stats %+v", cst)
	}
	sst, _ := ss.Stats()
	if sst.DatagramsReceived != 4 || sst.DatagramsSent != 3 {
		t.Fatalf("server stream stats %+v", sst)
	}
	if _, err := cs.TryReceive(); !errors.Is(err, ErrWouldBlock) {
		t.Fatalf("try receive: %v", err)
	}
	// Closing a stream wakes a blocked receive with ErrClosed.
	done := make(chan error, 1)
	go func() { _, err := cs.Receive(context.Background()); done <- err }()
	waitBlockedIn(t, "wtd_stream_receive", done) // entered the wait and still in it
	cs.Close()
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("receive on closed stream: %v", err)
	}
}

// A stream whose session closed: TryReceive says ErrClosed (not ErrWouldBlock), so a
// polling loop learns of the close, and so does every receive. No stream or layer can
// be made on a closed session.
func TestStreamOfClosedSession(t *testing.T) {
	p := newPair(t, "/closed")
	cs, err := NewStream(p.client, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.TryReceive(); !errors.Is(err, ErrWouldBlock) {
		t.Fatalf("try receive while open: %v", err)
	}
	if err := p.client.CloseWithError(3, "bye"); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.TryReceive(); !errors.Is(err, ErrClosed) {
		t.Fatalf("try receive after the session closed: %v", err)
	}
	ctx := recvCtx(t)
	if _, err := cs.Receive(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("receive: %v", err)
	}
	if _, _, err := cs.ReceiveWithMetadata(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("receive with metadata: %v", err)
	}
	if _, err := cs.ReceiveJSONRaw(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("receive json: %v", err)
	}
	if _, _, err := cs.ReceiveStructured(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("receive structured: %v", err)
	}
	// The peer's session is closed too (by us): nothing can take its datagrams.
	if info, err := p.server.Wait(ctx); err != nil || info.Code != 3 {
		t.Fatalf("peer close: %+v %v", info, err)
	}
	if _, err := NewStream(p.server, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("stream on a closed session: %v", err)
	}
	if _, err := NewReliability(p.server, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("reliability on a closed session: %v", err)
	}
	if _, err := NewStructured(p.server, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("structured on a closed session: %v", err)
	}
}

func TestConnectionOpenSession(t *testing.T) {
	rt, err := NewRuntime(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	srv, err := Listen(rt, nil)
	if err != nil {
		t.Fatal(err)
	}
	hash, _ := srv.CertHash()
	cli, err := NewClient(rt, &ClientConfig{CertHashes: [][32]byte{hash}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := recvCtx(t)
	url, _ := srv.URL("/")
	conn, err := cli.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	go func() {
		for i := 0; i < 2; i++ {
			s, err := srv.AcceptSession(ctx)
			if err != nil {
				return
			}
			go func() { // echo
				for {
					b, err := s.Receive(ctx)
					if err != nil {
						return
					}
					s.SendWait(ctx, append([]byte(s.Path()+":"), b...))
				}
			}()
		}
	}()
	for _, path := range []string{"/a", "/b"} {
		s, err := conn.OpenSession(ctx, path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Send([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		got, err := s.Receive(ctx)
		if err != nil || string(got) != path+":ping" {
			t.Fatalf("got %q %v", got, err)
		}
	}
}

// Example shows a server and a client on one runtime exchanging a datagram.
func Example() {
	rt, err := NewRuntime(nil)
	if err != nil {
		panic(err)
	}
	defer rt.Close()

	srv, err := Listen(rt, nil) // 127.0.0.1:0, self-signed certificate
	if err != nil {
		panic(err)
	}
	hash, _ := srv.CertHash()
	url, _ := srv.URL("/echo")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go func() { // echo server
		s, err := srv.AcceptSession(ctx)
		if err != nil {
			return
		}
		for {
			b, err := s.Receive(ctx)
			if err != nil {
				return
			}
			s.SendWait(ctx, append([]byte("echo: "), b...))
		}
	}()

	cli, err := NewClient(rt, &ClientConfig{CertHashes: [][32]byte{hash}})
	if err != nil {
		panic(err)
	}
	sess, err := cli.Dial(ctx, url, nil)
	if err != nil {
		panic(err)
	}
	defer sess.Close()
	if err := sess.SendWait(ctx, []byte("hello")); err != nil {
		panic(err)
	}
	reply, err := sess.Receive(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Println(string(reply))
	// Output: echo: hello
}
