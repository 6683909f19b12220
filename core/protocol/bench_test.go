package protocol_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/protocol"
	"github.com/mimi-gateway/mimi-gateway/core/protocol/protocoltest"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// BenchmarkSubmitMessageRoundTrip measures one submitMessage request (a 1 KiB PrivateMessage)
// from provider B to hub A over mutual TLS on loopback: encode, HTTPS POST on a kept-alive
// connection, authentication, decode, handler, response encode and decode.
func BenchmarkSubmitMessageRoundTrip(b *testing.B) {
	_, pb := protocoltest.NewPair(b, domainA, domainB, &handler{}, &handler{}, protocoltest.Options{})
	req := &protocol.SubmitMessageRequest{Protocol: protocol.ProtocolMLS10, AppMessage: appMessage(b, 1024), SendingURI: "mimi://b.example/u/bob"}
	body, _ := req.Encode()
	b.SetBytes(int64(len(body)))
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		resp, err := pb.Client.SubmitMessage(ctx, room, req)
		if err != nil {
			b.Fatal(err)
		}
		if resp.StatusCode != protocol.SubmitAccepted {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}

// BenchmarkSubmitMessageParallel is the same with 8 concurrent senders (HTTP/2 multiplexing).
func BenchmarkSubmitMessageParallel(b *testing.B) {
	_, pb := protocoltest.NewPair(b, domainA, domainB, &handler{}, &handler{}, protocoltest.Options{})
	req := &protocol.SubmitMessageRequest{Protocol: protocol.ProtocolMLS10, AppMessage: appMessage(b, 1024), SendingURI: "mimi://b.example/u/bob"}
	ctx := b.Context()
	b.ReportAllocs()
	b.SetParallelism(4) // 4 × GOMAXPROCS goroutines
	b.RunParallel(func(p *testing.PB) {
		for p.Next() {
			if _, err := pb.Client.SubmitMessage(ctx, room, req); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkOutboxDrain measures the outbox delivering b.N queued /notify bodies of one room (one
// FanoutMessage with a 1 KiB PrivateMessage each) to a follower over mutual TLS on loopback:
// claim, /notify (the follower's deduplication and handler in one SQLite transaction), delete.
// batch=1 is one request per queued body, as before batching; batch=64 is the default.
func BenchmarkOutboxDrain(b *testing.B) {
	for _, maxBatch := range []int{1, 64} {
		b.Run(fmt.Sprintf("batch=%d", maxBatch), func(b *testing.B) {
			hb := &handler{}
			a, _ := protocoltest.NewPair(b, domainA, domainB, &handler{}, hb, protocoltest.Options{})
			ob, err := protocol.NewOutbox(protocol.OutboxConfig{Store: a.Store, Sender: a.Client, MaxBatch: maxBatch, PollInterval: 10 * time.Millisecond})
			if err != nil {
				b.Fatal(err)
			}
			m := appMessage(b, 1024)
			err = a.Store.InTx(b.Context(), func(tx *store.Tx) error {
				for i := range b.N {
					if err := ob.Enqueue(b.Context(), tx, domainB, room, &protocol.FanoutMessage{Timestamp: uint64(i + 1), Message: m}); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(b.Context())
			done := make(chan struct{})
			b.ResetTimer()
			start := time.Now()
			go func() {
				defer close(done)
				_ = ob.Run(ctx)
			}()
			for {
				n, err := ob.Pending(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if n == 0 {
					break
				}
				time.Sleep(time.Millisecond)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "bodies/s")
			cancel()
			<-done
			if got := len(delivered(hb, room)); got != b.N {
				b.Fatalf("follower got %d FanoutMessages, want %d", got, b.N)
			}
		})
	}
}
