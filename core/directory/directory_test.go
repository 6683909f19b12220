package directory

import (
	"context"
	"errors"
	"testing"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/protocol"
)

func TestNewRefuses(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  Config
	}{
		{"unknown field", Config{Domain: "a.example", Publish: []Field{"address"}}},
		{"other domain", Config{Domain: "a.example", Entries: []Entry{{User: "mimi://b.example/u/bob"}}}},
		{"no user", Config{Domain: "a.example", Entries: []Entry{{Name: "Bob"}}}},
		{"twice", Config{Domain: "a.example", Entries: []Entry{{User: "bob"}, {User: "mimi://a.example/u/bob"}}}},
		{"local phone", Config{Domain: "a.example", Entries: []Entry{{User: "bob", Phone: "030 1234567"}}}},
	} {
		if _, err := New(c.cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v, want ErrConfig", c.name, err)
		}
	}
}

// TestQuery: each field matches as people write it; a handle finds a user without an entry
// when she exists (hidden says she does), and nobody when she does not; nothing is searched or
// shown that is not published.
func TestQuery(t *testing.T) {
	d, err := New(Config{Domain: "a.example", Publish: []Field{Handle, Nick, Email, Phone, PartialName},
		Entries: []Entry{{User: "bob", Name: "Bob Beispiel-Meier", Nick: "Bobby", Email: "Bob@A.example", Phone: "+49 (30) 123-45.67"}}})
	if err != nil {
		t.Fatal(err)
	}
	exists := map[event.UserURI]bool{"mimi://a.example/u/bob": true, "mimi://a.example/u/dora": true}
	hidden := func(_ context.Context, u event.UserURI) (bool, error) { return !exists[u], nil }
	for _, c := range []struct {
		typ  protocol.SearchIdentifierType
		v    string
		want event.UserURI
	}{
		{protocol.SearchHandle, "bob@a.example", "mimi://a.example/u/bob"},
		{protocol.SearchHandle, "xmpp:bob@A.EXAMPLE", "mimi://a.example/u/bob"},
		{protocol.SearchHandle, "im:dora@a.example", "mimi://a.example/u/dora"},
		{protocol.SearchHandle, "im:erik@a.example", ""},
		{protocol.SearchHandle, "im:bob@b.example", ""},
		{protocol.SearchNick, "bobby", "mimi://a.example/u/bob"},
		{protocol.SearchEmail, "mailto:bob@a.example", "mimi://a.example/u/bob"},
		{protocol.SearchPhone, "+493012345 67", "mimi://a.example/u/bob"},
		{protocol.SearchPhone, "03012345 67", ""},
		{protocol.SearchPartialName, "mei bob", "mimi://a.example/u/bob"},
		{protocol.SearchPartialName, "Bob Bob", ""},
	} {
		resp, err := d.Query(context.Background(), &protocol.IdentifierRequest{Elements: []protocol.QueryElement{{Type: c.typ, Value: c.v}}}, hidden)
		if err != nil {
			t.Fatal(err)
		}
		var got event.UserURI
		if resp.Code == protocol.IdentifierSuccess {
			got = event.UserURI(resp.URIs[0])
		} else if resp.Code != protocol.IdentifierNotFound && resp.Code != protocol.IdentifierForbidden {
			t.Errorf("%s %q: %s", c.typ, c.v, resp.Code)
		}
		if got != c.want {
			t.Errorf("%s %q: found %q, want %q", c.typ, c.v, got, c.want)
		}
	}
	// Only the handle is published: the entry's other fields are neither searched nor shown.
	h, err := New(Config{Domain: "a.example", Publish: []Field{Handle},
		Entries: []Entry{{User: "bob", Name: "Bob Beispiel", Email: "bob@a.example"}}})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := h.Query(context.Background(), &protocol.IdentifierRequest{Elements: []protocol.QueryElement{{Type: protocol.SearchHandle, Value: "bob@a.example"}}}, hidden)
	if err != nil || resp.Code != protocol.IdentifierSuccess || len(resp.Profiles) != 1 {
		t.Fatalf("handle: %+v %v", resp, err)
	}
	for _, f := range resp.Profiles[0].Fields {
		if f.Name != "impp" {
			t.Errorf("unpublished field %s shown", f.Name)
		}
	}
	resp, _ = h.Query(context.Background(), &protocol.IdentifierRequest{Elements: []protocol.QueryElement{{Type: protocol.SearchEmail, Value: "bob@a.example"}}}, hidden)
	if resp.Code != protocol.IdentifierUnsupportedField {
		t.Errorf("unpublished email searched: %s", resp.Code)
	}
	// A failing hidden is the caller's error, not an answer.
	boom := errors.New("store down")
	if _, err := h.Query(context.Background(), &protocol.IdentifierRequest{Elements: []protocol.QueryElement{{Type: protocol.SearchHandle, Value: "bob@a.example"}}},
		func(context.Context, event.UserURI) (bool, error) { return false, boom }); !errors.Is(err, boom) {
		t.Errorf("hidden's error: %v", err)
	}
}
