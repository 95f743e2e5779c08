package wtd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

func batchMsg(i int) []byte {
	b := []byte(fmt.Sprintf("m%d|", i))
	return append(b, bytes.Repeat([]byte{byte('a' + i%26)}, i%700)...)
}

func TestStreamBatches(t *testing.T) {
	p := newPair(t, "/batch")
	const n = 600
	cs, err := NewStream(p.client, &StreamConfig{SendQueue: 1000, ReceiveQueue: 1000})
	if err != nil {
		t.Fatal(err)
	}
	ss, err := NewStream(p.server, &StreamConfig{SendQueue: 1000, ReceiveQueue: 1000})
	if err != nil {
		t.Fatal(err)
	}
	ctx := recvCtx(t)

	// Client -> server with SendBatch, 50 per batch; the receiver drains with
	// ReceiveBatch into one reused batch.
	out := NewBatch(50, 50*800)
	done := make(chan error, 1)
	seen := make([]bool, n)
	go func() {
		in := NewBatch(64, 65536)
		got := 0
		for got < n {
			k, err := ss.ReceiveBatch(ctx, in)
			if err != nil {
				done <- err
				return
			}
			for j := 0; j < k; j++ {
				d := in.At(j)
				var i int
				if _, err := fmt.Sscanf(string(d), "m%d|", &i); err != nil || i >= n || seen[i] || !bytes.Equal(d, batchMsg(i)) {
					done <- fmt.Errorf("unexpected datagram %.20q", d)
					return
				}
				seen[i] = true
				got++
			}
		}
		done <- nil
	}()
	for i := 0; i < n; {
		out.Reset()
		for i < n && out.Append(batchMsg(i)) {
			i++
		}
		q, err := cs.SendBatch(out, PriorityHigh, 0)
		if err != nil || q != out.Len() {
			t.Fatalf("queued %d of %d: %v", q, out.Len(), err)
		}
		// Pace on the send queue (datagrams are unreliable; this keeps them all).
		for cs.SendBufferSize() > 100 {
			time.Sleep(time.Millisecond)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// Server -> client with SendMultiple and ReceiveInto.
	msgs := [][]byte{[]byte("one"), {}, bytes.Repeat([]byte("x"), 1000), []byte("four")}
	if q, err := ss.SendMultiple(msgs, PriorityLow, time.Second); err != nil || q != len(msgs) {
		t.Fatalf("send multiple: %d %v", q, err)
	}
	buf := make([]byte, 8)
	if k, err := cs.ReceiveInto(ctx, buf); err != nil || string(buf[:k]) != "one" {
		t.Fatalf("into: %q %v", buf[:k], err)
	}
	if k, err := cs.ReceiveInto(ctx, buf); err != nil || k != 0 {
		t.Fatalf("empty: %d %v", k, err)
	}
	if k, err := cs.ReceiveInto(ctx, buf); !errors.Is(err, ErrBufferTooSmall) || k != 1000 {
		t.Fatalf("too small: %d %v", k, err)
	}
	// A batch whose buffer cannot hold the first datagram: ErrBufferTooSmall, and it
	// stays queued.
	small := NewBatch(4, 10)
	if _, err := cs.ReceiveBatch(ctx, small); !errors.Is(err, ErrBufferTooSmall) {
		t.Fatalf("small batch: %v", err)
	}
	// Both remaining datagrams queued first: a batch takes what is queued, and "four"
	// may still be on its way (once seen as k == 1 under load).
	for cs.ReceiveBufferSize() < 2 && ctx.Err() == nil {
		time.Sleep(time.Millisecond)
	}
	big := NewBatch(4, 4096)
	if k, err := cs.ReceiveBatch(ctx, big); err != nil || k != 2 || big.Len() != 2 ||
		len(big.At(0)) != 1000 || string(big.At(1)) != "four" || big.Bytes() != 1004 {
		t.Fatalf("big batch: %d %v", k, err)
	}
	if _, err := cs.SendBatch(nil, PriorityLow, 0); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("nil batch: %v", err)
	}
	if k, err := cs.SendBatch(NewBatch(1, 0), PriorityLow, 0); k != 0 || err != nil {
		t.Fatalf("empty batch: %d %v", k, err)
	}
	if !small.Append(nil) || small.Append(make([]byte, 11)) {
		t.Fatal("append limits")
	}
	// Oversize datagrams are refused one by one; the others are queued.
	mixed := NewBatch(3, 70000)
	mixed.Append([]byte("ok"))
	mixed.Append(make([]byte, 65536))
	mixed.Append([]byte("ok too"))
	if q, err := cs.SendBatch(mixed, PriorityLow, 0); err != nil || q != 2 {
		t.Fatalf("mixed: %d %v", q, err)
	}
	if st, _ := cs.Stats(); st.SendDropsTooLarge != 1 {
		t.Fatalf("stats %+v", st)
	}
	cs.Close()
	if _, err := cs.ReceiveBatch(context.Background(), big); !errors.Is(err, ErrClosed) {
		t.Fatalf("after close: %v", err)
	}
}

func TestStreamExtras(t *testing.T) {
	p := newPair(t, "/extras")
	cs, err := NewStream(p.client, nil)
	if err != nil {
		t.Fatal(err)
	}
	ss, err := NewStream(p.server, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !cs.TrySend([]byte("t"), PriorityHighest, 0) || cs.TrySend(make([]byte, 65536), PriorityLow, 0) {
		t.Fatal("try send")
	}
	q, err := cs.QueueStats()
	if err != nil || q.SendLimit != 100 || q.ReceiveLimit != 100 {
		t.Fatalf("queue stats %+v %v", q, err)
	}
	js, err := cs.DebugState()
	if err != nil || len(js) < 10 || js[0] != '{' {
		t.Fatalf("debug state %q %v", js, err)
	}
	if _, err := cs.Diagnose(); err != nil { // a failed send: maybe findings, never an error
		t.Fatal(err)
	}
	if err := cs.StartHeartbeat(10 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	ctx := recvCtx(t)
	for {
		d, err := ss.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if IsHeartbeat(d) {
			break
		}
		if string(d) != "t" {
			t.Fatalf("got %q", d)
		}
	}
	if err := cs.StopHeartbeat(); err != nil {
		t.Fatal(err)
	}
	if err := cs.StartHeartbeat(0); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("zero interval: %v", err)
	}
	// pywebtransport: data.startswith(b"HEARTBEAT:"), whatever follows.
	if !IsHeartbeat([]byte("HEARTBEAT:")) || !IsHeartbeat([]byte("HEARTBEAT:1700000000")) ||
		!IsHeartbeat([]byte("HEARTBEAT:x")) || IsHeartbeat([]byte("HEARTBEAT")) || IsHeartbeat(nil) {
		t.Fatal("IsHeartbeat")
	}
	r, err := cs.ThroughputTest(50*time.Millisecond, 200)
	if err != nil || r.DatagramsSent == 0 {
		t.Fatalf("throughput %+v %v", r, err)
	}
}

// BenchmarkStreamSendBatch measures the Go path of batched sends (64 x 1200 B per
// call) into a stream whose peer drains with ReceiveBatch.
func BenchmarkStreamSendBatch(b *testing.B) {
	p := newPair(b, "/bench")
	cs, _ := NewStream(p.client, &StreamConfig{SendQueue: 4096, ReceiveQueue: 4096})
	ss, _ := NewStream(p.server, &StreamConfig{SendQueue: 4096, ReceiveQueue: 4096})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		in := NewBatch(256, 256*1300)
		for ctx.Err() == nil {
			if _, err := ss.ReceiveBatch(ctx, in); err != nil && !errors.Is(err, ErrTimeout) {
				return
			}
		}
	}()
	out := NewBatch(64, 64*1200)
	msg := make([]byte, 1200)
	for out.Append(msg) {
	}
	b.SetBytes(int64(out.Bytes()))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cs.SendBatch(out, PriorityLow, 0)
		for cs.SendBufferSize() > 2048 {
			time.Sleep(50 * time.Microsecond)
		}
	}
}

func TestSessionDirectBatches(t *testing.T) {
	rt, err := NewRuntime(nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	direct := &TransportConfig{DirectReceive: true, RecvQueue: 4096}
	srv, err := Listen(rt, &ServerConfig{Transport: direct})
	if err != nil {
		t.Fatal(err)
	}
	hash, _ := srv.CertHash()
	cli, err := NewClient(rt, &ClientConfig{CertHashes: [][32]byte{hash}, Transport: direct})
	if err != nil {
		t.Fatal(err)
	}
	evCli, err := NewClient(rt, &ClientConfig{CertHashes: [][32]byte{hash}}) // events on
	if err != nil {
		t.Fatal(err)
	}
	ctx := recvCtx(t)
	url, _ := srv.URL("/direct")
	accepted := make(chan *Session, 2)
	go func() {
		for i := 0; i < 2; i++ {
			s, err := srv.AcceptSession(ctx)
			if err != nil {
				return
			}
			accepted <- s
		}
	}()
	cs, err := cli.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	ss := <-accepted
	// Single datagrams, both ways, straight from the library's queue.
	if err := cs.Send([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if d, err := ss.Receive(ctx); err != nil || string(d) != "hello" {
		t.Fatalf("got %q %v", d, err)
	}
	// Batches: 700 datagrams of 5..~700 bytes, sent with backpressure.
	const n = 700
	var msgs [][]byte
	for i := 0; i < n; i++ {
		msgs = append(msgs, batchMsg(i))
	}
	sentc := make(chan error, 1)
	go func() {
		k, err := cs.SendMultiple(ctx, msgs)
		if err == nil && k != n {
			err = fmt.Errorf("sent %d of %d", k, n)
		}
		sentc <- err
	}()
	in := NewBatch(128, 65536)
	seen := make([]bool, n)
	for got := 0; got < n; {
		k, err := ss.ReceiveBatch(ctx, in)
		if err != nil {
			t.Fatalf("after %d: %v", got, err)
		}
		for j := 0; j < k; j++ {
			var i int
			d := in.At(j)
			if _, err := fmt.Sscanf(string(d), "m%d|", &i); err != nil || i >= n || seen[i] || !bytes.Equal(d, batchMsg(i)) {
				t.Fatalf("unexpected datagram %.20q", d)
			}
			seen[i] = true
			got++
		}
	}
	if err := <-sentc; err != nil {
		t.Fatal(err)
	}
	if st, _ := ss.Stats(); st.DatagramsReceived != n+1 || st.RecvDropped != 0 {
		t.Fatalf("stats %+v", st)
	}
	// A batch stops at the first datagram that cannot be sent, and says which.
	bad := NewBatch(3, 70000)
	bad.Append([]byte("a"))
	bad.Append(make([]byte, 65536))
	bad.Append([]byte("c"))
	if k, err := cs.SendBatch(ctx, bad); k != 1 || !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversize in batch: %d %v", k, err)
	}
	if k, err := ss.ReceiveBatch(ctx, in); err != nil || k != 1 || string(in.At(0)) != "a" {
		t.Fatalf("got %d %v", k, err)
	}
	// ReceiveBatch without DirectReceive: the same datagrams, the waits of Receive.
	es, err := evCli.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	srvSide := <-accepted
	for _, m := range []string{"x", "yy", "zzz"} {
		if err := srvSide.SendWait(ctx, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for len(got) < 3 {
		k, err := es.ReceiveBatch(ctx, in)
		if err != nil || k == 0 {
			t.Fatalf("default path: %d %v", k, err)
		}
		for i := 0; i < k; i++ {
			got = append(got, string(in.At(i)))
		}
	}
	if fmt.Sprint(got) != "[x yy zzz]" {
		t.Fatalf("default path: %q", got)
	}
	// Closed and drained: ErrClosed.
	cs.CloseWithError(3, "bye")
	if _, err := ss.ReceiveBatch(ctx, in); !errors.Is(err, ErrClosed) {
		t.Fatalf("after close: %v", err)
	}
	if _, err := ss.Receive(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("receive after close: %v", err)
	}
	if info, _ := ss.Wait(ctx); info.Kind != CloseRemote || info.Code != 3 {
		t.Fatalf("close info %+v", info)
	}
}

// BenchmarkSessionSendBatch measures the Go path of batched session sends (64 x
// 1200 B per call, with backpressure) to a DirectReceive peer draining with
// ReceiveBatch.
func BenchmarkSessionSendBatch(b *testing.B) {
	rt, _ := NewRuntime(nil)
	defer rt.Close()
	direct := &TransportConfig{DirectReceive: true}
	srv, _ := Listen(rt, &ServerConfig{Transport: direct})
	hash, _ := srv.CertHash()
	cli, _ := NewClient(rt, &ClientConfig{CertHashes: [][32]byte{hash}, Transport: direct})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	url, _ := srv.URL("/bench")
	go func() {
		s, err := srv.AcceptSession(ctx)
		if err != nil {
			return
		}
		in := NewBatch(256, 256*1300)
		for ctx.Err() == nil {
			if _, err := s.ReceiveBatch(ctx, in); err != nil && !errors.Is(err, ErrTimeout) {
				return
			}
		}
	}()
	cs, err := cli.Dial(ctx, url, nil)
	if err != nil {
		b.Fatal(err)
	}
	out := NewBatch(64, 64*1200)
	msg := make([]byte, 1200)
	for out.Append(msg) {
	}
	b.SetBytes(int64(out.Bytes()))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := cs.SendBatch(ctx, out); err != nil {
			b.Fatal(err)
		}
	}
}
