// echo_client: sends datagrams to a WebTransport echo server and checks the echoes
// (the Go twin of examples/c/echo_client.c).
//
//	echo_client URL CERT_SHA256_HEX [COUNT]
//
// Prints "received N/COUNT ..." and exits 0 when every echo came back intact.
package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"time"

	wtd "github.com/libwtdatagram/libwtdatagram/bindings/go"
)

// window is the number of datagrams kept in flight (datagrams are unreliable:
// pace them).
const window = 64

func die(what string, err error) {
	fmt.Fprintf(os.Stderr, "echo_client: %s: %v\n", what, err)
	os.Exit(1)
}

// makeDatagram returns datagram i: "dg <i> " followed by a pattern, sized
// 10..~900 bytes (at most max).
func makeDatagram(i, max int) []byte {
	b := []byte(fmt.Sprintf("dg %d ", i))
	size := 10 + (i*37)%890
	if size > max {
		size = max
	}
	for k := len(b); k < size; k++ {
		b = append(b, byte('a'+(i+k)%26))
	}
	return b[:min(len(b), size)]
}

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintf(os.Stderr, "usage: %s URL CERT_SHA256_HEX [COUNT]\n", os.Args[0])
		os.Exit(2)
	}
	url := os.Args[1]
	count := 100
	if len(os.Args) > 3 {
		n, err := strconv.Atoi(os.Args[3])
		if err != nil || n < 0 {
			fmt.Fprintf(os.Stderr, "bad COUNT %q\n", os.Args[3])
			os.Exit(2)
		}
		count = n
	}
	hash, err := wtd.HashFromHex(os.Args[2])
	if err != nil {
		die("hash", err)
	}
	rt, err := wtd.NewRuntime(nil)
	if err != nil {
		die("runtime", err)
	}
	defer rt.Close()
	client, err := wtd.NewClient(rt, &wtd.ClientConfig{
		CertHashes: [][32]byte{hash},
		Headers:    map[string]string{"origin": "https://example.go"},
	})
	if err != nil {
		die("client", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	session, err := client.Dial(ctx, url, nil)
	cancel()
	if err != nil {
		die("open session", err)
	}
	max, err := session.MaxDatagramSize()
	if err != nil {
		die("max datagram size", err)
	}
	fmt.Printf("connected %s max-datagram=%d\n", url, max)

	seen := make([]bool, count)
	sent, received, bad := 0, 0, 0
	for received < count {
		for sent < count && sent-received < window {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := session.SendWait(sctx, makeDatagram(sent, max))
			cancel()
			if err != nil {
				die("send", err)
			}
			sent++
		}
		rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		d, err := session.Receive(rctx)
		cancel()
		if err != nil {
			fmt.Fprintf(os.Stderr, "no echo for 5 s: %v\n", err)
			break
		}
		var i int
		if _, err := fmt.Sscanf(string(d), "dg %d ", &i); err == nil && i >= 0 && i < count && !seen[i] &&
			bytes.Equal(d, makeDatagram(i, max)) {
			seen[i] = true
			received++
		} else {
			bad++
		}
	}
	st, err := session.Stats()
	if err != nil {
		die("stats", err)
	}
	fmt.Printf("received %d/%d bad=%d recv_dropped=%d\n", received, count, bad, st.RecvDropped+st.GoRecvDropped)

	// Close with a code and reason the server sees, then wait for our own close.
	if err := session.CloseWithError(7, "done"); err != nil {
		die("close", err)
	}
	wctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := session.Wait(wctx); err != nil {
		die("wait closed", err)
	}
	session.Close()
	if received != count || bad != 0 {
		rt.Close()
		os.Exit(1)
	}
}
