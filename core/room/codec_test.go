package room

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/mls"
	"github.com/mimi-gateway/mimi-gateway/core/tlspl"
)

const (
	alice = event.UserURI("mimi://a.example/u/alice")
	bob   = event.UserURI("mimi://b.example/u/bob")
	carol = event.UserURI("mimi://a.example/u/carol")
	dave  = event.UserURI("mimi://b.example/u/dave")
	roomA = event.RoomURI("mimi://a.example/r/clubhouse")
)

func u32(v uint32) *uint32 { return &v }

// fixtures are one value of every struct, encoded by the tests and seeding the fuzzers.
func fixtures(t testing.TB) map[string]interface{ Encode() ([]byte, error) } {
	t.Helper()
	return map[string]interface{ Encode() ([]byte, error) }{
		"list":    &ParticipantList{Participants: []Participant{{alice, RoleOwner}, {bob, RoleRegular}, {dave, RoleBanned}}},
		"empty":   &ParticipantList{},
		"update":  &ParticipantListUpdate{Changed: []RoleChange{{1, RoleAdmin}}, Removed: []uint32{2}, Added: []Participant{{carol, RoleRegular}}},
		"roles":   DefaultRoles(),
		"limited": &Roles{Roles: []RoleDef{{Index: 7, Name: "seven", MinParticipants: 1, MaxParticipants: u32(3), MinActive: 0, MaxActive: u32(2)}}},
		"meta": &Metadata{RoomURI: roomA, Name: "Club", Subject: "today: MLS", Mood: "calm", Avatar: "https://a.example/av.png",
			Descriptions: []RichDescription{{Content: []byte("plain")}, {MediaType: "text/markdown", Language: "de", Content: []byte("*mehr*")}}},
		"nometa": &Metadata{},
		"direct": DirectPolicy(),
		"policy": &BasePolicy{ParentDependent: true, ParentRoom: roomA, MaxClients: u32(3), MaxUsers: u32(2), PseudonymsAllowed: true,
			Discoverable: true, PolicyComponents: []mls.ComponentID{ComponentRolesList, 0x002E}},
	}
}

func TestRoundTrip(t *testing.T) {
	decoders := map[string]func([]byte) (any, error){
		"list":    func(b []byte) (any, error) { return DecodeParticipantList(b) },
		"empty":   func(b []byte) (any, error) { return DecodeParticipantList(b) },
		"update":  func(b []byte) (any, error) { return DecodeParticipantListUpdate(b) },
		"roles":   func(b []byte) (any, error) { return DecodeRoles(b) },
		"limited": func(b []byte) (any, error) { return DecodeRoles(b) },
		"meta":    func(b []byte) (any, error) { return DecodeMetadata(b) },
		"nometa":  func(b []byte) (any, error) { return DecodeMetadata(b) },
		"direct":  func(b []byte) (any, error) { return DecodeBasePolicy(b) },
		"policy":  func(b []byte) (any, error) { return DecodeBasePolicy(b) },
	}
	for name, v := range fixtures(t) {
		b, err := v.Encode()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got, err := decoders[name](b)
		if err != nil {
			t.Fatalf("%s: decode: %v", name, err)
		}
		if name == "empty" || name == "nometa" {
			b2, _ := got.(interface{ Encode() ([]byte, error) }).Encode()
			if !bytes.Equal(b, b2) {
				t.Fatalf("%s: re-encoding differs", name)
			}
			continue
		}
		if !reflect.DeepEqual(got, v) {
			t.Fatalf("%s: got %+v, want %+v", name, got, v)
		}
	}
}

// TestWireLayout pins the encoding of a small list and update against the struct text.
func TestWireLayout(t *testing.T) {
	l := &ParticipantList{Participants: []Participant{{alice, RoleOwner}}}
	b, err := l.Encode()
	if err != nil {
		t.Fatal(err)
	}
	want := append([]byte{byte(1 + len(alice) + 4), byte(len(alice))}, alice...)
	want = append(want, 0, 0, 0, 4)
	if !bytes.Equal(b, want) {
		t.Fatalf("list %x, want %x", b, want)
	}
	u := &ParticipantListUpdate{Changed: []RoleChange{{0, RoleAdmin}}, Removed: []uint32{1}}
	if b, err = u.Encode(); err != nil {
		t.Fatal(err)
	}
	if want := []byte{8, 0, 0, 0, 0, 0, 0, 0, 3, 4, 0, 0, 0, 1, 0}; !bytes.Equal(b, want) {
		t.Fatalf("update %x, want %x", b, want)
	}
}

func encodeWith(f func(w *tlspl.Writer)) []byte {
	var w tlspl.Writer
	f(&w)
	b, _ := w.Bytes()
	return b
}

func TestDecodeErrors(t *testing.T) {
	user := func(s string, role uint32) func(w *tlspl.Writer) {
		return func(w *tlspl.Writer) { w.Opaque([]byte(s)); w.Uint32(role) }
	}
	list := func(es ...func(w *tlspl.Writer)) []byte {
		return encodeWith(func(w *tlspl.Writer) {
			w.Vector(func(w *tlspl.Writer) {
				for _, e := range es {
					e(w)
				}
			})
		})
	}
	meta := func(m Metadata) []byte {
		// Encode without Validate, to feed invalid values to the decoder.
		b, _ := m.Encode()
		return b
	}
	roles := func(rs Roles) []byte { b, _ := rs.Encode(); return b }
	cases := []struct {
		name   string
		decode func([]byte) error
		in     []byte
		want   string
	}{
		{"list truncated", decList, []byte{5, 1}, "participant list"},
		{"list trailing", decList, append(list(user(string(alice), 4)), 0), "trailing"},
		{"list bad URI", decList, list(user("https://a.example/u/alice", 2)), "participant list"},
		{"list not UTF-8", decList, list(user("mimi://a.example/u/\xff", 2)), "UTF-8"},
		{"list role 0", decList, list(user(string(alice), 0)), "role 0"},
		{"list duplicate", decList, list(user(string(alice), 2), user(string(alice), 3)), "twice"},
		{"list URI too long", decList, list(user("mimi://a.example/u/"+strings.Repeat("x", MaxURI), 2)), "bytes"},
		{"update truncated", decUpdate, []byte{0, 0}, "update"},
		{"update bad added URI", decUpdate, encodeWith(func(w *tlspl.Writer) {
			w.Vector(func(*tlspl.Writer) {})
			w.Vector(func(*tlspl.Writer) {})
			w.Vector(user("mimi://a.example/r/room", 2))
		}), "update"},
		{"meta bad room URI", decMeta, meta(Metadata{RoomURI: "mimi://a.example/u/alice"}), "room URI"},
		{"meta http avatar", decMeta, meta(Metadata{Avatar: "http://a.example/x.png"}), "https"},
		{"meta name not UTF-8", decMeta, meta(Metadata{Name: "\xc3"}), "UTF-8"},
		{"meta name too long", decMeta, meta(Metadata{Name: strings.Repeat("n", MaxText+1)}), "limit"},
		{"meta too many descriptions", decMeta, meta(Metadata{Descriptions: make([]RichDescription, MaxDescriptions+1)}), "descriptions"},
		{"roles duplicate index", decRoles, roles(Roles{Roles: []RoleDef{{Index: 2}, {Index: 2}}}), "twice"},
		{"roles role 1 not banned", decRoles, roles(Roles{Roles: []RoleDef{{Index: 1, Name: "muted"}}}), "banned"},
		{"roles max below min", decRoles, roles(Roles{Roles: []RoleDef{{Index: 2, MinParticipants: 2, MaxParticipants: u32(1)}}}), "below"},
		{"roles active max below min", decRoles, roles(Roles{Roles: []RoleDef{{Index: 2, MinActive: 2, MaxActive: u32(1)}}}), "below"},
		{"roles duplicate capability", decRoles, roles(Roles{Roles: []RoleDef{{Index: 2, Capabilities: []Capability{CanBan, CanBan}}}}), "twice"},
		{"roles open join on role 2", decRoles, roles(Roles{Roles: []RoleDef{{Index: 2, Capabilities: []Capability{CanOpenJoin}}}}), "canOpenJoin"},
		{"roles change to undefined", decRoles, roles(Roles{Roles: []RoleDef{{Index: 2, AuthorizedChanges: []RoleChangeTargets{{From: 0, Targets: []RoleIndex{9}}}}}}), "undefined"},
		{"roles change from repeated", decRoles, roles(Roles{Roles: []RoleDef{{Index: 2, AuthorizedChanges: []RoleChangeTargets{{From: 0}, {From: 0}}}}}), "repeated"},
		{"roles bad optional marker", decRoles, []byte{0x13, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0}, "roles list"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.decode(c.in)
			if err == nil {
				t.Fatal("decoded")
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q: want ErrInvalid mentioning %q", err, c.want)
			}
		})
	}
}

func decList(b []byte) error   { _, err := DecodeParticipantList(b); return err }
func decUpdate(b []byte) error { _, err := DecodeParticipantListUpdate(b); return err }
func decMeta(b []byte) error   { _, err := DecodeMetadata(b); return err }
func decRoles(b []byte) error  { _, err := DecodeRoles(b); return err }
