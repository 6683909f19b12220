//go:build unix

package servertest

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// reservePort takes an exclusive lock on a file named after port in a directory shared by all
// test processes of this machine and keeps it until the process exits (the kernel releases it
// then, also after a crash). It reports false when another process holds it.
func reservePort(port int) bool {
	dir := filepath.Join(os.TempDir(), "mimi-gateway-test-ports")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return true // no shared directory: fall back to the check by listening
	}
	f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("%d.lock", port)), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return true
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return false
	}
	heldPorts = append(heldPorts, f) // open until the process exits
	return true
}

// heldPorts keeps the reservation files open (and so locked) for the life of the process.
var heldPorts []*os.File
