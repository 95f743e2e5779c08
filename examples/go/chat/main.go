// chat: a small chat room on datagrams with a broadcaster: every line a player
// sends to the server is broadcast to every player (the sender included), without
// the server ever waiting for a slow player.
//
//	chat serve [--bind ADDR] [--port-file FILE] --players N
//	chat join [--name NAME] [--lines K] --players N URL CERT_SHA256_HEX
//
// serve waits for N players, then broadcasts "*** go" (again every 100 ms until
// every player has spoken), relays lines until every player has left, and prints
// "relayed L lines to N players (A deliveries)". join waits for "*** go", sends K
// lines "NAME: line i", and prints "NAME got X/Y lines from N players" once it has
// everyone's lines; it exits 0 when X == Y == N*K.
package main

import (
	"context"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	wtd "github.com/libwtdatagram/libwtdatagram/bindings/go"
)

func die(what string, err error) {
	fmt.Fprintf(os.Stderr, "chat: %s: %v\n", what, err)
	os.Exit(1)
}

func usage() {
	fmt.Fprintf(os.Stderr, "usage: %s serve [--bind ADDR] [--port-file FILE] --players N\n"+
		"       %s join [--name NAME] [--lines K] --players N URL CERT_SHA256_HEX\n", os.Args[0], os.Args[0])
	os.Exit(2)
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	switch os.Args[1] {
	case "serve":
		serve(os.Args[2:])
	case "join":
		join(os.Args[2:])
	default:
		usage()
	}
}

const goLine = "*** go"

func serve(args []string) {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	bind := fs.String("bind", "127.0.0.1:0", "UDP address to listen on")
	portFile := fs.String("port-file", "", `write "PORT CERT_SHA256_HEX" to this file`)
	players := fs.Int("players", 2, "players in the room")
	fs.Parse(args)

	rt, err := wtd.NewRuntime(nil)
	if err != nil {
		die("runtime", err)
	}
	srv, err := wtd.Listen(rt, &wtd.ServerConfig{Addr: *bind})
	if err != nil {
		die("server", err)
	}
	addr, _ := srv.Addr()
	hash, _ := srv.CertHash()
	hexHash := hex.EncodeToString(hash[:])
	fmt.Printf("listening %s\ncert-sha256 %s\n", addr, hexHash)
	if *portFile != "" {
		if err := os.WriteFile(*portFile+".tmp", []byte(fmt.Sprintf("%d %s\n", srv.Port(), hexHash)), 0o644); err != nil {
			die("port file", err)
		}
		if err := os.Rename(*portFile+".tmp", *portFile); err != nil {
			die("port file", err)
		}
	}
	room, err := wtd.NewBroadcaster(rt)
	if err != nil {
		die("broadcaster", err)
	}
	ctx := context.Background()
	var sessions []*wtd.Session
	for len(sessions) < *players {
		s, err := srv.AcceptSession(ctx)
		if err != nil {
			die("accept", err)
		}
		if err := room.AddSession(s); err != nil {
			die("add", err)
		}
		sessions = append(sessions, s)
		fmt.Printf("player %d joined (%s)\n", len(sessions), s.Path())
	}

	var lines, deliveries atomic.Int64
	spoke := make([]atomic.Bool, len(sessions))
	var wg sync.WaitGroup
	for i, s := range sessions {
		wg.Add(1)
		go func() { // relay this player's lines to the room
			defer wg.Done()
			for {
				d, err := s.Receive(ctx)
				if err != nil {
					return // the player left
				}
				spoke[i].Store(true)
				n, _ := room.Broadcast(d, wtd.PriorityLow, 0)
				lines.Add(1)
				deliveries.Add(int64(n))
			}
		}()
	}
	// Datagrams are unreliable: repeat "go" until everyone has spoken.
	for {
		all := true
		for i := range spoke {
			all = all && spoke[i].Load()
		}
		if all {
			break
		}
		room.Broadcast([]byte(goLine), wtd.PriorityHighest, 0)
		time.Sleep(100 * time.Millisecond)
	}
	wg.Wait()
	fmt.Printf("relayed %d lines to %d players (%d deliveries)\n", lines.Load(), len(sessions), deliveries.Load())
	room.Close()
	srv.Close()
	rt.Close()
}

func join(args []string) {
	fs := flag.NewFlagSet("join", flag.ExitOnError)
	name := fs.String("name", "player", "name shown with each line")
	count := fs.Int("lines", 5, "lines to send")
	players := fs.Int("players", 2, "players in the room")
	fs.Parse(args)
	if fs.NArg() != 2 {
		usage()
	}
	hash, err := wtd.HashFromHex(fs.Arg(1))
	if err != nil {
		die("hash", err)
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
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := client.Dial(ctx, strings.TrimSuffix(fs.Arg(0), "/")+"/room?name="+*name, nil)
	if err != nil {
		die("join", err)
	}
	for { // wait for the room to fill
		d, err := s.Receive(ctx)
		if err != nil {
			die("waiting for go", err)
		}
		if string(d) == goLine {
			break
		}
	}
	for i := 0; i < *count; i++ {
		if err := s.SendWait(ctx, []byte(fmt.Sprintf("%s: line %d", *name, i))); err != nil {
			die("send", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	want := *players * *count
	got := map[string]bool{}
	from := map[string]bool{}
	for len(got) < want {
		d, err := s.Receive(ctx)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", *name, err)
			break
		}
		line := string(d)
		if line == goLine {
			continue
		}
		who, _, _ := strings.Cut(line, ": ")
		got[line] = true
		from[who] = true
	}
	fmt.Printf("%s got %d/%d lines from %d players\n", *name, len(got), want, len(from))
	s.CloseWithError(0, "bye")
	wctx, wcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer wcancel()
	s.Wait(wctx)
	s.Close()
	if len(got) != want {
		rt.Close()
		os.Exit(1)
	}
}
