// echo_server: a WebTransport datagram echo server in Go (the Go twin of
// examples/c/echo_server.c).
//
// The binding pulls the library's events on one goroutine and hands them to Go
// channels: Server.Accept yields session requests, Session.Receive datagrams,
// Session.Done the close. Every session is served by its own goroutine.
//
//	echo_server [--bind ADDR] [--port-file FILE] [--max-sessions N]
//
// Prints "listening ADDR" and "cert-sha256 HEX"; with --port-file also writes
// "PORT HEX" to FILE. With --max-sessions N it exits after N sessions have closed.
package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"sync"
	"time"

	wtd "github.com/libwtdatagram/libwtdatagram/bindings/go"
)

func die(what string, err error) {
	fmt.Fprintf(os.Stderr, "echo_server: %s: %v\n", what, err)
	os.Exit(1)
}

// closeKindName spells close kinds like the C example.
func closeKindName(k wtd.CloseKind) string {
	switch k {
	case wtd.CloseLocal:
		return "local"
	case wtd.CloseRemote:
		return "remote"
	case wtd.CloseReset:
		return "reset"
	case wtd.CloseConnectionLost:
		return "connection-lost"
	case wtd.CloseTimedOut:
		return "timed-out"
	case wtd.CloseProtocolError:
		return "protocol-error"
	}
	return "none"
}

var out sync.Mutex // one line at a time on stdout

func say(format string, args ...any) {
	out.Lock()
	defer out.Unlock()
	fmt.Printf(format+"\n", args...)
}

// serve echoes every datagram of s (with backpressure) until it closes.
func serve(ctx context.Context, s *wtd.Session) {
	defer s.Close()
	for {
		d, err := s.Receive(ctx)
		if err != nil {
			break // closed (queued datagrams were returned first)
		}
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		err = s.SendWait(sctx, d)
		cancel()
		if err != nil && !errors.Is(err, wtd.ErrClosed) {
			fmt.Fprintf(os.Stderr, "echo failed: %v\n", err)
		}
	}
	info, _ := s.Wait(ctx)
	st, _ := s.Stats()
	say("closed %d kind=%s code=%d reason=%s received=%d sent=%d", s.ID(), closeKindName(info.Kind),
		info.Code, info.Reason, st.DatagramsReceived, st.DatagramsSent)
}

func main() {
	bind := flag.String("bind", "127.0.0.1:0", "UDP address to listen on")
	portFile := flag.String("port-file", "", `write "PORT CERT_SHA256_HEX" to this file`)
	maxSessions := flag.Int("max-sessions", -1, "exit after this many sessions have closed")
	flag.Parse()

	rt, err := wtd.NewRuntime(nil)
	if err != nil {
		die("runtime", err)
	}
	srv, err := wtd.Listen(rt, &wtd.ServerConfig{Addr: *bind})
	if err != nil {
		die("server", err)
	}
	addr, err := srv.Addr()
	if err != nil {
		die("address", err)
	}
	hash, err := srv.CertHash()
	if err != nil {
		die("hash", err)
	}
	hexHash := hex.EncodeToString(hash[:])
	say("listening %s\ncert-sha256 %s", addr, hexHash)
	if *portFile != "" {
		tmp := *portFile + ".tmp"
		if err := os.WriteFile(tmp, []byte(fmt.Sprintf("%d %s\n", srv.Port(), hexHash)), 0o644); err != nil {
			die("port file", err)
		}
		if err := os.Rename(tmp, *portFile); err != nil {
			die("port file", err)
		}
	}

	ctx := context.Background()
	var wg sync.WaitGroup
	for n := 0; *maxSessions < 0 || n < *maxSessions; n++ {
		req, err := srv.Accept(ctx)
		if err != nil {
			die("accept", err)
		}
		origin := req.Origin()
		if origin == "" {
			origin = "-"
		}
		say("session request path=%s origin=%s", req.Path(), origin)
		s, err := req.Accept()
		if err != nil {
			fmt.Fprintf(os.Stderr, "accept failed: %v\n", err)
			n--
			continue
		}
		say("session %d path=%s", s.ID(), s.Path())
		wg.Add(1)
		go func() {
			defer wg.Done()
			serve(ctx, s)
		}()
	}
	wg.Wait() // the last sessions have closed
	srv.Close()
	if err := rt.Close(); err != nil {
		die("runtime close", err)
	}
}
