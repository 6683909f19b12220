package ghost

import (
	"testing"

	"maunium.net/go/mautrix/id"

	"github.com/mimi-gateway/mimi-gateway/core/event"
)

var testNS = Namespace{Prefix: "mimi_", Server: "klinik-a.example"}

func TestURI(t *testing.T) {
	for _, tc := range []struct {
		name  string
		ghost id.UserID
		want  event.UserURI // "": no ghost
	}{
		{"plain", "@mimi_amt-b.example_bob:klinik-a.example", "mimi://amt-b.example/u/bob"},
		{"escaped", "@mimi_amt-b.example_b=5fo=40b:klinik-a.example", "mimi://amt-b.example/u/b_o%40b"},
		{"escape of a plain letter", "@mimi_amt-b.example_=62ob:klinik-a.example", ""},
		{"escaped domain letter", "@mimi_=61mt-b.example_bob:klinik-a.example", ""},
		{"upper-case hex", "@mimi_amt-b.example_b=5Fo:klinik-a.example", ""},
		{"other server", "@mimi_amt-b.example_bob:other.example", ""},
		{"no prefix", "@amt-b.example_bob:klinik-a.example", ""},
		{"no separator", "@mimi_bob:klinik-a.example", ""},
		{"empty user", "@mimi_amt-b.example_:klinik-a.example", ""},
		{"bad escape", "@mimi_a_=zz:klinik-a.example", ""},
		{"cut escape", "@mimi_a_b=4:klinik-a.example", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := testNS.URI(tc.ghost)
			if got != tc.want || ok != (tc.want != "") {
				t.Fatalf("URI(%s) = %q, %v; want %q", tc.ghost, got, ok, tc.want)
			}
		})
	}
}

// FuzzURI: URI never panics on any localpart; a localpart it reads is the ghost of the user it
// names and no other (one ghost per MIMI user); every MIMI user's ghost is in the namespace, has
// a localpart of the Matrix grammar and reads back as that user.
func FuzzURI(f *testing.F) {
	for _, s := range []struct{ local, domain, user string }{
		{"mimi_amt-b.example_bob", "amt-b.example", "bob"},
		{"mimi_amt-b.example_b=5fo=40b", "amt-b.example", "b_o@b"},
		{"mimi_amt-b.example_=62ob", "xn--mnchen-3ya.example", "Ärztin"},
		{"mimi_=61_=", "a.example", "a b"},
		{"mimi_a_=zz", "a.example", "%"},
		{"", "", ""},
	} {
		f.Add(s.local, s.domain, s.user)
	}
	f.Fuzz(func(t *testing.T, local, domain, user string) {
		u := id.NewUserID(local, testNS.Server)
		if uri, ok := testNS.URI(u); ok {
			if !testNS.IsGhost(u) {
				t.Fatalf("%s reads as %s but is not in the namespace", u, uri)
			}
			if g := testNS.UserID(uri); g != u {
				t.Fatalf("%s reads as %s, whose ghost is %s", u, uri, g)
			}
		}
		uri, err := event.ParseUserURI(string(event.NewUserURI(event.Domain(domain), user)))
		if err != nil {
			return
		}
		g := testNS.UserID(uri)
		if !testNS.IsGhost(g) {
			t.Fatalf("the ghost %s of %s is not in the namespace", g, uri)
		}
		if local, _, err := g.Parse(); err != nil || id.ValidateUserLocalpart(local) != nil {
			t.Fatalf("the ghost %s of %s is no Matrix user ID of the grammar: %v, %v", g, uri, err, id.ValidateUserLocalpart(local))
		}
		if back, ok := testNS.URI(g); !ok || back != uri {
			t.Fatalf("the ghost %s of %s reads as %q (%v)", g, uri, back, ok)
		}
	})
}
