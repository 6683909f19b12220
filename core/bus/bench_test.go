package bus

import (
	"context"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

// BenchmarkPublishConsume measures end-to-end throughput and latency on the embedded server:
// envelopes with 1 KiB of content are published with PublishOut to 64 rooms and consumed by one
// consumer group (16 partitions, DoubleAck per message). Latency runs from just before
// PublishOut to the handler call.
//
//   - publishers=1: a sync producer (each publish waits for its PubAck);
//   - publishers=32: a pipelined producer (32 publishes in flight at once).
//
// Each runs with sync_always (the embedded default: fsync before every PubAck) and with the
// file store's background sync (sync_interval 2m).
func BenchmarkPublishConsume(b *testing.B) {
	for _, sync := range []struct {
		name     string
		interval time.Duration
	}{{"sync_always", 0}, {"sync_interval=2m", 2 * time.Minute}} {
		for _, pubs := range []int{1, 32} {
			name := "sync_publish"
			if pubs > 1 {
				name = "pipelined_" + strconv.Itoa(pubs)
			}
			b.Run(sync.name+"/"+name, func(b *testing.B) { benchPublishConsume(b, sync.interval, pubs) })
		}
	}
}

func benchPublishConsume(b *testing.B, syncInterval time.Duration, publishers int) {
	const rooms = 64
	cfg := testConfig()
	cfg.Partitions = DefaultPartitions
	cfg.AckWait = DefaultAckWait
	cfg.Embedded.StoreDir = filepath.Join(b.TempDir(), "nats")
	cfg.Embedded.SyncInterval = syncInterval
	bus := openBus(b, cfg)
	ctx := context.Background()

	var mu sync.Mutex
	lat := make([]time.Duration, 0, b.N)
	done := make(chan struct{})
	sub, err := bus.ConsumeOut(ctx, "bench", func(_ context.Context, d Delivery) error {
		l := time.Since(d.Envelope.Timestamp)
		mu.Lock()
		lat = append(lat, l)
		if len(lat) == b.N {
			close(done)
		}
		mu.Unlock()
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	defer stopSub(b, sub)

	content := make([]byte, 1024)
	for i := range content {
		content[i] = byte('a' + i%26)
	}
	b.SetBytes(int64(len(content)))
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, publishers)
	for p := 0; p < publishers; p++ {
		wg.Go(func() {
			for i := p; i < b.N; i += publishers {
				e := testEnvelope(testRoom(i%rooms), "m"+strconv.Itoa(i), content)
				e.Timestamp = time.Now()
				if err := bus.PublishOut(ctx, e); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		b.Fatalf("only %d of %d consumed", len(lat), b.N)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}
