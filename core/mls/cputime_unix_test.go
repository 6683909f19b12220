//go:build unix

package mls

import (
	"syscall"
	"time"
)

// processCPUTime returns the user plus system CPU time the test process has used so far. Benchmarks
// report it per operation ("cpu-ns/op") next to wall time, because on a shared machine wall time
// also counts the time other processes hold the CPU.
func processCPUTime() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
