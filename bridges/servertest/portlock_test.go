//go:build unix

package servertest

import (
	"os"
	"os/exec"
	"strconv"
	"testing"
)

// TestReservePortAcrossProcesses: a port handed out by this process is refused to another
// process (a child running this test binary) while this one lives.
func TestReservePortAcrossProcesses(t *testing.T) {
	if p := os.Getenv("MIMI_PORTLOCK_CHILD"); p != "" {
		port, _ := strconv.Atoi(p)
		if reservePort(port) {
			os.Exit(0)
		}
		os.Exit(3)
	}
	port := FreePort(t)
	child := func(port int) int {
		cmd := exec.Command(os.Args[0], "-test.run", "^TestReservePortAcrossProcesses$")
		cmd.Env = append(os.Environ(), "MIMI_PORTLOCK_CHILD="+strconv.Itoa(port))
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	}
	if code := child(port); code != 3 {
		t.Fatalf("another process got port %d that this one holds (exit %d, want 3)", port, code)
	}
}
