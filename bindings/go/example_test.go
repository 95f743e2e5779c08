package wtd_test

import (
	"context"
	"fmt"
	"sort"
	"time"

	wtd "github.com/libwtdatagram/libwtdatagram/bindings/go"
)

// loopback opens one session between a server and a client on rt (127.0.0.1, a
// self-signed certificate pinned by its hash) and returns both ends.
func loopback(ctx context.Context, rt *wtd.Runtime, srv *wtd.Server, path string) (client, server *wtd.Session) {
	hash, _ := srv.CertHash()
	url, _ := srv.URL(path)
	cli, err := wtd.NewClient(rt, &wtd.ClientConfig{CertHashes: [][32]byte{hash}})
	if err != nil {
		panic(err)
	}
	accepted := make(chan *wtd.Session, 1)
	go func() {
		s, err := srv.AcceptSession(ctx)
		if err != nil {
			panic(err)
		}
		accepted <- s
	}()
	client, err = cli.Dial(ctx, url, nil)
	if err != nil {
		panic(err)
	}
	return client, <-accepted
}

// Reliable messages: every message is delivered once, and its sender gets a
// delivery report.
func ExampleReliability() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rt, _ := wtd.NewRuntime(nil)
	defer rt.Close()
	srv, _ := wtd.Listen(rt, nil)
	client, server := loopback(ctx, rt, srv, "/orders")

	sender, err := wtd.NewReliability(client, &wtd.ReliabilityConfig{AckTimeout: 200 * time.Millisecond})
	if err != nil {
		panic(err)
	}
	receiver, _ := wtd.NewReliability(server, nil)
	for _, m := range []string{"buy 3", "sell 1"} {
		if _, err := sender.Send(ctx, []byte(m)); err != nil {
			panic(err)
		}
	}
	for i := 0; i < 2; i++ {
		m, _ := receiver.Receive(ctx)
		fmt.Printf("received %q\n", m)
	}
	for i := 0; i < 2; i++ {
		r, _ := sender.NextReport(ctx)
		fmt.Printf("message %d: %s\n", r.ID, r.Outcome)
	}
	// Output:
	// received "buy 3"
	// received "sell 1"
	// message 0: delivered
	// message 1: delivered
}

// One datagram to every member of a set of sessions.
func ExampleBroadcaster() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rt, _ := wtd.NewRuntime(nil)
	defer rt.Close()
	srv, _ := wtd.Listen(rt, nil)
	b, _ := wtd.NewBroadcaster(rt)
	var players []*wtd.Session
	for i := 0; i < 3; i++ {
		client, server := loopback(ctx, rt, srv, fmt.Sprintf("/player/%d", i))
		b.AddSession(server)
		players = append(players, client)
	}
	n, _ := b.Broadcast([]byte("round 1 starts"), wtd.PriorityHighest, 0)
	fmt.Println("accepted by", n)
	for i, p := range players {
		d, _ := p.Receive(ctx)
		fmt.Printf("player %d: %s\n", i, d)
	}
	// Output:
	// accepted by 3
	// player 0: round 1 starts
	// player 1: round 1 starts
	// player 2: round 1 starts
}

type Position struct {
	Player int     `json:"player"`
	X      float64 `json:"x"`
	Y      float64 `json:"y"`
}

// Typed Go objects over datagrams, with a registry of type ids.
func ExampleStructured() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rt, _ := wtd.NewRuntime(nil)
	defer rt.Close()
	srv, _ := wtd.Listen(rt, nil)
	client, server := loopback(ctx, rt, srv, "/game")

	reg := wtd.NewRegistry()
	reg.Register(7, Position{})
	cfg := &wtd.StructuredConfig{Format: wtd.FormatMsgPack, Registry: reg}
	tx, _ := wtd.NewStructured(client, cfg)
	rx, _ := wtd.NewStructured(server, cfg)

	tx.Send(Position{Player: 1, X: 2.5, Y: -1})
	v, err := rx.Receive(ctx)
	if err != nil {
		panic(err)
	}
	switch p := v.(type) {
	case Position:
		fmt.Printf("player %d at (%g, %g)\n", p.Player, p.X, p.Y)
	}
	// Output: player 1 at (2.5, -1)
}

// The serializers write exactly what the library's Rust serializers (and
// pywebtransport) write.
func ExampleFormat_Marshal() {
	type Chat struct {
		From string  `json:"from"`
		Text string  `json:"text"`
		Mood float64 `json:"mood"`
	}
	v := Chat{From: "zoë", Text: "<3", Mood: 1}
	js, _ := wtd.FormatJSON.Marshal(v)        // pywebtransport's JSONSerializer
	jc, _ := wtd.FormatJSONCompact.Marshal(v) // separators (",", ":")
	mp, _ := wtd.FormatMsgPack.Marshal(v)     // msgpack.packb
	fmt.Printf("%s\n%s\n%x\n", js, jc, mp)
	// Output:
	// {"from": "zo\u00eb", "text": "<3", "mood": 1.0}
	// {"from":"zo\u00eb","text":"<3","mood":1.0}
	// 83a466726f6da47a6fc3aba474657874a23c33a46d6f6f64cb3ff0000000000000
}

// A monitor raises an alert when the send success rate drops; alerts arrive on a
// channel, delivered by the runtime's event goroutine.
func ExampleMonitor() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rt, _ := wtd.NewRuntime(nil)
	defer rt.Close()
	srv, _ := wtd.Listen(rt, nil)
	client, _ := loopback(ctx, rt, srv, "/telemetry")
	st, _ := wtd.NewStream(client, nil)
	m, _ := wtd.NewMonitor(st, nil)

	st.Send(make([]byte, 65536), wtd.PriorityLow, 0) // too large: a failed send
	m.SampleNow()
	select {
	case a := <-m.AlertChan():
		fmt.Printf("%s (value %g)\n", a.Kind, a.Value)
	case <-ctx.Done():
	}
	// Output: low success rate (value 0)
}

// Batches cross into the library in one call each way.
func ExampleStream_SendBatch() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rt, _ := wtd.NewRuntime(nil)
	defer rt.Close()
	srv, _ := wtd.Listen(rt, nil)
	client, server := loopback(ctx, rt, srv, "/batch")
	tx, _ := wtd.NewStream(client, nil)
	rx, _ := wtd.NewStream(server, nil)

	out := wtd.NewBatch(16, 16*1200)
	for _, s := range []string{"a", "bb", "ccc"} {
		out.Append([]byte(s))
	}
	n, _ := tx.SendBatch(out, wtd.PriorityLow, 0)
	fmt.Println("queued", n)

	in := wtd.NewBatch(16, 65536)
	var got []string
	for len(got) < 3 {
		if _, err := rx.ReceiveBatch(ctx, in); err != nil {
			panic(err)
		}
		for i := 0; i < in.Len(); i++ {
			got = append(got, string(in.At(i)))
		}
	}
	sort.Strings(got)
	fmt.Println(got)
	// Output:
	// queued 3
	// [a bb ccc]
}
