package bus

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mimi-gateway/mimi-gateway/core/event"
)

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func stopSub(t testing.TB, s Subscription) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		t.Errorf("Stop: %v", err)
	}
}

// TestPublishConsume checks both directions end to end, that mimi.in is separated by network,
// and that Delivery carries the subject as published.
func TestPublishConsume(t *testing.T) {
	forEachBackend(t, func(t *testing.T, cfg Config) {
		b := openBus(t, cfg)
		ctx := ctxT(t)
		if err := b.Ready(ctx); err != nil {
			t.Fatalf("Ready: %v", err)
		}
		room := testRoom(1)

		out := newRecorder()
		sOut, err := b.ConsumeOut(ctx, "endpoint", func(_ context.Context, d Delivery) error { out.add(d); return nil })
		if err != nil {
			t.Fatal(err)
		}
		defer stopSub(t, sOut)
		mx, xm := newRecorder(), newRecorder()
		sMx, err := b.ConsumeIn(ctx, "adapter", event.NetworkMatrix, func(_ context.Context, d Delivery) error { mx.add(d); return nil })
		if err != nil {
			t.Fatal(err)
		}
		defer stopSub(t, sMx)
		sXm, err := b.ConsumeIn(ctx, "adapter", event.NetworkXMPP, func(_ context.Context, d Delivery) error { xm.add(d); return nil })
		if err != nil {
			t.Fatal(err)
		}
		defer stopSub(t, sXm)

		eOut := testEnvelope(room, "out-1", nil)
		if err := b.PublishOut(ctx, eOut); err != nil {
			t.Fatalf("PublishOut: %v", err)
		}
		eIn := testEnvelope(room, "in-1", nil)
		if err := b.PublishIn(ctx, event.NetworkMatrix, eIn); err != nil {
			t.Fatalf("PublishIn: %v", err)
		}
		eX := testEnvelope(room, "in-x", nil)
		if err := b.PublishIn(ctx, event.NetworkXMPP, eX); err != nil {
			t.Fatalf("PublishIn: %v", err)
		}
		out.waitCount(t, eOut.ID, 1)
		mx.waitCount(t, eIn.ID, 1)
		xm.waitCount(t, eX.ID, 1)
		if mx.count(eX.ID) != 0 || xm.count(eIn.ID) != 0 || out.len() != 1 {
			t.Fatalf("cross delivery: matrix got xmpp's %d, xmpp got matrix's %d, out got %d", mx.count(eX.ID), xm.count(eIn.ID), out.len())
		}
		d := out.snapshot()[0]
		if d.Subject != SubjectOut(room) || d.NumDelivered != 1 || d.StreamSeq == 0 {
			t.Errorf("out delivery = subject %q delivered %d seq %d; want subject %q, 1, >0", d.Subject, d.NumDelivered, d.StreamSeq, SubjectOut(room))
		}
		if string(d.Envelope.Content) != "out-1" || d.Envelope.Room != room {
			t.Errorf("envelope content %q room %q", d.Envelope.Content, d.Envelope.Room)
		}
		if d := mx.snapshot()[0]; d.Subject != SubjectIn(event.NetworkMatrix, room) {
			t.Errorf("in delivery subject %q, want %q", d.Subject, SubjectIn(event.NetworkMatrix, room))
		}
	})
}

// TestDedupe publishes one envelope twice: it is stored and delivered once.
func TestDedupe(t *testing.T) {
	forEachBackend(t, func(t *testing.T, cfg Config) {
		b := openBus(t, cfg)
		ctx := ctxT(t)
		room := testRoom(2)
		rec := newRecorder()
		s, err := b.ConsumeOut(ctx, "endpoint", func(_ context.Context, d Delivery) error { rec.add(d); return nil })
		if err != nil {
			t.Fatal(err)
		}
		defer stopSub(t, s)
		e := testEnvelope(room, "dup", nil)
		for i := 0; i < 2; i++ {
			if err := b.PublishOut(ctx, e); err != nil {
				t.Fatalf("publish %d: %v", i, err)
			}
		}
		// A later message in the same room (same partition, handled in order) proves that the
		// duplicate had its chance to arrive.
		sentinel := testEnvelope(room, "sentinel", nil)
		if err := b.PublishOut(ctx, sentinel); err != nil {
			t.Fatal(err)
		}
		rec.waitCount(t, sentinel.ID, 1)
		if n := rec.count(e.ID); n != 1 {
			t.Fatalf("duplicate envelope delivered %d times, want 1", n)
		}
		if got := streamLastSeq(t, b, StreamOut); got != 2 {
			t.Fatalf("stream stored %d messages, want 2", got)
		}
		if got := counterValue(t, b.met.duplicates.WithLabelValues("out", "matrix")); got != 1 {
			t.Fatalf("duplicates metric = %v, want 1", got)
		}
	})
}

// TestRedeliveryAfterHandlerError fails the first two deliveries; the third succeeds.
func TestRedeliveryAfterHandlerError(t *testing.T) {
	forEachBackend(t, func(t *testing.T, cfg Config) {
		b := openBus(t, cfg)
		ctx := ctxT(t)
		rec := newRecorder()
		s, err := b.ConsumeOut(ctx, "endpoint", func(_ context.Context, d Delivery) error {
			rec.add(d)
			if d.NumDelivered < 3 {
				return errors.New("partner unreachable")
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		defer stopSub(t, s)
		e := testEnvelope(testRoom(3), "retry", nil)
		if err := b.PublishOut(ctx, e); err != nil {
			t.Fatal(err)
		}
		rec.waitCount(t, e.ID, 3)
		checkFor(t, 10*time.Second, 10*time.Millisecond, func() error {
			if n := counterValue(t, b.met.acked.WithLabelValues("out", "matrix")); n != 1 {
				return fmt.Errorf("acked = %v", n)
			}
			return nil
		})
		for i, d := range rec.snapshot() {
			if d.NumDelivered != uint64(i+1) {
				t.Errorf("delivery %d has NumDelivered %d", i, d.NumDelivered)
			}
		}
		if n := counterValue(t, b.met.naked.WithLabelValues("out", "matrix")); n != 2 {
			t.Errorf("naked = %v, want 2", n)
		}
		if n := streamMsgs(t, b, StreamDeadLetter); n != 0 {
			t.Errorf("dead letters = %d, want 0", n)
		}
	})
}

// TestRedeliveryAfterConsumerRestart stops a consumer while its handler holds a message (so it
// is not acked), then starts the consumer group again: the message comes again.
func TestRedeliveryAfterConsumerRestart(t *testing.T) {
	forEachBackend(t, func(t *testing.T, cfg Config) {
		b := openBus(t, cfg)
		ctx := ctxT(t)
		e := testEnvelope(testRoom(4), "restart", nil)
		entered := make(chan struct{}, 1)
		s1, err := b.ConsumeOut(ctx, "endpoint", func(hctx context.Context, d Delivery) error {
			select {
			case entered <- struct{}{}:
			default:
			}
			<-hctx.Done() // never finishes on its own: Stop's deadline cancels it
			return hctx.Err()
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.PublishOut(ctx, e); err != nil {
			t.Fatal(err)
		}
		select {
		case <-entered:
		case <-ctx.Done():
			t.Fatal("first delivery never arrived")
		}
		sctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		err = s1.Stop(sctx)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Stop with a blocked handler = %v, want deadline exceeded", err)
		}

		rec := newRecorder()
		s2, err := b.ConsumeOut(ctx, "endpoint", func(_ context.Context, d Delivery) error { rec.add(d); return nil })
		if err != nil {
			t.Fatal(err)
		}
		defer stopSub(t, s2)
		rec.waitCount(t, e.ID, 1)
		if d := rec.snapshot()[0]; d.NumDelivered < 2 {
			t.Errorf("redelivery has NumDelivered %d, want >= 2", d.NumDelivered)
		}
	})
}

// streamMsgs returns how many messages a stream holds.
func streamMsgs(t testing.TB, b *NATS, name string) uint64 { return streamState(t, b, name).Msgs }

// streamLastSeq returns the sequence number of the last message a stream stored: how many it
// stored, whether or not they were removed since.
func streamLastSeq(t testing.TB, b *NATS, name string) uint64 { return streamState(t, b, name).LastSeq }

// streamState returns a stream's state.
func streamState(t testing.TB, b *NATS, name string) jetstream.StreamState {
	t.Helper()
	s, err := b.js.Stream(ctxT(t), name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	return info.State
}

// deadLetters returns the messages in the dead-letter stream.
func deadLetters(t testing.TB, b *NATS) []*nats.Msg {
	t.Helper()
	ctx := ctxT(t)
	s, err := b.js.Stream(ctx, StreamDeadLetter)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []*nats.Msg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, &nats.Msg{Subject: m.Subject, Data: m.Data, Header: m.Header})
	}
	return msgs
}
