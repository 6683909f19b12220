package xmpp

import (
	"testing"

	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/xstanza"
)

func intp(i int) *int { return &i }

func TestStripFallback(t *testing.T) {
	fb := func(ns string, s, e *int) []xstanza.InFallback {
		return []xstanza.InFallback{{For: ns, Body: []xstanza.InFallbackBody{{Start: s, End: e}}}}
	}
	tests := []struct {
		name, body string
		fbs        []xstanza.InFallback
		want       string
	}{
		{"none", "hello", nil, "hello"},
		{"quote", "> a\nb", fb(xstanza.NSReply, intp(0), intp(4)), "b"},
		{"code points not bytes", "> ä\nb", fb(xstanza.NSReply, intp(0), intp(4)), "b"},
		{"other namespace", "> a\nb", fb(xstanza.NSRetract, intp(0), intp(4)), "> a\nb"},
		{"negative start", "abc", fb(xstanza.NSReply, intp(-1), intp(2)), "abc"},
		{"end past body", "abc", fb(xstanza.NSReply, intp(0), intp(9)), "abc"},
		{"end before start", "abc", fb(xstanza.NSReply, intp(2), intp(1)), "abc"},
		{"no range is the whole body", "abc", fb(xstanza.NSReply, nil, nil), ""},
	}
	for _, tc := range tests {
		if got := xstanza.StripFallback(tc.body, tc.fbs, xstanza.NSReply); got != tc.want {
			t.Errorf("%s: xstanza.StripFallback = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestValidID(t *testing.T) {
	for _, ok := range []string{"a", "m-1", "AXhLy6jmHY6nJSwOwbkGhbujOhBehgbM1dg7S5wDBMk", "ü"} {
		if !xstanza.ValidID(ok) {
			t.Errorf("xstanza.ValidID(%q) = false", ok)
		}
	}
	for _, bad := range []string{"", "a\nb", "\x7f", string(make([]byte, xstanza.MaxIDLen+1)), "\xff"} {
		if xstanza.ValidID(bad) {
			t.Errorf("xstanza.ValidID(%q) = true", bad)
		}
	}
}
