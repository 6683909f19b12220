//go:build !linux

package mls

import "testing"

// cpuTimer reports nothing outside Linux (see suite_bench_cpu_linux_test.go).
func cpuTimer(b *testing.B) func() { return func() {} }
