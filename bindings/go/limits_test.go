package wtd

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// Server limits and their counters through the Go binding: the server-wide session
// limit (503), the field section limit (431), and ServerStats.
func TestServerLimitsAndStats(t *testing.T) {
	rt, err := NewRuntime(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	srv, err := Listen(rt, &ServerConfig{
		MaxSessions:    1,
		MaxConnections: 8,
		RequestTimeout: 3 * time.Second,
		Transport:      &TransportConfig{MaxFieldSectionSize: 1024, MaxHeaderFields: 16},
	})
	if err != nil {
		t.Fatal(err)
	}
	hash, err := srv.CertHash()
	if err != nil {
		t.Fatal(err)
	}
	cli, err := NewClient(rt, &ClientConfig{CertHashes: [][32]byte{hash}})
	if err != nil {
		t.Fatal(err)
	}
	url, err := srv.URL("/limits")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	accepted := make(chan *Session, 1)
	go func() {
		req, err := srv.Accept(ctx)
		if err != nil {
			return
		}
		s, err := req.Accept()
		if err == nil {
			accepted <- s
		}
	}()
	first, err := cli.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal("first session:", err)
	}
	defer first.Close()
	serverSide := <-accepted
	defer serverSide.Close()

	// The server holds its one session: the next request is answered 503.
	_, err = cli.Dial(ctx, url, nil)
	if !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), "503") {
		t.Fatalf("second session: %v (want rejected with 503)", err)
	}
	// Headers beyond 1024 bytes: 431.
	_, err = cli.Dial(ctx, url, map[string]string{"x-big": strings.Repeat("v", 2000)})
	if !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), "431") {
		t.Fatalf("big headers: %v (want rejected with 431)", err)
	}
	st, err := srv.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Sessions != 1 || st.RequestsRefusedServerFull != 1 || st.RequestsTooLarge != 1 || st.RequestsReceived != 1 {
		t.Fatalf("stats %+v", st)
	}
	if st.ConnectionsAccepted < 1 || st.Connections < 1 {
		t.Fatalf("connection counts %+v", st)
	}
	// Bad limits are argument errors.
	if _, err := Listen(rt, &ServerConfig{RequestTimeout: time.Hour}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("listen with a 1 h request timeout: %v", err)
	}
	srv.Close()
	if _, err := srv.Stats(); err == nil {
		t.Fatal("stats of a closed server")
	}
}
