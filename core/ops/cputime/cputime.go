// Package cputime reads the CPU time used by the process or by the calling OS thread.
//
// Benchmarks on a shared machine report it next to wall time: wall time also counts the time
// other processes hold the CPU, CPU time does not. Process time covers every goroutine, the
// garbage collector and system calls; thread time covers one goroutine locked to its thread
// (runtime.LockOSThread) doing single-threaded work.
package cputime
