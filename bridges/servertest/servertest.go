// Package servertest runs the real servers of integration and end-to-end tests (Dendrite,
// Prosody, the gateway binary) as child processes: output appended to a log file, a signal and
// a wait for the exit (SIGKILL for crash tests), and loopback ports.
package servertest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"
)

// FreeAddr returns a loopback address whose port was free a moment ago.
//
// The port is taken from below Linux's ephemeral range (32768-60999), at random: a port the kernel
// hands out for ":0" is one it also gives to outgoing connections, and on a busy machine one of
// those took it before the server was started often enough to fail suites ("address already in
// use"). No port is handed out twice by one test process, nor by two test processes at once:
// each port handed out is reserved for the life of the process by a lock on a file in a
// directory all test processes share (go test runs packages as separate processes at the same
// time, and each picks at random).
func FreeAddr(t testing.TB) string {
	t.Helper()
	freeMu.Lock()
	defer freeMu.Unlock()
	for range 200 {
		port := freeLow + rand.IntN(freeHigh-freeLow)
		if freeGiven[port] || !reservePort(port) {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		l.Close()
		freeGiven[port] = true
		return fmt.Sprintf("127.0.0.1:%d", port)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Ports FreeAddr hands out: [freeLow, freeHigh), below the ephemeral range.
const freeLow, freeHigh = 20000, 32768

var (
	freeMu    sync.Mutex
	freeGiven = map[int]bool{}
)

// FreePort is FreeAddr's port.
func FreePort(t testing.TB) int {
	t.Helper()
	_, port, _ := net.SplitHostPort(FreeAddr(t))
	var n int
	_, _ = fmt.Sscan(port, &n)
	return n
}

// Process is a started child process.
type Process struct {
	cmd    *exec.Cmd
	exited chan struct{}
	mu     sync.Mutex
	err    error
}

// Start starts cmd with its output appended to logFile (created if needed); a line "==== "
// + banner goes before it, and one with the exit status after it.
func Start(cmd *exec.Cmd, logFile, banner string) (*Process, error) {
	log, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("servertest: log file: %w", err)
	}
	if banner != "" {
		fmt.Fprintf(log, "==== %s at %s\n", banner, time.Now().Format(time.RFC3339Nano))
	}
	cmd.Stdout, cmd.Stderr = log, log
	dieWithTest(cmd)
	if err := cmd.Start(); err != nil {
		_ = log.Close()
		return nil, fmt.Errorf("servertest: start %s: %w", cmd.Path, err)
	}
	p := &Process{cmd: cmd, exited: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		fmt.Fprintf(log, "==== exited: %v\n", err)
		_ = log.Close()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(p.exited)
	}()
	return p, nil
}

// Running reports whether the process has not exited. A nil Process does not run.
func (p *Process) Running() bool {
	if p == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// Pid is the process ID (0 for a nil Process).
func (p *Process) Pid() int {
	if p == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Exited is closed when the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Err is how the process ended (nil for exit status 0 or while it runs).
func (p *Process) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Signal sends sig and waits for the exit; after grace it sends SIGKILL and waits again. A nil
// or exited Process is left alone.
func (p *Process) Signal(sig syscall.Signal, grace time.Duration) {
	if !p.Running() {
		return
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.exited:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// Kill ends the process with SIGKILL, as a crash would, and waits for it.
func (p *Process) Kill() { p.Signal(syscall.SIGKILL, time.Minute) }

// WaitListening polls the loopback addresses until each accepts a connection; it fails when the
// process exits first or timeout passes.
func (p *Process) WaitListening(timeout time.Duration, addrs ...string) error {
	deadline := time.Now().Add(timeout)
	for _, a := range addrs {
		for {
			c, err := net.DialTimeout("tcp", a, 200*time.Millisecond)
			if err == nil {
				c.Close()
				break
			}
			if !p.Running() {
				return fmt.Errorf("servertest: %s exited at start: %v", p.cmd.Path, p.Err())
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("servertest: %s not listening on %s within %s", p.cmd.Path, a, timeout)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}

// Tail returns the last n bytes of a file ("" if it cannot be read).
func Tail(file string, n int) string {
	b, _ := os.ReadFile(file)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// Eventually polls f until it returns nil; after timeout (scaled for the machine, Scale) it
// fails the test with what and f's last error.
func Eventually(t testing.TB, timeout time.Duration, what string, f func() error) {
	t.Helper()
	timeout = Scale(timeout)
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s: %v", timeout, what, err)
		}
		time.Sleep(25 * time.Millisecond)
	}
}
