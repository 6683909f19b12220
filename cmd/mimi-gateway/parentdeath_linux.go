package main

import (
	"os"
	"syscall"
)

// stopWithParent asks the kernel to send SIGTERM when the process that started the gateway ends,
// so a launcher that is killed does not leave the gateway running unattended. `go run` is one:
// SIGTERM to the go command ends it without passing the signal on, and the gateway then shuts
// down in order as if it had got the SIGTERM itself. If the parent is already gone (the gateway
// was re-parented), it asks for nothing.
func stopWithParent() {
	ppid := os.Getppid()
	if ppid == 1 {
		return
	}
	_, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_PDEATHSIG, uintptr(syscall.SIGTERM), 0)
	if errno == 0 && os.Getppid() != ppid {
		// The parent ended between the two calls: the signal will not come.
		_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
	}
}
