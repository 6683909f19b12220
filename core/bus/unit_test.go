package bus

import (
	"strings"
	"testing"
	"time"
)

func TestOriginalSubject(t *testing.T) {
	tests := []struct{ stored, want string }{
		{"mimi.out.3.abc", "mimi.out.abc"},
		{"mimi.in.matrix.15.abc", "mimi.in.matrix.abc"},
		{"x", "x"},
		{"a.b", "a.b"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := originalSubject(tt.stored); got != tt.want {
			t.Errorf("originalSubject(%q) = %q, want %q", tt.stored, got, tt.want)
		}
	}
}

func TestBackoff(t *testing.T) {
	b := &NATS{cfg: Config{Backoff: []time.Duration{time.Second, 5 * time.Second, time.Minute}}}
	for n, want := range map[uint64]time.Duration{0: time.Second, 1: time.Second, 2: 5 * time.Second, 3: time.Minute, 4: time.Minute, 1000: time.Minute} {
		if got := b.backoff(n); got != want {
			t.Errorf("backoff(%d) = %s, want %s", n, got, want)
		}
	}
}

// FuzzHeaderSafe checks that any error text becomes a legal header value within the bound, and
// that subject rewriting never panics.
func FuzzHeaderSafe(f *testing.F) {
	for _, s := range []string{"", "plain", "line1\r\nInjected: yes", strings.Repeat("x", 2000), "mimi.out.1.tok", "a..b."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h := headerSafe(s, 1024)
		if len(h) > 1024 || strings.ContainsAny(h, "\r\n") {
			t.Fatalf("headerSafe(%q) = %q", s, h)
		}
		if o := originalSubject(s); len(o) > len(s) {
			t.Fatalf("originalSubject(%q) = %q grew", s, o)
		}
	})
}
