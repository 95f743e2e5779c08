package wtd

import (
	"errors"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// Benchmarks of the structured serializers: the Go value -> wire bytes path
// (Format.Marshal), the wire bytes -> Go value path (Format.Unmarshal), and the whole
// encode+send path of Structured.Send and Stream.SendJSON on a loopback session.
//
//	go test -run '^$' -bench 'Marshal|Unmarshal|StructuredSend|SendJSON' -benchmem .
//
// Besides ns/op (wall time, which swings with the load of a shared machine), each
// reports CPU time per operation: thread-ns/op of the benchmark's own thread (the Go
// code and its cgo calls into the library) and cpu-ns/op of the whole process (also
// the garbage collector's workers and, for the sends, the library's threads that put
// the datagrams on the wire).

type benchPlayer struct {
	ID   int     `json:"id"`
	X    float64 `json:"x"`
	Y    float64 `json:"y"`
	HP   int     `json:"hp"`
	Name string  `json:"name"`
}

type benchState struct {
	Tick    uint32        `json:"tick"`
	Players []benchPlayer `json:"players"`
	Event   string        `json:"event"`
}

// benchValue is a game tick of four players (~200 bytes of JSON).
func benchValue() benchState {
	return benchState{Tick: 1024, Event: "hit → 🎯", Players: []benchPlayer{
		{1, 10.5, -3.25, 100, "zoë"}, {2, 0, 7, 0, "bob"}, {3, 1e-05, 123456.789, 42, "carol"},
		{4, -2.5, 0.1, 7, "dave"},
	}}
}

var benchFormats = []Format{FormatJSON, FormatJSONCompact, FormatMsgPack}

const rusageThread = 1 // RUSAGE_THREAD (Linux), not in package syscall

func cpuTime(who int) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(who, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuTimer starts measuring CPU time on the calling goroutine, locked to its thread,
// and returns the function that stops and reports it (call it after the loop).
func cpuTimer(b *testing.B) func() {
	runtime.LockOSThread()
	t0, p0 := cpuTime(rusageThread), cpuTime(syscall.RUSAGE_SELF)
	return func() {
		t1, p1 := cpuTime(rusageThread), cpuTime(syscall.RUSAGE_SELF)
		runtime.UnlockOSThread()
		b.ReportMetric(float64(t1-t0)/float64(b.N), "thread-ns/op")
		b.ReportMetric(float64(p1-p0)/float64(b.N), "cpu-ns/op")
		if retries > 0 {
			b.ReportMetric(float64(retries)/float64(b.N), "retries/op")
			retries = 0
		}
	}
}

func BenchmarkMarshal(b *testing.B) {
	v := benchValue()
	for _, f := range benchFormats {
		b.Run(f.String(), func(b *testing.B) {
			b.ReportAllocs()
			stop := cpuTimer(b)
			for i := 0; i < b.N; i++ {
				if _, err := f.Marshal(v); err != nil {
					b.Fatal(err)
				}
			}
			stop()
		})
	}
}

func BenchmarkUnmarshal(b *testing.B) {
	for _, f := range benchFormats {
		data, err := f.Marshal(benchValue())
		if err != nil {
			b.Fatal(err)
		}
		b.Run(f.String(), func(b *testing.B) {
			b.ReportAllocs()
			stop := cpuTimer(b)
			for i := 0; i < b.N; i++ {
				var v benchState
				if err := f.Unmarshal(data, &v); err != nil {
					b.Fatal(err)
				}
			}
			stop()
		})
	}
}

// retries counts the sends sendRetry repeated (reported as retries/op).
var retries int

// sendRetry calls send until the send queue has room (the peer drains the queue
// through quinn concurrently).
func sendRetry(b *testing.B, send func() error) {
	for {
		err := send()
		if err == nil {
			return
		}
		retries++
		if !errors.Is(err, ErrQueueFull) && !errors.Is(err, ErrWouldBlock) {
			b.Fatal(err)
		}
		time.Sleep(20 * time.Microsecond)
	}
}

func BenchmarkStructuredSend(b *testing.B) {
	for _, f := range benchFormats {
		b.Run(f.String(), func(b *testing.B) {
			p := newPair(b, "/bench-structured")
			reg := NewRegistry()
			if err := reg.Register(1, benchState{}); err != nil {
				b.Fatal(err)
			}
			cli, err := NewStructured(p.client, &StructuredConfig{Format: f, QueueSize: 4096, Registry: reg})
			if err != nil {
				b.Fatal(err)
			}
			v := benchValue()
			b.ReportAllocs()
			b.ResetTimer()
			stop := cpuTimer(b)
			for i := 0; i < b.N; i++ {
				sendRetry(b, func() error { return cli.Send(v) })
			}
			stop()
		})
	}
}

func BenchmarkStreamSendJSON(b *testing.B) {
	p := newPair(b, "/bench-json")
	cs, err := NewStream(p.client, &StreamConfig{SendQueue: 4096})
	if err != nil {
		b.Fatal(err)
	}
	v := benchValue()
	b.ReportAllocs()
	b.ResetTimer()
	stop := cpuTimer(b)
	for i := 0; i < b.N; i++ {
		sendRetry(b, func() error { return cs.SendJSON(v, PriorityLow, 0) })
	}
	stop()
}
