package xstanza

import (
	"strings"
	"testing"
	"time"
)

// TestSentAt: a delay stamp counts when it is valid XEP-0082, not in the future and at most a day
// old; otherwise the arrival time.
func TestSentAt(t *testing.T) {
	at := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		stamp string
		want  time.Time
	}{
		{"2026-11-26T11:00:00Z", at.Add(-time.Hour)},
		{"2026-11-26T12:00:00+01:00", at.Add(-time.Hour)},
		{"2026-11-27T11:00:00Z", at},    // future
		{"2020-01-01T00:00:00Z", at},    // older than a day
		{"9999-99-99T99:99:99Z", at},    // not a time
		{"", at},                        // empty
		{"2026-11-26 11:00:00", at},     // not XEP-0082
		{"0001-01-01T00:00:00Z", at},    // out of range
		{string(make([]byte, 100)), at}, // too long
	}
	for _, tc := range tests {
		m := &InMessage{Delay: &InDelay{Stamp: tc.stamp}}
		if got := m.SentAt(at); !got.Equal(tc.want) {
			t.Errorf("SentAt(%q) = %v, want %v", tc.stamp, got, tc.want)
		}
	}
	if got := (&InMessage{}).SentAt(at); !got.Equal(at) {
		t.Errorf("no delay: %v", got)
	}
}

// TestNativeID: the origin-id when it is a valid ID, else the id attribute, else a random ID of
// the gateway's ("gw-" and 24 hex digits), new for every call.
func TestNativeID(t *testing.T) {
	tests := []struct {
		name string
		m    InMessage
		want string // "" for a random one
	}{
		{"origin-id", InMessage{ID: "m1", OriginID: &IDElem{ID: "o1"}}, "o1"},
		{"id", InMessage{ID: "m1"}, "m1"},
		{"invalid origin-id", InMessage{ID: "m1", OriginID: &IDElem{ID: "a\nb"}}, "m1"},
		{"none", InMessage{}, ""},
		{"invalid id", InMessage{ID: string(make([]byte, MaxIDLen+1))}, ""},
	}
	for _, tc := range tests {
		got := tc.m.NativeID()
		if tc.want != "" {
			if got != tc.want {
				t.Errorf("%s: NativeID = %q, want %q", tc.name, got, tc.want)
			}
			continue
		}
		if again := tc.m.NativeID(); !strings.HasPrefix(got, "gw-") || len(got) != 27 || !ValidID(got) || again == got {
			t.Errorf("%s: NativeID = %q, then %q; want two different gw- IDs", tc.name, got, again)
		}
	}
}
