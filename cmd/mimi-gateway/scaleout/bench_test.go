package scaleout

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkScaleOut runs the same load (2,000 messages over 20 rooms, both directions at once,
// published as fast as the bus takes them) against one replica of A and against three, in one
// run, and reports the throughput from the first publish to the last delivery on the
// receivers' buses. Each sub-benchmark makes one run whatever b.N is (start it with
// -benchtime 1x):
//
//	go test -tags goolm -run '^$' -bench BenchmarkScaleOut -benchtime 1x ./cmd/mimi-gateway/scaleout/
func BenchmarkScaleOut(b *testing.B) {
	for _, n := range []int{1, 3} {
		b.Run(fmt.Sprintf("replicas=%d", n), func(b *testing.B) {
			c := NewCluster(b, n)
			l := c.Setup()
			b.ResetTimer()
			start := time.Now()
			c.Run(l, 0, nil)
			end := c.WaitDelivered(l)
			wall := end.Sub(start)
			b.StopTimer()
			c.Check(l)
			b.ReportMetric(float64(len(l.Msgs))/wall.Seconds(), "msgs/s")
			b.ReportMetric(wall.Seconds(), "s/run")
			b.ReportMetric(0, "ns/op")
		})
	}
}
