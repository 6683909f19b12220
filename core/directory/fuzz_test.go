package directory

import (
	"bytes"
	"context"
	"testing"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/protocol"
)

// FuzzQuery: any identifier request body that decodes is answered without a panic, names at most
// one user and only when the code is success, and no answer holds a field the directory does not
// publish (the nick and phone number of the entry).
func FuzzQuery(f *testing.F) {
	d, err := New(Config{Domain: "a.example", Publish: []Field{Handle, Email, PartialName},
		Entries: []Entry{{User: "bob", Name: "Bob Beispiel", Email: "bob@a.example", Nick: "secretnick", Phone: "+4930999888"}}})
	if err != nil {
		f.Fatal(err)
	}
	for _, q := range []protocol.IdentifierRequest{
		{Elements: []protocol.QueryElement{{Type: protocol.SearchEmail, Value: "bob@a.example"}}},
		{Elements: []protocol.QueryElement{{Type: protocol.SearchPartialName, Value: "Bob"}, {Type: protocol.SearchHandle, Value: "im:bob@a.example"}}},
		{Elements: []protocol.QueryElement{{Type: protocol.SearchVCardField, Name: "tel", Value: "*"}}},
	} {
		b, err := q.Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	hidden := func(_ context.Context, u event.UserURI) (bool, error) { return u != "mimi://a.example/u/bob", nil }
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := protocol.DecodeIdentifierRequest(body)
		if err != nil {
			return
		}
		resp, err := d.Query(context.Background(), req, hidden)
		if err != nil {
			t.Fatal(err)
		}
		if (resp.Code == protocol.IdentifierSuccess) != (len(resp.URIs) == 1) || len(resp.URIs) > 1 {
			t.Fatalf("%s with %d URIs", resp.Code, len(resp.URIs))
		}
		raw, err := resp.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(raw, []byte("secretnick")) || bytes.Contains(raw, []byte("999888")) {
			t.Fatal("an unpublished field in the answer")
		}
	})
}
