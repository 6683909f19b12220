package provider

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mimi-gateway/mimi-gateway/core/content"
	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// TestKindOf maps every content-08 example (core/content/testdata/vectors) and a status report
// to the envelope kind the adapters dispatch on.
func TestKindOf(t *testing.T) {
	want := map[string]event.Kind{
		"attachment":   event.KindMessage,
		"conferencing": event.KindMessage,
		"delete":       event.KindDelete,
		"edit":         event.KindEdit,
		"expiring":     event.KindMessage,
		"mention":      event.KindMessage,
		"mention-html": event.KindMessage,
		"multipart-1":  event.KindMessage,
		"multipart-2":  event.KindMessage, // reaction parts replying to nothing
		"multipart-3":  event.KindMessage,
		"original":     event.KindMessage,
		"reaction":     event.KindReaction,
		"reply":        event.KindMessage,
		"unlike":       event.KindReaction, // an unreact
	}
	files, err := filepath.Glob(filepath.Join("..", "content", "testdata", "vectors", "*.cbor"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no content examples: %v", err)
	}
	seen := 0
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".cbor")
		if name == "implied-original" {
			continue // the implied (derived) values of a message, not mimiContent
		}
		t.Run(name, func(t *testing.T) {
			k, ok := want[name]
			if !ok {
				t.Fatalf("example %s has no expected kind in this table", name)
			}
			seen++
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			m, err := content.Decode(raw)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if got := kindOf(m); got != k {
				t.Errorf("kind %s, want %s", got, k)
			}
		})
	}
	if seen != len(want) {
		t.Errorf("%d of %d examples found", seen, len(want))
	}

	// A status report (core/content/testdata/status) inside a message is a receipt.
	rep, err := os.ReadFile(filepath.Join("..", "content", "testdata", "status", "status.cbor"))
	if err != nil {
		t.Fatal(err)
	}
	sr, err := content.DecodeStatusReport(rep)
	if err != nil {
		t.Fatal(err)
	}
	b := content.Builder{SenderURI: "mimi://b.example/u/bob", RoomURI: "mimi://a.example/r/x"}
	m, err := b.Status(sr)
	if err != nil {
		t.Fatal(err)
	}
	if got := kindOf(m); got != event.KindReceipt {
		t.Errorf("status report: kind %s, want receipt", got)
	}
	if got := kindOf(nil); got != event.KindMessage {
		t.Errorf("undecodable content: kind %s, want message", got)
	}
}
