package cputime

import (
	"crypto/sha256"
	"runtime"
	"testing"
)

// TestCPUTimeAdvances burns CPU on a locked thread and checks that both clocks moved forward
// and that the thread's time does not exceed the process's.
func TestCPUTimeAdvances(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	p0, ok1 := Process()
	t0, ok2 := Thread()
	if !ok1 || !ok2 {
		t.Skipf("CPU time not readable on %s", runtime.GOOS)
	}
	sum := sha256.Sum256(nil)
	for t1, _ := Thread(); t1 == t0; t1, _ = Thread() {
		for range 10000 {
			sum = sha256.Sum256(sum[:])
		}
	}
	p1, _ := Process()
	t1, _ := Thread()
	if t1 <= t0 || p1 <= p0 {
		t.Fatalf("thread %v → %v, process %v → %v", t0, t1, p0, p1)
	}
	if t1-t0 > p1-p0 {
		t.Fatalf("thread time %v exceeds process time %v", t1-t0, p1-p0)
	}
}
