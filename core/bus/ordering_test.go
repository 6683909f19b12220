package bus

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// TestPerRoomOrdering publishes from several goroutines to several rooms at once; every room's
// messages must arrive complete and in publish order, while rooms interleave.
func TestPerRoomOrdering(t *testing.T) {
	const (
		publishers     = 4
		roomsPerPub    = 3
		msgsPerRoom    = 60
		totalMessages  = publishers * roomsPerPub * msgsPerRoom
		roomSeqContent = "seq="
	)
	forEachBackend(t, func(t *testing.T, cfg Config) {
		b := openBus(t, cfg)
		ctx := ctxT(t)

		var mu sync.Mutex
		next := map[event.RoomURI]int{} // next expected sequence per room
		var order []event.RoomURI       // arrival order of rooms
		var errs []string
		s, err := b.ConsumeOut(ctx, "endpoint", func(_ context.Context, d Delivery) error {
			seq, err := strconv.Atoi(strings.TrimPrefix(string(d.Envelope.Content), roomSeqContent))
			if err != nil {
				return Permanent(err)
			}
			mu.Lock()
			defer mu.Unlock()
			if want := next[d.Envelope.Room]; seq != want {
				errs = append(errs, fmt.Sprintf("room %s: got seq %d, want %d", d.Envelope.Room, seq, want))
			}
			next[d.Envelope.Room] = seq + 1
			order = append(order, d.Envelope.Room)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		defer stopSub(t, s)

		start := time.Now()
		var wg sync.WaitGroup
		pubErrs := make(chan error, publishers)
		for p := 0; p < publishers; p++ {
			wg.Go(func() {
				for i := 0; i < msgsPerRoom; i++ {
					for r := 0; r < roomsPerPub; r++ {
						room := testRoom(100 + p*roomsPerPub + r)
						e := testEnvelope(room, fmt.Sprintf("%d-%d", r, i), []byte(roomSeqContent+strconv.Itoa(i)))
						if err := b.PublishOut(ctx, e); err != nil {
							pubErrs <- err
							return
						}
					}
				}
			})
		}
		wg.Wait()
		published := time.Since(start)
		close(pubErrs)
		for err := range pubErrs {
			t.Fatalf("publish: %v", err)
		}
		checkFor(t, 60*time.Second, 20*time.Millisecond, func() error {
			mu.Lock()
			defer mu.Unlock()
			if len(order) < totalMessages {
				return fmt.Errorf("%d of %d delivered", len(order), totalMessages)
			}
			return nil
		})
		consumed := time.Since(start)
		mu.Lock()
		defer mu.Unlock()
		for _, e := range errs {
			t.Error(e)
		}
		if len(order) != totalMessages {
			t.Fatalf("delivered %d, want %d", len(order), totalMessages)
		}
		for room, n := range next {
			if n != msgsPerRoom {
				t.Errorf("room %s: %d messages, want %d", room, n, msgsPerRoom)
			}
		}
		switches := 0
		for i := 1; i < len(order); i++ {
			if order[i] != order[i-1] {
				switches++
			}
		}
		// Rooms interleave: far more switches than the minimum (rooms-1) of a room-by-room order.
		if rooms := publishers * roomsPerPub; switches < 4*rooms {
			t.Errorf("only %d room switches in %d deliveries: rooms did not interleave", switches, len(order))
		}
		t.Logf("%d messages, %d publishers, %d rooms: published in %s, all consumed after %s, %d room switches",
			totalMessages, publishers, publishers*roomsPerPub, published.Round(time.Millisecond), consumed.Round(time.Millisecond), switches)
	})
}

// TestPartitionsInParallel blocks the handler of one room until a room of another partition is
// handled: this only finishes if partitions are consumed in parallel.
func TestPartitionsInParallel(t *testing.T) {
	forEachBackend(t, func(t *testing.T, cfg Config) {
		b := openBus(t, cfg)
		ctx := ctxT(t)
		// Find two rooms in different partitions by their stored subjects mimi.out.<p>.<token>.
		roomA, roomB := testRoom(200), event.RoomURI("")
		pa := partitionOf(t, b, roomA)
		for i := 201; i < 240 && roomB == ""; i++ {
			if partitionOf(t, b, testRoom(i)) != pa {
				roomB = testRoom(i)
			}
		}
		if roomB == "" {
			t.Fatal("no room in another partition among 39 candidates")
		}
		// The probe messages above are in the stream too; only the ones below matter.
		eA, eB := testEnvelope(roomA, "block", nil), testEnvelope(roomB, "free", nil)
		bDone := make(chan struct{})
		var once sync.Once
		s, err := b.ConsumeOut(ctx, "endpoint", func(hctx context.Context, d Delivery) error {
			switch d.Envelope.ID {
			case eA.ID:
				select {
				case <-bDone:
					return nil
				case <-hctx.Done():
					return hctx.Err()
				}
			case eB.ID:
				once.Do(func() { close(bDone) })
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		defer stopSub(t, s)
		if err := b.PublishOut(ctx, eA); err != nil {
			t.Fatal(err)
		}
		if err := b.PublishOut(ctx, eB); err != nil {
			t.Fatal(err)
		}
		select {
		case <-bDone:
		case <-time.After(20 * time.Second):
			t.Fatal("room B was not handled while room A's handler was blocked")
		}
	})
}

// partitionOf publishes a probe envelope for room and reads back its stored subject.
func partitionOf(t testing.TB, b *NATS, room event.RoomURI) string {
	t.Helper()
	ctx := ctxT(t)
	// A consumer group must be interested, or the stream does not keep the probe.
	if err := b.DeclareOut(ctx, "probe"); err != nil {
		t.Fatal(err)
	}
	s, err := b.js.Stream(ctx, StreamOut)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for p := range b.cfg.Partitions {
			if err := s.DeleteConsumer(ctx, "probe_p"+strconv.Itoa(p)); err != nil {
				t.Fatal(err)
			}
		}
	}()
	if err := b.PublishOut(ctx, testEnvelope(room, "probe", nil)); err != nil {
		t.Fatal(err)
	}
	m, err := s.GetLastMsgForSubject(ctx, "mimi.out.*."+room.Token())
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(m.Subject, ".")
	if len(parts) != 4 || parts[3] != room.Token() {
		t.Fatalf("stored subject %q is not mimi.out.<p>.<token>", m.Subject)
	}
	return parts[2]
}
