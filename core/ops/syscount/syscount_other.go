//go:build !linux

package syscount

import (
	"errors"
	"runtime"
)

// Counter counts system calls; on this platform it cannot be opened.
type Counter struct{}

// Open is not available on this platform.
func Open(calls []string) (*Counter, error) {
	return nil, errors.New("syscount: not available on " + runtime.GOOS)
}

// Count is not available on this platform.
func (c *Counter) Count() (uint64, error) { return 0, errors.New("syscount: not available") }

// Close does nothing on this platform.
func (c *Counter) Close() {}
