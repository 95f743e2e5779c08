//go:build !linux

package wtd

/*
#include <sched.h>
*/
import "C"

// osYield gives the thread's CPU to another runnable thread (see yield_linux.go;
// elsewhere through a call into C).
func osYield() {
	C.sched_yield()
}
