package abuse

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/content"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/store"
	"github.com/mimi-gateway/mimi-gateway/core/store/storetest"
)

func textContent(t *testing.T, sender event.UserURI, room event.RoomURI, text string) []byte {
	t.Helper()
	b := content.Builder{SenderURI: string(sender), RoomURI: string(room)}
	m, err := b.Text(text)
	if err != nil {
		t.Fatal(err)
	}
	c, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestRecordListPrune records a report (twice: stored once), lists it with its note and message
// text opened, checks that neither is readable in the store, then erases and prunes.
func TestRecordListPrune(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		if err := Migrate(ctx, st); err != nil {
			t.Fatal(err)
		}
		room := event.NewRoomURI("klinik-a.example", "ward")
		eve := event.NewUserURI("e.example", "eve")
		alice := event.NewUserURI("klinik-a.example", "alice")
		t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
		body := []byte("report body")
		r := Report{ID: ReportID("klinik-a.example", body), Room: room, From: "klinik-a.example", Reporter: alice, Accused: eve,
			Note: "Beleidigung im Stationschat", Received: t0,
			Messages: []Message{{Sender: eve, Accepted: t0.Add(-time.Minute), Content: textContent(t, eve, room, "you are all idiots")}}}
		for i, want := range []bool{true, false} {
			fresh, err := Record(ctx, st, r)
			if err != nil || fresh != want {
				t.Fatalf("Record #%d = %v, %v; want %v", i+1, fresh, err, want)
			}
		}
		got, err := List(ctx, st, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].Note != r.Note || got[0].Accused != eve || got[0].From != "klinik-a.example" || !got[0].Received.Equal(t0) || len(got[0].Messages) != 1 {
			t.Fatalf("List = %+v", got)
		}
		if txt := got[0].Messages[0].Text(); txt != "you are all idiots" {
			t.Errorf("Text = %q", txt)
		}
		if txt := (Message{Content: []byte{0xff}}).Text(); !strings.Contains(txt, "cannot be decoded") {
			t.Errorf("Text of garbage = %q", txt)
		}
		var note, c []byte
		if err := st.QueryRowContext(ctx, `SELECT note FROM abuse_reports`).Scan(&note); err != nil {
			t.Fatal(err)
		}
		if err := st.QueryRowContext(ctx, `SELECT content FROM abuse_messages`).Scan(&c); err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(note, []byte("Beleidigung")) || bytes.Contains(c, []byte("idiots")) {
			t.Error("note or message readable in the store")
		}

		for _, bad := range []Report{
			{ID: "x", Room: room, Reporter: alice, Accused: eve},
			{ID: "x", Room: room, Reporter: alice, Accused: eve, Messages: r.Messages, Note: strings.Repeat("n", MaxNote+1)},
			{Room: room, Reporter: alice, Accused: eve, Messages: r.Messages},
		} {
			if _, err := Record(ctx, st, bad); !errors.Is(err, ErrInvalid) {
				t.Errorf("Record(%+v) = %v, want ErrInvalid", bad, err)
			}
		}

		if n, err := Prune(ctx, st, t0); err != nil || n != 0 {
			t.Fatalf("Prune at its time: %d, %v", n, err)
		}
		r2 := r
		r2.ID, r2.Reporter, r2.Accused = ReportID("b.example", body), event.NewUserURI("b.example", "bob"), alice
		if _, err := Record(ctx, st, r2); err != nil {
			t.Fatal(err)
		}
		if n, err := EraseUser(ctx, st, eve); err != nil || n != 1 {
			t.Fatalf("EraseUser(eve) = %d, %v; want 1", n, err)
		}
		if n, err := Prune(ctx, st, t0.Add(time.Millisecond)); err != nil || n != 1 {
			t.Fatalf("Prune after: %d, %v; want 1", n, err)
		}
		var left int
		if err := st.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM abuse_reports) + (SELECT COUNT(*) FROM abuse_messages)`).Scan(&left); err != nil || left != 0 {
			t.Fatalf("%d rows left, %v", left, err)
		}
	})
}
