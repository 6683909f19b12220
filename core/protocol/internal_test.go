package protocol

import (
	"net/http"
	"testing"
	"time"
)

func TestMaxAge(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"max-age=3600", time.Hour, true},
		{"public, max-age=60", time.Minute, true},
		{`max-age="120"`, 2 * time.Minute, true},
		{"no-store", 0, true},
		{"max-age=-1", 0, false},
		{"max-age=abc", 0, false},
	}
	for _, tt := range tests {
		h := http.Header{}
		if tt.in != "" {
			h.Set("Cache-Control", tt.in)
		}
		got, ok := maxAge(h)
		if got != tt.want || ok != tt.ok {
			t.Errorf("maxAge(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"7", 7 * time.Second},
		{"-3", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{"soon", 0},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestBackoff(t *testing.T) {
	o := &Outbox{cfg: OutboxConfig{MinBackoff: time.Second, MaxBackoff: time.Minute}}
	for attempts, base := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 4: 8 * time.Second, 10: time.Minute, 50: time.Minute} {
		d := o.backoff(attempts)
		if d < base*8/10 || d > base*12/10 {
			t.Errorf("backoff(%d) = %v, want %v ±20%%", attempts, d, base)
		}
	}
}

func TestNotifyAccepted(t *testing.T) {
	for code, want := range map[int]bool{200: true, 201: true, 202: true, 204: false, 400: false, 503: false} {
		if NotifyAccepted(code) != want {
			t.Errorf("NotifyAccepted(%d) != %v", code, want)
		}
	}
}
