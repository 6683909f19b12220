package main

import (
	"strings"
	"testing"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/abuse"
	"github.com/mimi-gateway/mimi-gateway/core/content"
	"github.com/mimi-gateway/mimi-gateway/core/store/storetest"
)

// TestAbuseReportsSection: before the abuse tables exist the view says there are no reports;
// a recorded report is listed with its note and the reported message's text, in German.
func TestAbuseReportsSection(t *testing.T) {
	ctx := t.Context()
	st := storetest.Open(t, storetest.SQLiteConfig(t))
	sec := abuseReportsSection(st)
	tab, err := sec.Load(ctx, "de")
	if err != nil || len(tab.Rows) != 0 || !strings.Contains(tab.Note, "Keine Missbrauchsmeldungen") {
		t.Fatalf("before any report: %+v, %v", tab, err)
	}
	if err := abuse.Migrate(ctx, st); err != nil {
		t.Fatal(err)
	}
	b := content.Builder{SenderURI: "mimi://e.example/u/eve", RoomURI: "mimi://klinik-a.example/r/ward"}
	m, err := b.Text("ihr seid alle Idioten")
	if err != nil {
		t.Fatal(err)
	}
	c, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	if _, err := abuse.Record(ctx, st, abuse.Report{ID: "r1", Room: "mimi://klinik-a.example/r/ward", From: "amt-b.example",
		Reporter: "mimi://amt-b.example/u/berta", Accused: "mimi://e.example/u/eve", Note: "Beleidigung", Received: at,
		Messages: []abuse.Message{{Sender: "mimi://e.example/u/eve", Accepted: at, Content: c}}}); err != nil {
		t.Fatal(err)
	}
	tab, err = sec.Load(ctx, "de")
	if err != nil {
		t.Fatal(err)
	}
	if len(tab.Rows) != 1 || len(tab.Columns) != len(tab.Rows[0]) {
		t.Fatalf("table %+v", tab)
	}
	row := strings.Join(tab.Rows[0], "|")
	for _, want := range []string{"2026-03-01 09:00:00 UTC", "amt-b.example", "mimi://amt-b.example/u/berta", "Beleidigung", "mimi://e.example/u/eve: ihr seid alle Idioten"} {
		if !strings.Contains(row, want) {
			t.Errorf("row %q lacks %q", row, want)
		}
	}
	if tab.Columns[3] != "Gemeldet von" {
		t.Errorf("columns %q", tab.Columns)
	}
}
