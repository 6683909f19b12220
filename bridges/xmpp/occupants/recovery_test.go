package occupants

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestTracker: an occupant watched as absent is filtered out of Present, an earlier owed time is
// kept, the tracker reports it back once its ping answers, and Take ends its recovery.
func TestTracker(t *testing.T) {
	back := make(chan Key, 1)
	answer := make(chan bool, 1)
	tr := NewTracker(func(_ context.Context, k Key) (func(context.Context) bool, func(bool), error) {
		if k.Full == "bad" {
			return nil, nil, errors.New("no such room")
		}
		ping := func(context.Context) bool { return <-answer }
		return ping, func(ok bool) {
			if ok {
				back <- k
			}
		}, nil
	})
	k := Key{Room: "mimi://example.org/r/a", Full: "alice@example.org/phone"}
	occ := []Occupant{{Full: k.Full}, {Full: "bob@example.org/pc"}}
	t0 := time.Unix(1000, 0)

	tr.Watch(k, true, t0, t0) // not started: nothing is watched
	if got := tr.Present(k.Room, occ); len(got) != 2 {
		t.Fatalf("before Start: Present = %v, want both occupants", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tr.Start(ctx)
	tr.Watch(k, true, t0, t0)
	tr.Watch(k, false, t0.Add(-time.Second), t0) // extends: absent stays, earlier owed time wins
	if got := tr.Present(k.Room, occ); len(got) != 1 || got[0].Full != "bob@example.org/pc" {
		t.Fatalf("absent occupant: Present = %v, want only bob", got)
	}
	tr.Watch(Key{Room: k.Room, Full: "bad"}, true, t0, t0) // probe fails: recovery ends
	answer <- true
	select {
	case got := <-back:
		if got != k {
			t.Fatalf("back: %v, want %v", got, k)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("occupant not reported back after its ping answered")
	}
	rec := tr.Take(k)
	if rec == nil || !rec.Absent || !rec.Owed.Equal(t0.Add(-time.Second)) || !rec.Since.Equal(t0) {
		t.Fatalf("Take = %+v, want absent, owed %v, since %v", rec, t0.Add(-time.Second), t0)
	}
	if tr.Take(k) != nil {
		t.Fatal("second Take returned a recovery")
	}
	if got := tr.Present(k.Room, occ); len(got) != 2 {
		t.Fatalf("after Take: Present = %v, want both occupants", got)
	}
	cancel()
	tr.Wait()
	if tr.Take(Key{Room: k.Room, Full: "bad"}) != nil {
		t.Fatal("a recovery whose probe failed was kept")
	}
}
