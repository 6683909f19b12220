package protocol_test

import (
	"testing"

	"github.com/mimi-gateway/mimi-gateway/core/protocol"
	"github.com/mimi-gateway/mimi-gateway/core/protocol/protocoltest"
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
