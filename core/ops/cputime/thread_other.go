//go:build !linux

package cputime

import "time"

// Thread falls back to the process's CPU time where per-thread time cannot be read.
func Thread() (d time.Duration, ok bool) { return Process() }
