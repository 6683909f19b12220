package receipts_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/receipts"
	"github.com/mimi-gateway/mimi-gateway/bridges/servertest"
	"github.com/mimi-gateway/mimi-gateway/core/store"
	"github.com/mimi-gateway/mimi-gateway/core/store/storetest"
)

// homeserver records the receipts sent and answers with the error fail returns (nil: accepted).
type homeserver struct {
	mu   sync.Mutex
	sent []string
	fail func(room id.RoomID, user id.UserID, ev id.EventID) error
	// during runs inside a send, before it returns (a receipt put meanwhile).
	during func()
}

func (h *homeserver) send(_ context.Context, room id.RoomID, user id.UserID, ev id.EventID) error {
	if h.during != nil {
		h.during()
		h.during = nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fail != nil {
		if err := h.fail(room, user, ev); err != nil {
			return err
		}
	}
	h.sent = append(h.sent, fmt.Sprintf("%s %s %s", room, user, ev))
	return nil
}

func (h *homeserver) take() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.sent
	h.sent = nil
	slices.Sort(s)
	return s
}

func put(t *testing.T, q *receipts.Queue, room id.RoomID, user id.UserID, ev id.EventID) {
	t.Helper()
	if err := q.Put(t.Context(), room, user, ev); err != nil {
		t.Fatal(err)
	}
}

// refused is the homeserver's refusal of a receipt (status 403).
var refused = mautrix.HTTPError{Response: &http.Response{StatusCode: http.StatusForbidden}, RespError: &mautrix.RespError{ErrCode: "M_FORBIDDEN"}}

// TestQueue: on both store backends, the latest receipt per room and user is sent once; a
// receipt that failed without an answer stays pending and is sent by the next flush; one the
// homeserver refused is dropped; one replaced while its predecessor was being sent is not
// removed with it; a queue over the same store (the next run) sends what was left pending; bad
// input is refused.
func TestQueue(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		hs := &homeserver{}
		q := receipts.New(s, hs.send, slog.Default())
		for _, bad := range [][3]string{{"", "@u:hs", "$e"}, {"!r:hs", "", "$e"}, {"!r:hs", "@u:hs", ""}} {
			if err := q.Put(ctx, id.RoomID(bad[0]), id.UserID(bad[1]), id.EventID(bad[2])); err == nil {
				t.Errorf("Put(%q) = nil, want an error", bad)
			}
		}

		// Coalescing: per room and user, the latest one.
		put(t, q, "!a:hs", "@u:hs", "$1")
		put(t, q, "!a:hs", "@u:hs", "$2")
		put(t, q, "!a:hs", "@v:hs", "$3")
		put(t, q, "!b:hs", "@u:hs", "$4")
		put(t, q, "!a:hs", "@u:hs", "$5")
		if err := q.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if got, want := hs.take(), []string{"!a:hs @u:hs $5", "!a:hs @v:hs $3", "!b:hs @u:hs $4"}; !slices.Equal(got, want) {
			t.Fatalf("sent %q, want %q", got, want)
		}
		if err := q.Flush(ctx); err != nil || len(hs.take()) != 0 {
			t.Fatalf("a second flush sent again (%v)", err)
		}

		// A failure without an answer keeps the receipt; a refusal drops it.
		down := errors.New("connection refused")
		hs.fail = func(room id.RoomID, _ id.UserID, _ id.EventID) error {
			switch room {
			case "!down:hs":
				return down
			case "!gone:hs":
				return refused
			}
			return nil
		}
		put(t, q, "!down:hs", "@u:hs", "$6")
		put(t, q, "!gone:hs", "@u:hs", "$7")
		put(t, q, "!a:hs", "@u:hs", "$8")
		if err := q.Flush(ctx); !errors.Is(err, down) {
			t.Fatalf("flush = %v, want the failed send's error", err)
		}
		if got, want := hs.take(), []string{"!a:hs @u:hs $8"}; !slices.Equal(got, want) {
			t.Fatalf("sent %q, want %q", got, want)
		}
		hs.fail = nil
		if err := q.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if got, want := hs.take(), []string{"!down:hs @u:hs $6"}; !slices.Equal(got, want) {
			t.Fatalf("after the failure sent %q, want %q (the refused one dropped)", got, want)
		}

		// A receipt put while its predecessor is being sent stays for the next flush.
		put(t, q, "!a:hs", "@u:hs", "$9")
		hs.during = func() { put(t, q, "!a:hs", "@u:hs", "$10") }
		if err := q.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if err := q.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if got, want := hs.take(), []string{"!a:hs @u:hs $10", "!a:hs @u:hs $9"}; !slices.Equal(got, want) {
			t.Fatalf("sent %q, want %q", got, want)
		}

		// The next run sends what is pending, then what is put while it runs.
		put(t, q, "!c:hs", "@u:hs", "$11")
		next := receipts.New(s, hs.send, slog.Default())
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); next.Run(runCtx) }()
		defer func() { cancel(); <-done }()
		var got []string
		servertest.Eventually(t, 10*time.Second, "the pending receipt sent by the next run", func() error {
			got = append(got, hs.take()...)
			if !slices.Equal(got, []string{"!c:hs @u:hs $11"}) {
				return fmt.Errorf("sent %q", got)
			}
			return nil
		})
		put(t, next, "!c:hs", "@u:hs", "$12")
		got = nil
		servertest.Eventually(t, 10*time.Second, "the new receipt sent", func() error {
			got = append(got, hs.take()...)
			if !slices.Equal(got, []string{"!c:hs @u:hs $12"}) {
				return fmt.Errorf("sent %q", got)
			}
			return nil
		})
	})
}
