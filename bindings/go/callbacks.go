package wtd

// Go functions the library calls back. They run only where events are delivered:
// in pull mode (the only mode this binding uses) inside wtd_runtime_next_event,
// called by the Runtime's event goroutine with the runtime's lock held. So no
// library thread enters Go, and a callback never overlaps the release of its
// handle (which also takes that lock).

/*
#include <stdint.h>
#include "wtdatagram.h"
*/
import "C"

import "runtime/cgo"

//export wtdGoAlert
func wtdGoAlert(a *C.wtd_monitor_alert, h C.uintptr_t) {
	defer func() { _ = recover() }() // never unwind into C
	m, ok := cgo.Handle(h).Value().(*Monitor)
	if !ok || a == nil {
		return
	}
	m.deliver(alertFromC(a))
}
