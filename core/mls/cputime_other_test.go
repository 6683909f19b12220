//go:build !unix

package mls

import "time"

// processCPUTime is not available on this platform; benchmarks then report wall time only.
func processCPUTime() (time.Duration, bool) { return 0, false }
