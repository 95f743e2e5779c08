package wtd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"testing"
	"time"
)

// natsServer starts nats-server on a free loopback port (from scripts/setup-nats.sh,
// or WTD_NATS_SERVER) and returns its URL; it is killed when the test ends. Without
// nats-server the test fails and says so.
func natsServer(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("WTD_NATS_SERVER")
	if bin == "" {
		if p, err := exec.LookPath("nats-server"); err == nil {
			bin = p
		} else if _, err := os.Stat("/usr/sbin/nats-server"); err == nil {
			bin = "/usr/sbin/nats-server"
		}
	}
	if bin == "" {
		t.Fatal("nats-server not found: run scripts/setup-nats.sh (Debian's nats-server) or set WTD_NATS_SERVER")
	}
	cmd := exec.Command(bin, "-a", "127.0.0.1", "-p", "-1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	port := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`Listening for client connections on 127\.0\.0\.1:(\d+)`)
		sc := bufio.NewScanner(stderr)
		sent := false
		for sc.Scan() { // drains the log until the server exits
			if m := re.FindStringSubmatch(sc.Text()); m != nil && !sent {
				port <- m[1]
				sent = true
			}
		}
		if !sent {
			close(port)
		}
	}()
	select {
	case p, ok := <-port:
		if !ok {
			t.Fatal("nats-server exited before listening")
		}
		return "nats://127.0.0.1:" + p
	case <-time.After(20 * time.Second):
		t.Fatal("nats-server did not start listening")
	}
	return ""
}

// Two nodes in one process (two cluster connections, one broadcaster each with one
// member): a broadcast from either reaches both clients exactly once, with exact
// counters; then bad arguments and Close.
func TestClusterTwoNodes(t *testing.T) {
	url := natsServer(t)
	f := newFanout(t, 2)
	var bs [2]*Broadcaster
	var cls [2]*Cluster
	var js [2]*ClusterBroadcaster
	for i := range bs {
		b, err := NewBroadcaster(f.rt)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.AddSession(f.servers[i]); err != nil {
			t.Fatal(err)
		}
		c, err := NewCluster(f.rt, &ClusterConfig{URLs: []string{url}, Name: fmt.Sprint("go-", i),
			ReconnectDelayMax: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		j, err := c.Join("go.room", b)
		if err != nil {
			t.Fatal(err)
		}
		bs[i], cls[i], js[i] = b, c, j
	}
	ctx := recvCtx(t)
	for _, j := range js {
		if err := j.WaitBusReady(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if js[0].Origin() == js[1].Origin() {
		t.Fatal("origins must differ")
	}
	for i, j := range js {
		n, err := j.Broadcast([]byte(fmt.Sprint("from-", i)), PriorityHigh, 0)
		if err != nil || n != 1 {
			t.Fatalf("broadcast %d: %d %v", i, n, err)
		}
	}
	for i, c := range f.clients {
		got := map[string]int{}
		for k := 0; k < 2; k++ {
			d, err := c.Receive(ctx)
			if err != nil {
				t.Fatalf("client %d: %v", i, err)
			}
			got[string(d)]++
		}
		if got["from-0"] != 1 || got["from-1"] != 1 {
			t.Fatalf("client %d got %v", i, got)
		}
	}
	// Receivers count before they deliver: wait (bounded) for the last count.
	var st ChannelStats
	for k := 0; k < 5000; k++ {
		var err error
		if st, err = js[0].Stats(); err != nil {
			t.Fatal(err)
		}
		if st.DeliveredLocal >= 2 {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	want := ChannelStats{Broadcasts: 1, Published: 1, Received: 1, DeliveredLocal: 2, DeliveredFromBus: 1,
		RTTSamples: st.RTTSamples, RTTLast: st.RTTLast, RTTAvg: st.RTTAvg, RTTMin: st.RTTMin, RTTMax: st.RTTMax,
		LatencySamples: 1, LatencyLast: st.LatencyLast, LatencyAvg: st.LatencyAvg, LatencyMin: st.LatencyMin,
		LatencyMax:   st.LatencyMax,
		BusConnected: true, BusReady: true}
	if st != want || st.RTTSamples < 1 {
		t.Fatalf("stats %+v, want %+v", st, want)
	}
	cs, err := cls[0].Stats()
	if err != nil || cs != (ClusterStats{Connects: 1, MaxPayload: 1 << 20, Connected: true}) {
		t.Fatalf("cluster stats %+v %v", cs, err)
	}

	// Bad arguments.
	if _, err := js[0].Broadcast([]byte("x"), Priority(3), 0); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("priority 3: %v", err)
	}
	if _, err := cls[0].Join("no spaces", bs[0]); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("bad channel: %v", err)
	}
	if _, err := cls[0].Join("x", nil); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("nil broadcaster: %v", err)
	}
	if _, err := NewCluster(f.rt, &ClusterConfig{}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("no URL: %v", err)
	}
	if _, err := NewCluster(f.rt, &ClusterConfig{URLs: []string{url}, ConnectTimeout: -time.Second}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("negative timeout: %v", err)
	}
	if _, err := NewCluster(nil, nil); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("nil runtime: %v", err)
	}

	// Close twice; a closed handle answers ErrClosed.
	js[0].Close()
	js[0].Close()
	if _, err := js[0].Broadcast([]byte("x"), PriorityHigh, 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
	cls[0].Close()
	cls[0].Close()
	if cls[0].IsConnected() {
		t.Fatal("closed cluster reports connected")
	}
	// The other node's handles are closed by Runtime.Close (t.Cleanup).
}

// A bus that is not there, not waited for: local delivery goes on, the publish is
// counted as failed, and WaitBusReady ends with the context.
func TestClusterAbsentBus(t *testing.T) {
	f := newFanout(t, 1)
	b, _ := NewBroadcaster(f.rt)
	if err := b.AddSession(f.servers[0]); err != nil {
		t.Fatal(err)
	}
	// Nothing listens on port 1 of loopback.
	if _, err := NewCluster(f.rt, &ClusterConfig{URLs: []string{"nats://127.0.0.1:1"}}); !errors.Is(err, ErrConnect) {
		t.Fatalf("absent bus: %v", err)
	}
	c, err := NewCluster(f.rt, &ClusterConfig{URLs: []string{"nats://127.0.0.1:1"}, NoWaitForConnection: true})
	if err != nil {
		t.Fatal(err)
	}
	j, err := c.Join("alone", b)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := j.Broadcast([]byte("solo"), PriorityHigh, time.Second); err != nil || n != 1 {
		t.Fatalf("broadcast: %d %v", n, err)
	}
	ctx := recvCtx(t)
	if d, err := f.clients[0].Receive(ctx); err != nil || string(d) != "solo" {
		t.Fatalf("receive: %q %v", d, err)
	}
	st, _ := j.Stats()
	if st.Published != 0 || st.BusFailures != 1 || st.BusReady || st.BusConnected {
		t.Fatalf("stats %+v", st)
	}
	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := j.WaitBusReady(short); !errors.Is(err, ErrTimeout) {
		t.Fatalf("WaitBusReady: %v", err)
	}
}
