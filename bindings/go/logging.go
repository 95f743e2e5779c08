package wtd

// The library's logs as log/slog records.
//
// The library calls its log callback on a thread of its own. To keep to this
// binding's rule that no library thread enters Go, the callback is C code (below): it
// copies each record into a bounded queue in C memory, and one goroutine takes them
// from there (blocking in C, in slices of 200 ms) and hands them to the slog.Handler.

/*
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "wtdatagram.h"

#define WTD_GO_LOG_CAP 4096

typedef struct {
	int level;
	char *target;
	char *message;
	uint64_t timestamp_us;
} wtd_go_log_entry;

static pthread_mutex_t wtd_go_log_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wtd_go_log_cv = PTHREAD_COND_INITIALIZER;
static wtd_go_log_entry wtd_go_log_ring[WTD_GO_LOG_CAP];
static size_t wtd_go_log_head, wtd_go_log_len;
static uint64_t wtd_go_log_dropped;

// The log callback: on the library's log thread, it only copies the record.
static void wtd_go_log_cb(const wtd_log_record *r, void *userdata) {
	(void)userdata;
	pthread_mutex_lock(&wtd_go_log_mu);
	if (wtd_go_log_len == WTD_GO_LOG_CAP) {
		wtd_go_log_dropped++;
	} else {
		wtd_go_log_entry *e = &wtd_go_log_ring[(wtd_go_log_head + wtd_go_log_len) % WTD_GO_LOG_CAP];
		e->level = (int)r->level;
		e->target = strdup(r->target ? r->target : "");
		e->message = strdup(r->message ? r->message : "");
		e->timestamp_us = r->timestamp_us;
		wtd_go_log_len++;
		pthread_cond_signal(&wtd_go_log_cv);
	}
	pthread_mutex_unlock(&wtd_go_log_mu);
}

static enum wtd_result wtd_go_log_enable(enum wtd_log_level level) {
	return wtd_set_log_callback(level, wtd_go_log_cb, NULL, NULL);
}

// Take the next record, waiting up to `ms`: 1 with its fields (free target and
// message with free()), 0 if none came. `dropped`: records lost to a full queue
// since the last call.
static int wtd_go_log_next(int ms, int *level, char **target, char **message,
                           uint64_t *timestamp_us, uint64_t *dropped) {
	pthread_mutex_lock(&wtd_go_log_mu);
	if (wtd_go_log_len == 0 && ms > 0) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += ms / 1000;
		ts.tv_nsec += (long)(ms % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		while (wtd_go_log_len == 0)
			if (pthread_cond_timedwait(&wtd_go_log_cv, &wtd_go_log_mu, &ts) != 0) break;
	}
	*dropped = wtd_go_log_dropped;
	wtd_go_log_dropped = 0;
	if (wtd_go_log_len == 0) {
		pthread_mutex_unlock(&wtd_go_log_mu);
		return 0;
	}
	wtd_go_log_entry e = wtd_go_log_ring[wtd_go_log_head];
	wtd_go_log_head = (wtd_go_log_head + 1) % WTD_GO_LOG_CAP;
	wtd_go_log_len--;
	pthread_mutex_unlock(&wtd_go_log_mu);
	*level = e.level;
	*target = e.target;
	*message = e.message;
	*timestamp_us = e.timestamp_us;
	return 1;
}
*/
import "C"

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
	"unsafe"
)

// LevelTrace is the slog level of the library's TRACE records (below slog.LevelDebug).
const LevelTrace = slog.LevelDebug - 4

// The library's levels, most verbose first, with their slog levels.
var logLevels = []struct {
	c    C.enum_wtd_log_level
	slog slog.Level
}{
	{C.WTD_LOG_TRACE, LevelTrace},
	{C.WTD_LOG_DEBUG, slog.LevelDebug},
	{C.WTD_LOG_INFO, slog.LevelInfo},
	{C.WTD_LOG_WARN, slog.LevelWarn},
	{C.WTD_LOG_ERROR, slog.LevelError},
}

func slogLevel(l C.int) slog.Level {
	for _, x := range logLevels {
		if C.int(x.c) == l {
			return x.slog
		}
	}
	return slog.LevelInfo
}

var logState struct {
	mu      sync.Mutex
	handler slog.Handler
	running bool
	done    chan struct{}
}

// SetLogHandler sends the library's log records to h, process-wide (one handler for
// the whole library, whatever runtime emits the record). The library produces the
// records h.Enabled accepts at its levels: ERROR, WARN, INFO, DEBUG (slog's levels)
// and TRACE (LevelTrace); the most verbose one h enables decides, so a handler at
// slog.LevelInfo receives failed handshakes (with the peer's address and the TLS
// reason), refused requests and protocol errors, and one at slog.LevelDebug also
// connections and sessions opened and closed.
//
// Each record has the library's message with its fields (" key=value" text) as its
// message, the time it was emitted, and an attribute "target" (the Rust module, e.g.
// "wtdatagram::transport::server"). Records are handed to h by one goroutine of this
// package, in order; when the handler falls 4096 records behind, further ones are
// dropped and counted in a WARN record. A nil h removes the handler.
//
// With slog: wtd.SetLogHandler(slog.Default().Handler()).
func SetLogHandler(h slog.Handler) error {
	logState.mu.Lock()
	defer logState.mu.Unlock()
	if h == nil {
		err := call(func() C.enum_wtd_result { return C.wtd_set_log_callback(C.WTD_LOG_OFF, nil, nil, nil) })
		logState.handler = nil
		return err
	}
	level := C.enum_wtd_log_level(C.WTD_LOG_OFF)
	for _, x := range logLevels {
		if h.Enabled(context.Background(), x.slog) {
			level = x.c
			break
		}
	}
	if level == C.WTD_LOG_OFF {
		logState.handler = nil
		return call(func() C.enum_wtd_result { return C.wtd_set_log_callback(C.WTD_LOG_OFF, nil, nil, nil) })
	}
	if err := call(func() C.enum_wtd_result { return C.wtd_go_log_enable(level) }); err != nil {
		return err
	}
	logState.handler = h
	if !logState.running {
		logState.running = true
		logState.done = make(chan struct{})
		go logLoop(logState.done)
	}
	return nil
}

// logLoop hands the queued records to the handler; it ends once the handler is
// removed and the queue is empty.
func logLoop(done chan struct{}) {
	defer close(done)
	for {
		var level C.int
		var target, message *C.char
		var ts, dropped C.uint64_t
		got := C.wtd_go_log_next(200, &level, &target, &message, &ts, &dropped)
		logState.mu.Lock()
		h := logState.handler
		if got == 0 && h == nil {
			logState.running = false
			logState.mu.Unlock()
			return
		}
		logState.mu.Unlock()
		if dropped > 0 && h != nil {
			r := slog.NewRecord(time.Now(), slog.LevelWarn,
				fmt.Sprintf("%d log records dropped: the Go log handler fell behind", uint64(dropped)), 0)
			r.AddAttrs(slog.String("target", "wtdatagram::go"))
			handle(h, r)
		}
		if got == 0 {
			continue
		}
		msg, tgt := C.GoString(message), C.GoString(target)
		C.free(unsafe.Pointer(message))
		C.free(unsafe.Pointer(target))
		if h == nil {
			continue
		}
		lvl := slogLevel(level)
		if !h.Enabled(context.Background(), lvl) {
			continue
		}
		r := slog.NewRecord(time.UnixMicro(int64(ts)), lvl, msg, 0)
		r.AddAttrs(slog.String("target", tgt))
		handle(h, r)
	}
}

// handle calls the handler; a panic in it is not the library's to crash on.
func handle(h slog.Handler, r slog.Record) {
	defer func() { _ = recover() }()
	_ = h.Handle(context.Background(), r)
}
