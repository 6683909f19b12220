package event

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestURIs(t *testing.T) {
	tests := []struct {
		name  string
		build string
		local string
		dom   Domain
	}{
		{"plain", string(NewUserURI("klinik-a.example", "alice")), "alice", "klinik-a.example"},
		{"reserved chars", string(NewUserURI("amt-b.example", "a/b c@d%")), "a/b c@d%", "amt-b.example"},
		{"upper-case domain folded", string(NewUserURI("Klinik-A.Example", "Bob")), "Bob", "klinik-a.example"},
		{"unicode", string(NewUserURI("x.example", "jürgen")), "jürgen", "x.example"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u, err := ParseUserURI(tc.build)
			if err != nil {
				t.Fatal(err)
			}
			if u.Local() != tc.local || u.Domain() != tc.dom {
				t.Fatalf("got %q@%q, want %q@%q", u.Local(), u.Domain(), tc.local, tc.dom)
			}
		})
	}
	if got := NewUserURI("a.example", "a/b"); got != "mimi://a.example/u/a%2Fb" {
		t.Fatalf("escaping: %s", got)
	}
	r := NewRoomURI("a.example", "!abc:a.example")
	if rr, err := ParseRoomURI(string(r)); err != nil || rr.Local() != "!abc:a.example" || rr.Domain() != "a.example" {
		t.Fatalf("room %s: %v", r, err)
	}
	if _, err := ParseDeviceURI(string(NewDeviceURI("a.example", "alice", "DEV1"))); err != nil {
		t.Fatal(err)
	}
}

func TestParseRejects(t *testing.T) {
	tests := []struct {
		name string
		in   string
		fn   func(string) error
	}{
		{"wrong scheme", "https://a.example/u/alice", func(s string) error { _, err := ParseUserURI(s); return err }},
		{"room as user", "mimi://a.example/r/x", func(s string) error { _, err := ParseUserURI(s); return err }},
		{"no domain", "mimi:///u/alice", func(s string) error { _, err := ParseUserURI(s); return err }},
		{"upper-case domain", "mimi://A.example/u/alice", func(s string) error { _, err := ParseUserURI(s); return err }},
		{"extra segment", "mimi://a.example/u/alice/x", func(s string) error { _, err := ParseUserURI(s); return err }},
		{"empty segment", "mimi://a.example/r/", func(s string) error { _, err := ParseRoomURI(s); return err }},
		{"bad escape", "mimi://a.example/u/%zz", func(s string) error { _, err := ParseUserURI(s); return err }},
		{"query", "mimi://a.example/u/alice?x=1", func(s string) error { _, err := ParseUserURI(s); return err }},
		{"too long", "mimi://a.example/u/" + strings.Repeat("a", MaxURILength), func(s string) error { _, err := ParseUserURI(s); return err }},
		{"device without client", "mimi://a.example/d", func(s string) error { _, err := ParseDeviceURI(s); return err }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.fn(tc.in); !errors.Is(err, ErrInvalidURI) {
				t.Fatalf("got %v, want ErrInvalidURI", err)
			}
		})
	}
}

func TestRoomToken(t *testing.T) {
	a := NewRoomURI("a.example", "one")
	b := NewRoomURI("a.example", "two")
	if a.Token() == b.Token() {
		t.Fatal("distinct rooms share a token")
	}
	if a.Token() != NewRoomURI("a.example", "one").Token() {
		t.Fatal("token not deterministic")
	}
	if len(a.Token()) != 32 || strings.ContainsAny(a.Token(), ".*> ") {
		t.Fatalf("token %q not a safe subject token", a.Token())
	}
}

func TestEventIDDeterministicAndScoped(t *testing.T) {
	a := NewEventID(NetworkXMPP, "room1@muc.a.example", "id1")
	if a != NewEventID(NetworkXMPP, "room1@muc.a.example", "id1") {
		t.Fatal("not deterministic")
	}
	if a == NewEventID(NetworkXMPP, "room2@muc.a.example", "id1") {
		t.Fatal("same stanza ID in two rooms must not collide")
	}
	if a == NewEventID(NetworkMatrix, "room1@muc.a.example", "id1") {
		t.Fatal("networks must not collide")
	}
	// Length-prefixing prevents ambiguity between ("ab","c") and ("a","bc").
	if NewEventID(NetworkXMPP, "ab", "c") == NewEventID(NetworkXMPP, "a", "bc") {
		t.Fatal("ambiguous concatenation")
	}
}

func sample() *Envelope {
	return &Envelope{
		ID:        NewEventID(NetworkMatrix, "!r:a.example", "$e1"),
		Kind:      KindMessage,
		Room:      NewRoomURI("a.example", "r1"),
		Sender:    NewUserURI("a.example", "alice"),
		Content:   []byte{0x87, 0x50},
		Origin:    Origin{Network: NetworkMatrix, Room: "!r:a.example", Event: "$e1", Sender: "@alice:a.example"},
		Timestamp: time.Date(2026, 11, 26, 10, 0, 0, 123456789, time.UTC),
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		mod  func(e *Envelope)
	}{
		{"message", func(e *Envelope) {}},
		{"membership", func(e *Envelope) {
			e.Kind, e.Content = KindMembership, nil
			e.Membership = &Membership{Action: MembershipInvite, Target: NewUserURI("b.example", "bob")}
		}},
		{"role change", func(e *Envelope) {
			e.Kind, e.Content = KindMembership, nil
			e.Membership = &Membership{Action: MembershipRole, Target: NewUserURI("b.example", "bob"), Role: 3}
		}},
		{"metadata", func(e *Envelope) {
			e.Kind, e.Content = KindRoomMetadata, nil
			e.Metadata = &Metadata{Name: "Station 3", Topic: "Übergabe"}
		}},
		{"with message id", func(e *Envelope) { e.MessageID = bytes.Repeat([]byte{1}, 32) }},
		{"notice", func(e *Envelope) {
			e.Kind, e.Content = KindNotice, nil
			e.Notice = &Notice{Code: NoticeInviteFailed, Correlation: "c0ffee12", Target: NewUserURI("b.example", "bob"),
				Partner: "b.example", Reason: "userUnknown"}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := sample()
			tc.mod(e)
			b, err := Marshal(e)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Unmarshal(b)
			if err != nil {
				t.Fatal(err)
			}
			b2, err := Marshal(got)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b, b2) {
				t.Fatalf("re-encoding differs:\n%x\n%x", b, b2)
			}
			if got.ID != e.ID || got.Kind != e.Kind || got.Room != e.Room || !got.Timestamp.Equal(e.Timestamp) || got.Version != Version {
				t.Fatalf("got %+v, want %+v", got, e)
			}
		})
	}
}

func TestValidateRejects(t *testing.T) {
	tests := []struct {
		name string
		mod  func(e *Envelope)
	}{
		{"no id", func(e *Envelope) { e.ID = "" }},
		{"unknown kind", func(e *Envelope) { e.Kind = KindUnknown }},
		{"kind out of range", func(e *Envelope) { e.Kind = 200 }},
		{"bad room", func(e *Envelope) { e.Room = "!r:a.example" }},
		{"bad sender", func(e *Envelope) { e.Sender = "@alice:a.example" }},
		{"content kind without content", func(e *Envelope) { e.Content = nil }},
		{"bad network", func(e *Envelope) { e.Origin.Network = "Mat.rix" }},
		{"membership without payload", func(e *Envelope) { e.Kind = KindMembership }},
		{"membership bad target", func(e *Envelope) {
			e.Kind = KindMembership
			e.Membership = &Membership{Action: MembershipJoin, Target: "bob"}
		}},
		{"metadata without payload", func(e *Envelope) { e.Kind = KindRoomMetadata }},
		{"notice without payload", func(e *Envelope) { e.Kind, e.Content = KindNotice, nil }},
		{"notice unknown code", func(e *Envelope) {
			e.Kind, e.Content = KindNotice, nil
			e.Notice = &Notice{Code: NoticeUnknown, Correlation: "x"}
		}},
		{"notice code out of range", func(e *Envelope) {
			e.Kind, e.Content = KindNotice, nil
			e.Notice = &Notice{Code: 200, Correlation: "x"}
		}},
		{"notice without correlation", func(e *Envelope) {
			e.Kind, e.Content = KindNotice, nil
			e.Notice = &Notice{Code: NoticeRefused}
		}},
		{"notice bad target", func(e *Envelope) {
			e.Kind, e.Content = KindNotice, nil
			e.Notice = &Notice{Code: NoticeInviteFailed, Correlation: "x", Target: "bob"}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := sample()
			tc.mod(e)
			if _, err := Marshal(e); !errors.Is(err, ErrInvalid) {
				t.Fatalf("got %v, want ErrInvalid", err)
			}
		})
	}
}

func TestUnmarshalRejects(t *testing.T) {
	good, err := Marshal(sample())
	if err != nil {
		t.Fatal(err)
	}
	v2 := bytes.Clone(good)
	// The first key is 0 (version): a1/ab map header, 00 key, 01 value. Change the value to 2.
	if v2[1] != 0x00 || v2[2] != 0x01 {
		t.Fatalf("unexpected layout %x", v2[:3])
	}
	v2[2] = 0x02
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"garbage", []byte{0xff, 0x00}, ErrInvalid},
		{"empty", nil, ErrInvalid},
		{"other version", v2, ErrVersion},
		{"too large", make([]byte, MaxEnvelopeSize+1), ErrTooLarge},
		{"truncated", good[:len(good)-3], ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Unmarshal(tc.in); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func FuzzUnmarshal(f *testing.F) {
	good, err := Marshal(sample())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte{0xa0})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := Unmarshal(b)
		if err != nil {
			return
		}
		if _, err := Marshal(e); err != nil {
			t.Fatalf("accepted envelope does not re-encode: %v", err)
		}
	})
}

func BenchmarkMarshalUnmarshal(b *testing.B) {
	e := sample()
	e.Content = bytes.Repeat([]byte{0x61}, 512)
	for b.Loop() {
		raw, err := Marshal(e)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Unmarshal(raw); err != nil {
			b.Fatal(err)
		}
	}
}
