package servertest

import (
	"os/exec"
	"syscall"
)

// dieWithTest makes the kernel kill the server when the test process ends, even when the test
// binary itself is killed and cannot run its cleanups.
func dieWithTest(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}
