package wtd

import "syscall"

// osYield gives the thread's CPU to another runnable thread (sched_yield) from a
// spin loop. It is a raw system call, like the Go runtime's own osyield: the P stays
// running through it. A yield made inside a call into C (or through syscall.Syscall)
// puts the P in a system call instead, and when the yield lasts longer than a tick of
// the runtime's monitor thread (20 us: another thread ran in the meantime, which is
// the point of yielding) the monitor hands the P to another thread. On 2 cores that
// happened thousands of times a second in a spinning Receive: the monitor thread
// itself kept waking every 20 us (13,800 context switches and 12 % of a core in a
// 2.3 s run) and every hand-off cost a thread wake-up.
func osYield() {
	syscall.RawSyscall(syscall.SYS_SCHED_YIELD, 0, 0, 0)
}
