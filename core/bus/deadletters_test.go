package bus

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// TestDeadLetterAdmin lists, shows, replays and discards dead letters: the listing carries the
// envelope's metadata and never its content, a replayed envelope reaches the consumer again, and
// a replayed or discarded dead letter is gone.
func TestDeadLetterAdmin(t *testing.T) {
	forEachBackend(t, func(t *testing.T, cfg Config) {
		b := openBus(t, cfg)
		ctx := ctxT(t)
		rec := newRecorder()
		room := testRoom(7)
		secret := []byte("content that must never be listed")
		failing := testEnvelope(room, "fails-once", secret)
		var healed atomic.Bool
		s, err := b.ConsumeOut(ctx, "endpoint", func(_ context.Context, d Delivery) error {
			rec.add(d)
			if d.Envelope.ID == failing.ID && !healed.Load() {
				return Permanent(errors.New("room unknown"))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		defer stopSub(t, s)
		if err := b.PublishOut(ctx, failing); err != nil {
			t.Fatal(err)
		}
		garbage := []byte("not an envelope")
		if _, err := b.js.Publish(ctx, SubjectOut(room), garbage, jetstream.WithMsgID("garbage-admin")); err != nil {
			t.Fatal(err)
		}
		var dls []DeadLetter
		checkFor(t, 10*time.Second, 20*time.Millisecond, func() error {
			dls, err = b.ListDeadLetters(ctx, 0, 10)
			if err != nil {
				return err
			}
			if len(dls) != 2 {
				return fmt.Errorf("%d dead letters, want 2", len(dls))
			}
			return nil
		})
		first, second := dls[0], dls[1]
		if first.Reason != DLQPermanent || first.Envelope == nil || first.Envelope.ID != failing.ID ||
			first.Envelope.Kind != "message" || first.Envelope.Room != room || first.Envelope.ContentSize != len(secret) ||
			first.Subject != SubjectOut(room) || first.Stream != StreamOut || first.Deliveries != 1 || first.MsgID != string(failing.ID) {
			t.Errorf("first dead letter %+v (envelope %+v)", first, first.Envelope)
		}
		if second.Reason != DLQUndecodable || second.Envelope != nil || second.DecodeError == "" || second.Size != len(garbage) {
			t.Errorf("second dead letter %+v", second)
		}
		js, _ := json.Marshal(dls)
		if bytes.Contains(js, secret) || bytes.Contains(js, garbage) {
			t.Errorf("listing shows message data: %s", js)
		}
		if page, err := b.ListDeadLetters(ctx, first.Seq, 10); err != nil || len(page) != 1 || page[0].Seq != second.Seq {
			t.Errorf("page after %d: %+v, %v", first.Seq, page, err)
		}
		if n, err := b.DeadLetterCount(ctx); err != nil || n != 2 {
			t.Errorf("count %d, %v; want 2", n, err)
		}
		if got, err := b.GetDeadLetter(ctx, first.Seq); err != nil || got.MsgID != first.MsgID {
			t.Errorf("get %d: %+v, %v", first.Seq, got, err)
		}

		healed.Store(true)
		if err := b.ReplayDeadLetter(ctx, first.Seq); err != nil {
			t.Fatal(err)
		}
		rec.waitCount(t, failing.ID, 2)
		if _, err := b.GetDeadLetter(ctx, first.Seq); !errors.Is(err, ErrDeadLetterNotFound) {
			t.Errorf("replayed dead letter still there: %v", err)
		}
		if err := b.ReplayDeadLetter(ctx, first.Seq); !errors.Is(err, ErrDeadLetterNotFound) {
			t.Errorf("second replay: %v, want ErrDeadLetterNotFound", err)
		}
		if err := b.DiscardDeadLetter(ctx, second.Seq); err != nil {
			t.Fatal(err)
		}
		if err := b.DiscardDeadLetter(ctx, second.Seq); !errors.Is(err, ErrDeadLetterNotFound) {
			t.Errorf("second discard: %v, want ErrDeadLetterNotFound", err)
		}
		if n, err := b.DeadLetterCount(ctx); err != nil || n != 0 {
			t.Errorf("count %d, %v; want 0", n, err)
		}
		if v := counterValue(t, b.met.replayed); v != 1 {
			t.Errorf("replayed_total %v", v)
		}
		if v := counterValue(t, b.met.discarded); v != 1 {
			t.Errorf("discarded_total %v", v)
		}
	})
}
