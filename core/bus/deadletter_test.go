package bus

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// TestDeadLetter covers the three ways into the dead-letter stream: too many failed deliveries,
// a permanent error, and bytes that are not an envelope. After each, the room's next message is
// delivered (the partition is not stuck).
func TestDeadLetter(t *testing.T) {
	forEachBackend(t, func(t *testing.T, cfg Config) {
		b := openBus(t, cfg)
		ctx := ctxT(t)
		rec := newRecorder()
		room := testRoom(5)
		failing := testEnvelope(room, "always-fails", nil)
		permanent := testEnvelope(room, "permanent", nil)
		s, err := b.ConsumeOut(ctx, "endpoint", func(_ context.Context, d Delivery) error {
			rec.add(d)
			switch d.Envelope.ID {
			case failing.ID:
				return errors.New("partner down")
			case permanent.ID:
				return Permanent(errors.New("room does not exist"))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		defer stopSub(t, s)

		// 1. Max deliveries.
		if err := b.PublishOut(ctx, failing); err != nil {
			t.Fatal(err)
		}
		after1 := testEnvelope(room, "after-1", nil)
		if err := b.PublishOut(ctx, after1); err != nil {
			t.Fatal(err)
		}
		rec.waitCount(t, after1.ID, 1)
		if n := rec.count(failing.ID); n != cfg.MaxDeliveries {
			t.Errorf("failing envelope delivered %d times, want %d", n, cfg.MaxDeliveries)
		}
		for _, d := range rec.snapshot() {
			if d.Envelope.ID == failing.ID && d.Final != (d.NumDelivered == uint64(cfg.MaxDeliveries)) {
				t.Errorf("delivery %d of %d: Final = %v", d.NumDelivered, cfg.MaxDeliveries, d.Final)
			}
		}

		// 2. Permanent error: one delivery.
		if err := b.PublishOut(ctx, permanent); err != nil {
			t.Fatal(err)
		}
		after2 := testEnvelope(room, "after-2", nil)
		if err := b.PublishOut(ctx, after2); err != nil {
			t.Fatal(err)
		}
		rec.waitCount(t, after2.ID, 1)
		if n := rec.count(permanent.ID); n != 1 {
			t.Errorf("permanent failure delivered %d times, want 1", n)
		}

		// 3. Undecodable bytes on a mimi.out subject: never reach the handler.
		garbage := []byte{0xff, 0x00, 'n', 'o', 't', ' ', 'c', 'b', 'o', 'r'}
		if _, err := b.js.Publish(ctx, SubjectOut(room), garbage, jetstream.WithMsgID("garbage-1")); err != nil {
			t.Fatal(err)
		}
		after3 := testEnvelope(room, "after-3", nil)
		if err := b.PublishOut(ctx, after3); err != nil {
			t.Fatal(err)
		}
		rec.waitCount(t, after3.ID, 1)
		if n := rec.len(); n != cfg.MaxDeliveries+4 {
			t.Errorf("handler called %d times, want %d", n, cfg.MaxDeliveries+4)
		}

		var dls []*nats.Msg
		checkFor(t, 10*time.Second, 20*time.Millisecond, func() error {
			dls = deadLetters(t, b)
			if len(dls) != 3 {
				return fmt.Errorf("%d dead letters, want 3", len(dls))
			}
			return nil
		})
		want := []struct {
			reason, msgID string
			deliveries    int
			data          []byte
		}{
			{DLQMaxDeliveries, string(failing.ID), cfg.MaxDeliveries, nil},
			{DLQPermanent, string(permanent.ID), 1, nil},
			{DLQUndecodable, "garbage-1", 1, garbage},
		}
		for i, w := range want {
			m := dls[i]
			if m.Subject != SubjectDeadLetterPrefix+SubjectOut(room) {
				t.Errorf("dead letter %d subject %q", i, m.Subject)
			}
			h := m.Header
			if h.Get(HeaderDLQReason) != w.reason || h.Get(HeaderDLQMsgID) != w.msgID ||
				h.Get(HeaderDLQSubject) != SubjectOut(room) || h.Get(HeaderDLQStream) != StreamOut ||
				h.Get(HeaderDLQDeliveries) != strconv.Itoa(w.deliveries) || h.Get(HeaderDLQSeq) == "" ||
				h.Get(HeaderDLQConsumer) == "" || h.Get(HeaderDLQError) == "" {
				t.Errorf("dead letter %d headers %v, want reason %s msg-id %s deliveries %d", i, h, w.reason, w.msgID, w.deliveries)
			}
			if w.data != nil && string(m.Data) != string(w.data) {
				t.Errorf("dead letter %d data %q, want the original %q", i, m.Data, w.data)
			}
			if w.data == nil {
				env, err := event.Unmarshal(m.Data)
				if err != nil || string(env.ID) != w.msgID {
					t.Errorf("dead letter %d: data is not the original envelope: %v", i, err)
				}
			}
		}
		for _, reason := range []string{DLQMaxDeliveries, DLQPermanent} {
			if n := counterValue(t, b.met.deadLettered.WithLabelValues("out", "matrix", reason)); n != 1 {
				t.Errorf("dead_lettered{%s} = %v, want 1", reason, n)
			}
		}
		if n := counterValue(t, b.met.deadLettered.WithLabelValues("out", "unknown", DLQUndecodable)); n != 1 {
			t.Errorf("dead_lettered{undecodable} = %v, want 1", n)
		}
	})
}

// TestDeadLetterIn checks that a mimi.in dead letter keeps the network in its subject.
func TestDeadLetterIn(t *testing.T) {
	forEachBackend(t, func(t *testing.T, cfg Config) {
		b := openBus(t, cfg)
		ctx := ctxT(t)
		room := testRoom(6)
		e := testEnvelope(room, "in-perm", nil)
		done := make(chan struct{})
		s, err := b.ConsumeIn(ctx, "adapter", event.NetworkXMPP, func(context.Context, Delivery) error {
			defer close(done)
			return fmt.Errorf("no portal: %w", ErrPermanent)
		})
		if err != nil {
			t.Fatal(err)
		}
		defer stopSub(t, s)
		if err := b.PublishIn(ctx, event.NetworkXMPP, e); err != nil {
			t.Fatal(err)
		}
		<-done
		checkFor(t, 10*time.Second, 20*time.Millisecond, func() error {
			dls := deadLetters(t, b)
			if len(dls) != 1 {
				return fmt.Errorf("%d dead letters", len(dls))
			}
			if want := SubjectDeadLetterPrefix + SubjectIn(event.NetworkXMPP, room); dls[0].Subject != want {
				return fmt.Errorf("subject %q, want %q", dls[0].Subject, want)
			}
			return nil
		})
	})
}
