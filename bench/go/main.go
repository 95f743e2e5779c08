// Command wtdbench-go is the Go binding's benchmark driver for scripts/bench.sh:
// client and server in this one process on loopback, with the library's defaults,
// through the public API of bindings/go.
//
//	wtdbench-go oneway SIZE SECS [single|batch]
//	    backpressured sends, delivered datagrams/s, loss. single: Session.SendWait and
//	    Session.Receive (the default options); batch: Session.SendBatch and
//	    Session.ReceiveBatch (TransportConfig.DirectReceive), 64 datagrams per call
//	wtdbench-go rtt SIZE COUNT     sequential echo round trips, p50/p99
//	wtdbench-go timeout MS COUNT   COUNT receives with a context deadline of MS ms on
//	    a silent session: how late after its deadline each returns ErrTimeout, p50/p99/max
//
// It prints one JSON line per result (the fields of bench/README.md). Every loop is
// bounded by a count and a deadline.
package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime/pprof"
	"runtime/trace"
	"sort"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	wtd "github.com/libwtdatagram/libwtdatagram/bindings/go"
)

func must(err error, what string) {
	if err != nil {
		fmt.Fprintf(os.Stderr, "wtdbench-go: %s: %v\n", what, err)
		os.Exit(1)
	}
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

type pair struct {
	rt     *wtd.Runtime
	srv    *wtd.Server
	client *wtd.Client
	cs, ss *wtd.Session
}

func open(size int, direct bool) *pair {
	p := &pair{}
	var err error
	p.rt, err = wtd.NewRuntime(nil)
	must(err, "runtime")
	tc := &wtd.TransportConfig{DirectReceive: direct}
	p.srv, err = wtd.Listen(p.rt, &wtd.ServerConfig{Transport: tc})
	must(err, "listen")
	hash, err := p.srv.CertHash()
	must(err, "cert hash")
	url, err := p.srv.URL("/bench")
	must(err, "url")
	p.client, err = wtd.NewClient(p.rt, &wtd.ClientConfig{Addr: "127.0.0.1:0", CertHashes: [][32]byte{hash}, Transport: tc})
	must(err, "client")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	accepted := make(chan *wtd.Session, 1)
	go func() {
		s, err := p.srv.AcceptSession(ctx)
		must(err, "accept")
		accepted <- s
	}()
	p.cs, err = p.client.Dial(ctx, url, nil)
	must(err, "dial")
	p.ss = <-accepted
	deadline := time.Now().Add(5 * time.Second)
	for {
		max, err := p.cs.MaxDatagramSize()
		must(err, "max datagram size")
		if max >= size {
			break
		}
		if time.Now().After(deadline) {
			must(fmt.Errorf("max datagram size stayed %d < %d", max, size), "path MTU")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return p
}

func (p *pair) close() {
	p.cs.Close()
	p.ss.Close()
	p.client.Close()
	p.srv.Close()
	p.rt.Close()
}

// oneway sends for secs; returns sent, received, wall seconds (first send to last
// arrival) and CPU seconds.
func oneway(p *pair, size int, secs float64, batch bool) (uint64, uint64, float64, float64) {
	var received atomic.Uint64
	var last atomic.Int64
	// The receiver's one context, canceled when the run is over: the usual shape of
	// a Go receive loop (a context per call would cost a timer per datagram).
	rctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		rb := wtd.NewBatch(64, 64*1500)
		for {
			var n int
			var err error
			if batch {
				n, err = p.ss.ReceiveBatch(rctx, rb)
			} else {
				_, err = p.ss.Receive(rctx)
				n = 1
			}
			if err == nil {
				received.Add(uint64(n))
				last.Store(time.Now().UnixNano())
				continue
			}
			if rctx.Err() != nil {
				return
			}
			must(err, "receive")
		}
	}()
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = 0x5a
	}
	sb := wtd.NewBatch(64, 64*size)
	for sb.Append(payload) {
	}
	base := received.Load()
	cpu0 := cpuSeconds()
	t0 := time.Now()
	end := t0.Add(time.Duration(secs * float64(time.Second)))
	ctx := context.Background()
	var sent uint64
	for i := 0; ; i++ {
		if batch {
			n, err := p.cs.SendBatch(ctx, sb)
			must(err, "send batch")
			sent += uint64(n)
		} else {
			must(p.cs.SendWait(ctx, payload), "send")
			sent++
		}
		if (batch || i&63 == 0) && time.Now().After(end) {
			break
		}
	}
	hard := time.Now().Add(5 * time.Second)
	for {
		before := received.Load() - base
		if before >= sent || time.Now().After(hard) {
			break
		}
		time.Sleep(300 * time.Millisecond)
		if received.Load()-base == before {
			break
		}
	}
	got := received.Load() - base
	wall := float64(last.Load()-t0.UnixNano()) / 1e9
	cpu := cpuSeconds() - cpu0
	stop()
	<-done
	return sent, got, wall, cpu
}

func rtt(p *pair, size, count int) []float64 {
	if size < 8 {
		size = 8
	}
	ectx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { // echo
		defer close(done)
		for {
			b, err := p.ss.Receive(ectx)
			if err != nil {
				if ectx.Err() != nil {
					return
				}
				must(err, "echo receive")
			}
			_ = p.ss.SendWait(ectx, b)
		}
	}()
	payload := make([]byte, size)
	samples := make([]float64, 0, count)
	deadline := time.Now().Add(60 * time.Second)
	for i := 0; i < count && time.Now().Before(deadline); i++ {
		binary.BigEndian.PutUint64(payload, uint64(i))
		t := time.Now()
		must(p.cs.SendWait(context.Background(), payload), "send")
		for {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			b, err := p.cs.Receive(ctx)
			cancel()
			if err != nil {
				break // lost: no sample
			}
			if len(b) >= 8 && binary.BigEndian.Uint64(b) == uint64(i) {
				samples = append(samples, time.Since(t).Seconds())
				break
			}
		}
	}
	stop()
	<-done
	return samples
}

func emit(v map[string]any) {
	b, _ := json.Marshal(v)
	fmt.Println(string(b))
}

func main() {
	// WTD_BENCH_CPUPROFILE=FILE: a Go CPU profile of the whole run (go tool pprof).
	if path := os.Getenv("WTD_BENCH_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		must(err, "cpu profile")
		must(pprof.StartCPUProfile(f), "cpu profile")
		defer pprof.StopCPUProfile()
	}
	// WTD_BENCH_TRACE=FILE: a Go execution trace of the whole run (go tool trace).
	if path := os.Getenv("WTD_BENCH_TRACE"); path != "" {
		f, err := os.Create(path)
		must(err, "trace")
		must(trace.Start(f), "trace")
		defer trace.Stop()
	}
	if len(os.Args) < 4 {
		fmt.Fprintln(os.Stderr, "usage: wtdbench-go oneway SIZE SECS [single|batch] | rtt SIZE COUNT | timeout MS COUNT")
		os.Exit(2)
	}
	size, _ := strconv.Atoi(os.Args[2])
	switch os.Args[1] {
	case "oneway":
		secs, _ := strconv.ParseFloat(os.Args[3], 64)
		batch := len(os.Args) > 4 && os.Args[4] == "batch"
		impl := "go"
		if batch {
			impl = "go-batch"
		}
		p := open(size, batch)
		oneway(p, size, 0.3, batch) // warm-up
		sent, got, wall, cpu := oneway(p, size, secs, batch)
		st, _ := p.ss.Stats()
		if wall <= 0 {
			wall = 1e-9
		}
		loss := 0.0
		if sent > 0 && got < sent {
			loss = 100 * float64(sent-got) / float64(sent)
		}
		perDgram := 0.0
		if got > 0 {
			perDgram = cpu * 1e6 / float64(got)
		}
		emit(map[string]any{"impl": impl, "case": "oneway", "size": size, "sent": sent,
			"received": got, "secs": wall, "rate": float64(got) / wall,
			"mb_per_s": float64(got) * float64(size) / wall / 1e6, "loss_pct": loss,
			"cpu_us_per_dgram": perDgram, "recv_dropped": st.RecvDropped + st.GoRecvDropped})
		p.close()
	case "rtt":
		count, _ := strconv.Atoi(os.Args[3])
		// "events": Session.Receive with the default options (batches from the library's
		// queue; a Receive that finds none spins, then parks for a DATAGRAMS_READY event);
		// "direct": DirectReceive, Receive blocks in wtd_session_recv in this goroutine.
		mode := "events"
		if len(os.Args) > 4 {
			mode = os.Args[4]
		}
		p := open(size, mode == "direct")
		rtt(p, size, 200)
		s := rtt(p, size, count)
		sort.Float64s(s)
		pct := func(q float64) float64 {
			if len(s) == 0 {
				return 0
			}
			return s[int(float64(len(s)-1)*q+0.5)] * 1e6
		}
		impl := "go"
		if mode == "direct" {
			impl = "go-direct"
		}
		emit(map[string]any{"impl": impl, "case": "rtt", "size": size, "pings": count,
			"answered": len(s), "p50_us": pct(0.5), "p99_us": pct(0.99)})
		p.close()
	case "timeout":
		ms := size
		count, _ := strconv.Atoi(os.Args[3])
		p := open(64, false)
		late := make([]float64, 0, count)
		for i := 0; i < count; i++ {
			ctx, cancel := context.WithTimeout(context.Background(), time.Duration(ms)*time.Millisecond)
			deadline, _ := ctx.Deadline()
			_, err := p.cs.Receive(ctx)
			returned := time.Now()
			cancel()
			if !errors.Is(err, wtd.ErrTimeout) {
				must(fmt.Errorf("expected ErrTimeout, got %v", err), "timeout")
			}
			late = append(late, returned.Sub(deadline).Seconds()*1e3)
		}
		sort.Float64s(late)
		pct := func(q float64) float64 { return late[int(float64(len(late)-1)*q+0.5)] }
		emit(map[string]any{"impl": "go", "case": "timeout", "timeout_ms": ms, "count": count,
			"late_p50_ms": pct(0.5), "late_p99_ms": pct(0.99), "late_max_ms": late[len(late)-1]})
		p.close()
	default:
		os.Exit(2)
	}
}
