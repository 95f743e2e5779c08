package wtd

/*
#include <stdlib.h>
#include "wtdatagram.h"
int wtd_go_poll(int fd, int ms);

// Release the first `release` events of `evs` (the previous batch), then take up to
// `max` events without waiting: one call into C per batch.
static enum wtd_result wtd_go_next_events(const wtd_runtime *rt, wtd_event *evs, size_t release,
                                          size_t max, size_t *n) {
	for (size_t i = 0; i < release; i++)
		wtd_event_release(&evs[i]);
	return wtd_runtime_next_events(rt, evs, max, n, 0);
}
*/
import "C"

import (
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// RuntimeConfig holds runtime options. The zero value means defaults.
type RuntimeConfig struct {
	// WorkerThreads of the library's async runtime (1..=256); 0 means the default (2).
	WorkerThreads int
	// EventPollInterval bounds how long the event goroutine waits on the event fd
	// before checking for Close where Go's network poller cannot wait for that fd
	// (elsewhere it waits in the poller and Close wakes it); 0 means 50 ms.
	EventPollInterval time.Duration
}

// Runtime owns the library's async runtime and the goroutine that pulls its events.
// Close it after everything else (Close also closes every server, client and session
// created on it that is still open).
type Runtime struct {
	h    *C.wtd_runtime
	poll C.int

	// mu serializes event dispatch with the release of session and server handles,
	// so an event is never matched to a freed (and possibly reused) pointer.
	mu       sync.Mutex
	sessions map[*C.wtd_session]*Session
	servers  map[*C.wtd_server]*Server
	clients  map[*Client]struct{}
	closers  map[io.Closer]struct{} // other handles on the runtime (broadcasters)
	orphans  map[*C.wtd_session][]orphan
	norphans int

	stop      chan struct{}
	waiter    atomic.Pointer[eventWaiter] // the event goroutine's, once it has one
	loopDone  chan struct{}
	closeOnce sync.Once
	closed    chan struct{}
	ops       sync.WaitGroup // background C calls (abandoned dials)
}

// An event for a session not registered yet (its close, between
// wtd_session_request_accept returning and the Session being registered).
type orphan struct {
	close CloseInfo
}

const maxOrphans = 4096

// NewRuntime starts a runtime in pull mode and its event goroutine.
func NewRuntime(cfg *RuntimeConfig) (*Runtime, error) {
	if cfg == nil {
		cfg = &RuntimeConfig{}
	}
	var cc *C.wtd_runtime_config
	if err := call(func() C.enum_wtd_result { return C.wtd_runtime_config_new(&cc) }); err != nil {
		return nil, err
	}
	defer C.wtd_runtime_config_free(cc)
	if cfg.WorkerThreads != 0 {
		if err := call(func() C.enum_wtd_result {
			return C.wtd_runtime_config_set_worker_threads(cc, C.uint32_t(cfg.WorkerThreads))
		}); err != nil {
			return nil, err
		}
	}
	rt := &Runtime{
		sessions: map[*C.wtd_session]*Session{},
		servers:  map[*C.wtd_server]*Server{},
		clients:  map[*Client]struct{}{},
		closers:  map[io.Closer]struct{}{},
		orphans:  map[*C.wtd_session][]orphan{},
		stop:     make(chan struct{}),
		loopDone: make(chan struct{}),
		closed:   make(chan struct{}),
		poll:     50,
	}
	if cfg.EventPollInterval > 0 {
		rt.poll = C.int(cfg.EventPollInterval / time.Millisecond)
	}
	if err := call(func() C.enum_wtd_result { return C.wtd_runtime_new(cc, &rt.h) }); err != nil {
		return nil, err
	}
	go rt.loop()
	return rt, nil
}

func (rt *Runtime) isClosed() bool {
	select {
	case <-rt.closed:
		return true
	default:
		return false
	}
}

// eventBatch is the most events the event goroutine takes per call into C.
const eventBatch = 256

// spinFor is how long after a batch the event goroutine keeps looking for the next
// one before it parks: the policy of wtd_session_recv (250 us). A thread that sleeps
// is woken tens of microseconds after the event came, which would add to every round
// trip; an idle runtime stops looking after this long and costs no CPU.
const spinFor = 250 * time.Microsecond

// loop pulls events in batches: wtd_runtime_next_events without waiting, under
// rt.mu, releasing the previous batch in the same call into C. After a batch that
// woke a waiting Receive it yields its P (runtime.Gosched) so that Receive runs at
// once on this thread.
// When none is queued it keeps looking for spinFor after the last batch, yielding the
// thread and the P between looks, then waits outside of rt.mu for the event fd: in
// Go's network poller (eventWaiter), so the thread that sees the fd readable runs
// this goroutine directly, or where that is not available in a poll(2) call bounded
// by rt.poll ms.
func (rt *Runtime) loop() {
	defer close(rt.loopDone)
	// C memory: the batch is written by C and read here without cgo pointer checks.
	evs := (*[eventBatch]C.wtd_event)(C.calloc(eventBatch, C.sizeof_wtd_event))
	var n C.size_t
	defer func() {
		for i := 0; i < int(n); i++ {
			C.wtd_event_release(&evs[i])
		}
		C.free(unsafe.Pointer(evs))
	}()
	fd := C.wtd_runtime_event_fd(rt.h)
	w := newEventWaiter(int(fd))
	if w != nil {
		rt.waiter.Store(w)
		defer w.close()
	}
	var last time.Time // when the last batch came
	for {
		select {
		case <-rt.stop:
			return
		default:
		}
		spin := time.Since(last) < spinFor
		rt.mu.Lock()
		release := n
		n = 0
		r := C.wtd_go_next_events(rt.h, &evs[0], release, eventBatch, &n)
		if r == C.WTD_OK {
			woke := rt.dispatch(evs[:n])
			rt.mu.Unlock()
			last = time.Now()
			if woke {
				// A Receive waited for these datagrams and is now ready on this P:
				// let it run on this thread at once instead of waiting for another
				// thread to be woken to take it.
				runtime.Gosched()
			}
			continue
		}
		rt.mu.Unlock()
		if r != C.WTD_ERR_TIMEOUT {
			return // closed (or callback mode, which this binding never uses)
		}
		if spin {
			osYield() // the thread's CPU (see osYield), then the P
			runtime.Gosched()
			continue
		}
		if w != nil {
			if w.wait() != nil {
				select {
				case <-rt.stop:
					return
				default:
					time.Sleep(time.Millisecond) // unexpected: do not spin
				}
			}
			continue
		}
		if fd < 0 || C.wtd_go_poll(C.int(fd), rt.poll) < 0 {
			time.Sleep(time.Duration(rt.poll) * time.Millisecond)
		}
	}
}

// dispatch routes a batch of events, in order; called with rt.mu held. Never blocks.
// The events are released with the next batch. It tells whether it woke a waiting
// Receive. (Datagrams are not events here: they wait in each session's queue in the
// library, see recvState.)
func (rt *Runtime) dispatch(evs []C.wtd_event) (woke bool) {
	for i := 0; i < len(evs); i++ {
		ev := &evs[i]
		switch ev.kind {
		case C.WTD_EVENT_SESSION_REQUEST:
			srv := rt.servers[ev.server]
			if srv == nil {
				C.wtd_session_request_free(ev.request)
				continue
			}
			req := &SessionRequest{h: ev.request, rt: rt, direct: srv.direct}
			select {
			case srv.requests <- req:
			default:
				C.wtd_session_request_free(ev.request) // backlog full: 503
			}
		case C.WTD_EVENT_DATAGRAMS_READY:
			// A receive of the session asked for it (wtd_session_notify_readable),
			// so the session is registered.
			if s := rt.sessions[ev.session]; s != nil && s.recv != nil {
				s.recv.wake()
				woke = true
			}
		case C.WTD_EVENT_SESSION_CLOSED:
			info := CloseInfo{
				Kind:   CloseKind(ev.close_kind),
				Code:   uint64(ev.close_code),
				Reason: string(C.GoBytes(unsafe.Pointer(ev.data), C.int(ev.len))),
			}
			if s := rt.sessions[ev.session]; s != nil {
				s.markClosed(info)
			} else {
				rt.addOrphan(ev.session, orphan{close: info})
			}
		}
	}
	return woke
}

func (rt *Runtime) addOrphan(p *C.wtd_session, o orphan) {
	if rt.norphans >= maxOrphans {
		return
	}
	rt.norphans++
	rt.orphans[p] = append(rt.orphans[p], o)
}

// registerSession makes s receive the events of its handle, first those that came
// before it was registered. Returns false if the runtime is closed.
func (rt *Runtime) registerSession(s *Session) bool {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.isClosed() {
		return false
	}
	rt.sessions[s.h] = s
	for _, o := range rt.orphans[s.h] {
		s.markClosed(o.close)
	}
	rt.norphans -= len(rt.orphans[s.h])
	delete(rt.orphans, s.h)
	return true
}

// freeSession unregisters and frees a session handle under rt.mu.
func (rt *Runtime) freeSession(p *C.wtd_session) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	delete(rt.sessions, p)
	rt.norphans -= len(rt.orphans[p])
	delete(rt.orphans, p)
	C.wtd_session_free(p)
}

// Close closes every server, client, session (with its stream or layer) and
// broadcaster still open on the runtime, stops the event goroutine and frees the
// runtime. Safe to call more than once.
func (rt *Runtime) Close() error {
	var err error
	rt.closeOnce.Do(func() {
		rt.mu.Lock()
		close(rt.closed) // no new registrations from now on
		var sessions []*Session
		for _, s := range rt.sessions {
			sessions = append(sessions, s)
		}
		var servers []*Server
		for _, s := range rt.servers {
			servers = append(servers, s)
		}
		var clients []*Client
		for c := range rt.clients {
			clients = append(clients, c)
		}
		var closers []io.Closer
		for c := range rt.closers {
			closers = append(closers, c)
		}
		rt.mu.Unlock()
		for _, c := range closers {
			c.Close()
		}
		for _, s := range sessions {
			s.Close()
		}
		for _, s := range servers {
			s.Close()
		}
		for _, c := range clients {
			c.release() // graceful: the sessions' close capsules still go out
		}
		close(rt.stop)
		if w := rt.waiter.Load(); w != nil {
			w.interrupt()
		}
		<-rt.loopDone
		rt.ops.Wait()
		err = call(func() C.enum_wtd_result { return C.wtd_runtime_free(rt.h) })
		rt.mu.Lock()
		rt.norphans = 0
		rt.orphans = nil
		rt.mu.Unlock()
	})
	return err
}
