package wtd

import (
	"context"
	"errors"
	"testing"
)

type Chat struct {
	From string `json:"from"`
	Text string `json:"text"`
}

type Move struct {
	Player int        `json:"player"`
	To     [2]float64 `json:"to"`
	Run    bool       `json:"run,omitempty"`
}

func TestStructuredRoundTrip(t *testing.T) {
	for _, f := range []Format{FormatJSON, FormatJSONCompact, FormatMsgPack} {
		t.Run(f.String(), func(t *testing.T) {
			p := newPair(t, "/structured")
			reg := NewRegistry()
			if err := reg.Register(1, Chat{}); err != nil {
				t.Fatal(err)
			}
			if err := reg.Register(2, &Move{}); err != nil {
				t.Fatal(err)
			}
			cli, err := NewStructured(p.client, &StructuredConfig{Format: f, Registry: reg})
			if err != nil {
				t.Fatal(err)
			}
			srv, err := NewStructured(p.server, &StructuredConfig{Format: f, QueueSize: 16, Registry: reg})
			if err != nil {
				t.Fatal(err)
			}
			if cli.Format() != f || len(srv.Registry().IDs()) != 2 {
				t.Fatalf("format %v ids %v", cli.Format(), srv.Registry().IDs())
			}
			ctx := recvCtx(t)
			chat := Chat{From: "zoë", Text: "<b>hi</b> 😀"}
			move := &Move{Player: 3, To: [2]float64{1, -2.5}, Run: true}
			if err := cli.Send(chat); err != nil {
				t.Fatal(err)
			}
			if err := cli.Send(move); err != nil {
				t.Fatal(err)
			}
			if err := cli.Send(&chat); err != nil { // a pointer to a registered type
				t.Fatal(err)
			}
			got, err := srv.Receive(ctx)
			if err != nil || got != chat {
				t.Fatalf("got %#v %v", got, err)
			}
			got, err = srv.Receive(ctx)
			if m, ok := got.(*Move); err != nil || !ok || *m != *move {
				t.Fatalf("got %#v %v", got, err)
			}
			// Raw: the payload on the wire is exactly Format.Marshal's bytes (the library
			// re-emits JSON in the same form, and sends MessagePack as is).
			id, payload, err := srv.ReceiveRaw(ctx)
			if err != nil || id != 1 {
				t.Fatalf("raw %d %v", id, err)
			}
			if want, _ := f.Marshal(chat); string(payload) != string(want) {
				t.Fatalf("wire payload %q, want %q", payload, want)
			}
			// Server to client, and an already-serialized payload.
			if err := srv.SendRaw(1, []byte(`{"text": "caf\u00e9", "from": "srv"}`)); f == FormatJSON && err != nil {
				t.Fatal(err)
			} else if f == FormatMsgPack && !errors.Is(err, ErrInvalidArgument) { // not MessagePack
				t.Fatalf("JSON text on a MessagePack transport: %v", err)
			}
			if f == FormatMsgPack {
				b, _ := f.Marshal(Chat{From: "srv", Text: "café"})
				if err := srv.SendRaw(1, b); err != nil {
					t.Fatal(err)
				}
			}
			if got, err := cli.Receive(ctx); err != nil || got != (Chat{From: "srv", Text: "café"}) {
				t.Fatalf("got %#v %v", got, err)
			}
			cs, _ := cli.Stats()
			ss, _ := srv.Stats()
			if cs.Sent != 3 || cs.Received != 1 || ss.Received != 3 || ss.Sent != 1 {
				t.Fatalf("stats %+v %+v", cs, ss)
			}
			if cli.IsClosed() {
				t.Fatal("closed")
			}
		})
	}
}

func TestStructuredErrors(t *testing.T) {
	p := newPair(t, "/structured-errors")
	cli, err := NewStructured(p.client, &StructuredConfig{Format: FormatMsgPack})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := NewStructured(p.server, &StructuredConfig{Format: FormatMsgPack})
	if err != nil {
		t.Fatal(err)
	}
	// One owner per session; bad arguments.
	if _, err := NewStructured(p.server, nil); !errors.Is(err, ErrInvalidState) {
		t.Fatalf("second transport: %v", err)
	}
	if _, err := NewStructured(p.server, &StructuredConfig{Format: Format(5)}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("bad format: %v", err)
	}
	if _, err := NewStructured(nil, nil); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("nil session: %v", err)
	}
	type wide struct {
		N string `json:"n"`
	}
	type narrow struct {
		N int `json:"n"`
	}
	for _, r := range []struct {
		s  *Structured
		id uint16
		v  any
	}{{cli, 1, Chat{}}, {cli, 2, Move{}}, {cli, 3, wide{}}, {srv, 1, Chat{}}, {srv, 3, narrow{}}} {
		if err := r.s.Register(r.id, r.v); err != nil {
			t.Fatal(err)
		}
	}
	if err := cli.Register(1, Move{}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("id twice: %v", err)
	}
	if err := cli.Register(9, Chat{}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("type twice: %v", err)
	}
	if err := cli.Register(9, nil); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("nil prototype: %v", err)
	}
	// Sending what is not registered.
	if err := cli.Send(struct{ X int }{1}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("unregistered type: %v", err)
	}
	if err := cli.SendRaw(77, []byte{0xc0}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("unregistered id: %v", err)
	}
	if err := cli.Send(nil); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("nil: %v", err)
	}
	ctx := recvCtx(t)
	// The server does not know id 2: the datagram is rejected and reported.
	if err := cli.Send(Move{Player: 1}); err != nil {
		t.Fatal(err)
	}
	rep, err := srv.NextError(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Kind != UnknownType || !rep.HasTypeID || rep.TypeID != 2 || rep.Size < 3 || rep.Message == "" {
		t.Fatalf("report %+v", rep)
	}
	// Id 3 decodes as MessagePack but not as the server's Go type: ErrInvalidData,
	// consumed, and the transport goes on.
	if err := cli.Send(wide{N: "text"}); err != nil {
		t.Fatal(err)
	}
	if err := cli.Send(Chat{From: "a", Text: "after"}); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Receive(ctx); !errors.Is(err, ErrInvalidData) {
		t.Fatalf("wrong shape: %v", err)
	}
	if got, err := srv.Receive(ctx); err != nil || got != (Chat{From: "a", Text: "after"}) {
		t.Fatalf("after: %#v %v", got, err)
	}
	if st, _ := srv.Stats(); st.UnknownType != 1 || st.Received != 2 {
		t.Fatalf("stats %+v", st)
	}
	// Close: blocked calls wake with ErrClosed, then everything is ErrClosed.
	errc := make(chan error, 1)
	go func() { _, err := srv.Receive(context.Background()); errc <- err }()
	waitBlockedIn(t, "wtd_structured_receive", errc) // entered the wait and still in it
	for i := 0; i < 2; i++ {
		if err := srv.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("blocked receive: %v", err)
	}
	if err := srv.Send(Chat{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("send after close: %v", err)
	}
	if _, err := srv.NextError(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("next error after close: %v", err)
	}
}
