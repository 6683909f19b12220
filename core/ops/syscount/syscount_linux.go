//go:build linux

package syscount

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// tracefs is where the kernel's tracepoint IDs are found.
var tracefs = []string{"/sys/kernel/tracing", "/sys/kernel/debug/tracing"}

// Counter counts the system calls it was opened for, in every thread of the process.
type Counter struct {
	mu  sync.Mutex
	fds []int
}

// Open starts counting the named system calls (e.g. Fsyncs) in every thread of the process.
// Close releases the counters.
func Open(calls []string) (*Counter, error) {
	ids := make([]uint64, 0, len(calls))
	for _, c := range calls {
		id, err := tracepointID("syscalls/sys_enter_" + c)
		if err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	// Threads started while the counters open are caught by inheritance from the thread that
	// starts them only if that thread is counted already; lock this goroutine so that at least
	// the opening thread stays put, and list the threads once more at the end.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	c := &Counter{}
	seen := map[int]bool{}
	for round := 0; round < 2; round++ {
		tids, err := threads()
		if err != nil {
			c.Close()
			return nil, err
		}
		for _, tid := range tids {
			if seen[tid] {
				continue
			}
			seen[tid] = true
			for _, id := range ids {
				attr := unix.PerfEventAttr{
					Type:        unix.PERF_TYPE_TRACEPOINT,
					Size:        uint32(binary.Size(unix.PerfEventAttr{})),
					Config:      id,
					Sample_type: unix.PERF_SAMPLE_IDENTIFIER,
					Bits:        unix.PerfBitInherit | unix.PerfBitExcludeHv,
				}
				fd, err := unix.PerfEventOpen(&attr, tid, -1, -1, unix.PERF_FLAG_FD_CLOEXEC)
				if errors.Is(err, unix.ESRCH) {
					continue // the thread ended meanwhile
				}
				if err != nil {
					c.Close()
					return nil, fmt.Errorf("syscount: perf_event_open (tracepoint %d, thread %d): %w", id, tid, err)
				}
				c.fds = append(c.fds, fd)
			}
		}
	}
	return c, nil
}

// Count returns the number of counted system calls since Open.
func (c *Counter) Count() (uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var sum uint64
	buf := make([]byte, 8)
	for _, fd := range c.fds {
		if _, err := unix.Read(fd, buf); err != nil {
			return 0, fmt.Errorf("syscount: read counter: %w", err)
		}
		sum += binary.NativeEndian.Uint64(buf)
	}
	return sum, nil
}

// Close releases the counters.
func (c *Counter) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, fd := range c.fds {
		_ = unix.Close(fd)
	}
	c.fds = nil
}

// tracepointID reads the ID of tracepoint name ("group/event") from tracefs.
func tracepointID(name string) (uint64, error) {
	var errs []error
	for _, dir := range tracefs {
		b, err := os.ReadFile(dir + "/events/" + name + "/id")
		if err != nil {
			errs = append(errs, err)
			continue
		}
		id, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("syscount: tracepoint %s: %w", name, err)
		}
		return id, nil
	}
	return 0, fmt.Errorf("syscount: tracepoint %s: %w", name, errors.Join(errs...))
}

// threads lists the process's thread IDs.
func threads() ([]int, error) {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil, fmt.Errorf("syscount: list threads: %w", err)
	}
	tids := make([]int, 0, len(ents))
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		tids = append(tids, tid)
	}
	return tids, nil
}
