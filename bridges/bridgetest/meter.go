package bridgetest

import (
	"testing"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/ops/cputime"
	"github.com/mimi-gateway/mimi-gateway/core/ops/syscount"
	"github.com/mimi-gateway/mimi-gateway/core/store"
	"github.com/mimi-gateway/mimi-gateway/core/store/storetest"
)

// Meter measures an adapter's ingress benchmark from Start to Report: wall time, the process's
// CPU time (the adapter, the embedded NATS server, the test's consumer; not a homeserver or XMPP
// server in its own process), the store's commits and the process's fsync and fdatasync calls
// (where perf events are permitted: core/ops/syscount).
type Meter struct {
	tb       testing.TB
	st       *store.Store
	start    time.Time
	cpu0     time.Duration
	commits0 float64
	fsyncs   func() (uint64, error) // calls since StartMeter; nil when not counted
}

// StartMeter starts measuring; st is the adapter's store.
func StartMeter(tb testing.TB, st *store.Store) *Meter {
	tb.Helper()
	m := &Meter{tb: tb, st: st, commits0: storetest.Commits(tb, st)}
	if since, err := syscount.Start(syscount.Fsyncs); err != nil {
		tb.Logf("fsyncs not counted: %v", err)
	} else {
		m.fsyncs = since
	}
	m.cpu0, _ = cputime.Process()
	m.start = time.Now()
	return m
}

// Report reports the metrics of n messages since StartMeter: msgs/s, cpu-ms/msg, tx/msg and,
// when counted, fsync/msg.
func (m *Meter) Report(b *testing.B, n int) {
	b.Helper()
	wall := time.Since(m.start)
	cpu, _ := cputime.Process()
	b.ReportMetric(float64(n)/wall.Seconds(), "msgs/s")
	b.ReportMetric(float64(cpu-m.cpu0)/float64(n)/1e6, "cpu-ms/msg")
	b.ReportMetric((storetest.Commits(b, m.st)-m.commits0)/float64(n), "tx/msg")
	if m.fsyncs != nil {
		if c, err := m.fsyncs(); err != nil {
			b.Logf("fsyncs not counted: %v", err)
		} else {
			b.ReportMetric(float64(c)/float64(n), "fsync/msg")
		}
	}
}
