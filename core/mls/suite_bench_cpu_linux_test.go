//go:build linux

package mls

import (
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// cpuTimer pins the benchmark goroutine to its OS thread and returns a function that reports the
// thread's CPU time per iteration as the "cpu-ns/op" metric. On a machine shared with other
// workloads, wall-clock ns/op includes time spent waiting for a CPU; thread CPU time does not, so
// it approximates what the operation costs on an idle machine. Call it just before b.Loop and the
// returned function right after.
func cpuTimer(b *testing.B) func() {
	b.Helper()
	runtime.LockOSThread()
	start, ok := threadCPUNanos()
	return func() {
		end, ok2 := threadCPUNanos()
		runtime.UnlockOSThread()
		if ok && ok2 && b.N > 0 {
			b.ReportMetric(float64(end-start)/float64(b.N), "cpu-ns/op")
		}
	}
}

func threadCPUNanos() (int64, bool) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0, false
	}
	return ts.Nano(), true
}
