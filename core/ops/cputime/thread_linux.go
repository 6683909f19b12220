package cputime

import "time"

// rusageThread is RUSAGE_THREAD (Linux): the calling thread's usage.
const rusageThread = 1

// Thread returns the user plus system CPU time of the calling OS thread; lock the goroutine to
// its thread (runtime.LockOSThread) around the measured work.
func Thread() (d time.Duration, ok bool) { return rusage(rusageThread) }
