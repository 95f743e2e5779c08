package wtd

/*
int wtd_go_poll(int fd, int ms);
*/
import "C"

import (
	"os"
	"syscall"
	"time"
)

// eventWaiter waits for the runtime's event fd to become readable in Go's network
// poller, so the event goroutine parks like any goroutine waiting for I/O instead of
// holding a thread (and its P) in a blocking C call: the thread that notices the fd
// runs the goroutine at once, with no hand-off of the P in between.
//
// It polls a duplicate of the fd (the library's own is never read or closed). The
// poller is edge-triggered; the library writes the eventfd each time its queue goes
// from empty to non-empty, and the poller remembers an edge that came while nobody
// waited, so no wake-up is lost between the last empty pull and the next wait.
type eventWaiter struct {
	f  *os.File
	rc syscall.RawConn
}

// newEventWaiter returns nil where the fd cannot be polled this way (no event fd,
// or a platform whose poller refuses it): the caller then polls in C.
func newEventWaiter(fd int) *eventWaiter {
	if fd < 0 {
		return nil
	}
	d, err := syscall.Dup(fd)
	if err != nil {
		return nil
	}
	syscall.CloseOnExec(d)
	f := os.NewFile(uintptr(d), "wtd-event-fd")
	if f == nil {
		syscall.Close(d)
		return nil
	}
	// Deadlines work only on files in the poller: this tells whether it took it.
	if err := f.SetReadDeadline(time.Time{}); err != nil {
		f.Close()
		return nil
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil
	}
	return &eventWaiter{f: f, rc: rc}
}

// wait returns once the fd is (or was, since the call began) readable, possibly
// spuriously, or an error after interrupt or close.
//
// RawConn.Read forgets an edge that came before it (it expects its function to try
// the read itself), so the function looks at the fd with a zero-timeout poll: an
// edge before that look is seen by the look, one after it wakes the wait.
func (w *eventWaiter) wait() error {
	waited := false
	return w.rc.Read(func(fd uintptr) bool {
		if waited {
			return true
		}
		waited = true
		return C.wtd_go_poll(C.int(fd), 0) > 0
	})
}

// interrupt makes a wait in progress (and every later one) return an error.
func (w *eventWaiter) interrupt() { w.f.SetReadDeadline(time.Unix(1, 0)) }

func (w *eventWaiter) close() { w.f.Close() }
