package ops_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/mimi-gateway/mimi-gateway/core/ops"
)

func TestPseudonymizer(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	p1, err := ops.NewPseudonymizer(key)
	if err != nil {
		t.Fatal(err)
	}
	p2, _ := ops.NewPseudonymizer(key)
	other, _ := ops.NewPseudonymizer([]byte("fedcba9876543210fedcba9876543210"))
	random, err := ops.NewPseudonymizer(nil)
	if err != nil {
		t.Fatal(err)
	}
	id := "@alice:klinik-a.example"
	a := p1.Pseudonym(id)
	if len(a) != 18 || !strings.HasPrefix(a, "p:") || strings.Contains(a, "alice") {
		t.Fatalf("pseudonym %q: want p: and 16 characters without the ID", a)
	}
	if p2.Pseudonym(id) != a {
		t.Error("same key gives a different pseudonym")
	}
	if other.Pseudonym(id) == a || random.Pseudonym(id) == a {
		t.Error("different key gives the same pseudonym")
	}
	if p1.Pseudonym("@bob:klinik-a.example") == a {
		t.Error("different IDs give the same pseudonym")
	}
	if ops.PlainIDs().Pseudonym(id) != id {
		t.Error("PlainIDs changed the ID")
	}
	if _, err := ops.NewPseudonymizer([]byte("short")); err == nil {
		t.Error("short key accepted")
	}

	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	log.Info("relayed", "room", p1.Value("!room:klinik-a.example"), "user", p1.Value(id))
	if out := buf.String(); strings.Contains(out, "klinik-a") || !strings.Contains(out, `"user":"`+a+`"`) {
		t.Errorf("log = %s", out)
	}
}
