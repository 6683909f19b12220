package provider

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/consent"
	"github.com/mimi-gateway/mimi-gateway/core/directory"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/protocol"
	"github.com/mimi-gateway/mimi-gateway/core/protocol/protocoltest"
	"github.com/mimi-gateway/mimi-gateway/core/store"
	"github.com/mimi-gateway/mimi-gateway/core/store/storetest"
)

// withConsent gives a node a consent store (organisation default def) and, when entries are
// given, a directory publishing handle, email and partialName.
func withConsent(t testing.TB, def consent.Reachability, entries ...directory.Entry) func(*Config) {
	return func(c *Config) {
		cs, err := consent.New(context.Background(), c.Store, def)
		if err != nil {
			t.Fatal(err)
		}
		c.Reach = cs
		if entries != nil {
			d, err := directory.New(directory.Config{Domain: c.Domain, Entries: entries,
				Publish: []directory.Field{directory.Handle, directory.Email, directory.PartialName}})
			if err != nil {
				t.Fatal(err)
			}
			c.Directory = d
		}
	}
}

// TestIdentifierQueryHostile: b.example asks a.example's directory (over mutual TLS, through
// the protocol server) hostile and ordinary questions. Empty queries, 1,000 elements, wildcard-
// like and too-short values are forbidden; unknown, unpublished and unsupported types are
// unsupportedField; several matches are ambiguous without naming anyone; a user who reaches
// nobody outside is notFound with the very bytes of a user who does not exist; a found user's
// profile holds only published fields (her nick and phone number are in the entry, not
// published, and in no answer); and the partner's queries are rate-limited (429).
func TestIdentifierQueryHostile(t *testing.T) {
	entries := []directory.Entry{
		{User: "bob", Name: "Bob Beispiel", Email: "bob.beispiel@a.example", Nick: "bobby", Phone: "+49 30 1234567"},
		{User: "bea", Name: "Bea Beispiel", Email: "bea@a.example"},
		{User: "carla", Name: "Carla Clerk", Email: "carla@a.example"},
	}
	storetest.Each(t, func(t *testing.T, s *store.Store) { identifierQueryHostile(t, s, entries) })
}

func identifierQueryHostile(t *testing.T, s *store.Store, entries []directory.Entry) {
	ctx := context.Background()
	cfg := Config{Domain: "a.example", Store: s, Bus: noBus{}, PoolSize: 2}
	withConsent(t, consent.Consent, entries...)(&cfg)
	p, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	n, ca := protocoltest.NewNetwork(), protocoltest.NewCA(t)
	const burst = 60
	ta := protocoltest.NewProvider(t, n, ca, "a.example", p, protocoltest.Options{Store: s, Configure: func(c *protocol.ServerConfig) {
		c.IdentifierQueryRate = protocol.RateLimit{Interval: time.Hour, Burst: burst}
	}})
	tb := protocoltest.NewProvider(t, n, ca, "b.example", p, protocoltest.Options{})
	ta.Partners.Set([]protocol.Partner{tb.PartnerEntry(false)})
	tb.Partners.Set([]protocol.Partner{ta.PartnerEntry(false)})
	for _, u := range []string{"bob", "bea", "carla"} {
		if err := p.EnsureUser(ctx, event.NewUserURI("a.example", u), event.NetworkXMPP); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.SetReachability(ctx, event.NewUserURI("a.example", "carla"), consent.Nobody); err != nil {
		t.Fatal(err)
	}
	queries := 0
	ask := func(els ...protocol.QueryElement) (*protocol.IdentifierResponse, []byte) {
		t.Helper()
		queries++
		resp, err := tb.Client.IdentifierQuery(ctx, "a.example", &protocol.IdentifierRequest{Elements: els})
		if err != nil {
			t.Fatalf("query %v: %v", els, err)
		}
		raw, err := resp.Encode()
		if err != nil {
			t.Fatal(err)
		}
		for _, secret := range []string{"bobby", "1234567", "+49"} {
			if bytes.Contains(raw, []byte(secret)) {
				t.Fatalf("query %v: the answer holds the unpublished %q", els, secret)
			}
		}
		return resp, raw
	}
	el := func(typ protocol.SearchIdentifierType, v string) protocol.QueryElement {
		return protocol.QueryElement{Type: typ, Value: v}
	}
	thousand := make([]protocol.QueryElement, 1000)
	for i := range thousand {
		thousand[i] = el(protocol.SearchEmail, "bob.beispiel@a.example")
	}
	for _, c := range []struct {
		name string
		els  []protocol.QueryElement
		want protocol.IdentifierQueryCode
	}{
		{"empty", nil, protocol.IdentifierForbidden},
		{"1000 elements", thousand, protocol.IdentifierForbidden},
		{"star", []protocol.QueryElement{el(protocol.SearchEmail, "*")}, protocol.IdentifierForbidden},
		{"percent", []protocol.QueryElement{el(protocol.SearchPartialName, "Bob%")}, protocol.IdentifierForbidden},
		{"question mark", []protocol.QueryElement{el(protocol.SearchHandle, "im:b?b@a.example")}, protocol.IdentifierForbidden},
		{"blank", []protocol.QueryElement{el(protocol.SearchEmail, "  ")}, protocol.IdentifierForbidden},
		{"punctuation only", []protocol.QueryElement{el(protocol.SearchPartialName, ".@-")}, protocol.IdentifierForbidden},
		{"short name", []protocol.QueryElement{el(protocol.SearchPartialName, "Bo")}, protocol.IdentifierForbidden},
		{"unknown type", []protocol.QueryElement{el(99, "bob")}, protocol.IdentifierUnsupportedField},
		{"reserved type", []protocol.QueryElement{el(0, "bob")}, protocol.IdentifierUnsupportedField},
		{"wholeProfile", []protocol.QueryElement{el(protocol.SearchWholeProfile, "bob")}, protocol.IdentifierUnsupportedField},
		{"vcardField", []protocol.QueryElement{{Type: protocol.SearchVCardField, Name: "tel", Value: "+49301234567"}}, protocol.IdentifierUnsupportedField},
		{"unpublished nick", []protocol.QueryElement{el(protocol.SearchNick, "bobby")}, protocol.IdentifierUnsupportedField},
		{"unpublished phone", []protocol.QueryElement{el(protocol.SearchPhone, "+49301234567")}, protocol.IdentifierUnsupportedField},
		{"published and unpublished", []protocol.QueryElement{el(protocol.SearchEmail, "bob.beispiel@a.example"), el(protocol.SearchPhone, "+49301234567")}, protocol.IdentifierUnsupportedField},
		{"ambiguous", []protocol.QueryElement{el(protocol.SearchPartialName, "Beispiel")}, protocol.IdentifierAmbiguous},
		{"no match", []protocol.QueryElement{el(protocol.SearchEmail, "nemo@a.example")}, protocol.IdentifierNotFound},
		{"AND of two that do not meet", []protocol.QueryElement{el(protocol.SearchEmail, "bob.beispiel@a.example"), el(protocol.SearchPartialName, "Bea")}, protocol.IdentifierNotFound},
		{"email", []protocol.QueryElement{el(protocol.SearchEmail, "BOB.Beispiel@a.example")}, protocol.IdentifierSuccess},
		{"handle", []protocol.QueryElement{el(protocol.SearchHandle, "im:bob@a.example")}, protocol.IdentifierSuccess},
		{"mimi handle", []protocol.QueryElement{el(protocol.SearchHandle, "mimi://a.example/u/bob")}, protocol.IdentifierSuccess},
		{"name and email", []protocol.QueryElement{el(protocol.SearchPartialName, "beisp bob"), el(protocol.SearchEmail, "bob.beispiel@a.example")}, protocol.IdentifierSuccess},
	} {
		resp, _ := ask(c.els...)
		if resp.Code != c.want {
			t.Errorf("%s: %s, want %s", c.name, resp.Code, c.want)
			continue
		}
		if c.want != protocol.IdentifierSuccess {
			if len(resp.URIs) != 0 || len(resp.Profiles) != 0 {
				t.Errorf("%s: %s names %v", c.name, resp.Code, resp.URIs)
			}
			continue
		}
		if len(resp.URIs) != 1 || resp.URIs[0] != "mimi://a.example/u/bob" || len(resp.Profiles) != 1 {
			t.Errorf("%s: found %v", c.name, resp.URIs)
			continue
		}
		for _, f := range resp.Profiles[0].Fields {
			if f.Source != protocol.FieldVCardField || (f.Name != "impp" && f.Name != "email" && f.Name != "fn") {
				t.Errorf("%s: unpublished field %d/%s", c.name, f.Source, f.Name)
			}
		}
	}
	// Carla reaches nobody: the same bytes as for a user who does not exist, by each field.
	for _, q := range [][2]protocol.QueryElement{
		{el(protocol.SearchEmail, "carla@a.example"), el(protocol.SearchEmail, "nemo@a.example")},
		{el(protocol.SearchHandle, "im:carla@a.example"), el(protocol.SearchHandle, "im:nemo@a.example")},
		{el(protocol.SearchPartialName, "Carla Clerk"), el(protocol.SearchPartialName, "Nemo Nobody")},
	} {
		_, rc := ask(q[0])
		_, rn := ask(q[1])
		if !bytes.Equal(rc, rn) {
			t.Errorf("%s: %x, for a user who does not exist %x", q[0].Value, rc, rn)
		}
	}
	// Rate limit per partner: a burst, then one an hour.
	if queries >= burst {
		t.Fatalf("%d queries before the rate-limit check, burst %d", queries, burst)
	}
	var he *protocol.HTTPError
	for i := queries; ; i++ {
		_, err := tb.Client.IdentifierQuery(ctx, "a.example", &protocol.IdentifierRequest{Elements: []protocol.QueryElement{el(protocol.SearchEmail, "bob.beispiel@a.example")}})
		if errors.As(err, &he) && he.Status == http.StatusTooManyRequests {
			break
		}
		if err != nil {
			t.Fatalf("query %d: %v", i+1, err)
		}
		if i >= burst {
			t.Fatalf("%d queries and no 429 (burst %d)", i+1, burst)
		}
	}
}

// TestConsentWaitsForGrant: Alice (a.example) invites Bob (b.example, organisation default
// "consent"). The invite waits: Bob is asked (NoticeConsentRequest on b's mimi.in), Alice told
// (NoticeConsentPending). Bob's Allow reaches a with updateConsent: the invite goes on (b gets
// the room) and Alice is told. After Bob's Revoke, a new invite is refused at once
// (NoticeInviteFailed, noConsent) and Bob is not asked again.
func TestConsentWaitsForGrant(t *testing.T) {
	a, b := pairConf(t, storetest.SQLiteConfig, withConsent(t, consent.Partners), withConsent(t, consent.Consent))
	ctx := context.Background()
	alice, bob := event.NewUserURI("a.example", "alice"), event.NewUserURI("b.example", "bob")
	if err := b.p.EnsureUser(ctx, bob, event.NetworkMatrix); err != nil {
		t.Fatal(err)
	}
	room := a.p.NewRoomID()
	publishOut(t, a, membership(room, alice, event.MembershipInvite, bob))
	asked := expect(t, b, "the request for consent", func(e *event.Envelope) bool {
		return e.Kind == event.KindNotice && e.Notice.Code == event.NoticeConsentRequest
	})
	if asked.Sender != bob || asked.Notice.Target != alice {
		t.Fatalf("request for consent to %s about %s", asked.Sender, asked.Notice.Target)
	}
	pending := expect(t, a, "alice told to wait", func(e *event.Envelope) bool { return e.Kind == event.KindNotice })
	if pending.Notice.Code != event.NoticeConsentPending || pending.Sender != alice || pending.Notice.Target != bob || pending.Room != room {
		t.Fatalf("alice's notice: %+v in %s", pending.Notice, pending.Room)
	}
	if err := b.p.Allow(ctx, bob, alice); err != nil {
		t.Fatal(err)
	}
	expect(t, b, "the room reaches bob", func(e *event.Envelope) bool { return e.Kind == event.KindPortalRequest && e.Room == room })
	granted := expect(t, a, "alice told", func(e *event.Envelope) bool { return e.Kind == event.KindNotice })
	if granted.Notice.Code != event.NoticeConsentGranted {
		t.Fatalf("alice's notice: %+v", granted.Notice)
	}
	cs := a.p.consentStore()
	if w, err := cs.Waiting(ctx, alice, bob); err != nil || len(w) != 0 {
		t.Fatalf("invites still waiting: %v %v", w, err)
	}

	if err := b.p.Revoke(ctx, bob, alice); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a records the revoke", func() error {
		st, err := cs.LastState(ctx, alice, bob)
		if err != nil || st != consent.Revoked {
			return errors.Join(err, errors.New("state "+string(st)))
		}
		return nil
	})
	room2 := a.p.NewRoomID()
	publishOut(t, a, membership(room2, alice, event.MembershipInvite, bob))
	failed := expect(t, a, "alice told the invite failed", func(e *event.Envelope) bool { return e.Kind == event.KindNotice && e.Room == room2 })
	if failed.Notice.Code != event.NoticeInviteFailed || failed.Notice.Reason != "noConsent" {
		t.Fatalf("alice's notice after the revoke: %+v", failed.Notice)
	}
	// b's mimi.in has nothing about room2 and no new request for consent; a room that would
	// have reached bob comes before alice's notice (the portal request precedes the answer).
	for len(b.in) > 0 {
		d := <-b.in
		if d.env.Room == room2 || (d.env.Kind == event.KindNotice && d.env.Notice.Code == event.NoticeConsentRequest) {
			t.Fatalf("bob got %s (%v) after his revoke", d.env.Kind, d.env.Notice)
		}
	}
	reqs, err := b.p.consentStore().Requests(ctx, bob, 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range reqs {
		if r.Requester == alice && r.State != consent.Revoked {
			t.Fatalf("bob's record of alice's request: %s", r.State)
		}
	}
	if !strings.Contains(string(failed.Notice.Target), "bob") {
		t.Fatalf("notice target %s", failed.Notice.Target)
	}
}
