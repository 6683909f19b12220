// Package syscount counts system calls of the whole process, for benchmarks that report how
// many fsyncs a unit of work costs.
//
// On Linux it opens one perf counter on the kernel's sys_enter tracepoint of each named system
// call for every thread of the process, inherited by threads created later; a read sums them
// (the kernel adds the counts of inheriting threads). It needs perf events to be permitted
// (root, or kernel.perf_event_paranoid low enough) and tracefs mounted; Open fails otherwise,
// and a benchmark then reports nothing rather than a guess.
package syscount

// Fsyncs names the system calls that force data to disk: fsync and fdatasync. SQLite's WAL
// commit with synchronous=FULL and the NATS file store with sync_always both end in them; the
// NATS store's state files are written with O_SYNC and then their directory fsynced, so each
// such file write counts once.
var Fsyncs = []string{"fsync", "fdatasync"}

// Start opens a counter of calls and returns the function that reads how many were made
// since Start and closes the counter (call it once). It fails where Open or the first Count
// fails.
func Start(calls []string) (since func() (uint64, error), err error) {
	c, err := Open(calls)
	if err != nil {
		return nil, err
	}
	n0, err := c.Count()
	if err != nil {
		c.Close()
		return nil, err
	}
	return func() (uint64, error) {
		defer c.Close()
		n, err := c.Count()
		if err != nil {
			return 0, err
		}
		return n - n0, nil
	}, nil
}
