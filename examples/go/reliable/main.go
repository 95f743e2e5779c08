// reliable: messages that arrive exactly once over unreliable datagrams, with the
// reliability layer (acknowledgements, retransmissions, duplicate suppression,
// a delivery report per message).
//
//	reliable serve [--bind ADDR] [--port-file FILE] [--max-sessions N]
//	reliable send [--count N] [--loss PERMILLE] URL CERT_SHA256_HEX
//
// serve prints "listening ADDR" and "cert-sha256 HEX" and, when a session ends,
// "session ID received=N unique=N duplicates=0". send sends N messages ("msg <i>")
// and prints "sent N delivered D gave-up G retransmissions R"; with --loss it talks
// through an in-process UDP relay that drops that many packets per thousand in each
// direction (and prints "relay dropped X forwarded Y"). It exits 0 when every
// message was delivered.
package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	wtd "github.com/libwtdatagram/libwtdatagram/bindings/go"
)

func die(what string, err error) {
	fmt.Fprintf(os.Stderr, "reliable: %s: %v\n", what, err)
	os.Exit(1)
}

func usage() {
	fmt.Fprintf(os.Stderr, "usage: %s serve [--bind ADDR] [--port-file FILE] [--max-sessions N]\n"+
		"       %s send [--count N] [--loss PERMILLE] URL CERT_SHA256_HEX\n", os.Args[0], os.Args[0])
	os.Exit(2)
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	switch os.Args[1] {
	case "serve":
		serve(os.Args[2:])
	case "send":
		send(os.Args[2:])
	default:
		usage()
	}
}

var out sync.Mutex

func say(format string, args ...any) {
	out.Lock()
	defer out.Unlock()
	fmt.Printf(format+"\n", args...)
}

// The same options on both sides: a quick retransmission, patience for a lossy
// path, and a window that bounds what is in flight.
var layerConfig = &wtd.ReliabilityConfig{AckTimeout: 150 * time.Millisecond, MaxRetries: 60, Window: 32}

func serve(args []string) {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	bind := fs.String("bind", "127.0.0.1:0", "UDP address to listen on")
	portFile := fs.String("port-file", "", `write "PORT CERT_SHA256_HEX" to this file`)
	maxSessions := fs.Int("max-sessions", -1, "exit after this many sessions have ended")
	fs.Parse(args)

	rt, err := wtd.NewRuntime(nil)
	if err != nil {
		die("runtime", err)
	}
	// DirectReceive (datagram events off): messages a client sends right after the
	// session opens wait in the session's queue for the layer created below, instead
	// of going by as events. A short idle timeout ends a session whose client
	// vanished without its close getting through (possible on a lossy path).
	srv, err := wtd.Listen(rt, &wtd.ServerConfig{Addr: *bind, Transport: &wtd.TransportConfig{
		IdleTimeout: 10 * time.Second, DirectReceive: true}})
	if err != nil {
		die("server", err)
	}
	addr, _ := srv.Addr()
	hash, _ := srv.CertHash()
	hexHash := hex.EncodeToString(hash[:])
	say("listening %s\ncert-sha256 %s", addr, hexHash)
	if *portFile != "" {
		if err := os.WriteFile(*portFile+".tmp", []byte(fmt.Sprintf("%d %s\n", srv.Port(), hexHash)), 0o644); err != nil {
			die("port file", err)
		}
		if err := os.Rename(*portFile+".tmp", *portFile); err != nil {
			die("port file", err)
		}
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	for n := 0; *maxSessions < 0 || n < *maxSessions; n++ {
		s, err := srv.AcceptSession(ctx)
		if err != nil {
			die("accept", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer s.Close()
			layer, err := wtd.NewReliability(s, layerConfig)
			if err != nil {
				fmt.Fprintf(os.Stderr, "layer: %v\n", err)
				return
			}
			received, seen, dups := 0, map[string]bool{}, 0
			for {
				m, err := layer.Receive(ctx) // queued messages first, then ErrClosed
				if err != nil {
					if !errors.Is(err, wtd.ErrClosed) {
						fmt.Fprintf(os.Stderr, "receive: %v\n", err)
					}
					break
				}
				received++
				if seen[string(m)] {
					dups++
				}
				seen[string(m)] = true
			}
			say("session %d received=%d unique=%d duplicates=%d", s.ID(), received, len(seen), dups)
		}()
	}
	wg.Wait()
	srv.Close()
	rt.Close()
}

// relay forwards UDP between one client and server, dropping lossPermille of the
// packets each way (seeded, so runs are repeatable).
type relay struct {
	conn, back         *net.UDPConn
	dropped, forwarded atomic.Uint64
}

func startRelay(server string, lossPermille uint64) (*relay, error) {
	saddr, err := net.ResolveUDPAddr("udp", server)
	if err != nil {
		return nil, err
	}
	front, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	back, err := net.DialUDP("udp", nil, saddr)
	if err != nil {
		front.Close()
		return nil, err
	}
	r := &relay{conn: front, back: back}
	lose := func(state uint64) func() bool {
		return func() bool { // xorshift64
			state ^= state << 13
			state ^= state >> 7
			state ^= state << 17
			return state%1000 < lossPermille
		}
	}
	var client atomic.Pointer[net.UDPAddr]
	go func() {
		drop, buf := lose(0x5eed1234abcd), make([]byte, 65536)
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
	go func() {
		drop, buf := lose(0xfeedbeef4321), make([]byte, 65536)
		for {
			n, err := back.Read(buf)
			if errors.Is(err, net.ErrClosed) {
				return
			}
			c := client.Load()
			if err != nil || c == nil {
				continue
			}
			if drop() {
				r.dropped.Add(1)
			} else if _, err := front.WriteToUDP(buf[:n], c); err == nil {
				r.forwarded.Add(1)
			}
		}
	}()
	return r, nil
}

func (r *relay) close() {
	r.conn.Close()
	r.back.Close()
}

func send(args []string) {
	fs := flag.NewFlagSet("send", flag.ExitOnError)
	count := fs.Int("count", 100, "messages to send")
	loss := fs.Uint64("loss", 0, "packets per thousand an in-process relay drops each way")
	fs.Parse(args)
	if fs.NArg() != 2 {
		usage()
	}
	target, hexHash := fs.Arg(0), fs.Arg(1)
	hash, err := wtd.HashFromHex(hexHash)
	if err != nil {
		die("hash", err)
	}
	var rl *relay
	if *loss > 0 {
		u, err := url.Parse(target)
		if err != nil {
			die("url", err)
		}
		if rl, err = startRelay(u.Host, *loss); err != nil {
			die("relay", err)
		}
		defer rl.close()
		u.Host = "127.0.0.1:" + strconv.Itoa(rl.conn.LocalAddr().(*net.UDPAddr).Port)
		target = u.String()
	}

	rt, err := wtd.NewRuntime(nil)
	if err != nil {
		die("runtime", err)
	}
	defer rt.Close()
	client, err := wtd.NewClient(rt, &wtd.ClientConfig{CertHashes: [][32]byte{hash}})
	if err != nil {
		die("client", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := client.Dial(ctx, target, nil)
	if err != nil {
		die("open session", err)
	}
	layer, err := wtd.NewReliability(s, layerConfig)
	if err != nil {
		die("layer", err)
	}
	// Send everything (Send waits while the window is full), then take one delivery
	// report per message.
	for i := 0; i < *count; i++ {
		msg := "msg " + strconv.Itoa(i) + " " + strings.Repeat(".", 200)
		if _, err := layer.Send(ctx, []byte(msg)); err != nil {
			die("send", err)
		}
	}
	delivered, gaveUp := 0, 0
	for i := 0; i < *count; i++ {
		r, err := layer.NextReport(ctx)
		if err != nil {
			die("report", err)
		}
		if r.Outcome == wtd.Delivered {
			delivered++
		} else {
			gaveUp++
		}
	}
	st, _ := layer.Stats()
	say("sent %d delivered %d gave-up %d retransmissions %d", *count, delivered, gaveUp, st.Retransmissions)
	if rl != nil {
		say("relay dropped %d forwarded %d", rl.dropped.Load(), rl.forwarded.Load())
	}
	s.CloseWithError(0, "done")
	wctx, wcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer wcancel()
	s.Wait(wctx)
	s.Close()
	if delivered != *count {
		rt.Close()
		os.Exit(1)
	}
}
