package xmpp

import (
	"testing"

	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/jidmap"
	"github.com/mimi-gateway/mimi-gateway/core/event"
)

func TestUserExists(t *testing.T) {
	m := &jidmap.Mapper{Domain: "amt-b.example", Provider: "amt-b.example", Users: "mimi.amt-b.example", Rooms: "rooms.amt-b.example"}
	tests := []struct {
		name  string
		known []string
		u     event.UserURI
		want  bool
	}{
		{"listed", []string{"alice", "bob"}, "mimi://amt-b.example/u/bob", true},
		{"listed, other case", []string{"Bob"}, "mimi://amt-b.example/u/bob", true},
		{"not listed", []string{"alice"}, "mimi://amt-b.example/u/bob", false},
		{"empty list", nil, "mimi://amt-b.example/u/bob", false},
		{"everyone", []string{"*"}, "mimi://amt-b.example/u/bob", true},
		{"everyone, but another provider", []string{"*"}, "mimi://klinik-a.example/u/bob", false},
		{"everyone, but no JID has the name", []string{"*"}, "mimi://amt-b.example/u/b%2Fob", false},
		{"everyone, but not in PRECIS form", []string{"*"}, "mimi://amt-b.example/u/Bob", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := &Adapter{cfg: Config{KnownUsers: tc.known}, m: m}
			got, err := a.UserExists(t.Context(), tc.u)
			if err != nil || got != tc.want {
				t.Fatalf("UserExists(%s) with %q = %v, %v; want %v", tc.u, tc.known, got, err, tc.want)
			}
		})
	}
}
